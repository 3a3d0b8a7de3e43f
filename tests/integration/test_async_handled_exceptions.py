"""The exception being handled, around and inside the async router's coroutines (issue 14 step
6a, benchmarks/RESULTS.md). Compiled with mypyc 2.4, a coroutine that awaited in a ``finally``
block raised, once the block ended, whatever exception its caller was handling, and a
cancellation through one left the ``CancelledError`` as the thread's handled exception for good
(raised again by the next such block): the async suites failed compiled from the first cancelled
statement on. Pure Python these pass trivially; ``scripts/check-mypyc`` runs them compiled."""

from __future__ import annotations

import asyncio
import sys

import pytest

import router
from router.testing.pytest_plugin import ClusterDatabase

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

APP = "handled-exceptions"


async def test_a_catalog_read_inside_the_callers_except_block_returns(
    cluster_db: ClusterDatabase,
) -> None:
    async with router.AsyncRouter(cluster_db.router_config(application_name=APP)) as rt:
        try:
            raise LookupError("the caller's own")  # noqa: TRY301
        except LookupError:
            await rt.refresh_catalog()  # raised the LookupError compiled
            value = await rt.fetchval("SELECT 41 + 1")
    assert value == 42


def _cancel_catalog_reads(config: router.RouterConfig) -> tuple[int, object, object]:
    """In a thread and event loop of its own (what a leak leaves stays there): catalog reads
    cancelled as tasks of their own (the compiled coroutine at the bottom of the task, as
    the router's background work has it), at each of their first awaits; then how many were
    cancelled, what the thread is left handling, and a catalog read's outcome."""

    async def scenario() -> tuple[int, object, object]:
        async with router.AsyncRouter(config) as rt:
            cancelled = 0
            for steps in range(6):
                task = asyncio.ensure_future(rt._executor.refresh_catalog())
                for _ in range(steps):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    cancelled += 1
            handled = sys.exc_info()[1]
            outcome: object = "returned"
            try:
                await rt.refresh_catalog()
            except BaseException as exc:  # what is raised is the finding
                outcome = exc
            return cancelled, handled, outcome

    return asyncio.run(scenario())


async def test_a_cancelled_catalog_read_leaves_no_exception_behind(
    cluster_db: ClusterDatabase,
) -> None:
    config = cluster_db.router_config(application_name=APP)
    cancelled, handled, outcome = await asyncio.to_thread(_cancel_catalog_reads, config)
    assert cancelled >= 2  # some were cancelled inside the read, not before it started
    assert handled is None  # was the CancelledError compiled
    assert outcome == "returned"  # raised the CancelledError compiled
