"""AsyncRouter under faults, on the real cluster (issue 4, "Faults"; design §5 and §6).

A replica killed under load, the primary stopped or killed, a failover found by the monitor,
and a switchover the router learns of from a SQLSTATE 25006 answer. Each test measures what it
promises (detection and recovery times, reads per node, failures) against a small monitor
interval, so the whole module stays within a few tens of seconds. ``test_sync_faults.py`` is
generated from this file (``tools/unasync.py``): the sync Router passes the same suite. SQL
values are literals, not parameters: the two drivers' placeholders differ.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from router import (
    AsyncRouter,
    NodeConfig,
    PoolConfig,
    PrimaryUnavailable,
    RetryConfig,
    RouterConfig,
    RouterError,
    TopologyError,
)
from router._async._monitor import Monitor
from router.testing import LocalCluster, Node
from router.testing.pytest_plugin import ClusterDatabase
from tests.integration.async_support import (
    CONNECTION_FAILURES,
    DRIVER_ERRORS,
    LOST_IN_FLIGHT,
    MARKS,
    WHO_ANSWERS,
    ReadLoad,
    ReadOnlySqlError,
    backends,
    blocking,
    execute_on,
    node_value,
    sleep,
    start,
    wait_for,
    within,
)
from tests.integration.timeline_support import diverge, rejoin

pytestmark = [pytest.mark.integration, pytest.mark.faults, *MARKS]

INTERVAL = 0.1


def _insert(value: str) -> str:
    return f"INSERT INTO items (v) VALUES ('{value}')"


def _insert_where(value: str) -> str:
    """An insert that says which server took it."""
    return f"INSERT INTO items (v) VALUES ('{value}') RETURNING inet_server_port()"


def _count(value: str) -> str:
    return f"SELECT count(*) FROM items WHERE v = '{value}'"


@pytest.fixture(scope="module", autouse=True)
def items(cluster_db: ClusterDatabase) -> None:
    execute_on(
        cluster_db.primary_dsn, "CREATE TABLE items (id bigserial PRIMARY KEY, v text NOT NULL)"
    )
    cluster_db.cluster.wait_caught_up()


def _config(db: ClusterDatabase, app: str, **options: Any) -> RouterConfig:
    """Fast monitor, fast probes, short retries; *options* win."""
    base: dict[str, Any] = {
        "application_name": app,
        "monitor_interval": INTERVAL,
        "monitor_timeout": 0.5,
        "failures_to_down": 2,
        "probe_backoff_initial": 0.1,
        "probe_backoff_max": 0.4,
        "readmit_hold": 0.3,
        "retry": RetryConfig(attempts=3, backoff_initial=0.01, backoff_max=0.05, jitter=0.01),
        "pool": PoolConfig(min_size=1, max_size=10, acquire_timeout=2.0, connect_timeout=1.0),
    }
    return db.router_config(**{**base, **options})


def _node(router: AsyncRouter, name: str) -> dict[str, Any]:
    node: dict[str, Any] = router.stats()["nodes"][name]
    return node


def _serving(router: AsyncRouter, *replicas: str) -> bool:
    """The router knows its primary and has admitted every one of *replicas*."""
    stats = router.stats()
    return stats["primary"] == "primary" and all(
        stats["nodes"][n]["health"] == "up" and stats["nodes"][n]["admitted"] for n in replicas
    )


async def _first_seen(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """``time.monotonic()`` when *condition* was first seen true (polled every 5 ms)."""
    seen: float = await wait_for(lambda: condition() and time.monotonic(), timeout, what)
    return seen


async def _no_backends_left(db: ClusterDatabase, app: str) -> None:
    """After close(): no server process of the router's pools or monitor on any node."""
    running = [n for n in db.cluster.nodes if n.is_running()]

    async def left() -> bool:
        counts = [await backends(db.dsn(n), app) for n in running]
        return sum(counts) == 0

    await wait_for(left, 5, f"the backends of {app!r} to end after close()", interval=0.05)


def _report(name: str, **numbers: Any) -> None:
    # Shown with `pytest -s` (or in the report of a failing test): the measured numbers.
    print(
        f"\n[{AsyncRouter.__name__}: {name}] " + ", ".join(f"{k}={v}" for k, v in numbers.items())
    )


# -- a replica dies under load -------------------------------------------------------------


async def test_a_replica_killed_under_load_costs_no_read_and_comes_back(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    app = "faults-kill"
    port = {n.name: n.port for n in cluster.nodes}
    r1, r2 = port["replica1"], port["replica2"]
    async with AsyncRouter(_config(cluster_db, app)) as router:
        await wait_for(lambda: _serving(router, "replica1", "replica2"), 5, "replicas admitted")
        async with ReadLoad(router, tasks=8) as load:
            load.phase = "before"
            await sleep(0.5)  # a bounded load window
            rounds_at_kill = router.stats()["monitor_rounds"]
            load.phase = "kill"
            down = start(
                _first_seen, lambda: _node(router, "replica1")["health"] == "down", 5, "down"
            )
            await blocking(cluster.kill, "replica1")
            killed_at = time.monotonic()
            down_at = await down.result()
            load.phase = "down"
            await sleep(0.5)
            rounds_while_down = router.stats()["monitor_rounds"] - rounds_at_kill

            load.phase = "restart"
            await blocking(cluster.start_node, "replica1")
            started_at = time.monotonic()
            back_at = await _first_seen(
                lambda: _serving(router, "replica1", "replica2"), 10, "replica1 admitted again"
            )
            load.phase = "after"
            await wait_for(lambda: load.reads["after"][r1] >= 20, 5, "reads on replica1 again")
        stats = router.stats()

    detection = down_at - killed_at
    _report(
        "replica killed",
        detection_after_kill_s=round(detection, 3),
        readmitted_after_start_s=round(back_at - started_at, 3),
        monitor_rounds_while_down=rounds_while_down,
        reads={phase: dict(counts) for phase, counts in load.reads.items()},
        failures=len(load.failures),
        replica1_errors=stats["nodes"]["replica1"]["errors"],
        decisions=stats["decisions"],
    )
    assert not load.failures, load.describe_failures()
    assert detection <= 2 * INTERVAL + 0.1, f"marked down {detection:.3f} s after the kill"
    # While it was down every read went to the other replica.
    assert load.reads["down"][r1] == 0
    assert load.reads["down"][r2] > 0
    assert load.total("down") == load.reads["down"][r2]
    # The monitor went on through the node's death.
    assert rounds_while_down >= 3
    # Nothing leaked: every pooled connection is back, and close() leaves no backend behind.
    for name, node in stats["nodes"].items():
        assert node["outstanding"] == 0, name
        assert node["pool"]["in_use"] == 0, (name, node["pool"])
        assert node["pool"]["waiting"] == 0, (name, node["pool"])
        assert node["pool"]["size"] <= 10, (name, node["pool"])
    await _no_backends_left(cluster_db, app)


async def test_a_transaction_on_a_replica_that_dies_fails_and_does_not_move(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    app = "faults-tx"
    port = {n.name: n.port for n in cluster.nodes}
    async with AsyncRouter(_config(cluster_db, app)) as router:
        await wait_for(lambda: _serving(router, "replica1", "replica2"), 5, "replicas admitted")
        seen: dict[str, Any] = {}

        async def read_while_its_replica_dies() -> None:
            async with router.transaction(readonly=True) as tx:
                seen["node"] = tx.node
                seen["first"] = await tx.fetchval(WHO_ANSWERS)
                await blocking(cluster.kill, tx.node)
                try:
                    await tx.fetchval(WHO_ANSWERS)
                except Exception as exc:
                    seen["error"] = exc
                    raise
                seen["moved"] = tx.node

        with pytest.raises(DRIVER_ERRORS) as raised:
            await read_while_its_replica_dies()
        node = seen["node"]
        assert seen["first"] == port[node]
        # The statement's own error reaches the caller: not retried elsewhere (that would
        # have answered), and not masked by the end of the transaction.
        assert "moved" not in seen
        assert raised.value is seen["error"], f"{raised.value!r} masked {seen['error']!r}"
        assert not isinstance(raised.value, RouterError)
        stats = router.stats()
        assert stats["nodes"][node]["pool"]["in_use"] == 0
        # The router goes on reading from the other replica.
        other = "replica2" if node == "replica1" else "replica1"
        assert await router.fetchval(WHO_ANSWERS) == port[other]
    await _no_backends_left(cluster_db, app)


# -- the primary goes away ---------------------------------------------------------------


async def test_with_the_primary_stopped_writes_fail_fast_and_reads_carry_on(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    app = "faults-stop"
    port = {n.name: n.port for n in cluster.nodes}
    async with AsyncRouter(_config(cluster_db, app)) as router:
        await wait_for(lambda: _serving(router, "replica1", "replica2"), 5, "replicas admitted")
        async with ReadLoad(router, tasks=4) as load:
            load.phase = "before"
            await sleep(0.3)
            load.phase = "stopping"
            await blocking(cluster.stop, "primary")
            stopped_at = time.monotonic()
            load.phase = "stopped"
            attempts: list[tuple[float, str]] = []
            while True:
                try:
                    await within(2, router.execute, _insert("after stop"))
                except PrimaryUnavailable:
                    attempts.append((time.monotonic() - stopped_at, "PrimaryUnavailable"))
                    break
                except TimeoutError:
                    pytest.fail(f"a write hung with the primary stopped; before it: {attempts}")
                except CONNECTION_FAILURES as exc:
                    attempts.append((time.monotonic() - stopped_at, type(exc).__name__))
                else:
                    pytest.fail("a write succeeded with the primary stopped")
                assert time.monotonic() - stopped_at < 1.0, f"no PrimaryUnavailable: {attempts}"
                await sleep(0.01)
            refused_after = attempts[-1][0]
            # From then on every write is refused at once, never sent, never hanging.
            slowest = 0.0
            for _ in range(50):
                began = time.monotonic()
                with pytest.raises(PrimaryUnavailable):
                    await within(1, router.execute, _insert("refused"))
                slowest = max(slowest, time.monotonic() - began)
            await sleep(0.5)  # reads go on, the primary still down
        stats = router.stats()

    stopped = load.reads["stopped"]
    _report(
        "primary stopped",
        first_PrimaryUnavailable_s=round(refused_after, 3),
        attempts=[(round(t, 3), kind) for t, kind in attempts],
        slowest_refusal_s=round(slowest, 4),
        reads={phase: dict(counts) for phase, counts in load.reads.items()},
        failures=len(load.failures),
    )
    assert refused_after < 1.0
    assert slowest < 0.05
    assert not load.failures, load.describe_failures()
    assert stopped[port["primary"]] == 0
    assert stopped[port["replica1"]] > 0
    assert stopped[port["replica2"]] > 0
    assert stats["primary"] is None
    assert stats["nodes"]["primary"]["health"] == "down"
    assert stats["nodes"]["primary"]["writes"] == 0
    await _no_backends_left(cluster_db, app)


async def test_a_write_in_flight_when_the_primary_dies_is_not_retried(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    app = "faults-inflight"
    primary_dsn = cluster_db.primary_dsn
    primary_port = cluster.node("primary").port
    async with AsyncRouter(_config(cluster_db, app)) as router:
        await wait_for(lambda: _serving(router), 5, "the primary known")
        sleeper = start(
            router.execute, "INSERT INTO items (v) SELECT 'in flight' FROM pg_sleep(30)"
        )
        await wait_for(
            lambda: node_value(
                primary_dsn,
                "SELECT count(*) FROM pg_stat_activity"
                f" WHERE application_name = '{app}' AND wait_event = 'PgSleep'",
            ),
            5,
            "the write to be running on the primary",
            interval=0.02,
        )
        await blocking(cluster.kill, "primary")
        killed_at = time.monotonic()
        with pytest.raises(DRIVER_ERRORS) as raised:
            await sleeper.result(timeout=2)
        failed_after = time.monotonic() - killed_at
        # The driver's error for the lost statement, unchanged (not one from the router's own
        # clean-up): the write's outcome is unknown, so it is not sent again.
        assert isinstance(raised.value, LOST_IN_FLIGHT), repr(raised.value)
        # The broken connection made the primary suspect and asked the monitor for a check at
        # once; that check finds it gone. Then writes are refused, without I/O.
        await wait_for(
            lambda: _node(router, "primary")["health"] == "down", 1, "the primary marked down"
        )
        with pytest.raises(PrimaryUnavailable):
            await router.execute(_insert("refused"))

        await blocking(cluster.start_node, "primary")
        started_at = time.monotonic()
        while True:
            try:
                served_by = await within(2, router.fetchval, _insert_where("back"))
                break
            except (PrimaryUnavailable, *CONNECTION_FAILURES):
                assert time.monotonic() - started_at < 3.0, "writes did not resume"
                await sleep(0.01)
        resumed_after = time.monotonic() - started_at
        stats = router.stats()

    _report(
        "write in flight",
        in_flight_error=type(raised.value).__name__,
        raised_after_kill_returned_s=round(failed_after, 3),
        writes_resumed_after_start_s=round(resumed_after, 3),
        decisions=stats["decisions"],
    )
    assert served_by == primary_port
    assert not any("retry" in reasons for reasons in stats["decisions"].values())
    assert await node_value(primary_dsn, _count("in flight")) == 0
    assert await node_value(primary_dsn, _count("back")) == 1
    await _no_backends_left(cluster_db, app)


async def test_one_broken_connection_leaves_the_primary_serving_and_is_checked_at_once(
    cluster_db: ClusterDatabase,
) -> None:
    """One pooled connection that breaks (``pg_terminate_backend``, an idle connection a
    firewall dropped) says little about its node: the primary becomes suspect, the monitor
    checks it at once rather than at its next tick, and writes go on. The lost write is the
    caller's to judge: it is not sent again."""
    app = "faults-one-broken"
    primary_dsn = cluster_db.primary_dsn
    # The next tick is a minute away: a check that comes sooner was asked for by the report.
    async with AsyncRouter(_config(cluster_db, app, monitor_interval=60.0)) as router:
        # open() takes two rounds, the monitor's loop one at once.
        await wait_for(lambda: router.stats()["monitor_rounds"] >= 3, 5, "the first tick")
        rounds = router.stats()["monitor_rounds"]
        sleeper = start(router.execute, "INSERT INTO items (v) SELECT 'cut' FROM pg_sleep(30)")
        running = (
            f"FROM pg_stat_activity WHERE application_name = '{app}' AND wait_event = 'PgSleep'"
        )
        await wait_for(
            lambda: node_value(primary_dsn, f"SELECT count(*) {running}"),
            5,
            "the write to be running on the primary",
            interval=0.02,
        )
        assert await node_value(primary_dsn, f"SELECT count(pg_terminate_backend(pid)) {running}")
        with pytest.raises(DRIVER_ERRORS) as raised:
            await sleeper.result(timeout=5)
        assert isinstance(raised.value, LOST_IN_FLIGHT), repr(raised.value)
        # The very next write is served: the primary was never taken out of service.
        served_by = await within(2, router.fetchval, _insert_where("after the break"))
        await wait_for(
            lambda: router.stats()["monitor_rounds"] > rounds, 5, "a check of the suspect"
        )
        primary = _node(router, "primary")
        stats = router.stats()
    assert served_by == cluster_db.cluster.node("primary").port
    assert stats["primary"] == "primary"
    assert (primary["health"], primary["reason"]) == ("up", "primary"), primary
    assert not any("retry" in reasons for reasons in stats["decisions"].values())
    assert await node_value(primary_dsn, _count("cut")) == 0
    assert await node_value(primary_dsn, _count("after the break")) == 1
    await _no_backends_left(cluster_db, app)


# -- failover ------------------------------------------------------------------------------


async def test_after_a_failover_writes_reach_the_promoted_replica_within_2s(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    app = "faults-failover"
    port = {n.name: n.port for n in cluster.nodes}
    async with AsyncRouter(_config(cluster_db, app)) as router:
        await wait_for(lambda: _serving(router, "replica1", "replica2"), 5, "replicas admitted")
        async with ReadLoad(router, tasks=4) as load:
            load.phase = "before"
            await sleep(0.3)
            load.phase = "promoted"
            await blocking(cluster.promote, "replica1")
            # Two servers take writes now: the router refuses writes rather than pick one.
            await wait_for(lambda: router.stats()["split_brain"], 2, "the split brain seen")
            with pytest.raises(TopologyError):
                await router.execute(_insert("split"))
            load.phase = "stopping"
            await blocking(cluster.stop, "primary")
            stopped_at = time.monotonic()
            load.phase = "failed over"
            seen: list[str] = []
            while True:
                try:
                    served_by = await within(2, router.fetchval, _insert_where("failover"))
                    break
                except TimeoutError:
                    pytest.fail(f"a write hung during the failover; before it: {seen}")
                except (RouterError, *CONNECTION_FAILURES) as exc:
                    seen.append(type(exc).__name__)
                assert time.monotonic() - stopped_at < 2.0, f"no write reached a primary: {seen}"
                await sleep(0.01)
            reached_after = time.monotonic() - stopped_at
            assert router.stats()["primary"] == "replica1"
            await sleep(0.3)  # reads go on after the failover
        stats = router.stats()

    _report(
        "failover",
        write_reached_new_primary_s=round(reached_after, 3),
        errors_before=seen,
        reads={phase: dict(counts) for phase, counts in load.reads.items()},
        failures=len(load.failures),
        decisions=stats["decisions"],
    )
    assert served_by == port["replica1"]
    assert reached_after < 2.0
    assert not load.failures, load.describe_failures()
    assert load.reads["failed over"][port["primary"]] == 0
    new_primary = cluster_db.dsn("replica1")
    assert await node_value(new_primary, "SELECT pg_is_in_recovery()") is False
    assert await node_value(new_primary, _count("failover")) == 1
    assert await node_value(new_primary, _count("split")) == 0
    await _no_backends_left(cluster_db, app)


# -- SQLSTATE 25006 from the node believed primary ---------------------------------------


def _switch_over(cluster: LocalCluster, old: Node, new: Node) -> None:
    """A clean switchover behind the router's back: *old* stops (its last WAL reaches the
    replicas), *new* is promoted, *old* comes back as a hot standby of *new*."""
    cluster.wait_caught_up()
    conninfo = f"host={new.host} port={new.port} user={new.user} application_name={old.name}"
    with old.connect() as conn:
        conn.execute(f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'")
    cluster.stop(old)
    cluster.promote(new)
    signal = old.datadir / "standby.signal"
    signal.touch()
    owner = old.datadir.stat()
    os.chown(signal, owner.st_uid, owner.st_gid)
    cluster.start_node(old)


def _undo_switch_over(old: Node) -> None:
    """Make *old* a primary again (a new timeline), as the harness's reset expects of it:
    the reset then re-clones the promoted replica from it."""
    if not old.is_running():
        return
    with old.connect() as conn:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if row is not None and row[0]:
            conn.execute("SELECT pg_promote(wait => true, wait_seconds => 60)")
        conn.execute("ALTER SYSTEM RESET primary_conninfo")
        conn.execute("SELECT pg_reload_conf()")


async def test_25006_from_a_demoted_primary_rediscovers_and_retries_the_write_once(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    app = "faults-25006"
    old, new = cluster.node("primary"), cluster.node("replica1")
    # The monitor looks at open (two rounds) and once more, then not for a minute: only the
    # 25006 path can explain a quick recovery.
    config = _config(cluster_db, app, monitor_interval=60.0)
    async with AsyncRouter(config) as router:
        await wait_for(
            lambda: (
                _serving(router, "replica1", "replica2") and router.stats()["monitor_rounds"] >= 3
            ),
            5,
            "the first rounds of the monitor",
        )
        rounds = router.stats()["monitor_rounds"]
        # Reads first, as an application would: the pool of replica1 now holds connections
        # opened for a replica (default_transaction_read_only = on).
        answers = {await router.fetchval(WHO_ANSWERS) for _ in range(10)}
        assert new.port in answers
        try:
            await blocking(_switch_over, cluster, old, new)
            assert await node_value(cluster_db.dsn(old), "SELECT pg_is_in_recovery()") is True
            assert router.stats()["primary"] == "primary"  # still believed
            assert router.stats()["monitor_rounds"] == rounds  # and the monitor did not look
            began = time.monotonic()
            served_by = await within(5, router.fetchval, _insert_where("after switchover"))
            took = time.monotonic() - began
            stats = router.stats()
            written = await node_value(cluster_db.dsn(new), _count("after switchover"))
        finally:
            await blocking(_undo_switch_over, old)

    _report(
        "25006",
        write_took_s=round(took, 3),
        monitor_rounds_before=rounds,
        monitor_rounds_after=stats["monitor_rounds"],
        decisions=stats["decisions"],
    )
    assert served_by == new.port
    assert took < 1.0
    assert written == 1
    assert stats["primary"] == "replica1"
    assert stats["nodes"]["primary"]["role"] == "replica"
    # One attempt on the node believed primary, rejected; one retry on the new primary.
    assert stats["decisions"]["primary"] == {"classifier": 1}
    assert stats["decisions"]["replica1"].get("retry") == 1
    assert stats["nodes"]["replica1"]["writes"] == 1
    await _no_backends_left(cluster_db, app)


async def test_a_transaction_right_after_a_promotion_writes_on_the_new_primary(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    """The monitor sees a replica promoted, and the very next write transaction goes there.
    The replica's pooled connections were opened read-only (``default_transaction_read_only``,
    the replicas' second fence); a transaction's write is not retried on a 25006, so the pool
    must hand out a connection set for the new role at once, not after a later task ran."""
    app = "faults-promoted-tx"
    old, new = cluster.node("primary"), cluster.node("replica1")
    config = _config(cluster_db, app, monitor_interval=60.0)
    async with AsyncRouter(config) as router:
        await wait_for(lambda: _serving(router, "replica1"), 5, "replica1 admitted")
        # Reads first, as an application would: replica1's pool holds read-only sessions.
        assert new.port in {await router.fetchval(WHO_ANSWERS) for _ in range(20)}
        monitor = router.engine.monitor
        assert isinstance(monitor, Monitor)
        try:
            await blocking(_switch_over, cluster, old, new)
            # The monitor's round, then the transaction with no step in between: whatever the
            # round left for later has not run when the transaction takes its connection.
            monitor.request_rediscovery()
            await monitor.check()
            assert router.stats()["primary"] == "replica1"
            async with router.transaction() as tx:
                port = await tx.fetchval(_insert_where("promoted tx"))
            written = await node_value(cluster_db.dsn(new), _count("promoted tx"))
            # Sessions follow the roles both ways: the new primary's read-write, a replica's
            # read-only (the demoted primary's too, once it serves reads).
            show = "SELECT inet_server_port(), current_setting('default_transaction_read_only')"
            reads = {tuple(await router.fetchrow(show)) for _ in range(20)}
        finally:
            await blocking(_undo_switch_over, old)

    assert port == new.port
    assert written == 1
    assert {(port, "off" if port == new.port else "on") for port, _ in reads} == reads
    await _no_backends_left(cluster_db, app)


def _set_read_only(node: Node, on: bool) -> None:
    """``default_transaction_read_only`` for every session of *node*, in force on return."""
    with node.connect() as conn:
        conn.execute("SET default_transaction_read_only = off")
        if on:
            conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        else:
            conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        conn.execute("SELECT pg_reload_conf()")
    want = "on" if on else "off"

    def loaded() -> bool:
        with node.connect() as conn:
            row = conn.execute("SHOW default_transaction_read_only").fetchone()
        return row is not None and row[0] == want

    deadline = time.monotonic() + 10
    while not loaded():
        assert time.monotonic() < deadline, f"{node.name}: default_transaction_read_only {want}"
        time.sleep(0.01)


async def test_25006_from_a_read_only_primary_with_another_primary_refuses_the_write(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    # The old primary is read-only but not in recovery, and a promoted replica takes writes:
    # rediscovery finds two primaries, so the write is refused, not sent to either.
    app = "faults-25006-split"
    old, new = cluster.node("primary"), cluster.node("replica1")
    config = _config(cluster_db, app, monitor_interval=60.0)
    async with AsyncRouter(config) as router:
        await wait_for(lambda: _serving(router, "replica1", "replica2"), 5, "replicas admitted")
        await blocking(cluster.promote, new)
        try:
            await blocking(_set_read_only, old, True)
            assert router.stats()["primary"] == "primary"  # still believed
            with pytest.raises(TopologyError) as raised:
                await within(5, router.execute, _insert("refused"))
            stats = router.stats()
        finally:
            await blocking(_set_read_only, old, False)

    assert isinstance(raised.value.__context__, ReadOnlySqlError)
    assert stats["split_brain"]
    assert stats["primary"] is None
    assert stats["decisions"] == {"primary": {"classifier": 1}}
    for node in (old, new):
        assert await node_value(cluster_db.dsn(node), _count("refused")) == 0
    await _no_backends_left(cluster_db, app)


async def test_a_router_opened_without_a_primary_loads_the_catalog_when_it_appears(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    execute_on(
        cluster_db.primary_dsn,
        "CREATE OR REPLACE FUNCTION stable_answer() RETURNS int LANGUAGE sql STABLE AS 'SELECT 42'",
    )
    await blocking(cluster.wait_caught_up)
    await blocking(cluster.stop, "primary")
    async with AsyncRouter(_config(cluster_db, "faults-catalog")) as router:
        # No catalog: an unknown function is a write, and there is nowhere to write.
        with pytest.raises(PrimaryUnavailable):
            await router.fetchval("SELECT stable_answer()")
        await blocking(cluster.start_node, "primary")
        await wait_for(
            lambda: router.explain("SELECT stable_answer()").role == "replica",
            10,
            "the catalog to load once the primary is back",
        )
        assert await router.fetchval("SELECT stable_answer()") == 42
        assert router.last_decision is not None
        assert not router.last_decision.primary


# -- a node that stops answering ---------------------------------------------------------


class _Silent:
    """A listening socket that never answers: the kernel completes each TCP handshake, and the
    start-up packet a client sends there waits for a reply that never comes (a hung server,
    a half-dead link)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


async def _with_a_silent_replica(
    cluster_db: ClusterDatabase, app: str
) -> tuple[dict[str, float], set[int], int]:
    """A router over the cluster plus a replica that never answers: when it was open, when
    the silent one was marked down, the ports that served 20 reads, monitor rounds in 1 s."""
    silent = _Silent()
    try:
        base = _config(cluster_db, app, monitor_timeout=0.3)
        dsn = f"postgresql://postgres@127.0.0.1:{silent.port}/{cluster_db.name}"
        config = base.replace(replicas=[*base.replicas, NodeConfig(dsn=dsn, name="hung")])
        started = time.monotonic()
        async with AsyncRouter(config) as router:
            times = {"open_s": time.monotonic() - started}
            await wait_for(lambda: _node(router, "hung")["health"] == "down", 10, "hung down")
            times["marked_down_s"] = time.monotonic() - started
            rounds = router.stats()["monitor_rounds"]
            await sleep(1.0)
            rounds_in_1s = router.stats()["monitor_rounds"] - rounds
            # Reads never go to it, and never wait for it.
            ports = {await router.fetchval(WHO_ANSWERS) for _ in range(20)}
    finally:
        silent.close()
    _report(
        "node never answers",
        **{k: round(v, 3) for k, v in times.items()},
        rounds_in_1s=rounds_in_1s,
    )
    assert silent.port not in ports
    return times, ports, rounds_in_1s


async def test_a_node_that_never_answers_is_marked_down_and_slows_nothing(
    cluster_db: ClusterDatabase, cluster: LocalCluster
) -> None:
    times, ports, rounds_in_1s = await _with_a_silent_replica(cluster_db, "faults-silent")
    assert ports <= {n.port for n in cluster.replicas}
    assert times["marked_down_s"] < 6.0, times
    # The other nodes are still checked about every interval (0.1 s) meanwhile.
    assert rounds_in_1s >= 5, rounds_in_1s


# -- a former primary back on the timeline the cluster left ---------------------------------


async def test_a_former_primary_back_on_its_old_timeline_serves_no_read() -> None:
    """The primary crashes with WAL its replica never received; the replica is promoted (a
    new timeline) and takes a session's commit; the former primary comes back as a standby
    without pg_rewind. It replays its own WAL, past the point where the new timeline forked,
    and cannot stream: its replay position is above the session's commit while it lacks it
    (positions on two timelines do not compare). No read goes there, read-your-writes or
    eventual, until it streams the primary's timeline (issue 17: a Patroni member lost and
    restarted read stale exactly so)."""
    with LocalCluster(replicas=1) as own:
        old, new = own.primary, own.replicas[0]
        execute_on(
            old.dsn,
            "CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL)",
            "CREATE ROLE plain LOGIN",  # sees no WAL receiver: no timeline of a standby
        )
        await blocking(own.wait_caught_up)
        config = RouterConfig(
            nodes=[NodeConfig(dsn=n.dsn, name=n.name) for n in own.nodes],
            application_name="faults-timeline",
            monitor_interval=INTERVAL,
            monitor_timeout=0.5,
            failures_to_down=2,
            probe_backoff_initial=0.1,
            probe_backoff_max=0.4,
            readmit_hold=0.1,
            max_lag_seconds=None,
            pool=PoolConfig(min_size=1, max_size=4, acquire_timeout=2.0, connect_timeout=1.0),
        )
        async with AsyncRouter(config) as router:
            await wait_for(
                lambda: (
                    router.stats()["primary"] == old.name and _node(router, new.name)["admitted"]
                ),
                5,
                "the replica admitted",
            )
            # WAL the replica never receives: it is stopped, the primary writes and crashes.
            await blocking(diverge, own)
            await wait_for(
                lambda: router.stats()["primary"] == new.name, 10, "the promoted node as primary"
            )
            async with router.session() as session:
                await session.execute("INSERT INTO kv VALUES (1, 42)")
                await blocking(rejoin, own, old, new)
                # Back as a standby, within the lag budget: only its timeline keeps it out.
                await wait_for(
                    lambda: (
                        _node(router, old.name)["role"] == "replica"
                        and _node(router, old.name)["admitted"]
                    ),
                    10,
                    "the former primary back as a standby, admitted by the lag gate",
                )
                # The premise: it replayed its own WAL past the session's commit.
                commit = await node_value(new.dsn, "SELECT pg_current_wal_lsn()::text")
                replayed = await node_value(old.dsn, "SELECT pg_last_wal_replay_lsn()::text")
                assert await node_value(
                    old.dsn, f"SELECT '{replayed}'::pg_lsn > '{commit}'::pg_lsn"
                ), (replayed, commit)
                assert await node_value(old.dsn, "SELECT count(*) FROM kv") == 0
                node = _node(router, old.name)
                assert node["off_timeline"], node
                assert node["reason"].startswith("serves no read"), node
                # It does not stream the primary's timeline. Its WAL receiver shows up, for a
                # moment on each retry, as 'streaming' the timeline it asks for (its own, 1)
                # before the primary refuses that start point: the server marks a receiver
                # streaming as it starts, not once WAL flows.
                primary_timeline = _node(router, new.name)["timeline"]
                assert primary_timeline == 2, _node(router, new.name)
                assert node["timeline"] in (None, 1), node
                read = "SELECT inet_server_port(), (SELECT v FROM kv WHERE k = 1)"
                seen = {tuple(await session.fetchrow(read)) for _ in range(20)}
                assert seen == {(new.port, 42)}
            async with router.session(consistency="eventual") as eventual:
                ports = {await eventual.fetchval("SELECT inet_server_port()") for _ in range(20)}
            assert ports == {new.port}
            decision = router.last_decision
            assert decision is not None
            # Both rules hold it out; the reason names the first found.
            why = ("former primary of timeline 1", "another history")
            assert any(words in decision.detail for words in why), decision
        # A router started now, as a user who cannot see WAL receivers, never saw it lead and
        # cannot see which timeline it streams: its replay position, above the primary's
        # later positions, gives it away (no privilege, no timeline needed) within two rounds,
        # both taken by open(): no read goes there from the first.
        plain = config.replace(
            nodes=[
                NodeConfig(dsn=n.dsn.replace("postgres@", "plain@", 1), name=n.name)
                for n in own.nodes
            ]
        )
        async with AsyncRouter(plain) as fresh:
            node = _node(fresh, old.name)
            assert node["off_timeline"], node
            assert node["timeline"] is None, node
            async with fresh.session(consistency="eventual") as eventual:
                ports = {await eventual.fetchval("SELECT inet_server_port()") for _ in range(20)}
            assert ports == {new.port}
