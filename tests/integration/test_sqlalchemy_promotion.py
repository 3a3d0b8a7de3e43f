"""SQLAlchemy sessions right after the router learns of a promotion (found by a new-user
tryout: 3 of 6 async and 4 of 8 sync write sessions met SQLSTATE 25006). The promoted node's
pooled connections were opened for a replica (``default_transaction_read_only``, asyncpg's
read deadline); the factory disposed of its pool in the first session that saw the change,
while other sessions, in other tasks and threads, took its idle connections. Every write
session must run on a connection opened for the primary; a transaction's write is not
retried on 25006.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import text

from router import RouterConfig
from router.sqlalchemy import async_sessionmaker, sessionmaker
from router.testing import LocalCluster
from router.testing.pytest_plugin import ClusterDatabase
from tests.integration.async_support import execute_on, node_value
from tests.integration.test_async_faults import _switch_over, _undo_switch_over

INSERT = text("INSERT INTO promoted_t (v) VALUES (:v)")

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture(scope="module", autouse=True)
def table(cluster_db: ClusterDatabase) -> None:
    execute_on(cluster_db.primary_dsn, "CREATE TABLE promoted_t (id serial PRIMARY KEY, v text)")
    cluster_db.cluster.wait_caught_up()


def _config(db: ClusterDatabase, app: str) -> RouterConfig:
    # The monitor looks at open, then only when told: the promotion is seen in one step.
    return db.router_config(application_name=app, monitor_interval=60.0)


def _root(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


@pytest.mark.asyncio
async def test_async_sessions_right_after_a_promotion_all_write_on_the_new_primary(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    old, new = cluster.node("primary"), cluster.node("replica1")
    factory = async_sessionmaker(_config(cluster_db, "sa-promoted-async"))
    try:
        await factory.router.open(wait_for_primary=10)

        async def read() -> Any:
            async with factory() as s:
                return (await s.execute(text("SELECT inet_server_port()"))).scalar_one()

        for _ in range(3):  # idle read-only connections in replica1's pool
            await asyncio.gather(*(read() for _ in range(8)))
        try:
            await asyncio.to_thread(_switch_over, cluster, old, new)
            monitor = factory.router._monitor
            monitor.request_rediscovery()
            await monitor.check()
            assert factory.router.stats()["primary"] == "replica1"

            async def write(i: int) -> str:
                try:
                    async with factory() as s:
                        await s.execute(INSERT, {"v": f"a{i}"})
                        await s.commit()
                    return "ok"
                except Exception as exc:
                    return f"{type(_root(exc)).__name__}: {_root(exc)}"

            outcomes = await asyncio.gather(*(write(i) for i in range(6)))
            written = await node_value(
                cluster_db.dsn(new), "SELECT count(*) FROM promoted_t WHERE v LIKE 'a%'"
            )
        finally:
            await asyncio.to_thread(_undo_switch_over, old)
    finally:
        await factory.aclose()
    assert outcomes == ["ok"] * 6, outcomes
    assert written == 6


def test_sync_sessions_right_after_a_promotion_all_write_on_the_new_primary(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    old, new = cluster.node("primary"), cluster.node("replica1")
    factory = sessionmaker(_config(cluster_db, "sa-promoted-sync"))
    try:
        factory.router.open(wait_for_primary=10)

        def read(barrier: threading.Barrier) -> None:
            with factory() as s:
                barrier.wait()
                s.execute(text("SELECT inet_server_port()")).scalar_one()
                barrier.wait()

        for _ in range(3):
            barrier = threading.Barrier(8)
            threads = [threading.Thread(target=read, args=(barrier,)) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        outcomes: list[str] = []
        try:
            _switch_over(cluster, old, new)
            monitor = factory.router._monitor
            monitor.request_rediscovery()
            monitor.check()
            assert factory.router.stats()["primary"] == "replica1"
            go = threading.Barrier(8)

            def write(i: int) -> None:
                go.wait()
                try:
                    with factory() as s:
                        s.execute(INSERT, {"v": f"s{i}"})
                        s.commit()
                    outcomes.append("ok")
                except Exception as exc:
                    outcomes.append(f"{type(_root(exc)).__name__}: {_root(exc)}")

            threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            with new.connect(cluster_db.name) as conn:
                row = conn.execute("SELECT count(*) FROM promoted_t WHERE v LIKE 's%'").fetchone()
        finally:
            _undo_switch_over(old)
    finally:
        factory.close()
    assert outcomes == ["ok"] * 8, outcomes
    assert row is not None
    assert row[0] == 8
