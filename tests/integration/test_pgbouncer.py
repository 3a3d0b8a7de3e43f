"""The router through PgBouncer in transaction mode, on the real cluster, in every flavour
(async and sync routers, SQLAlchemy sync and async factories).

A PgBouncer (Debian's, 1.18) sits in front of every node (the ``pgbouncers`` fixture); the
router is configured with ``pooler_mode="transaction"``. Where a statement ran is proven by
the server (``inet_server_port()`` recorded in the row it wrote, or returned by the read),
never by the router's own account."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text

import router
import router.sqlalchemy
from router import (
    AsyncRouter,
    PrimaryUnavailable,
    Router,
    RouterConfig,
    RouterError,
    SessionStateError,
)
from router.testing import LocalCluster, Node, PgBouncers, _cleanup, reap_orphans
from router.testing._proc import pid_alive
from router.testing.pytest_plugin import ClusterDatabase
from tests.support import wait_until

pytestmark = [pytest.mark.integration]

FAST = {"monitor_interval": 0.1, "readmit_hold": 0.2, "monitor_timeout": 1.0}
#: Repeated statements per flavour: enough for every prepared-statement path to be taken many
#: times over (psycopg prepares after 5 uses, asyncpg at once).
REPEATS = 1500


@pytest.fixture(scope="module")
def db(cluster_db: ClusterDatabase) -> ClusterDatabase:
    with cluster_db.cluster.primary.connect(cluster_db.name) as conn:
        conn.execute(
            "CREATE TABLE items (id bigserial PRIMARY KEY, v int NOT NULL,"
            " port int NOT NULL DEFAULT inet_server_port())"
        )
    cluster_db.cluster.wait_caught_up()
    return cluster_db


@pytest.fixture
def bouncers(pgbouncers: PgBouncers, db: ClusterDatabase) -> PgBouncers:
    return pgbouncers


def _config(bouncers: PgBouncers, db: ClusterDatabase, **options: object) -> RouterConfig:
    return bouncers.router_config(db.name, **{**FAST, **options})


def _ports(cluster: LocalCluster) -> tuple[int, set[int]]:
    return cluster.primary.port, {r.port for r in cluster.replicas}


def _written_ports(db: ClusterDatabase, since: int) -> Counter[int]:
    with db.cluster.primary.connect(db.name) as conn:
        rows = conn.execute("SELECT port, count(*) FROM items WHERE id > %s GROUP BY 1", [since])
        return Counter(dict(rows.fetchall()))


def _max_id(db: ClusterDatabase) -> int:
    with db.cluster.primary.connect(db.name) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()
    assert row is not None
    return int(row[0])


# -- the harness ---------------------------------------------------------------------------


def test_each_node_has_its_own_pgbouncer_in_transaction_mode(
    bouncers: PgBouncers, db: ClusterDatabase
) -> None:
    for node in db.cluster.nodes:
        bouncer = bouncers.bouncer(node)
        assert bouncer.port != node.port
        with psycopg_connect(bouncers.dsn_for(node, db.name)) as conn:
            row = conn.execute("SELECT inet_server_port()").fetchone()
        assert row == (node.port,)
        modes = {row[-1] for row in bouncer.admin("SHOW POOLS") if row[0] == db.name}
        assert modes == {"transaction"}


def psycopg_connect(dsn: str) -> psycopg.Connection:
    """A plain connection (no router) through a PgBouncer."""
    return psycopg.connect(dsn, autocommit=True, prepare_threshold=None)


def test_pgbouncers_leave_nothing_behind(local_cluster: LocalCluster) -> None:
    with PgBouncers(local_cluster, "session") as bouncers:
        pids = [b.pid for b in bouncers.bouncers]
        base = bouncers.bouncers[0].workdir.parent
        assert all(pids)
        assert base.is_dir()
    assert not any(b.is_running() for b in bouncers.bouncers)
    assert not base.exists()


def test_pgbouncers_of_a_dead_owner_are_reaped(local_cluster: LocalCluster) -> None:
    """A process killed with SIGKILL closes nothing: the next cluster's orphan reaping stops
    its PgBouncers and removes their directory, as it does for a cluster's servers."""
    bouncers = PgBouncers(local_cluster, "transaction").start()
    try:
        base = bouncers.bouncers[0].workdir.parent
        pids = [b.pid for b in bouncers.bouncers]
        state = base / _cleanup.STATE_FILE
        owner = json.loads(state.read_text())
        # Above Linux's largest pid (4,194,304): an owner that cannot be alive.
        owner.update(owner_pid=os.getpid() + 10_000_000, owner_start=None)
        state.write_text(json.dumps(owner))
        assert base in reap_orphans(log=lambda _: None)
        assert not base.exists()
        assert all(pid is not None and not pid_alive(pid) for pid in pids)
    finally:
        bouncers.close()


# -- 0 writes on replicas, no prepared-statement errors, every flavour ----------------------


#: The split tests read right after their own writes: at read_your_writes those reads go to
#: the primary until the replicas catch up. Eventual consistency measures the split itself.
SPLIT = {"consistency": "eventual"}


def _check_split(db: ClusterDatabase, since: int, read_ports: Counter[int]) -> None:
    primary, replicas = _ports(db.cluster)
    written = _written_ports(db, since)
    assert set(written) == {primary}, f"writes landed on {written}"
    assert sum(written.values()) == REPEATS
    assert set(read_ports) <= replicas | {primary}
    # Reads left the primary: most of them on replicas.
    assert sum(read_ports[p] for p in replicas) > REPEATS // 2, read_ports


@pytest.mark.asyncio
async def test_async_router_repeats_writes_on_the_primary_reads_on_replicas(
    bouncers: PgBouncers, db: ClusterDatabase
) -> None:
    since = _max_id(db)
    reads: Counter[int] = Counter()
    async with AsyncRouter(_config(bouncers, db, pool=router.PoolConfig(max_size=8), **SPLIT)) as r:

        async def worker(k: int) -> None:
            for i in range(k, REPEATS, 8):
                await r.execute("INSERT INTO items (v) VALUES ($1)", i)
                reads[await r.fetchval("SELECT inet_server_port()")] += 1
                assert await r.fetchval("SELECT $1::int + 1", i) == i + 1
                async with r.transaction() as tx:
                    await tx.fetchval("SELECT count(*) FROM items WHERE v = $1", i)

        await asyncio.gather(*(worker(k) for k in range(8)))
    _check_split(db, since, reads)


def test_sync_router_repeats_writes_on_the_primary_reads_on_replicas(
    bouncers: PgBouncers, db: ClusterDatabase
) -> None:
    since = _max_id(db)
    reads: Counter[int] = Counter()
    errors: list[BaseException] = []
    with Router(_config(bouncers, db, pool=router.PoolConfig(max_size=4), **SPLIT)) as r:

        def worker(k: int) -> None:
            try:
                for i in range(k, REPEATS, 4):
                    r.execute("INSERT INTO items (v) VALUES (%s)", [i])
                    reads[r.fetchval("SELECT inet_server_port()")] += 1
                    assert r.fetchval("SELECT %s::int + 1", [i]) == i + 1
                    with r.transaction() as tx:
                        tx.fetchval("SELECT count(*) FROM items WHERE v = %s", [i])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    _check_split(db, since, reads)


def test_sqlalchemy_sync_repeats_writes_on_the_primary_reads_on_replicas(
    bouncers: PgBouncers, db: ClusterDatabase
) -> None:
    since = _max_id(db)
    reads: Counter[int] = Counter()
    with router.sqlalchemy.sessionmaker(_config(bouncers, db, **SPLIT)) as factory:
        for i in range(REPEATS):
            with factory() as session:
                reads[session.execute(text("SELECT inet_server_port()")).scalar_one()] += 1
                assert session.execute(text("SELECT :i + 1"), {"i": i}).scalar_one() == i + 1
            with factory() as session, session.begin():
                session.execute(text("INSERT INTO items (v) VALUES (:v)"), {"v": i})
    _check_split(db, since, reads)


@pytest.mark.asyncio
async def test_sqlalchemy_async_repeats_writes_on_the_primary_reads_on_replicas(
    bouncers: PgBouncers, db: ClusterDatabase
) -> None:
    since = _max_id(db)
    reads: Counter[int] = Counter()
    async with router.sqlalchemy.async_sessionmaker(_config(bouncers, db, **SPLIT)) as factory:

        async def worker(k: int) -> None:
            for i in range(k, REPEATS, 4):
                async with factory() as session:
                    port = (await session.execute(text("SELECT inet_server_port()"))).scalar_one()
                    reads[port] += 1
                    got = (await session.execute(text("SELECT :i + 1"), {"i": i})).scalar_one()
                    assert got == i + 1
                async with factory() as session, session.begin():
                    await session.execute(text("INSERT INTO items (v) VALUES (:v)"), {"v": i})

        await asyncio.gather(*(worker(k) for k in range(4)))
    _check_split(db, since, reads)


# -- read-your-writes with replicas 0.5 s behind --------------------------------------------

CYCLES = 25


@pytest.mark.asyncio
async def test_async_read_your_writes_through_pgbouncer_never_stale(
    bouncers: PgBouncers, db: ClusterDatabase, cluster: LocalCluster
) -> None:
    for replica in cluster.replicas:
        cluster.set_apply_delay(replica, 0.5)
    stale = 0
    async with AsyncRouter(_config(bouncers, db)) as r:
        for i in range(CYCLES):
            async with r.session() as s:
                new = await s.fetchval("INSERT INTO items (v) VALUES ($1) RETURNING id", i)
                stale += await s.fetchval("SELECT count(*) FROM items WHERE id = $1", new) != 1
                token = s.token()
            async with r.session(after=token) as later:
                stale += await later.fetchval("SELECT count(*) FROM items WHERE id = $1", new) != 1
    assert stale == 0


def test_sync_read_your_writes_through_pgbouncer_never_stale(
    bouncers: PgBouncers, db: ClusterDatabase, cluster: LocalCluster
) -> None:
    for replica in cluster.replicas:
        cluster.set_apply_delay(replica, 0.5)
    stale = 0
    with Router(_config(bouncers, db)) as r:
        for i in range(CYCLES):
            with r.session() as s:
                new = s.fetchval("INSERT INTO items (v) VALUES (%s) RETURNING id", [i])
                stale += s.fetchval("SELECT count(*) FROM items WHERE id = %s", [new]) != 1
                token = s.token()
            with r.session(after=token) as later:
                stale += later.fetchval("SELECT count(*) FROM items WHERE id = %s", [new]) != 1
    assert stale == 0


def test_sqlalchemy_read_your_writes_through_pgbouncer_never_stale(
    bouncers: PgBouncers, db: ClusterDatabase, cluster: LocalCluster
) -> None:
    for replica in cluster.replicas:
        cluster.set_apply_delay(replica, 0.5)
    stale = 0
    insert = text("INSERT INTO items (v) VALUES (:v) RETURNING id")
    count = text("SELECT count(*) FROM items WHERE id = :id")
    with router.sqlalchemy.sessionmaker(_config(bouncers, db)) as factory:
        for i in range(CYCLES):
            with factory() as session:
                with session.begin():
                    new = session.execute(insert, {"v": i}).scalar_one()
                stale += session.execute(count, {"id": new}).scalar_one() != 1
                token = session.token()
            with factory(after=token) as later:
                stale += later.execute(count, {"id": new}).scalar_one() != 1
    assert stale == 0


@pytest.mark.asyncio
async def test_sqlalchemy_async_own_queries_prepare_nothing_that_vanishes(
    bouncers: PgBouncers, db: ClusterDatabase
) -> None:
    """The factory's own statements (a replica's replay position for read-your-writes, the
    primary's position after a commit) run in a transaction behind a transaction pooler:
    SQLAlchemy's asyncpg dialect prepares each statement in a round trip of its own, and
    outside a transaction PgBouncer gave the prepare and the run to different server
    connections (a new-user tryout: 24 in 400 rounds of 4 tasks; the read went to the
    primary, and the log advised setting pooler_mode="transaction", which was set)."""
    factory = router.sqlalchemy.async_sessionmaker(_config(bouncers, db))
    lost: list[str] = []

    def on_error(context: Any) -> None:
        if getattr(context.original_exception, "sqlstate", None) == "26000":
            lost.append(str(context.statement))

    for engine in factory.engines.values():
        event.listen(engine.sync_engine, "handle_error", on_error)
    insert = text("INSERT INTO items (v) VALUES (:v) RETURNING id")
    count = text("SELECT count(*) FROM items WHERE id = :id")
    stale = 0

    async def one(task: int) -> None:
        nonlocal stale
        for i in range(60):
            async with factory() as s:
                new = (await s.execute(insert, {"v": task * 1000 + i})).scalar_one()
                await s.commit()
                stale += (await s.execute(count, {"id": new})).scalar_one() != 1
            await asyncio.sleep(0.01)

    try:
        await asyncio.gather(*(one(task) for task in range(4)))
    finally:
        await factory.aclose()
    assert lost == [], f"{len(lost)} statements met 26000: {sorted(set(lost))}"
    assert stale == 0


# -- session state: refused, never silently lost -------------------------------------------

STATEFUL = [
    "SET statement_timeout = 1234",
    "SELECT set_config('work_mem', '8MB', false)",
    "CREATE TEMP TABLE scratch (x int)",
    "LISTEN somewhere",
    "PREPARE mine AS SELECT 1",
    "SELECT pg_advisory_lock(42)",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("sql", STATEFUL)
async def test_async_session_state_is_refused_everywhere(
    bouncers: PgBouncers, db: ClusterDatabase, sql: str
) -> None:
    async with AsyncRouter(_config(bouncers, db)) as r:
        with pytest.raises(SessionStateError, match='pooler_mode="transaction"'):
            await r.execute(sql)
        async with r.session() as s:
            with pytest.raises(SessionStateError, match="transaction pooler"):
                await s.execute(sql)
            assert not s.pinned
            with pytest.raises(SessionStateError, match="transaction pooler"):
                async with s.transaction() as tx:
                    await tx.execute(sql)
        # Transaction-local state is fine, and stays in its transaction.
        async with r.transaction() as tx:
            await tx.execute("SET LOCAL statement_timeout = 1234")
            assert await tx.fetchval("SHOW statement_timeout") == "1234ms"
        assert await r.fetchval("SHOW statement_timeout /* router:primary */") == "0"


@pytest.mark.parametrize("sql", STATEFUL[:3])
def test_sync_session_state_is_refused_everywhere(
    bouncers: PgBouncers, db: ClusterDatabase, sql: str
) -> None:
    with Router(_config(bouncers, db)) as r:
        with pytest.raises(SessionStateError, match='pooler_mode="transaction"'):
            r.execute(sql)
        with r.session() as s, pytest.raises(SessionStateError, match="transaction pooler"):
            s.execute(sql)
        with pytest.raises(SessionStateError), r.transaction() as tx:
            tx.execute(sql)


def test_sqlalchemy_session_state_is_refused(bouncers: PgBouncers, db: ClusterDatabase) -> None:
    with router.sqlalchemy.sessionmaker(_config(bouncers, db)) as factory:
        with factory() as session, pytest.raises(SessionStateError, match="transaction pooler"):
            session.execute(text("SET statement_timeout = 1234"))
        # After a write too (when the session no longer looks at statements otherwise).
        with factory() as session, session.begin():
            session.execute(text("INSERT INTO items (v) VALUES (1)"))
            with pytest.raises(SessionStateError):
                session.execute(text("CREATE TEMP TABLE scratch (x int)"))


def test_nothing_the_router_sets_outlives_its_transaction(
    bouncers: PgBouncers, db: ClusterDatabase
) -> None:
    """Replica connections through the pooler are not made read-only for the session: the
    server connections behind PgBouncer, used by every client, keep their defaults."""
    with Router(_config(bouncers, db)) as r:
        for _ in range(20):
            r.fetchval("SELECT 1")
            with r.transaction(readonly=True) as tx:
                assert tx.fetchval("SHOW transaction_read_only") == "on"
    for replica in db.cluster.replicas:
        with psycopg_connect(bouncers.dsn_for(replica, db.name)) as conn:
            for _ in range(20):
                row = conn.execute("SHOW default_transaction_read_only").fetchone()
                assert row == ("off",)


# -- a router left in session mode behind a transaction pooler ------------------------------


@pytest.mark.asyncio
async def test_session_mode_behind_a_transaction_pooler_says_so(
    local_cluster: LocalCluster, db: ClusterDatabase
) -> None:
    """asyncpg's cached statements, prepared on one server connection, looked for on another:
    each such error (passed through, its type unchanged) carries a note naming the setting
    (the router also logs it, once per process)."""
    # Few server connections for many clients: each statement may meet another one.
    with PgBouncers(local_cluster, "transaction", pool_size=2) as tight:
        config = tight.router_config(db.name, pooler_mode="session", **FAST)
        errors: Counter[str] = Counter()
        noted = 0
        async with AsyncRouter(config.replace(pool=router.PoolConfig(max_size=8))) as r:

            async def worker(k: int) -> None:
                nonlocal noted
                for i in range(200):
                    try:
                        await r.fetchval(f"SELECT $1::int + {i % 20}", k)
                    except Exception as exc:
                        errors[type(exc).__name__] += 1
                        notes = getattr(exc, "__notes__", [])
                        noted += any('pooler_mode="transaction"' in n for n in notes)

            await asyncio.gather(*(worker(k) for k in range(8)))
    assert errors, "no symptom met: the test proves nothing"
    assert noted == sum(errors.values()), errors
    assert set(errors) <= {
        "InvalidSQLStatementNameError",
        "DuplicatePreparedStatementError",
        "ProtocolViolationError",
    }, errors


def test_sync_session_mode_behind_a_transaction_pooler_says_so(
    local_cluster: LocalCluster, db: ClusterDatabase
) -> None:
    """psycopg prepares a statement after its fifth use (``_pg3_0``, ``_pg3_1``...): on a
    server connection shared by several clients the names collide or go missing."""
    with PgBouncers(local_cluster, "transaction", pool_size=1) as tight:
        config = tight.router_config(db.name, pooler_mode="session", **FAST)
        errors: Counter[str] = Counter()
        noted = 0
        lock = threading.Lock()
        # A classifier of our own: no catalog query at open(), which may meet the symptom too.
        config = config.replace(pool=router.PoolConfig(max_size=4))
        with Router(config, classifier=router.Classifier()) as r:

            def worker(k: int) -> None:
                nonlocal noted
                for i in range(100):
                    try:
                        r.fetchval(f"SELECT %s::int + {i % 10}", [k])
                    except Exception as exc:
                        with lock:
                            errors[type(exc).__name__] += 1
                            notes = getattr(exc, "__notes__", [])
                            noted += any('pooler_mode="transaction"' in n for n in notes)

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    assert errors, "no symptom met: the test proves nothing"
    assert noted == sum(errors.values()), errors


# -- faults: a PgBouncer killed ------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_pgbouncer_killed_in_front_of_a_replica(
    bouncers: PgBouncers, db: ClusterDatabase
) -> None:
    primary, replicas = _ports(db.cluster)
    lost = db.cluster.replicas[0]
    async with AsyncRouter(_config(bouncers, db)) as r:
        bouncers.kill(lost)
        ports = Counter([await r.fetchval("SELECT inet_server_port()") for _ in range(200)])
        assert lost.port not in ports or ports[lost.port] == 0
        assert set(ports) <= replicas | {primary}
        assert r.stats()["nodes"][lost.name]["health"] != "up"
        await r.execute("INSERT INTO items (v) VALUES (1)")
        bouncers.start_node(lost)

        async def back() -> bool:
            port: int = await r.fetchval("SELECT inet_server_port()")
            return port == lost.port

        deadline = time.monotonic() + 15
        while not await back():
            assert time.monotonic() < deadline, "the replica did not come back into use"
            await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_async_pgbouncer_killed_in_front_of_the_primary(
    bouncers: PgBouncers, db: ClusterDatabase
) -> None:
    _, replicas = _ports(db.cluster)
    primary = db.cluster.primary
    async with AsyncRouter(_config(bouncers, db)) as r:
        bouncers.kill(primary)
        deadline = time.monotonic() + 10
        while True:  # the first writes may meet the broken connection before the monitor
            try:
                await r.execute("INSERT INTO items (v) VALUES (1)")
            except PrimaryUnavailable:
                break
            except Exception:
                pass
            assert time.monotonic() < deadline, "writes did not fail fast"
            await asyncio.sleep(0.05)
        started = time.monotonic()
        for _ in range(20):
            with pytest.raises(PrimaryUnavailable):
                await r.execute("INSERT INTO items (v) VALUES (1)")
        assert time.monotonic() - started < 1.0  # fast: nothing is sent
        ports = {await r.fetchval("SELECT inet_server_port()") for _ in range(50)}
        assert ports <= replicas
        bouncers.start_node(primary)
        deadline = time.monotonic() + 15
        while True:
            try:
                await r.execute("INSERT INTO items (v) VALUES (2)")
                break
            except PrimaryUnavailable:
                assert time.monotonic() < deadline, "writes did not recover"
                await asyncio.sleep(0.05)


def test_sync_pgbouncer_killed_in_front_of_the_primary_and_a_replica(
    bouncers: PgBouncers, db: ClusterDatabase
) -> None:
    _, replicas = _ports(db.cluster)
    primary = db.cluster.primary
    lost = db.cluster.replicas[0]
    with Router(_config(bouncers, db)) as r:
        bouncers.kill(lost)
        bouncers.kill(primary)

        def refused() -> bool:
            try:
                r.execute("INSERT INTO items (v) VALUES (1)")
            except PrimaryUnavailable:
                return True
            except Exception:
                return False
            return False

        wait_until(refused, timeout=10, what="writes to fail fast")
        ports = Counter(r.fetchval("SELECT inet_server_port()") for _ in range(100))
        assert set(ports) == replicas - {lost.port}, ports
        bouncers.start_node(primary)
        bouncers.start_node(lost)
        wait_until(lambda: not refused(), timeout=15, what="writes to recover")
        wait_until(
            lambda: r.fetchval("SELECT inet_server_port()") == lost.port,
            timeout=15,
            what="the replica to serve reads again",
        )


def test_sqlalchemy_pgbouncer_killed_in_front_of_a_replica(
    bouncers: PgBouncers, db: ClusterDatabase
) -> None:
    primary, replicas = _ports(db.cluster)
    lost = db.cluster.replicas[0]
    port = text("SELECT inet_server_port()")
    with router.sqlalchemy.sessionmaker(_config(bouncers, db)) as factory:
        with factory() as session:
            session.execute(port).scalar_one()
        bouncers.kill(lost)

        def read() -> int | None:
            try:
                with factory() as session:
                    return int(session.execute(port).scalar_one())
            except Exception:
                return None

        # The monitor, which goes through the PgBouncers too, sees the node go (SQLAlchemy's
        # sessions retry nothing: a read sent before then fails); then reads go elsewhere.
        nodes = factory.router.stats
        wait_until(lambda: not nodes()["nodes"][lost.name]["admitted"], what="the node to go")
        ports = Counter(read() for _ in range(50))
        assert set(ports) <= (replicas - {lost.port}) | {primary}, ports
        bouncers.start_node(lost)
        wait_until(lambda: read() == lost.port, timeout=15, what="the replica to come back")


# -- faults: a server dead behind a live PgBouncer -------------------------------------------


@pytest.mark.asyncio
async def test_async_server_dead_behind_its_pgbouncer(
    bouncers: PgBouncers, db: ClusterDatabase, cluster: LocalCluster
) -> None:
    """PgBouncer still accepts the connection and queues the query (query_wait_timeout), or
    answers 08P01: reads carry read_timeout, the pooler's errors count as the node's failure,
    and reads go on elsewhere."""
    primary, replicas = _ports(cluster)
    lost = cluster.replicas[0]
    config = _config(bouncers, db, read_timeout=2.0)
    outcomes: Counter[str] = Counter()
    async with AsyncRouter(config) as r:
        cluster.stop(lost, "immediate")
        started = time.monotonic()
        for _ in range(60):
            began = time.monotonic()
            try:
                port = await r.fetchval("SELECT inet_server_port()")
                outcomes["other node" if port != lost.port else "lost node"] += 1
            except TimeoutError:
                outcomes["timeout"] += 1
            assert time.monotonic() - began < 2.0 + 1.5, "a read waited past its deadline"
        assert outcomes["lost node"] == 0, outcomes
        assert outcomes["other node"] >= 55, outcomes
        assert time.monotonic() - started < 30
        wait_until(
            lambda: r.stats()["nodes"][lost.name]["health"] == "down",
            timeout=10,
            what="the node behind the dead server to be down",
        )
    assert primary not in replicas


def test_sync_server_dead_behind_its_pgbouncer(
    bouncers: PgBouncers, db: ClusterDatabase, cluster: LocalCluster
) -> None:
    """The sync twin: every read ends within read_timeout and the watchdog's grace, whichever
    way PgBouncer answers (in these runs 08P01 at once, which alone would pass this test; a
    query it keeps queued is test_sync_read_deadline's); the pooler's errors count as the
    node's failure, and reads go on elsewhere."""
    primary, replicas = _ports(cluster)
    lost = cluster.replicas[0]
    config = _config(bouncers, db, read_timeout=2.0)
    outcomes: Counter[str] = Counter()
    with Router(config) as r:
        cluster.stop(lost, "immediate")
        started = time.monotonic()
        for _ in range(60):
            began = time.monotonic()
            try:
                port = r.fetchval("SELECT inet_server_port()")
                outcomes["other node" if port != lost.port else "lost node"] += 1
            except TimeoutError:
                outcomes["timeout"] += 1
            # The deadline, then up to 3 s for an answer to the cancel, and some slack.
            assert time.monotonic() - began < 2.0 + 3.0 + 1.5, "a read waited past its deadline"
        assert outcomes["lost node"] == 0, outcomes
        assert outcomes["other node"] >= 55, outcomes
        assert time.monotonic() - started < 40
        wait_until(
            lambda: r.stats()["nodes"][lost.name]["health"] == "down",
            timeout=10,
            what="the node behind the dead server to be down",
        )
    assert primary not in replicas


# -- a promotion behind the PgBouncers ------------------------------------------------------


def test_sync_writes_after_a_promotion_through_pgbouncer(
    bouncers: PgBouncers, db: ClusterDatabase, cluster: LocalCluster
) -> None:
    """The promoted replica's PgBouncer shares its server connections with the replica's
    former clients: nothing the router set on them may make the new primary read-only."""
    new = cluster.replicas[0]
    with Router(_config(bouncers, db, pool=router.PoolConfig(max_size=4))) as r:
        for _ in range(100):  # replica connections in use, through its PgBouncer
            r.fetchval("SELECT 1")
        cluster.stop(cluster.primary, "immediate")
        cluster.promote(new)

        def written() -> bool:
            try:
                r.execute("INSERT INTO items (v) VALUES (-1)")
            except (RouterError, psycopg.Error, OSError):
                return False
            return True

        wait_until(written, timeout=20, what="writes on the promoted replica")
        before = _max_id_on(new, db)
        for i in range(50):
            r.execute("INSERT INTO items (v) VALUES (%s)", [i])
    with new.connect(db.name) as conn:
        rows = conn.execute("SELECT port FROM items WHERE id > %s", [before]).fetchall()
    assert rows == [(new.port,)] * 50


def _max_id_on(node: Node, db: ClusterDatabase) -> int:
    with node.connect(db.name) as conn:
        row = conn.execute("SELECT max(id) FROM items").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.asyncio
async def test_sqlalchemy_async_server_dead_behind_its_pgbouncer(
    bouncers: PgBouncers, db: ClusterDatabase, cluster: LocalCluster
) -> None:
    """The pooler's errors (08P01, or a connection it closes) mark the node at once, at every
    consistency: one failed read, not one in two until the monitor's check (queued in the
    pooler) times out."""
    lost = cluster.replicas[0]
    port = text("SELECT inet_server_port()")
    config = _config(bouncers, db, consistency="eventual")
    async with router.sqlalchemy.async_sessionmaker(config) as factory:
        for _ in range(10):
            async with factory() as session:
                await session.execute(port)
        cluster.stop(lost, "immediate")
        outcomes: Counter[str] = Counter()
        for _ in range(40):
            try:
                async with factory() as session:
                    served = (await session.execute(port)).scalar_one()
                outcomes["lost node" if served == lost.port else "elsewhere"] += 1
            except Exception as exc:
                outcomes[type(exc).__name__] += 1
    assert outcomes["lost node"] == 0, outcomes
    assert outcomes["elsewhere"] >= 38, outcomes
