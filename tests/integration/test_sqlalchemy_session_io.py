"""router.sqlalchemy's pooled connections on the real cluster (issue 12, items 1, 2 and 5),
sync (psycopg) and async (asyncpg) factories: what a session leaves on a connection (settings,
temporary tables, prepared statements, cursors, advisory locks, LISTEN) is gone when the next
session gets it, and the drivers' prepared statements stay in step with the server. What held
is read from the server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

import router
import router.sqlalchemy
from router.sqlalchemy import RoutedAsyncSessionmaker, RoutedSessionmaker
from router.testing.pytest_plugin import ClusterDatabase

pytestmark = [pytest.mark.integration]

FAST = {"monitor_interval": 0.1, "readmit_hold": 0.2}
#: Statements that leave session state, all on the primary (the first is a write: the
#: transaction stays there).
LEAVE_STATE = [
    "CREATE TEMP TABLE scratch (v int)",
    "INSERT INTO scratch VALUES (1)",
    "PREPARE q AS SELECT 1",
    "SET work_mem = '7MB'",
    "DECLARE held CURSOR WITH HOLD FOR SELECT 1",
    "SELECT pg_advisory_lock(4212)",
    "LISTEN router_session_io",
]
WHAT_IS_LEFT = text(
    "/* router:primary */ SELECT pg_backend_pid(), to_regclass('pg_temp.scratch') IS NULL,"
    " (SELECT count(*) FROM pg_prepared_statements WHERE name = 'q'),"
    " current_setting('work_mem'),"
    " (SELECT count(*) FROM pg_cursors WHERE name = 'held'),"
    " (SELECT count(*) FROM pg_listening_channels())"
)


@pytest.fixture(scope="module")
def db(cluster_db: ClusterDatabase) -> ClusterDatabase:
    with psycopg.connect(cluster_db.primary_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL)")
        conn.execute("INSERT INTO kv VALUES (1, 0)")
    cluster_db.cluster.wait_caught_up()
    return cluster_db


def _config(db: ClusterDatabase) -> router.RouterConfig:
    return db.router_config(pool=router.PoolConfig(min_size=1, max_size=1), **FAST)


def _advisory_locks(db: ClusterDatabase, pid: int) -> int:
    with psycopg.connect(db.primary_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s", (pid,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def factory(db: ClusterDatabase) -> Iterator[RoutedSessionmaker]:
    with router.sqlalchemy.sessionmaker(_config(db)) as made:
        yield made


@pytest_asyncio.fixture
async def afactory(db: ClusterDatabase) -> AsyncIterator[RoutedAsyncSessionmaker]:
    async with router.sqlalchemy.async_sessionmaker(_config(db)) as made:
        yield made


def _check_nothing_left(row: Any, pid: int, db: ClusterDatabase) -> None:
    assert row[0] == pid  # the same server process: the pool holds one connection
    assert tuple(row[1:]) == (True, 0, "4MB", 0, 0)
    assert _advisory_locks(db, pid) == 0


def test_the_next_session_finds_nothing_of_the_last_ones_state(
    factory: RoutedSessionmaker, db: ClusterDatabase
) -> None:
    with factory() as s:
        for sql in LEAVE_STATE:
            s.execute(text(sql))
        pid = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
        s.commit()
    with factory() as s:
        _check_nothing_left(s.execute(WHAT_IS_LEFT).one(), pid, db)
        s.commit()
    with factory() as s:
        s.execute(text("CREATE TEMP TABLE scratch (v int)"))
        assert s.execute(text("SELECT count(*) FROM pg_temp.scratch")).scalar_one() == 0
        s.execute(text("PREPARE q AS SELECT 2"))
        assert s.execute(text("EXECUTE q")).scalar_one() == 2
        s.commit()


def test_resets_keep_the_drivers_prepared_statements_in_step(
    factory: RoutedSessionmaker, db: ClusterDatabase
) -> None:
    for i in range(1, 21):
        with factory() as s:
            s.execute(text("UPDATE kv SET v = :v WHERE k = 1"), {"v": i})
            s.execute(text("SET work_mem = '5MB'"))
            assert s.execute(text("SELECT v FROM kv WHERE k = 1")).scalar_one() == i
            s.commit()
    with factory(primary=True) as s:
        assert s.execute(text("SELECT v FROM kv WHERE k = 1")).scalar_one() == 20


DO_LEAVES = [
    "DO $$ BEGIN PERFORM set_config('work_mem', '3MB', false); END $$",
    "DO $$ BEGIN CREATE TEMP TABLE do_scratch (v int); END $$",
]
LEFT_BY_DO = text(
    "/* router:primary */ SELECT current_setting('work_mem'),"
    " to_regclass('pg_temp.do_scratch') IS NULL"
)


def test_state_a_do_block_leaves_does_not_reach_the_next_session(
    factory: RoutedSessionmaker,
) -> None:
    """A DO block runs code the router cannot see into: what it leaves (a setting, a
    temporary table) is discarded before the connection serves the next session."""
    with factory() as s:
        for sql in DO_LEAVES:
            s.execute(text(sql))
        s.commit()
    with factory() as s:
        assert tuple(s.execute(LEFT_BY_DO).one()) == ("4MB", True)
        s.commit()


@pytest.mark.asyncio
async def test_async_state_a_do_block_leaves_does_not_reach_the_next_session(
    afactory: RoutedAsyncSessionmaker,
) -> None:
    async with afactory() as s:
        for sql in DO_LEAVES:
            await s.execute(text(sql))
        await s.commit()
    async with afactory() as s:
        assert tuple((await s.execute(LEFT_BY_DO)).one()) == ("4MB", True)
        await s.commit()


@pytest.mark.asyncio
async def test_async_the_next_session_finds_nothing_of_the_last_ones_state(
    afactory: RoutedAsyncSessionmaker, db: ClusterDatabase
) -> None:
    async with afactory() as s:
        for sql in LEAVE_STATE:
            await s.execute(text(sql))
        pid = (await s.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await s.commit()
    async with afactory() as s:
        _check_nothing_left((await s.execute(WHAT_IS_LEFT)).one(), pid, db)
        await s.commit()
    async with afactory() as s:
        await s.execute(text("CREATE TEMP TABLE scratch (v int)"))
        assert (await s.execute(text("SELECT count(*) FROM pg_temp.scratch"))).scalar_one() == 0
        await s.execute(text("PREPARE q AS SELECT 2"))
        assert (await s.execute(text("EXECUTE q"))).scalar_one() == 2
        await s.commit()


@pytest.mark.asyncio
async def test_async_resets_keep_the_drivers_prepared_statements_in_step(
    afactory: RoutedAsyncSessionmaker,
) -> None:
    for i in range(1, 21):
        async with afactory() as s:
            await s.execute(text("UPDATE kv SET v = :v WHERE k = 1"), {"v": i})
            await s.execute(text("SET work_mem = '5MB'"))
            assert (await s.execute(text("SELECT v FROM kv WHERE k = 1"))).scalar_one() == i
            await s.commit()
    async with afactory(primary=True) as s:
        assert (await s.execute(text("SELECT v FROM kv WHERE k = 1"))).scalar_one() == 20


# -- item 2: a committed write is acknowledged, whatever befalls the bookkeeping after it ------

APP_ROLE = "router_sa_session_io_app"
REVOKE = "REVOKE EXECUTE ON FUNCTION pg_current_wal_insert_lsn() FROM PUBLIC"
GRANT = "GRANT EXECUTE ON FUNCTION pg_current_wal_insert_lsn() TO PUBLIC"


@pytest.fixture
def app_config(db: ClusterDatabase) -> Iterator[router.RouterConfig]:
    """A configuration connecting as an ordinary role, whose commit-position read the test
    can make fail for real (no right to the function)."""
    user = db.cluster.primary.user
    with psycopg.connect(db.primary_dsn, autocommit=True) as conn:
        conn.execute(
            f"DO $$BEGIN CREATE ROLE {APP_ROLE} LOGIN IN ROLE pg_monitor;"
            " EXCEPTION WHEN duplicate_object THEN NULL; END$$"
        )
        conn.execute(f"GRANT ALL ON kv TO {APP_ROLE}")
    db.cluster.wait_caught_up()
    config = _config(db)
    nodes = [n.replace(dsn=n.dsn.replace(f"//{user}@", f"//{APP_ROLE}@")) for n in config.all_nodes]
    try:
        yield config.replace(primary=nodes[0], replicas=nodes[1:])
    finally:
        _on_primary(db, GRANT)


def _on_primary(db: ClusterDatabase, sql: str) -> None:
    with psycopg.connect(db.primary_dsn, autocommit=True) as conn:
        conn.execute(sql)


def test_a_commit_whose_position_cannot_be_read_is_not_reported_failed(
    app_config: router.RouterConfig, db: ClusterDatabase
) -> None:
    primary_port = db.cluster.primary.port
    with router.sqlalchemy.sessionmaker(app_config) as factory:
        _on_primary(db, REVOKE)
        with factory() as s:
            s.execute(text("UPDATE kv SET v = 100 WHERE k = 1"))
            s.commit()
            # Its reads go to the primary until the position is known: they see the commit.
            row = s.execute(text("SELECT v, inet_server_port() FROM kv WHERE k = 1")).one()
            assert tuple(row) == (100, primary_port)
            s.commit()
        _on_primary(db, GRANT)
        with factory(primary=True) as s:
            assert s.execute(text("SELECT v FROM kv WHERE k = 1")).scalar_one() == 100


@pytest.mark.asyncio
async def test_async_a_commit_whose_position_cannot_be_read_is_not_reported_failed(
    app_config: router.RouterConfig, db: ClusterDatabase
) -> None:
    primary_port = db.cluster.primary.port
    async with router.sqlalchemy.async_sessionmaker(app_config) as factory:
        _on_primary(db, REVOKE)
        async with factory() as s:
            await s.execute(text("UPDATE kv SET v = 101 WHERE k = 1"))
            await s.commit()
            row = (await s.execute(text("SELECT v, inet_server_port() FROM kv WHERE k = 1"))).one()
            assert tuple(row) == (101, primary_port)
            await s.commit()
        _on_primary(db, GRANT)


def _delay_replicas(db: ClusterDatabase) -> None:
    """The replicas stay eligible (lag well within the budget) but apply WAL 2 s late."""
    db.cluster.wait_caught_up()
    for replica in db.cluster.replicas:
        db.cluster.set_apply_delay(replica, 2.0)


def test_the_next_session_reads_a_commit_whose_position_was_lost(
    app_config: router.RouterConfig, db: ClusterDatabase
) -> None:
    """A session commits and its position cannot be read; the factory's next session (the
    next request) must read the commit too: it starts with the loss, on the primary."""
    primary_port = db.cluster.primary.port
    with router.sqlalchemy.sessionmaker(app_config) as factory:
        with factory() as s:
            s.execute(text("UPDATE kv SET v = 110 WHERE k = 1"))  # its position is read
            s.commit()
        _delay_replicas(db)
        _on_primary(db, REVOKE)
        with factory() as s:
            s.execute(text("UPDATE kv SET v = 111 WHERE k = 1"))
            s.commit()
        with factory() as s:
            row = s.execute(text("SELECT v, inet_server_port() FROM kv WHERE k = 1")).one()
            assert tuple(row) == (111, primary_port)


@pytest.mark.asyncio
async def test_async_the_next_session_reads_a_commit_whose_position_was_lost(
    app_config: router.RouterConfig, db: ClusterDatabase
) -> None:
    primary_port = db.cluster.primary.port
    async with router.sqlalchemy.async_sessionmaker(app_config) as factory:
        async with factory() as s:
            await s.execute(text("UPDATE kv SET v = 120 WHERE k = 1"))
            await s.commit()
        await asyncio.to_thread(_delay_replicas, db)
        _on_primary(db, REVOKE)
        async with factory() as s:
            await s.execute(text("UPDATE kv SET v = 121 WHERE k = 1"))
            await s.commit()
        async with factory() as s:
            row = (await s.execute(text("SELECT v, inet_server_port() FROM kv WHERE k = 1"))).one()
            assert tuple(row) == (121, primary_port)


# -- item 5: a statement that times out is cancelled on its server --------------------------


def _running(db: ClusterDatabase, tag: str) -> int:
    """Server processes running a statement tagged *tag*, on every node."""
    total = 0
    for node in db.cluster.nodes:
        with psycopg.connect(db.dsn(node), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                " AND query LIKE %s AND pid <> pg_backend_pid()",
                (f"%/* {tag} */%",),
            ).fetchone()
        assert row is not None
        total += int(row[0])
    return total


def test_a_statement_past_its_statement_timeout_is_cancelled(
    factory: RoutedSessionmaker, db: ClusterDatabase
) -> None:
    with factory() as s:
        s.execute(text("SET statement_timeout = 300"))
        started = time.monotonic()
        with pytest.raises(OperationalError, match="statement timeout"):
            s.execute(text("SELECT pg_sleep(4) /* sa-statement-timeout */"))
        assert time.monotonic() - started < 0.8
    assert _running(db, "sa-statement-timeout") == 0


@pytest.mark.asyncio
async def test_async_a_cancelled_statement_is_cancelled_on_its_server(
    afactory: RoutedAsyncSessionmaker, db: ClusterDatabase
) -> None:
    async with afactory() as s:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(s.execute(text("SELECT pg_sleep(4) /* sa-cancelled */")), 0.3)
        assert time.monotonic() - started < 0.8
    deadline = started + 2.5
    while _running(db, "sa-cancelled") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert _running(db, "sa-cancelled") == 0
    async with afactory() as s:
        assert (await s.execute(text("SELECT 1"))).scalar_one() == 1


# -- item 7: a strict start for the factories, through their router core ---------------------


def test_a_factory_can_wait_for_the_primary_at_start_up(db: ClusterDatabase) -> None:
    config = _config(db)
    user = db.cluster.primary.user
    stranger = [
        n.replace(dsn=n.dsn.replace(f"//{user}@", "//router_no_such_role@"))
        for n in config.all_nodes
    ]
    refused = config.replace(primary=stranger[0], replicas=stranger[1:])
    with (
        router.sqlalchemy.sessionmaker(refused) as factory,
        pytest.raises(router.PrimaryUnavailable, match="router_no_such_role"),
    ):
        factory.router.open(wait_for_primary=0.5)
    with router.sqlalchemy.sessionmaker(config) as factory:
        factory.router.open(wait_for_primary=5)
        with factory() as s:
            s.execute(text("UPDATE kv SET v = v WHERE k = -1"))
            s.commit()


@pytest.mark.asyncio
async def test_async_a_factory_can_wait_for_the_primary_at_start_up(db: ClusterDatabase) -> None:
    async with router.sqlalchemy.async_sessionmaker(_config(db)) as factory:
        await factory.router.open(wait_for_primary=5)
        async with factory() as s:
            await s.execute(text("UPDATE kv SET v = v WHERE k = -1"))
            await s.commit()
