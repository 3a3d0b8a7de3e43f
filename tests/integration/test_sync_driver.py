"""What only the sync Router has: psycopg's parameters, prepared statements per
``prepare_threshold`` and none behind a transaction pooler, and its threads."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

import router
from router.testing.pytest_plugin import ClusterDatabase
from tests.integration.async_support import execute_on
from tests.integration.sync_support import backends, wait_for

pytestmark = [pytest.mark.integration]

FAST = {"monitor_interval": 0.1, "readmit_hold": 0.2}
PREPARED = "/* router:primary */ SELECT count(*) FROM pg_prepared_statements"


@pytest.fixture(scope="module")
def db(cluster_db: ClusterDatabase) -> ClusterDatabase:
    execute_on(cluster_db.primary_dsn, "CREATE TABLE notes (id int PRIMARY KEY, body text)")
    cluster_db.cluster.wait_caught_up()
    return cluster_db


@pytest.fixture
def one(db: ClusterDatabase) -> Iterator[router.Router]:
    """A router with one connection per node: what one statement leaves, the next sees."""
    pool = router.PoolConfig(min_size=1, max_size=1)
    with router.Router(db.router_config(pool=pool, **FAST)) as rt:
        yield rt


def test_psycopg_parameters_and_status(one: router.Router) -> None:
    assert one.execute("INSERT INTO notes VALUES (%s, %s)", (1, "one")) == "INSERT 0 1"
    assert one.execute("INSERT INTO notes VALUES (%(id)s, %(body)s)", {"id": 2, "body": "two"})
    with one.session() as s:
        assert s.fetch("SELECT id, body FROM notes WHERE id = ANY(%s) ORDER BY id", ([1, 2],)) == [
            (1, "one"),
            (2, "two"),
        ]
        assert s.fetchval("SELECT body FROM notes WHERE id = %s", (2,)) == "two"
        assert s.fetchrow("SELECT body FROM notes WHERE id = %s", (99,)) is None
    one.executemany("INSERT INTO notes VALUES (%s, %s)", [(3, "c"), (4, "d")])
    assert one.fetchval("SELECT count(*) FROM notes WHERE id IN (3, 4)") == 2
    # Several statements without parameters: the last one's status, as asyncpg gives it.
    assert one.execute("SELECT 1; UPDATE notes SET body = 'x' WHERE id = 4") == "UPDATE 1"
    with pytest.raises(TypeError, match="pass a str"):
        one.execute(psycopg.sql.SQL("SELECT 1"))


def test_statements_are_prepared_after_the_threshold(db: ClusterDatabase) -> None:
    pool = router.PoolConfig(min_size=1, max_size=1)
    with router.Router(db.router_config(pool=pool, prepare_threshold=2, **FAST)) as rt:
        for _ in range(3):
            rt.fetchval(PREPARED)
        assert rt.fetchval(PREPARED) >= 1


def test_behind_a_transaction_pooler_nothing_is_prepared(db: ClusterDatabase) -> None:
    pool = router.PoolConfig(min_size=1, max_size=1)
    cfg = db.router_config(pool=pool, prepare_threshold=0, pooler_mode="transaction", **FAST)
    with router.Router(cfg) as rt:
        for _ in range(10):
            assert rt.fetchval(PREPARED) == 0


def test_a_session_reset_forgets_prepared_statements_and_settings(one: router.Router) -> None:
    with one.session() as s:
        s.execute("SET application_name = 'changed'")
        s.execute("PREPARE mine AS SELECT 1")
        assert s.pinned
    # The same (only) primary connection, reset before it went back to the pool.
    assert one.fetchval("/* router:primary */ SELECT count(*) FROM pg_prepared_statements") == 0
    assert one.fetchval("/* router:primary */ SHOW application_name") == "router"


def test_threads_share_one_router(db: ClusterDatabase) -> None:
    """Sixteen threads, one router: every write is then seen by every thread's read (the
    router's floor rises atomically), and the pools end with nothing in use."""
    with router.Router(db.router_config(**FAST)) as rt:

        def work(i: int) -> bool:
            rt.execute("INSERT INTO notes VALUES (%s, 'thread')", (1000 + i,))
            count: int = rt.fetchval("SELECT count(*) FROM notes WHERE id = %s", (1000 + i,))
            return count == 1

        with ThreadPoolExecutor(max_workers=16) as ex:
            assert all(ex.map(work, range(200)))
        stats = rt.stats()
    for name, node in stats["nodes"].items():
        assert node["outstanding"] == 0, name
        assert node["pool"]["in_use"] == 0, (name, node["pool"])
    assert stats["nodes"]["primary"]["writes"] >= 200


EXIT_SCRIPT = """
import atexit, sys, time
import router

rt = router.Router(router.RouterConfig(
    primary=sys.argv[1], replicas=sys.argv[2:], monitor_interval=0.01,
    application_name="router-exit"))
rt.open()
assert rt.fetchval("SELECT 1") == 1
def close():  # an application closing its router at exit
    rt.close()
    print("closed", rt.stats()["monitor_rounds"] > 0, flush=True)


atexit.register(close)
# Runs first (atexit is last in, first out), after concurrent.futures' exit hook: the
# monitor's rounds go on meanwhile.
atexit.register(time.sleep, 0.5)
"""


def test_a_router_at_interpreter_exit_monitors_and_closes_without_errors(
    db: ClusterDatabase,
) -> None:
    """concurrent.futures refuses new work once the interpreter exits: the monitor's last
    rounds and a close() in an atexit handler still run (they failed with "cannot schedule
    new futures after shutdown" under gunicorn), and the server sees every connection go."""
    import subprocess
    import sys

    replicas = db.replica_dsns
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, db.primary_dsn, *replicas],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "cannot schedule" not in done.stderr, done.stderr
    assert done.stdout.split() == ["closed", "True"]
    for dsn in [db.primary_dsn, *replicas]:

        def gone(dsn: str = dsn) -> bool:
            return backends(dsn, "router-exit") == 0

        wait_for(gone, 10, "the connections gone")
