"""While a node is down, the logs say so once (issue 12, "Also"): asyncpg's pool retries its
connection floor with a WARNING and a full traceback each time; the router moves those to DEBUG
on ``router.pool`` and its monitor logs the node's state changes."""

from __future__ import annotations

import logging

import pytest

import router
from router.testing import LocalCluster
from router.testing.pytest_plugin import ClusterDatabase
from tests.integration.async_support import blocking, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.asyncio]


async def test_a_node_down_is_one_line_not_a_traceback_per_reconnect(
    cluster_db: ClusterDatabase, cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = cluster_db.router_config(monitor_interval=0.1, readmit_hold=0.2)
    async with router.AsyncRouter(config) as rt:
        await wait_for(lambda: rt.stats()["nodes"]["replica2"]["pool"]["size"] >= 1)
        caplog.clear()
        await blocking(cluster.stop, "replica2")

        def attempts() -> int:
            return sum(
                r.name == "router.pool" and "connection floor" in r.getMessage()
                for r in caplog.records
            )

        # asyncpg tries again after 1 s, then 2 s: two attempts, both at DEBUG.
        await wait_for(lambda: attempts() >= 2, timeout=10, what="two reconnect attempts")
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING and r.exc_info]
    assert noisy == [], [r.getMessage() for r in noisy]
    from_drivers = [r for r in caplog.records if r.name.startswith(("asyncpg", "psycopg"))]
    assert from_drivers == [], [r.getMessage() for r in from_drivers]
    down = [
        r
        for r in caplog.records
        if r.name.startswith("router")
        and r.levelno >= logging.INFO
        and "replica2" in r.getMessage()
    ]
    assert 1 <= len(down) <= 2, [r.getMessage() for r in down]  # down (and suspect first)
