"""AsyncRouter: a statement that times out is cancelled on its server and not run elsewhere
(issue 12, item 5), for asyncpg's ``timeout=`` and for a cancelled task (``asyncio.wait_for``),
outside a session, in a session, in a transaction, for reads and for writes. The sync
Router's ``timeout=`` and ``read_timeout`` are in ``test_sync_read_deadline.py``; its
``statement_timeout`` case is in ``test_*_session_io.py``. What held is read from every
server's ``pg_stat_activity`` and ``pg_locks``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import router
from router.testing.pytest_plugin import ClusterDatabase
from tests.integration.async_support import execute_on, node_value, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

FAST = {"monitor_interval": 0.1, "readmit_hold": 0.2}
APP = "router-timeouts"
#: Long enough that a statement still running after the test's bounds was not cancelled.
SLEEP = 4
TIMEOUT = 0.3
#: The caller has its error within this of the timeout (the machine is shared and slow).
LATE = 0.5


@pytest.fixture(scope="module")
def db(cluster_db: ClusterDatabase) -> ClusterDatabase:
    execute_on(
        cluster_db.primary_dsn,
        "CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL)",
        "INSERT INTO kv VALUES (1, 0)",
    )
    cluster_db.cluster.wait_caught_up()
    return cluster_db


@pytest_asyncio.fixture
async def r(db: ClusterDatabase) -> AsyncIterator[router.AsyncRouter]:
    async with router.AsyncRouter(db.router_config(application_name=APP, **FAST)) as rt:
        yield rt


def _sleeper(tag: str) -> str:
    return f"SELECT pg_sleep({SLEEP}) /* {tag} */"


async def _running(db: ClusterDatabase, tag: str) -> dict[str, int]:
    """Per node: server processes running a statement tagged *tag*."""
    found = {}
    for node in db.cluster.nodes:
        found[node.name] = await node_value(
            db.dsn(node),
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
            f" AND query LIKE '%/* {tag} */%' AND pid <> pg_backend_pid()",
        )
    return found


async def _nothing_running(db: ClusterDatabase, tag: str, started: float) -> None:
    """Nothing tagged *tag* runs on any server, seen well before the statement would have
    ended by itself."""

    async def none_left() -> bool:
        return not any((await _running(db, tag)).values())

    await wait_for(none_left, timeout=SLEEP - 1.5, what=f"{tag} cancelled on its server")
    assert time.monotonic() - started < SLEEP - 0.5


async def _times_out(call: Callable[[], Awaitable[Any]]) -> float:
    """When *call* raised its timeout, in seconds after it started (asyncpg's TimeoutError or
    the cancelled wait's)."""
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await call()
    return time.monotonic() - started


def _idle_again(r: router.AsyncRouter) -> Callable[[], bool]:
    def idle() -> bool:
        return all(node["pool"]["in_use"] == 0 for node in r.stats()["nodes"].values())

    return idle


@pytest.mark.parametrize("how", ["timeout", "wait_for"])
async def test_a_read_that_times_out_is_cancelled_on_its_server_and_not_retried(
    r: router.AsyncRouter, db: ClusterDatabase, how: str
) -> None:
    tag = f"read-{how}"
    if how == "timeout":
        elapsed = await _times_out(lambda: r.fetchval(_sleeper(tag), timeout=TIMEOUT))
        decision = r.last_decision
        assert decision is not None
        assert decision.reason.value != "retry"
    else:
        elapsed = await _times_out(lambda: asyncio.wait_for(r.fetchval(_sleeper(tag)), TIMEOUT))
    started = time.monotonic() - elapsed
    assert elapsed < TIMEOUT + LATE
    await _nothing_running(db, tag, started)
    # The connection went back to its pool (not leaked) and the pool serves on.
    await wait_for(_idle_again(r), what="connections back in their pools")
    assert await r.fetchval("SELECT 1") == 1


async def test_a_write_that_times_out_is_cancelled_and_its_row_locks_go(
    r: router.AsyncRouter, db: ClusterDatabase
) -> None:
    tag = "write-timeout"
    update = f"WITH u AS (UPDATE kv SET v = v + 1 WHERE k = 1 RETURNING k) {_sleeper(tag)} FROM u"
    elapsed = await _times_out(lambda: r.execute(update, timeout=TIMEOUT))
    started = time.monotonic() - elapsed
    assert elapsed < TIMEOUT + LATE
    await _nothing_running(db, tag, started)
    # The row is free at once, and unchanged: the UPDATE was cancelled, not committed.
    conn = await asyncpg.connect(db.primary_dsn)
    try:
        locked = await conn.fetchval("SELECT v FROM kv WHERE k = 1 FOR UPDATE NOWAIT")
    finally:
        await conn.close()
    assert locked == 0


async def test_a_statement_that_times_out_in_a_session_or_transaction_is_cancelled(
    r: router.AsyncRouter, db: ClusterDatabase
) -> None:
    async with r.session() as s:
        elapsed = await _times_out(lambda: s.fetchval(_sleeper("session"), timeout=TIMEOUT))
        started = time.monotonic() - elapsed
        assert elapsed < TIMEOUT + LATE
        assert await s.fetchval("SELECT 2") == 2
    await _nothing_running(db, "session", started)

    update = "UPDATE kv SET v = v + 1 WHERE k = 1"
    started = time.monotonic()

    async def in_a_transaction() -> None:
        async with r.transaction() as tx:
            await tx.execute(update)
            await asyncio.wait_for(tx.fetchval(_sleeper("transaction")), TIMEOUT)

    with pytest.raises(TimeoutError):
        await in_a_transaction()
    assert time.monotonic() - started < TIMEOUT + LATE
    await _nothing_running(db, "transaction", started)
    assert await node_value(db.primary_dsn, "SELECT v FROM kv WHERE k = 1") == 0
    await wait_for(_idle_again(r), what="connections back in their pools")
