"""Promises of sessions and calls outside them (issue 12), on the real cluster: monotonic
reads across nodes, what a new session sees after earlier commits (and that steady writes do
not pull reads onto the primary), transaction-local settings, and relations a
standby refuses. ``test_sync_semantics.py`` is generated from this file. Where a read ran is
proven by the server (``inet_server_port()`` in the same statement) and by row values."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from functools import partial
from threading import Event
from typing import Any

import pytest
import pytest_asyncio

import router
from router.testing.pytest_plugin import ClusterDatabase
from tests.integration.async_support import (
    MARKS,
    DatabaseError,
    execute_on,
    gather,
    monotonic,
    sleep,
    start,
)

pytestmark = [pytest.mark.integration, *MARKS]

FAST = {"monitor_interval": 0.1, "readmit_hold": 0.2}


@pytest.fixture(scope="module")
def db(cluster_db: ClusterDatabase) -> ClusterDatabase:
    execute_on(
        cluster_db.primary_dsn,
        "CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL)",
        "CREATE TABLE counter (id int PRIMARY KEY, n bigint NOT NULL)",
        "INSERT INTO counter VALUES (1, 0)",
        "INSERT INTO kv VALUES (1, 1)",
        "CREATE UNLOGGED TABLE uc (k int PRIMARY KEY, v text NOT NULL)",
        "INSERT INTO uc VALUES (1, 'cached')",
        "CREATE TABLE audit (at timestamptz NOT NULL DEFAULT now())",
        "CREATE FUNCTION audited() RETURNS int LANGUAGE sql VOLATILE"
        " AS 'INSERT INTO audit DEFAULT VALUES RETURNING 1'",
        "CREATE VIEW audited_view AS SELECT audited() AS one",
    )
    cluster_db.cluster.wait_caught_up()
    return cluster_db


@pytest_asyncio.fixture
async def r(db: ClusterDatabase) -> AsyncIterator[router.AsyncRouter]:
    async with router.AsyncRouter(db.router_config(**FAST)) as rt:
        yield rt


def _ports(db: ClusterDatabase) -> dict[int, str]:
    return {n.port: n.name for n in db.cluster.nodes}


def _primary(db: ClusterDatabase) -> str:
    return db.cluster.primary.name


# -- 3: monotonic reads ----------------------------------------------------------------


async def _bump(rt: router.AsyncRouter, seconds: float) -> int:
    """Bump the counter every 5 ms for *seconds* (through a router of its own)."""
    bumps = 0
    deadline = monotonic() + seconds
    while monotonic() < deadline:
        await rt.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
        bumps += 1
        await sleep(0.005)
    return bumps


async def _session_reads(
    rt: router.AsyncRouter, ports: dict[int, str], key: int
) -> tuple[int, Counter[str]]:
    """A session writes, then reads the counter again and again: how often a read was
    behind an earlier one, and which nodes served the reads."""
    served: Counter[str] = Counter()
    regressions = 0
    async with rt.session() as s:
        await s.execute(f"INSERT INTO kv VALUES ({key}, 0) ON CONFLICT (k) DO NOTHING")
        highest = -1
        for _ in range(100):
            n, port = await s.fetchrow("SELECT n, inet_server_port() FROM counter WHERE id = 1")
            served[ports[port]] += 1
            regressions += n < highest
            highest = max(highest, n)
            await sleep(0.025)
    return regressions, served


@pytest.mark.faults
async def test_a_session_never_reads_behind_what_it_has_read_on_any_node(
    db: ClusterDatabase,
) -> None:
    db.cluster.set_apply_delay("replica1", 0.3)
    db.cluster.set_apply_delay("replica2", 1.0)
    ports = _ports(db)
    cfg = db.router_config(**FAST)
    async with router.AsyncRouter(cfg) as rt, router.AsyncRouter(cfg) as bumper:
        bumping = start(_bump, bumper, 1.5)
        found = await gather([partial(_session_reads, rt, ports, 1000 + i) for i in range(6)])
        assert await bumping.result(30) > 50
    served: Counter[str] = Counter()
    for _, nodes in found:
        served.update(nodes)
    assert [regressions for regressions, _ in found] == [0] * 6, served
    # Both kinds of node served the sessions: the promise was tested across them.
    assert served[_primary(db)] > 0, served
    assert served["replica1"] + served["replica2"] > 0, served


# -- 8: what a new session and a call outside a session see ------------------------------


@pytest.mark.faults
async def test_a_new_session_and_calls_outside_one_see_earlier_commits(
    db: ClusterDatabase,
) -> None:
    for replica in db.cluster.replicas:
        db.cluster.set_apply_delay(replica, 0.5)
    async with router.AsyncRouter(db.router_config(**FAST)) as rt:
        stale = 0
        for i in range(40):
            async with rt.session() as writer:
                await writer.execute(f"INSERT INTO kv VALUES ({2000 + i}, {i})")
            async with rt.session() as fresh:
                stale += await fresh.fetchval(f"SELECT v FROM kv WHERE k = {2000 + i}") != i
            stale += await rt.fetchval(f"SELECT v FROM kv WHERE k = {2000 + i}") != i
        assert stale == 0
        # The delay is real: an eventual session (no floor) reads a replica without them.
        async with rt.session(consistency="eventual") as eventual:
            assert await eventual.fetchval("SELECT v FROM kv WHERE k = 2039") is None


async def _write_loop(rt: router.AsyncRouter, key: int, seconds: float) -> int:
    writes = 0
    deadline = monotonic() + seconds
    while monotonic() < deadline:
        await rt.execute(f"UPDATE kv SET v = v + 1 WHERE k = {key}")
        writes += 1
    return writes


async def _read_loop(rt: router.AsyncRouter, ports: dict[int, str], seconds: float) -> Counter[str]:
    served: Counter[str] = Counter()
    deadline = monotonic() + seconds
    while monotonic() < deadline:
        served[ports[await rt.fetchval("SELECT inet_server_port()")]] += 1
    return served


async def _write_then_read(
    rt: router.AsyncRouter, ports: dict[int, str], key: int, seconds: float
) -> tuple[int, Counter[str]]:
    served: Counter[str] = Counter()
    stale = 0
    deadline = monotonic() + seconds
    value = 0
    await rt.execute(f"INSERT INTO kv VALUES ({key}, 0) ON CONFLICT (k) DO UPDATE SET v = 0")
    while monotonic() < deadline:
        value += 1
        await rt.execute(f"UPDATE kv SET v = {value} WHERE k = {key}")
        v, port = await rt.fetchrow(f"SELECT v, inet_server_port() FROM kv WHERE k = {key}")
        stale += v != value
        served[ports[port]] += 1
    return stale, served


async def test_steady_writes_do_not_pull_reads_onto_the_primary(db: ClusterDatabase) -> None:
    ports = _ports(db)
    primary = _primary(db)
    async with router.AsyncRouter(db.router_config(**FAST)) as rt:
        await rt.execute("INSERT INTO kv VALUES (3000, 0) ON CONFLICT (k) DO NOTHING")
        # Another task writes all the time: each commit moves the router's floor past the
        # monitor's last look; the replicas are asked, and most reads still leave the primary.
        writing = start(_write_loop, rt, 3000, 1.0)
        served = await _read_loop(rt, ports, 1.0)
        assert await writing.result(30) > 20
        on_replicas = sum(served.values()) - served[primary]
        assert on_replicas >= 0.2 * sum(served.values()), served
        # Each task reads right after its own write: confirmed on a replica, never stale.
        found = await gather(
            [partial(_write_then_read, rt, ports, 3100 + i, 1.0) for i in range(4)]
        )
    assert [stale for stale, _ in found] == [0] * 4
    after_writes: Counter[str] = Counter()
    for _, nodes in found:
        after_writes.update(nodes)
    # One query asks a replica; it may not have replayed a commit made a moment ago (more
    # often on a loaded machine, and with four writers), and the read then goes to the
    # primary. Before the confirmation, the replicas served about 1% of these reads.
    total = sum(after_writes.values())
    assert total - after_writes[primary] >= 0.2 * total, after_writes


# -- 4: transaction-local settings -------------------------------------------------------


async def _hold_row_lock(rt: router.AsyncRouter, locked: Event, release: Event) -> None:
    async with rt.transaction() as tx:
        await tx.execute("SELECT * FROM kv WHERE k = 1 FOR UPDATE")
        locked.set()
        deadline = monotonic() + 3.0  # a write that waits for the lock then goes through
        while not release.is_set() and monotonic() < deadline:
            await sleep(0.01)


async def _timed_update(run: Any) -> tuple[str | None, float]:
    """The SQLSTATE and duration of an UPDATE of the locked row."""
    started = monotonic()
    with pytest.raises(DatabaseError) as raised:
        await run("UPDATE kv SET v = v + 1 WHERE k = 1")
    return getattr(raised.value, "sqlstate", None), monotonic() - started


async def test_set_local_applies_to_the_rest_of_a_raw_transaction(r: router.AsyncRouter) -> None:
    locked, release = Event(), Event()
    async with router.AsyncRouter(r.config) as locker:
        holding = start(_hold_row_lock, locker, locked, release)
        try:
            while not locked.is_set():
                await sleep(0.01)
            async with r.session() as s:
                await s.execute("BEGIN")
                await s.execute("SET LOCAL lock_timeout = '100ms'")
                code, elapsed = await _timed_update(s.execute)
                await s.execute("ROLLBACK")
            assert (code, elapsed < 1.0) == ("55P03", True), elapsed
            async with r.session() as s, s.transaction() as tx:
                await tx.execute("SELECT set_config('lock_timeout', '100ms', true)")
                code, elapsed = await _timed_update(tx.execute)
            assert (code, elapsed < 1.0) == ("55P03", True), elapsed
        finally:
            release.set()
            await holding.result(30)


# -- 6: relations a standby refuses ------------------------------------------------------


async def test_reads_of_unlogged_tables_and_writing_views_run_on_the_primary(
    r: router.AsyncRouter, db: ClusterDatabase
) -> None:
    primary_port = db.cluster.primary.port
    v, port = await r.fetchrow("SELECT v, inet_server_port() FROM uc WHERE k = 1")
    assert (v, port) == ("cached", primary_port)
    decision = r.last_decision
    assert decision is not None
    assert "unlogged" in decision.detail, decision
    async with r.session() as s:
        assert await s.fetchval("SELECT inet_server_port() FROM uc") == primary_port
    before = await r.fetchval("SELECT count(*) FROM audit /* router:primary */")
    one, port = await r.fetchrow("SELECT one, inet_server_port() FROM audited_view")
    assert (one, port) == (1, primary_port)
    assert await r.fetchval("SELECT count(*) FROM audit /* router:primary */") == before + 1
    # A plain table still reads on a replica (at any replica's pace: the audit insert just
    # raised the router's floor, which is not what this checks).
    async with r.session(consistency="eventual") as anywhere:
        port = await anywhere.fetchval("SELECT inet_server_port() FROM kv LIMIT 1")
    assert port != primary_port


async def test_ddl_through_the_router_refreshes_what_it_knows(
    r: router.AsyncRouter, db: ClusterDatabase
) -> None:
    primary_port = db.cluster.primary.port
    await r.execute("CREATE UNLOGGED TABLE fresh_cache (k int)")
    await r.execute("INSERT INTO fresh_cache VALUES (7)")
    assert await r.fetchrow("SELECT k, inet_server_port() FROM fresh_cache") == (7, primary_port)
    await r.execute("CREATE FUNCTION flips() RETURNS int LANGUAGE sql STABLE AS 'SELECT 1'")
    db.cluster.wait_caught_up()
    assert await r.fetchval("SELECT inet_server_port() FROM flips()") != primary_port
    async with r.session() as s:
        await s.execute("BEGIN")
        await s.execute(
            "CREATE OR REPLACE FUNCTION flips() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 2'"
        )
        await s.execute("COMMIT")
    assert await r.fetchval("SELECT inet_server_port() FROM flips()") == primary_port
    decision = r.last_decision
    assert decision is not None
    assert decision.primary


async def test_a_replica_error_that_is_no_standby_refusal_reaches_the_caller(
    r: router.AsyncRouter, db: ClusterDatabase
) -> None:
    # 0A000 (feature_not_supported) is also the SQLSTATE of statements' own errors (an XML
    # function on a server built without libxml): only hot standby's own refusals are run
    # again on the primary and remembered for it. This one fails on replicas alone, so the
    # primary would have answered had the router sent it there.
    execute_on(
        db.primary_dsn,
        "CREATE FUNCTION unsupported_on_replicas(b bool) RETURNS int LANGUAGE plpgsql STABLE"
        " AS $$ BEGIN IF b AND pg_is_in_recovery() THEN"
        " RAISE feature_not_supported USING MESSAGE = 'not on a replica, says the app';"
        " END IF; RETURN inet_server_port(); END $$",
    )
    await r.refresh_catalog()
    db.cluster.wait_caught_up()
    # Twice: the second time, too, the replica answers (the primary would have returned its
    # port had the first error been remembered as a refusal).
    for _ in range(2):
        with pytest.raises(DatabaseError, match="says the app") as raised:
            await r.fetchval("SELECT unsupported_on_replicas(true)")
        assert raised.value.sqlstate == "0A000"
        decision = r.last_decision
        assert decision is not None
        assert not decision.primary, decision  # the replica's error, not run again
        assert decision.reason != "retry", decision
    assert await r.fetchval("SELECT unsupported_on_replicas(false)") != db.cluster.primary.port


async def test_a_read_a_replica_refuses_runs_once_on_the_primary_and_is_remembered(
    r: router.AsyncRouter, db: ClusterDatabase
) -> None:
    primary_port = db.cluster.primary.port
    # Made behind the router's back: its catalog does not know them.
    execute_on(
        db.primary_dsn,
        "CREATE UNLOGGED TABLE hidden_cache (k int)",
        "INSERT INTO hidden_cache VALUES (5)",
        "CREATE VIEW hidden_audit AS SELECT audited() AS one",
    )
    db.cluster.wait_caught_up()
    sql = "SELECT k, inet_server_port() FROM hidden_cache"
    assert await r.fetchrow(sql) == (5, primary_port)
    decision = r.last_decision
    assert decision is not None
    assert "refused" in decision.detail, decision
    assert decision.reason == "retry"
    assert await r.fetchrow(sql) == (5, primary_port)
    decision = r.last_decision
    assert decision is not None
    assert "a replica refused it before" in decision.detail, decision
    before = await r.fetchval("SELECT count(*) FROM audit /* router:primary */")
    async with r.session() as s:
        assert await s.fetchrow("SELECT one, inet_server_port() FROM hidden_audit") == (
            1,
            primary_port,
        )
    # Run once on the primary: one row written, none on the replica (it refused).
    assert await r.fetchval("SELECT count(*) FROM audit /* router:primary */") == before + 1
