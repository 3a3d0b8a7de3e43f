"""Promises of the SQLAlchemy sessions (issue 12), sync and async, on the real cluster:
monotonic reads across nodes, a new session after an earlier session's commit, transaction-local
settings after the transaction moves to the primary, relations a standby refuses. Proven by
the server (``inet_server_port()``, ``pg_is_in_recovery()``) and by row values."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import router
import router.sqlalchemy
from router.sqlalchemy import RoutedAsyncSessionmaker, RoutedSessionmaker
from router.testing.pytest_plugin import ClusterDatabase

pytestmark = [pytest.mark.integration]

FAST = {"monitor_interval": 0.1, "readmit_hold": 0.2}
COUNTER = text("SELECT n, inet_server_port() FROM counter WHERE id = 1")
WHERE = text("SELECT inet_server_port(), pg_is_in_recovery()")


@pytest.fixture(scope="module")
def db(cluster_db: ClusterDatabase) -> ClusterDatabase:
    with psycopg.connect(cluster_db.primary_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL);"
            " CREATE TABLE counter (id int PRIMARY KEY, n bigint NOT NULL);"
            " INSERT INTO counter VALUES (1, 0);"
            " INSERT INTO kv VALUES (1, 1), (2, 2);"
            " CREATE UNLOGGED TABLE uc (k int PRIMARY KEY, v text NOT NULL);"
            " INSERT INTO uc VALUES (1, 'cached');"
            " CREATE TABLE audit (at timestamptz NOT NULL DEFAULT now());"
            " CREATE FUNCTION audited() RETURNS int LANGUAGE sql VOLATILE"
            "  AS 'INSERT INTO audit DEFAULT VALUES RETURNING 1';"
            " CREATE VIEW audited_view AS SELECT audited() AS one;"
        )
    cluster_db.cluster.wait_caught_up()
    return cluster_db


@pytest.fixture
def factory(db: ClusterDatabase) -> Iterator[RoutedSessionmaker]:
    with router.sqlalchemy.sessionmaker(db.router_config(**FAST)) as made:
        yield made


@pytest_asyncio.fixture
async def afactory(db: ClusterDatabase) -> AsyncIterator[RoutedAsyncSessionmaker]:
    async with router.sqlalchemy.async_sessionmaker(db.router_config(**FAST)) as made:
        yield made


def _ports(db: ClusterDatabase) -> dict[int, str]:
    return {n.port: n.name for n in db.cluster.nodes}


def _primary_value(db: ClusterDatabase, sql: str) -> Any:
    with psycopg.connect(db.primary_dsn, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
        return None if row is None else row[0]


class _Bumper:
    """Bumps the counter on the primary every 5 ms on a thread, until stopped."""

    def __init__(self, db: ClusterDatabase) -> None:
        self._dsn = db.primary_dsn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.bumps = 0

    def _run(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                conn.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
                self.bumps += 1
                time.sleep(0.005)

    def __enter__(self) -> _Bumper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _delays(db: ClusterDatabase) -> None:
    db.cluster.set_apply_delay("replica1", 0.3)
    db.cluster.set_apply_delay("replica2", 1.0)


def _check_monotonic(found: list[tuple[int, Counter[str]]], primary: str) -> None:
    served: Counter[str] = Counter()
    for _, nodes in found:
        served.update(nodes)
    assert [regressions for regressions, _ in found] == [0] * len(found), served
    assert served[primary] > 0, served
    assert served["replica1"] + served["replica2"] > 0, served


# -- 3: monotonic reads ----------------------------------------------------------------


def _sync_session_reads(
    factory: RoutedSessionmaker, ports: dict[int, str], key: int
) -> tuple[int, Counter[str]]:
    served: Counter[str] = Counter()
    regressions = 0
    highest = -1
    with factory() as s:
        s.execute(text(f"INSERT INTO kv VALUES ({key}, 0) ON CONFLICT (k) DO NOTHING"))
        s.commit()
        for _ in range(100):
            n, port = s.execute(COUNTER).one()
            s.rollback()  # each read its own transaction: free to move between nodes
            served[ports[port]] += 1
            regressions += n < highest
            highest = max(highest, n)
            time.sleep(0.025)
    return regressions, served


@pytest.mark.faults
def test_a_session_never_reads_behind_what_it_has_read(
    factory: RoutedSessionmaker, db: ClusterDatabase
) -> None:
    _delays(db)
    ports = _ports(db)
    found: list[tuple[int, Counter[str]]] = []
    with _Bumper(db) as bumper:
        threads = [
            threading.Thread(
                target=lambda i=i: found.append(_sync_session_reads(factory, ports, 1000 + i))
            )
            for i in range(6)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        bumper.stop()
        for thread in threads:
            thread.join(30)
    assert bumper.bumps > 50
    assert len(found) == 6
    _check_monotonic(found, db.cluster.primary.name)


async def _async_session_reads(
    afactory: RoutedAsyncSessionmaker, ports: dict[int, str], key: int
) -> tuple[int, Counter[str]]:
    served: Counter[str] = Counter()
    regressions = 0
    highest = -1
    async with afactory() as s:
        await s.execute(text(f"INSERT INTO kv VALUES ({key}, 0) ON CONFLICT (k) DO NOTHING"))
        await s.commit()
        for _ in range(100):
            n, port = (await s.execute(COUNTER)).one()
            await s.rollback()
            served[ports[port]] += 1
            regressions += n < highest
            highest = max(highest, n)
            await asyncio.sleep(0.025)
    return regressions, served


@pytest.mark.asyncio
@pytest.mark.faults
async def test_async_a_session_never_reads_behind_what_it_has_read(
    afactory: RoutedAsyncSessionmaker, db: ClusterDatabase
) -> None:
    await asyncio.to_thread(_delays, db)
    ports = _ports(db)
    with _Bumper(db) as bumper:
        reading = asyncio.gather(
            *(_async_session_reads(afactory, ports, 1100 + i) for i in range(6))
        )
        await asyncio.sleep(1.5)
        bumper.stop()
        found = await reading
    assert bumper.bumps > 50
    _check_monotonic(list(found), db.cluster.primary.name)


# -- 8: a new session after an earlier session's commit ----------------------------------


def _delay_both(db: ClusterDatabase) -> None:
    for replica in db.cluster.replicas:
        db.cluster.set_apply_delay(replica, 0.5)


@pytest.mark.faults
def test_a_new_session_sees_the_commit_of_an_earlier_one(
    factory: RoutedSessionmaker, db: ClusterDatabase
) -> None:
    _delay_both(db)
    stale = 0
    for i in range(100):
        with factory() as writer:
            writer.execute(text(f"INSERT INTO kv VALUES ({2000 + i}, {i})"))
            writer.commit()
        with factory() as fresh:
            stale += fresh.execute(text(f"SELECT v FROM kv WHERE k = {2000 + i}")).scalar() != i
    assert stale == 0
    with factory(consistency="eventual") as eventual:  # the delay is real
        assert eventual.execute(text("SELECT v FROM kv WHERE k = 2099")).first() is None


@pytest.mark.asyncio
@pytest.mark.faults
async def test_async_a_new_session_sees_the_commit_of_an_earlier_one(
    afactory: RoutedAsyncSessionmaker, db: ClusterDatabase
) -> None:
    await asyncio.to_thread(_delay_both, db)
    stale = 0
    for i in range(100):
        async with afactory() as writer:
            await writer.execute(text(f"INSERT INTO kv VALUES ({2200 + i}, {i})"))
            await writer.commit()
        async with afactory() as fresh:
            found = (await fresh.execute(text(f"SELECT v FROM kv WHERE k = {2200 + i}"))).scalar()
            stale += found != i
    assert stale == 0
    async with afactory(consistency="eventual") as eventual:
        assert (await eventual.execute(text("SELECT v FROM kv WHERE k = 2299"))).first() is None


# -- 4: transaction-local settings follow the transaction to the primary -----------------


class _RowLock:
    """Row k = 1 of kv locked by a transaction of another connection, until the block ends
    or 3 s have passed (a write that waits for it then goes through, and the test fails
    instead of waiting for ever)."""

    def __init__(self, db: ClusterDatabase) -> None:
        self._conn = psycopg.connect(db.primary_dsn)
        self._timer = threading.Timer(3.0, self._release)

    def _release(self) -> None:
        self._conn.rollback()

    def __enter__(self) -> _RowLock:
        self._conn.execute("SELECT * FROM kv WHERE k = 1 FOR UPDATE")
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._release()
        self._conn.close()


def _lock_failure(update: Callable[[], Any]) -> tuple[str | None, float]:
    started = time.monotonic()
    with pytest.raises(DBAPIError) as raised:
        update()
    return getattr(raised.value.orig, "sqlstate", None), time.monotonic() - started


LOCAL_SETTINGS = [
    "SET LOCAL lock_timeout = '100ms'",
    "SELECT set_config('lock_timeout', '100ms', true)",
]


@pytest.mark.parametrize("setting", LOCAL_SETTINGS)
def test_a_local_setting_made_on_a_replica_applies_to_the_write_on_the_primary(
    factory: RoutedSessionmaker, db: ClusterDatabase, setting: str
) -> None:
    with _RowLock(db), factory() as s:
        assert s.execute(WHERE).one()[1] is True  # the transaction starts on a replica
        s.execute(text(setting))
        code, elapsed = _lock_failure(
            lambda: s.execute(text("UPDATE kv SET v = v + 1 WHERE k = 1"))
        )
    assert code == "55P03"  # lock_not_available: the setting was in force on the primary
    assert elapsed < 1.0, elapsed


def test_local_settings_reach_the_primary_with_their_values(factory: RoutedSessionmaker) -> None:
    with factory() as s:
        assert s.execute(WHERE).one()[1] is True
        s.execute(text("SELECT set_config('app.tenant', :t, true)"), {"t": "42"})
        s.execute(text("SET LOCAL statement_timeout = '5s'"))
        row = s.execute(
            text(
                "UPDATE kv SET v = v WHERE k = 2 RETURNING current_setting('app.tenant', true),"
                " current_setting('statement_timeout'), pg_is_in_recovery()"
            )
        ).one()
        s.commit()
    assert tuple(row) == ("42", "5s", False)


@pytest.mark.asyncio
@pytest.mark.parametrize("setting", LOCAL_SETTINGS)
async def test_async_a_local_setting_made_on_a_replica_applies_to_the_write_on_the_primary(
    afactory: RoutedAsyncSessionmaker, db: ClusterDatabase, setting: str
) -> None:
    with _RowLock(db):
        async with afactory() as s:
            assert (await s.execute(WHERE)).one()[1] is True
            await s.execute(text(setting))
            started = time.monotonic()
            with pytest.raises(DBAPIError) as raised:
                await s.execute(text("UPDATE kv SET v = v + 1 WHERE k = 1"))
            elapsed = time.monotonic() - started
    assert getattr(raised.value.orig, "sqlstate", None) == "55P03"
    assert elapsed < 1.0, elapsed


# -- 6: relations a standby refuses ------------------------------------------------------


def test_unlogged_tables_and_writing_views_are_read_on_the_primary(
    factory: RoutedSessionmaker, db: ClusterDatabase
) -> None:
    primary_port = db.cluster.primary.port
    before = _primary_value(db, "SELECT count(*) FROM audit")
    with factory() as s:
        assert s.execute(WHERE).one()[1] is True  # the transaction reads on a replica ...
        v, port = s.execute(text("SELECT v, inet_server_port() FROM uc")).one()
        assert (v, port) == ("cached", primary_port)  # ... and the unlogged table there
        one, port = s.execute(text("SELECT one, inet_server_port() FROM audited_view")).one()
        assert (one, port) == (1, primary_port)
        s.commit()
    with factory(readonly=True) as report:
        assert report.execute(text("SELECT inet_server_port() FROM uc")).scalar() == primary_port
    assert _primary_value(db, "SELECT count(*) FROM audit") == before + 1
    # DDL through a session refreshes what the router knows.
    with factory() as s:
        s.execute(text("CREATE UNLOGGED TABLE orm_cache (k int)"))
        s.execute(text("INSERT INTO orm_cache VALUES (3)"))
        s.commit()
    with factory() as s:
        assert tuple(s.execute(text("SELECT k, inet_server_port() FROM orm_cache")).one()) == (
            3,
            primary_port,
        )


@pytest.mark.asyncio
async def test_async_unlogged_tables_are_read_on_the_primary(
    afactory: RoutedAsyncSessionmaker, db: ClusterDatabase
) -> None:
    primary_port = db.cluster.primary.port
    async with afactory() as s:
        assert (await s.execute(WHERE)).one()[1] is True
        v, port = (await s.execute(text("SELECT v, inet_server_port() FROM uc"))).one()
        assert (v, port) == ("cached", primary_port)
        await s.execute(text("CREATE UNLOGGED TABLE aorm_cache (k int)"))
        await s.execute(text("INSERT INTO aorm_cache VALUES (4)"))
        await s.commit()
    async with afactory() as s:
        port = (await s.execute(text("SELECT inet_server_port() FROM aorm_cache"))).scalar()
        assert port == primary_port


def test_a_read_a_replica_refused_goes_to_the_primary_next_time(
    factory: RoutedSessionmaker, db: ClusterDatabase
) -> None:
    primary_port = db.cluster.primary.port
    with factory() as s:
        s.execute(WHERE)  # the factory opens, and loads its catalog
    # Made behind the router's back: its catalog does not know it.
    with psycopg.connect(db.primary_dsn, autocommit=True) as conn:
        conn.execute("CREATE VIEW hidden_audit AS SELECT audited() AS one")
    db.cluster.wait_caught_up()
    look = text("SELECT one, inet_server_port() FROM hidden_audit")
    before = _primary_value(db, "SELECT count(*) FROM audit")
    with factory() as s, pytest.raises(DBAPIError) as raised:
        s.execute(look)  # inside a transaction: not run again, the error is the caller's
    assert getattr(raised.value.orig, "sqlstate", None) == "25006"
    with factory() as s:
        assert tuple(s.execute(look).one()) == (1, primary_port)
        assert s.last_decision is not None
        assert "a replica refused it before" in s.last_decision.detail
        s.commit()
    assert _primary_value(db, "SELECT count(*) FROM audit") == before + 1


def test_a_replica_error_that_is_no_standby_refusal_is_not_remembered(
    factory: RoutedSessionmaker, db: ClusterDatabase
) -> None:
    # As test_a_read_a_replica_refused_goes_to_the_primary_next_time, with a 0A000 that is
    # the application's own error (it fails on replicas only, so the primary would serve it).
    primary_port = db.cluster.primary.port
    with psycopg.connect(db.primary_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION orm_unsupported_on_replicas(b bool) RETURNS int LANGUAGE plpgsql"
            " STABLE AS $$ BEGIN IF b AND pg_is_in_recovery() THEN"
            " RAISE feature_not_supported USING MESSAGE = 'not on a replica, says the app';"
            " END IF; RETURN inet_server_port(); END $$"
        )
    db.cluster.wait_caught_up()  # before the factory opens and loads its catalog
    # Twice, in two sessions: the second time, too, the replica answers (the primary would
    # have returned its port had the first error been remembered as a refusal).
    look = text("SELECT orm_unsupported_on_replicas(true), pg_is_in_recovery()")
    for _ in range(2):
        with factory() as s, pytest.raises(DBAPIError, match="says the app") as raised:
            s.execute(look)
        assert getattr(raised.value.orig, "sqlstate", None) == "0A000"
    with factory() as s:
        port, on_replica = s.execute(
            text("SELECT orm_unsupported_on_replicas(false), pg_is_in_recovery()")
        ).one()
        assert on_replica is True
        assert port != primary_port


def test_a_refused_read_with_bound_parameters_goes_to_the_primary_next_time(
    factory: RoutedSessionmaker, db: ClusterDatabase
) -> None:
    # The driver is sent "... WHERE k = %(k)s"; the session classifies text() by its own
    # text ("... WHERE k = :k"): the refusal must be remembered under the latter too.
    primary_port = db.cluster.primary.port
    with factory() as s:
        s.execute(WHERE)  # the factory opens, and loads its catalog
    # Made behind the router's back: its catalog does not know it is unlogged.
    with psycopg.connect(db.primary_dsn, autocommit=True) as conn:
        conn.execute("CREATE UNLOGGED TABLE orm_hidden_cache (k int)")
        conn.execute("INSERT INTO orm_hidden_cache VALUES (6)")
    db.cluster.wait_caught_up()
    look = text("SELECT k, inet_server_port() FROM orm_hidden_cache WHERE k = :k")
    with factory() as s, pytest.raises(DBAPIError) as raised:
        s.execute(look, {"k": 6})  # inside a transaction: not run again, the error is the caller's
    assert getattr(raised.value.orig, "sqlstate", None) == "0A000"
    with factory() as s:
        assert tuple(s.execute(look, {"k": 6}).one()) == (6, primary_port)
        assert s.last_decision is not None
        assert "a replica refused it before" in s.last_decision.detail


@pytest.mark.asyncio
async def test_async_a_refused_read_with_bound_parameters_goes_to_the_primary_next_time(
    afactory: RoutedAsyncSessionmaker, db: ClusterDatabase
) -> None:
    # As above, where asyncpg is sent "... WHERE k = $1".
    primary_port = db.cluster.primary.port
    async with afactory() as s:
        await s.execute(WHERE)  # the factory opens, and loads its catalog
    with psycopg.connect(db.primary_dsn, autocommit=True) as conn:
        conn.execute("CREATE UNLOGGED TABLE aorm_hidden_cache (k int)")
        conn.execute("INSERT INTO aorm_hidden_cache VALUES (7)")
    db.cluster.wait_caught_up()
    look = text("SELECT k, inet_server_port() FROM aorm_hidden_cache WHERE k = :k")
    async with afactory() as s:
        with pytest.raises(DBAPIError) as raised:
            await s.execute(look, {"k": 7})
    assert getattr(raised.value.orig, "sqlstate", None) == "0A000"
    async with afactory() as s:
        assert tuple((await s.execute(look, {"k": 7})).one()) == (7, primary_port)
        assert s.last_decision is not None
        assert "a replica refused it before" in s.last_decision.detail
