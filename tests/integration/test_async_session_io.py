"""AsyncRouter's pooled connections and statements on the real cluster (issue 12, items 1, 2
and 5): session state never reaches the next user of a connection, the driver's statement
cache stays in step with the server across resets, a committed write is never reported as
failed, and a statement that times out is cancelled on its server and not run again
elsewhere. ``test_sync_session_io.py`` is generated from this file (``tools/unasync.py``).
What held is read from the server: ``pg_stat_activity``, ``pg_locks``, ``pg_prepared_statements``,
the row values."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

import router
from router.testing.pytest_plugin import ClusterDatabase
from tests.integration.async_support import (
    MARKS,
    DatabaseError,
    execute_on,
    monotonic,
    node_value,
    wait_for,
)

pytestmark = [pytest.mark.integration, *MARKS]

FAST = {"monitor_interval": 0.1, "readmit_hold": 0.2}
APP = "router-session-io"
#: A read sent to the primary's pool (of one connection, in these tests) outside a session.
ON_PRIMARY = "/* router:primary */ "


@pytest.fixture(scope="module")
def db(cluster_db: ClusterDatabase) -> ClusterDatabase:
    execute_on(cluster_db.primary_dsn, "CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL)")
    cluster_db.cluster.wait_caught_up()
    return cluster_db


def _config(db: ClusterDatabase, **options: Any) -> router.RouterConfig:
    pool = router.PoolConfig(min_size=1, max_size=1)
    return db.router_config(application_name=APP, pool=pool, **{**FAST, **options})


@pytest_asyncio.fixture
async def one(db: ClusterDatabase) -> AsyncIterator[router.AsyncRouter]:
    """A router whose pools hold one connection each: every session meets the same one."""
    async with router.AsyncRouter(_config(db)) as rt:
        yield rt


# -- item 1: a connection goes back to the pool with nothing of its session's state ---------


async def test_the_next_session_finds_nothing_of_the_last_ones_state(
    one: router.AsyncRouter, db: ClusterDatabase
) -> None:
    async with one.session() as s:
        await s.execute("CREATE TEMP TABLE scratch (v int)")
        pid = await s.fetchval("SELECT pg_backend_pid()")
        await s.execute("INSERT INTO scratch VALUES (1)")
        await s.execute("PREPARE q AS SELECT 1")
        await s.execute("SET work_mem = '7MB'")
        await s.execute("DECLARE held CURSOR WITH HOLD FOR SELECT 1")
        await s.execute("SELECT pg_advisory_lock(4212)")
        await s.execute("LISTEN router_session_io")
        assert await s.fetchval("SELECT pg_backend_pid()") == pid
    # The same server process, as the next session (or call) on the pool meets it.
    assert await one.fetchval(ON_PRIMARY + "SELECT pg_backend_pid()") == pid
    left = await one.fetchrow(
        ON_PRIMARY + "SELECT to_regclass('pg_temp.scratch') IS NULL,"
        " (SELECT count(*) FROM pg_prepared_statements WHERE name = 'q'),"
        " current_setting('work_mem'),"
        " (SELECT count(*) FROM pg_cursors WHERE name = 'held'),"
        " (SELECT count(*) FROM pg_listening_channels())"
    )
    assert tuple(left) == (True, 0, "4MB", 0, 0)
    locks = await node_value(
        db.primary_dsn,
        f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = {pid}",
    )
    assert locks == 0
    async with one.session() as s:
        # What failed on main: the same temp table, the same prepared statement name.
        await s.execute("CREATE TEMP TABLE scratch (v int)")
        assert await s.fetchval("SELECT count(*) FROM pg_temp.scratch") == 0
        await s.execute("PREPARE q AS SELECT 2")
        assert await s.fetchval("EXECUTE q") == 2


async def test_resets_keep_the_drivers_prepared_statements_in_step_with_the_server(
    one: router.AsyncRouter, db: ClusterDatabase
) -> None:
    execute_on(db.primary_dsn, "INSERT INTO kv VALUES (12001, 0) ON CONFLICT (k) DO NOTHING")
    # Each session leaves state (reset on release), then writes; the router reads the
    # commit position after each write, and the drivers prepare what they run often.
    for i in range(1, 21):
        async with one.session() as s:
            await s.execute("SET work_mem = '5MB'")
            await s.execute(f"UPDATE kv SET v = {i} WHERE k = 12001")
            assert await s.fetchval("SELECT v FROM kv WHERE k = 12001") == i
        await one.execute(f"UPDATE kv SET v = v + 1000 WHERE k = 12001 AND v = {i}")
        assert await one.fetchval(ON_PRIMARY + "SELECT v FROM kv WHERE k = 12001") == i + 1000
    assert await node_value(db.primary_dsn, "SELECT v FROM kv WHERE k = 12001") == 1020


async def test_only_a_connection_that_carried_session_state_is_reset(
    one: router.AsyncRouter, db: ClusterDatabase
) -> None:
    async def last_statement(pid: int) -> str:
        query: str = await node_value(
            db.primary_dsn, f"SELECT query FROM pg_stat_activity WHERE pid = {pid}"
        )
        return query

    async with one.session() as s:
        pid = await s.fetchval("/* router:primary */ SELECT pg_backend_pid()")
        await s.execute("UPDATE kv SET v = v WHERE k = -1")
    # Nothing to reset: the server saw no statement after the session's own.
    assert await last_statement(pid) != "DISCARD ALL"
    async with one.session() as s:
        await s.execute("SET work_mem = '6MB'")
        assert await s.fetchval("SELECT pg_backend_pid()") == pid
    assert await last_statement(pid) == "DISCARD ALL"


DO_SETS = "DO $$ BEGIN PERFORM set_config('work_mem', '3MB', false); END $$"
DO_TEMP = "DO $$ BEGIN CREATE TEMP TABLE do_scratch (v int); END $$"
LEFT_BY_DO = (
    ON_PRIMARY + "SELECT current_setting('work_mem'), to_regclass('pg_temp.do_scratch') IS NULL"
)


async def test_state_a_do_block_leaves_does_not_reach_the_next_user(
    one: router.AsyncRouter,
) -> None:
    """A DO block (or CALL) runs code the router cannot see into: a setting or a temporary
    table it leaves goes with a reset before the connection serves anyone else, outside a
    session and inside one (found by a new-user tryout: the next statement saw 3MB)."""
    pid = await one.fetchval(ON_PRIMARY + "SELECT pg_backend_pid()")
    await one.execute(DO_SETS)
    await one.execute(DO_TEMP)
    assert await one.fetchval(ON_PRIMARY + "SELECT pg_backend_pid()") == pid
    assert tuple(await one.fetchrow(LEFT_BY_DO)) == ("4MB", True)
    async with one.session() as s:
        await s.execute(DO_SETS)
        await s.execute(DO_TEMP)
    assert tuple(await one.fetchrow(LEFT_BY_DO)) == ("4MB", True)
    # The same temporary table again: nothing of the last one is left.
    await one.execute(DO_TEMP)


# -- item 2: a committed write is acknowledged, whatever befalls the bookkeeping after it ------

APP_ROLE = "router_session_io_app"
REVOKE = "REVOKE EXECUTE ON FUNCTION pg_current_wal_insert_lsn() FROM PUBLIC"
GRANT = "GRANT EXECUTE ON FUNCTION pg_current_wal_insert_lsn() TO PUBLIC"


@pytest_asyncio.fixture
async def app(db: ClusterDatabase) -> AsyncIterator[router.AsyncRouter]:
    """A router connecting as an ordinary role, which the test can refuse the commit-position
    function (a real failure of the read the router makes after each commit)."""
    user = db.cluster.primary.user
    execute_on(
        db.primary_dsn,
        f"DO $$BEGIN CREATE ROLE {APP_ROLE} LOGIN IN ROLE pg_monitor;"
        " EXCEPTION WHEN duplicate_object THEN NULL; END$$",
        f"GRANT ALL ON kv TO {APP_ROLE}",
    )
    db.cluster.wait_caught_up()
    config = _config(db)
    nodes = [n.replace(dsn=n.dsn.replace(f"//{user}@", f"//{APP_ROLE}@")) for n in config.all_nodes]
    config = config.replace(primary=nodes[0], replicas=nodes[1:])
    try:
        async with router.AsyncRouter(config) as rt:
            yield rt
    finally:
        execute_on(db.primary_dsn, GRANT)


async def test_a_committed_write_is_not_reported_failed_when_its_position_cannot_be_read(
    app: router.AsyncRouter, db: ClusterDatabase
) -> None:
    primary_port = db.cluster.primary.port
    execute_on(db.primary_dsn, "INSERT INTO kv VALUES (12002, 0) ON CONFLICT (k) DO NOTHING")
    db.cluster.wait_caught_up()
    # A replica serves reads while the position is known.
    await wait_for(lambda: _on_a_replica(app, primary_port), what="a read on a replica")
    execute_on(db.primary_dsn, REVOKE)
    try:
        # Outside a session, in a transaction, in a session (autocommit and BEGIN ... COMMIT):
        # each write commits, its position read fails, and the caller gets its result.
        assert await app.execute("UPDATE kv SET v = 1 WHERE k = 12002") == "UPDATE 1"
        async with app.transaction() as tx:
            await tx.execute("UPDATE kv SET v = 2 WHERE k = 12002")
        async with app.session() as s:
            assert await s.execute("UPDATE kv SET v = 3 WHERE k = 12002") == "UPDATE 1"
            # Until a position covers the commit, its reads go to the primary: they see it.
            assert await s.fetchval("SELECT v FROM kv WHERE k = 12002") == 3
            assert await s.fetchval("SELECT inet_server_port()") == primary_port
            await s.execute("BEGIN")
            await s.execute("UPDATE kv SET v = 4 WHERE k = 12002")
            await s.execute("COMMIT")
            assert await s.fetchval("SELECT v FROM kv WHERE k = 12002") == 4
        assert await app.fetchval("SELECT inet_server_port()") == primary_port
        assert await node_value(db.primary_dsn, "SELECT v FROM kv WHERE k = 12002") == 4
    finally:
        execute_on(db.primary_dsn, GRANT)
    # The next read learns the position again; reads then leave the primary once more.
    assert await app.fetchval("SELECT v FROM kv WHERE k = 12002") == 4
    await wait_for(lambda: _on_a_replica(app, primary_port), what="reads back on a replica")


async def test_a_session_after_a_commit_whose_position_was_lost_reads_the_commit(
    app: router.AsyncRouter, db: ClusterDatabase
) -> None:
    """A session commits and its position cannot be read: neither the router's floor nor the
    session's token covers the commit. The next session (the next request, with that token,
    or without one) must read it all the same: it starts with the loss, and reads on the
    primary until a position read covers it. (The Patroni crash-restart scenario's stale
    reads: the primary died between a commit and its position read.)"""
    primary_port = db.cluster.primary.port
    # Through the router, its position read: the router's floor (and the token) are at it.
    await app.execute("INSERT INTO kv VALUES (12003, 0) ON CONFLICT (k) DO UPDATE SET v = 0")
    db.cluster.wait_caught_up()
    await wait_for(lambda: _session_on_a_replica(app, primary_port), what="a replica read")
    # The replicas stay eligible (their lag is well within the budget) but apply late.
    for replica in db.cluster.replicas:
        db.cluster.set_apply_delay(replica, 2.0)
    execute_on(db.primary_dsn, REVOKE)
    try:
        async with app.session() as s:
            assert await s.execute("UPDATE kv SET v = 1 WHERE k = 12003") == "UPDATE 1"
            token = s.token()
        # The floor from before the commit, marked as possibly behind it (version 2).
        assert token is not None
        assert token.startswith("r2."), token
        for after in (token, None):
            async with app.session(after=after) as s:
                assert await s.fetchval("SELECT v FROM kv WHERE k = 12003") == 1
                assert await s.fetchval("SELECT inet_server_port()") == primary_port
        # Another worker (another router: another process) that resumes from the token has
        # no loss of its own to go by: the token tells it to learn the primary's position
        # first (here it cannot: its reads stay on the primary, and see the commit).
        async with router.AsyncRouter(app.config) as other, other.session(after=token) as s:
            assert await s.fetchval("SELECT v FROM kv WHERE k = 12003") == 1
    finally:
        execute_on(db.primary_dsn, GRANT)
    # Now it can: the position it reads covers the commit, so it never reads behind it.
    async with router.AsyncRouter(app.config) as other:
        for _ in range(5):
            async with other.session(after=token) as s:
                assert await s.fetchval("SELECT v FROM kv WHERE k = 12003") == 1
    # A position read covers it now: sessions read on replicas again, and see it.
    await wait_for(lambda: _session_on_a_replica(app, primary_port), what="a replica again")
    async with app.session() as s:
        assert await s.fetchval("SELECT v FROM kv WHERE k = 12003") == 1


async def test_a_first_write_whose_position_was_lost_still_gives_a_token(
    app: router.AsyncRouter, db: ClusterDatabase
) -> None:
    """The router's very first commit loses its position: there is no floor at all, and the
    token must still say "a commit may lie past this" (an uncertain token at 0), not nothing:
    another worker given no token reads a replica behind the commit (found by a new-user
    tryout: `token()` returned None)."""
    primary_port = db.cluster.primary.port
    execute_on(
        db.primary_dsn, "INSERT INTO kv VALUES (12004, 0) ON CONFLICT (k) DO UPDATE SET v = 0"
    )
    db.cluster.wait_caught_up()
    for replica in db.cluster.replicas:
        db.cluster.set_apply_delay(replica, 2.0)
    execute_on(db.primary_dsn, REVOKE)
    try:
        async with app.session() as s:
            assert await s.execute("UPDATE kv SET v = 1 WHERE k = 12004") == "UPDATE 1"
            token = s.token()
        assert token is not None
        assert token.startswith("r2."), token
        assert app.token() is not None
        async with router.AsyncRouter(app.config) as other, other.session(after=token) as s:
            assert await s.fetchval("SELECT v FROM kv WHERE k = 12004") == 1
            assert await s.fetchval("SELECT inet_server_port()") == primary_port
    finally:
        execute_on(db.primary_dsn, GRANT)
    async with router.AsyncRouter(app.config) as other:
        for _ in range(5):
            async with other.session(after=token) as s:
                assert await s.fetchval("SELECT v FROM kv WHERE k = 12004") == 1


async def _session_on_a_replica(r: router.AsyncRouter, primary_port: int) -> bool:
    async with r.session() as s:
        return bool(await s.fetchval("SELECT inet_server_port()") != primary_port)


async def _on_a_replica(r: router.AsyncRouter, primary_port: int) -> bool:
    return bool(await r.fetchval("SELECT inet_server_port()") != primary_port)


# -- item 5: statement_timeout (57014) is the statement's failure, not the node's -------------


async def test_a_statement_cancelled_by_statement_timeout_is_not_run_again_elsewhere(
    db: ClusterDatabase,
) -> None:
    config = db.router_config(application_name=APP, **FAST)
    limited = [
        n.replace(dsn=n.dsn + "?options=-c%20statement_timeout%3D300") for n in config.all_nodes
    ]
    config = config.replace(primary=limited[0], replicas=limited[1:])
    async with router.AsyncRouter(config) as rt:
        started = monotonic()
        with pytest.raises(DatabaseError) as raised:
            await rt.fetchval("SELECT pg_sleep(4) /* io-statement-timeout */")
        elapsed = monotonic() - started
        assert raised.value.sqlstate == "57014"
        decision = rt.last_decision
        assert decision is not None
        assert not decision.primary
        assert decision.reason.value != "retry"
        # One replica ran it, for 0.3 s: a retry on the others would have taken 0.3 s more
        # each, and its server would show it still running.
        assert elapsed < 0.8
        for dsn in [db.primary_dsn, *db.replica_dsns]:
            running = await node_value(
                dsn,
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                " AND query LIKE '%io-statement-timeout%' AND pid <> pg_backend_pid()",
            )
            assert running == 0
        assert await rt.fetchval("SELECT 1") == 1


# -- item 7: open and close with nodes that are down, refuse us, or never answer -------------


def _blackhole() -> socket.socket:
    """A port that accepts TCP connections (the kernel completes them) and never answers."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    return hole


def _on_port(node: router.NodeConfig, old: int, new: int) -> router.NodeConfig:
    return node.replace(dsn=node.dsn.replace(f":{old}/", f":{new}/"))


async def test_open_and_close_are_bounded_with_a_node_that_never_answers(
    db: ClusterDatabase,
) -> None:
    hole = _blackhole()
    try:
        config = db.router_config(application_name=APP, **FAST)  # default timeouts
        replica2 = db.cluster.replicas[1]
        dead = _on_port(config.replica_nodes[1], replica2.port, hole.getsockname()[1])
        config = config.replace(replicas=[config.replica_nodes[0], dead])
        rt = router.AsyncRouter(config)
        started = monotonic()
        await rt.open()
        opened = monotonic() - started
        try:
            # The other nodes serve meanwhile.
            assert await rt.fetchval("SELECT inet_server_port()") in {
                n.port for n in db.cluster.nodes
            }
            await rt.execute("UPDATE kv SET v = v WHERE k = -1")
        finally:
            started = monotonic()
            await rt.close()
            closed = monotonic() - started
        # A check of every node at once (monitor_timeout 1 s; libpq waits 2 s at least), not
        # connect_timeout (5 s) on top of it; no wait for a connection still being opened.
        assert opened < 3.5, opened
        assert closed < 1.5, closed
    finally:
        hole.close()


async def test_open_can_wait_for_the_primary_and_say_why_it_did_not_answer(
    db: ClusterDatabase,
) -> None:
    config = db.router_config(application_name=APP, **FAST)
    user = db.cluster.primary.user
    stranger = [
        n.replace(dsn=n.dsn.replace(f"//{user}@", "//router_no_such_role@"))
        for n in config.all_nodes
    ]
    refused = config.replace(primary=stranger[0], replicas=stranger[1:])
    # Without waiting, open() succeeds (an application may start before its database), and
    # the first statement says why it cannot run.
    rt = await router.AsyncRouter(refused).open()
    try:
        with pytest.raises(router.PrimaryUnavailable, match="router_no_such_role"):
            await rt.execute("UPDATE kv SET v = v WHERE k = -1")
    finally:
        await rt.close()
    # Waiting for the primary fails within its bound, naming every node's reason.
    rt = router.AsyncRouter(refused)
    started = monotonic()
    with pytest.raises(router.PrimaryUnavailable) as raised:
        await rt.open(wait_for_primary=1.0)
    assert monotonic() - started < 1.0 + 3.5
    for node in config.all_nodes:
        assert f"{node.name}: " in str(raised.value)
    assert "router_no_such_role" in str(raised.value)
    with pytest.raises(RuntimeError, match="closed"):
        await rt.open()  # it was closed again
    # Nothing listens: the same, with the connection's own reason.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    primary = config.primary_node
    assert primary is not None
    nowhere = config.replace(primary=_on_port(primary, db.cluster.primary.port, free), replicas=[])
    with pytest.raises(router.PrimaryUnavailable, match="primary: "):
        await router.AsyncRouter(nowhere).open(wait_for_primary=0.5)
    # A cluster that answers: open() returns once the primary does, ready to write.
    async with router.AsyncRouter(config) as fine:
        await fine.wait_ready(5)
        assert await fine.execute("UPDATE kv SET v = v WHERE k = -1") == "UPDATE 0"
    ready = await router.AsyncRouter(config).open(wait_for_primary=5)
    try:
        assert await ready.execute("UPDATE kv SET v = v WHERE k = -1") == "UPDATE 0"
    finally:
        await ready.close()
