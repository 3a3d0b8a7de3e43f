"""A process that forks with a router open: ``gunicorn --preload``, Celery's prefork pool,
``multiprocessing`` with ``fork``. The child inherits the open router, pools and all, but none
of its threads. Before, the child used the parent's pooled connections (two processes on one
server session: one reads the other's results), its topology stayed frozen (no monitor
thread), and its ``close()`` ended the parent's server sessions.

What must hold, proved by what the servers saw (backend pids, ``pg_stat_activity``): the
child's statements run on server sessions of its own, its monitor runs, the parent's sessions
are neither used nor closed by the child, and the parent, reading while the child works, gets
its own rows.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import httpx
import psycopg
import pytest
from examples.marketplace.serving import ROOT, free_port, router_url, stop
from sqlalchemy import text

from router import AsyncRouter, PoolConfig, Router, RouterConfig
from router.sqlalchemy import async_sessionmaker, sessionmaker
from router.testing import LocalCluster
from router.testing.pytest_plugin import ClusterDatabase
from tests.integration.async_support import execute_on
from tests.support import wait_until

pytestmark = [
    pytest.mark.integration,
    # Python >= 3.12 warns about fork() in a process with threads: forking one is the point.
    pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning"),
]

FORK = multiprocessing.get_context("fork")
WHO = "SELECT inet_server_port(), pg_backend_pid()"
WRITE = "INSERT INTO forked_t (v) VALUES (1) RETURNING inet_server_port(), pg_backend_pid()"
Session = tuple[int, int]  # (server port, backend pid)


@pytest.fixture(scope="module", autouse=True)
def table(cluster_db: ClusterDatabase) -> None:
    execute_on(cluster_db.primary_dsn, "CREATE TABLE forked_t (id serial PRIMARY KEY, v int)")
    cluster_db.cluster.wait_caught_up()


def _config(db: ClusterDatabase, app: str) -> RouterConfig:
    return db.router_config(
        application_name=app, monitor_interval=0.1, pool=PoolConfig(min_size=2, max_size=4)
    )


def _run_in_child(work: Callable[[], Any], end: Connection) -> None:
    try:
        end.send(("ok", work()))
    except BaseException as exc:  # reported to the test, whatever it is
        end.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        end.close()


def _fork(work: Callable[[], Any]) -> tuple[Any, Connection]:
    ours, theirs = FORK.Pipe()
    proc = FORK.Process(target=_run_in_child, args=(work, theirs), daemon=True)
    proc.start()
    theirs.close()
    return proc, ours


def _answer(proc: Any, end: Connection, busy: Callable[[], None]) -> Any:
    """The child's result; *busy* runs in the parent meanwhile (its own statements)."""
    for _ in range(600):
        if end.poll(0.1):
            break
        busy()
    else:
        proc.kill()
        pytest.fail("the forked child did not answer within 60 s")
    status, value = end.recv()
    proc.join(10)
    assert status == "ok", value
    return value


def _alive(cluster: LocalCluster, app: str) -> set[Session]:
    """The server sessions of *app* that each node has now."""
    found = set()
    for node in cluster.nodes:
        with psycopg.connect(node.dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,)
            ).fetchall()
        found |= {(node.port, pid) for (pid,) in rows}
    return found


def test_a_forked_child_of_a_sync_router_has_sessions_and_a_monitor_of_its_own(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    app = "fork-sync"
    checked_reads: list[int] = []
    with Router(_config(cluster_db, app)).open(wait_for_primary=10) as router:
        parent: set[Session] = set()
        for _ in range(10):
            parent.add(router.fetchrow(WHO))
            parent.add(router.fetchrow(WRITE))
        assert {port for port, _ in parent} > {cluster.node("primary").port}  # a replica too

        def child() -> dict[str, Any]:
            rounds = router.stats()["monitor_rounds"]
            seen: set[Session] = set()
            for _ in range(10):
                seen.add(router.fetchrow(WHO))
                seen.add(router.fetchrow(WRITE))
            wait_until(
                lambda: router.stats()["monitor_rounds"] >= rounds + 3,
                timeout=10,
                what="the child's monitor to run rounds",
            )
            router.close()
            return {"seen": seen}

        def read_own_value() -> None:
            v = random.randrange(1 << 30)
            assert router.fetchval("SELECT %s::int", (v,)) == v
            checked_reads.append(v)

        proc, end = _fork(child)
        seen = _answer(proc, end, read_own_value)["seen"]

        assert not seen & parent, "the child ran on the parent's server sessions"
        assert {port for port, _ in seen} > {cluster.node("primary").port}
        assert checked_reads, "the parent did not read while the child worked"
        # The child's close() ended its own sessions, none of the parent's.
        wait_until(lambda: not _alive(cluster, app) & seen, timeout=10, what="child sessions gone")
        assert parent <= _alive(cluster, app)
        again = {router.fetchrow(WHO) for _ in range(10)}
        assert again <= parent | _alive(cluster, app)
        assert not again & seen


def test_a_forked_child_of_a_sqlalchemy_factory_has_connections_of_its_own(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    app = "fork-sa"
    checked_reads: list[int] = []
    factory = sessionmaker(_config(cluster_db, app))
    try:

        def sessions() -> set[Session]:
            seen: set[Session] = set()
            for _ in range(5):
                with factory() as s:
                    seen.add(tuple(s.execute(text(WHO)).one()))
                with factory.begin() as s:
                    row = s.execute(text(WRITE)).one()
                    seen.add(tuple(row))
            return seen

        parent = sessions()
        assert {port for port, _ in parent} > {cluster.node("primary").port}
        lock = threading.Lock()

        def child() -> dict[str, Any]:
            rounds = factory.router.stats()["monitor_rounds"]
            seen = sessions()
            wait_until(
                lambda: factory.router.stats()["monitor_rounds"] >= rounds + 3,
                timeout=10,
                what="the child's monitor to run rounds",
            )
            factory.close()
            return {"seen": seen}

        def read_own_value() -> None:
            v = random.randrange(1 << 30)
            with lock, factory() as s:
                assert s.execute(text("SELECT CAST(:v AS int)"), {"v": v}).scalar_one() == v
            checked_reads.append(v)

        proc, end = _fork(child)
        seen = _answer(proc, end, read_own_value)["seen"]

        assert not seen & parent, "the child ran on the parent's server sessions"
        assert checked_reads, "the parent did not read while the child worked"
        wait_until(lambda: not _alive(cluster, app) & seen, timeout=10, what="child sessions gone")
        assert parent <= _alive(cluster, app)
    finally:
        factory.close()


def test_gunicorn_preload_workers_each_have_sessions_and_a_monitor_of_their_own(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    """The deployment shape: ``gunicorn --preload`` with the router opened at import in the
    master (``fork_app.py``), two workers, real HTTP."""
    port = free_port()
    env = {
        **os.environ,
        "FORK_APP_URL": router_url(cluster, cluster_db.name),
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "-b", f"127.0.0.1:{port}",
        "--log-level", "warning", "tests.integration.fork_app:app",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
    try:
        replies: dict[int, list[dict[str, Any]]] = {}

        def who() -> bool:
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
                    reply = client.get("/who", headers={"Connection": "close"}).json()
            except httpx.HTTPError:
                assert proc.poll() is None, f"gunicorn exited with {proc.returncode}"
                return False
            replies.setdefault(reply["worker"], []).append(reply)
            return len(replies) == 2

        wait_until(who, timeout=60, what="both gunicorn workers to answer")
        master = {tuple(s) for s in next(iter(replies.values()))[0]["master"]}
        assert len(master) == 2

        def sessions(worker: int) -> set[Session]:
            return {tuple(r[k]) for r in replies[worker] for k in ("read", "write")}

        # Each worker's monitor runs: its rounds go on after the fork.
        first = {w: r[0]["rounds"] for w, r in replies.items()}
        wait_until(
            lambda: who() and all(r[-1]["rounds"] >= first[w] + 3 for w, r in replies.items()),
            timeout=30,
            what="both workers' monitors to run rounds",
        )
        a, b = (sessions(w) for w in replies)
        assert not (a | b) & master, "a worker ran on the master's server sessions"
        assert not a & b, "two workers shared a server session"
        # The master's sessions are still open: no worker closed them.
        assert master <= _alive(cluster, "fork-gunicorn")

        def echo(v: int) -> int:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                return int(client.get("/echo", params={"v": v}).json()["v"])

        values = random.sample(range(1 << 30), 200)
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(echo, values)) == values
    finally:
        stop(proc)


def test_an_async_router_in_a_forked_child_refuses_and_leaves_the_parent_alone(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    """asyncio's loop and asyncpg's connections do not survive a fork: the child's first
    statement says so, touching nothing of the parent's (before, it ran on the parent's
    connection from another loop and the parent's next statement broke: InternalClientError)."""
    app = "fork-async"
    loop = asyncio.new_event_loop()
    router = loop.run_until_complete(AsyncRouter(_config(cluster_db, app)).open())
    try:
        parent = {tuple(loop.run_until_complete(router.fetchrow(WHO))) for _ in range(10)}
        parent.add(tuple(loop.run_until_complete(router.fetchrow(WRITE))))

        def child() -> str:
            async def read() -> Any:
                return await asyncio.wait_for(router.fetchrow(WHO), 10)

            with pytest.raises(RuntimeError) as caught:
                asyncio.run(read())
            return str(caught.value)

        proc, end = _fork(child)
        said = _answer(proc, end, lambda: None)
        assert "does not survive a fork" in said, said
        again = {tuple(loop.run_until_complete(router.fetchrow(WHO))) for _ in range(10)}
        assert again <= parent | _alive(cluster, app)
        assert parent <= _alive(cluster, app)
    finally:
        loop.run_until_complete(router.close())
        loop.close()


def test_an_async_session_factory_in_a_forked_child_refuses(
    cluster_db: ClusterDatabase,
) -> None:
    loop = asyncio.new_event_loop()
    factory = async_sessionmaker(_config(cluster_db, "fork-sa-async"))

    async def who() -> Any:
        async with factory() as s:
            return (await s.execute(text(WHO))).one()

    try:
        loop.run_until_complete(who())

        def child() -> str:
            with pytest.raises(RuntimeError) as caught:
                asyncio.run(asyncio.wait_for(who(), 10))
            return str(caught.value)

        proc, end = _fork(child)
        said = _answer(proc, end, lambda: None)
        assert "does not survive a fork" in said, said
        loop.run_until_complete(who())  # the parent's own connections still serve it
    finally:
        loop.run_until_complete(factory.aclose())
        loop.close()
