"""High availability as production runs it: the fault suite's 32-user load through one
``AsyncRouter`` while Patroni (with etcd) switches over, fails over, restarts a crashed leader in
place, or loses its DCS (issue "High availability the way production runs it").

Each scenario runs once on the session's :class:`~router.testing.PatroniCluster` (the first test
that needs it runs it; the invariants are one test each, parametrized by scenario). Besides the
router's own record (``tests/faults/_load.py``), a watcher thread asks every node
``pg_is_in_recovery()`` every 20 ms and Patroni's ``/cluster`` every 100 ms: Patroni's own
timeline, against which the router's write outage is measured ("how long after the new leader
accepted writes did the router use it"). Figures are printed (``-s``) and appended to
``ROUTER_RELIABILITY_REPORT`` like the fault suite's.

Scenarios of 20 s or more (a whole member lost: ttl 20 s; etcd away 15 s) carry the ``ha_long``
marker; CI runs them (``-m "not ha_long"`` leaves them out locally).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy import text

import router.sqlalchemy
from router import AsyncRouter, NodeConfig, PoolConfig, RetryConfig, RouterConfig
from router.testing import PatroniCluster
from tests.faults._load import Load, Op, Workload, check_ledger, create_tables

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.patroni, pytest.mark.asyncio]

DB = "ha_load"
WORKLOAD = Workload()
WARM, AFTER = 1.0, 1.0
#: Everything serving again (a new leader known, every member admitted) within this long.
RECOVERY = 30.0
REPORT_ENV = "ROUTER_RELIABILITY_REPORT"
#: Write errors an application may see while no primary exists or the old one goes away:
#: the router's own, and the driver's documented connection errors.
WRITE_ERRORS_ALLOWED = frozenset(
    {
        "PrimaryUnavailable",
        "TopologyError",
        "ConnectionDoesNotExistError",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "CannotConnectNowError",
        "AdminShutdownError",
        "ReadOnlySQLTransactionError",
        "TimeoutError",
        "PoolTimeout",
    }
)
#: Never: the driver's internals.
DRIVER_INTERNAL = frozenset({"InternalClientError", "InterfaceError"})


def _config(cluster: PatroniCluster, app: str, discovery: str) -> RouterConfig:
    return RouterConfig(
        nodes=[NodeConfig(dsn=n.dsn_for(DB), name=n.name) for n in cluster.nodes],
        patroni_urls=cluster.rest_urls if discovery == "patroni" else (),
        application_name=app,
        monitor_interval=0.1,
        monitor_timeout=0.5,
        failures_to_down=2,
        probe_backoff_initial=0.1,
        probe_backoff_max=0.4,
        readmit_hold=0.3,
        max_lag_seconds=1.0,
        retry=RetryConfig(attempts=3, backoff_initial=0.01, backoff_max=0.05, jitter=0.01),
        pool=PoolConfig(min_size=2, max_size=16, acquire_timeout=2.0, connect_timeout=1.0),
    )


# -- Patroni's own timeline ------------------------------------------------------------------


class Watcher:
    """A thread recording, every 20 ms, which nodes say they are not in recovery, and every
    100 ms whom Patroni names leader."""

    def __init__(self, cluster: PatroniCluster) -> None:
        self.cluster = cluster
        self.writable: list[tuple[float, frozenset[str]]] = []
        #: Members that answered at all (in recovery or not).
        self.reachable: list[tuple[float, frozenset[str]]] = []
        #: Members whose last answer was "not in recovery" (a member that did not answer a
        #: sample, e.g. the watcher's own connection timing out under load, keeps its last
        #: answer): what the write check compares against.
        self.last_writable: list[tuple[float, frozenset[str]]] = []
        self._last: dict[str, bool] = {}
        self.leaders: list[tuple[float, str | None]] = []
        #: When each sample began: a loaded machine (or a member whose connection or REST
        #: API is slow to refuse) spaces them well beyond 20 ms, so checks bracket a moment
        #: by the samples around it rather than by a fixed margin.
        self.sampled: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ha-watcher", daemon=True)
        self._conns: dict[str, psycopg.Connection] = {}

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for conn in self._conns.values():
            conn.close()

    def _in_recovery(self, name: str) -> bool | None:
        conn = self._conns.get(name)
        try:
            if conn is None or conn.closed:
                node = self.cluster.node(name)
                conn = self._conns[name] = psycopg.connect(
                    node.dsn, autocommit=True, connect_timeout=1
                )
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return None if row is None else bool(row[0])
        except psycopg.Error:
            self._conns.pop(name, None)
            return None

    def _run(self) -> None:
        last_rest = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            self.sampled.append(now)
            answers = {m.name: self._in_recovery(m.name) for m in self.cluster.members}
            writable = frozenset(name for name, rec in answers.items() if rec is False)
            if not self.writable or self.writable[-1][1] != writable:
                self.writable.append((now, writable))
            self._last.update({name: rec for name, rec in answers.items() if rec is not None})
            last = frozenset(name for name, rec in self._last.items() if rec is False)
            if not self.last_writable or self.last_writable[-1][1] != last:
                self.last_writable.append((now, last))
            reachable = frozenset(name for name, rec in answers.items() if rec is not None)
            if not self.reachable or self.reachable[-1][1] != reachable:
                self.reachable.append((now, reachable))
            if now - last_rest >= 0.1:
                last_rest = now
                leader = None
                try:
                    for m in self.cluster.cluster_state(timeout=0.5).get("members", []):
                        if m.get("role") == "leader":
                            leader = str(m["name"])
                except Exception:  # Patroni's API away with etcd: no leader known
                    leader = None
                if not self.leaders or self.leaders[-1][1] != leader:
                    self.leaders.append((time.monotonic(), leader))
            self._stop.wait(0.02)

    def writable_at(self, at: float) -> frozenset[str]:
        found: frozenset[str] = frozenset()
        for t, names in self.writable:
            if t > at:
                break
            found = names
        return found

    def writable_during(self, start: float, end: float) -> set[str]:
        """The members that last said "not in recovery" at some point between *start* and
        *end*, widened to the watcher's samples on either side (the last one begun at or
        before *start*, the first begun at or after *end*): between two samples the watcher
        knows nothing, and an unanswered sample keeps a member's last answer."""
        i = bisect.bisect_right(self.sampled, start)
        start = self.sampled[i - 1] if i else start
        j = bisect.bisect_left(self.sampled, end)
        end = self.sampled[j] if j < len(self.sampled) else end
        names: set[str] = set()
        for t, now in self.last_writable:
            if t > start:
                break
            names = set(now)
        for t, now in self.last_writable:
            if start <= t <= end:
                names |= now
        return names

    def member_down_during(self, start: float, end: float) -> bool:
        """Whether some member did not answer at some point between *start* and *end*."""
        everyone = {m.name for m in self.cluster.members}
        seen = [n for t, n in self.reachable if t <= start][-1:]
        seen += [n for t, n in self.reachable if start < t <= end]
        return any(names != everyone for names in seen)

    def first_writable(self, name: str, after: float) -> float | None:
        for t, names in self.writable:
            if t >= after and name in names:
                return t
        return None

    def no_primary_windows(self, start: float, end: float) -> list[tuple[float, float]]:
        """When no node accepted writes, and when Patroni named no leader (a leader that
        lost the DCS is about to demote itself: refusing writes then is right)."""
        return self._no_writable(start, end) + self._no_leader(start, end)

    def _no_leader(self, start: float, end: float) -> list[tuple[float, float]]:
        windows = []
        for i, (t, leader) in enumerate(self.leaders):
            until = self.leaders[i + 1][0] if i + 1 < len(self.leaders) else end
            if leader is None and until >= start and t <= end:
                windows.append((t, until))
        return windows

    def _no_writable(self, start: float, end: float) -> list[tuple[float, float]]:
        windows: list[tuple[float, float]] = []
        opened: float | None = None
        points = [(start, self.writable_at(start))] + [
            (t, n) for t, n in self.writable if start < t <= end
        ]
        for t, names in points:
            if not names and opened is None:
                opened = t
            elif names and opened is not None:
                windows.append((opened, t))
                opened = None
        if opened is not None:
            windows.append((opened, end))
        return windows


# -- scenarios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    act: Callable[[PatroniCluster], Any]
    config: dict[str, Any] = field(default_factory=dict)
    discovery: str = "patroni"
    #: A new member leads afterwards (else the same one, after a restart or the DCS's return).
    moves: bool = True
    #: Seconds the fault lasts before it is undone (``undo``).
    window: float = 0.0
    undo: Callable[[PatroniCluster], Any] | None = None
    #: Acknowledged writes may be lost (asynchronous replication and a crashed leader).
    may_lose: bool = False
    long: bool = False


def _kill_leader_postgres(c: PatroniCluster) -> None:
    c.kill_postgres(c.leader())


_killed: list[str] = []


def _kill_leader_member(c: PatroniCluster) -> None:
    leader = c.leader().name
    _killed.append(leader)
    c.kill_member(leader)


def _start_after_failover(c: PatroniCluster) -> None:
    # Back before the leader key expires, the member would simply lead again.
    c.wait_leader(60, other_than=_killed.pop())
    for m in c.members:
        c.start_member(m)


SCENARIOS = {
    s.name: s
    for s in [
        Scenario("switchover", "planned switchover (POST /switchover)", lambda c: c.switchover()),
        Scenario(
            "switchover-sql",
            "planned switchover, SQL discovery only",
            lambda c: c.switchover(),
            discovery="sql",
        ),
        Scenario(
            "crash-failover",
            "leader's postmaster SIGKILLed, primary_start_timeout 0 (fails over; the old"
            " leader rejoins through pg_rewind)",
            _kill_leader_postgres,
            {"primary_start_timeout": 0},
            may_lose=True,
        ),
        Scenario(
            "crash-failover-sql",
            "as crash-failover, SQL discovery only",
            _kill_leader_postgres,
            {"primary_start_timeout": 0},
            discovery="sql",
            may_lose=True,
        ),
        Scenario(
            "crash-restart",
            "leader's postmaster SIGKILLed, primary_start_timeout 300 (restarted in place)",
            _kill_leader_postgres,
            moves=False,
        ),
        Scenario(
            "sync-crash-failover",
            "synchronous_mode on, leader's postmaster SIGKILLed (primary_start_timeout 0)",
            _kill_leader_postgres,
            {"primary_start_timeout": 0, "synchronous_mode": True},
        ),
        Scenario(
            "member-lost",
            "whole leader member SIGKILLed (Patroni and postgres): ttl 20 s; restarted after",
            _kill_leader_member,
            undo=_start_after_failover,
            may_lose=True,
            long=True,
        ),
        Scenario(
            "etcd-stop",
            "etcd stopped 15 s, failsafe_mode off: the leader demotes itself",
            lambda c: c.stop_dcs(),
            moves=False,
            window=15.0,
            undo=lambda c: c.start_dcs(),
            long=True,
        ),
        Scenario(
            "etcd-stop-failsafe",
            "etcd stopped 15 s, failsafe_mode on: the leader keeps leading",
            lambda c: c.stop_dcs(),
            {"failsafe_mode": True},
            moves=False,
            window=15.0,
            undo=lambda c: c.start_dcs(),
            long=True,
        ),
    ]
}


@dataclass
class Run:
    scenario: Scenario
    load: Load
    watcher: Watcher
    times: dict[str, float]
    old_leader: str
    new_leader: str
    recovered: float | None
    lost: list[str]
    rewound: bool
    #: The router's reason for each member not serving when Patroni reported all healthy.
    lagging: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


def _serving_all(rt: AsyncRouter, leader: str, names: list[str]) -> bool:
    stats = rt.stats()
    if stats["primary"] != leader:
        return False
    nodes = stats["nodes"]
    return all(nodes[n]["health"] == "up" and nodes[n]["admitted"] for n in names if n != leader)


async def _wait(condition: Callable[[], Any], timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        await asyncio.sleep(0.01)
    return None


async def _run(cluster: PatroniCluster, scn: Scenario) -> Run:
    if scn.config:
        if "synchronous_mode" in scn.config:
            await asyncio.to_thread(cluster.set_synchronous, scn.config["synchronous_mode"])
        if "failsafe_mode" in scn.config:
            await asyncio.to_thread(cluster.set_failsafe, scn.config["failsafe_mode"])
        rest = {
            k: v for k, v in scn.config.items() if k not in ("synchronous_mode", "failsafe_mode")
        }
        if rest:
            await asyncio.to_thread(lambda: cluster.patch_config(**rest))
    leader = await asyncio.to_thread(cluster.leader)
    await create_tables(leader.dsn_for(DB), WORKLOAD)
    await asyncio.to_thread(cluster.wait_caught_up)
    app = f"ha-{scn.name}"[:60]
    ports = {n.port: n.name for n in cluster.nodes}
    names = [n.name for n in cluster.nodes]
    times: dict[str, float] = {}
    logs = {m.name: m.node.log_path.stat().st_size for m in cluster.members}
    with Watcher(cluster) as watcher:
        async with AsyncRouter(_config(cluster, app, scn.discovery)) as rt:
            assert await _wait(lambda: _serving_all(rt, leader.name, names), 15)
            async with Load(rt, WORKLOAD, ports) as load:
                load.phase = "before"
                await asyncio.sleep(WARM)
                load.phase = "fault"
                times["fault"] = time.monotonic()
                await asyncio.to_thread(scn.act, cluster)
                times["fault_done"] = time.monotonic()
                if scn.window:
                    await asyncio.sleep(scn.window)
                if scn.undo is not None:
                    await asyncio.to_thread(scn.undo, cluster)
                times["undo_done"] = time.monotonic()
                load.phase = "recovery"
                new = await asyncio.to_thread(
                    lambda: (
                        cluster.wait_leader(60, other_than=leader.name if scn.moves else None).name
                    )
                )
                times["leader_known"] = time.monotonic()
                await asyncio.to_thread(cluster.wait_healthy, 90)
                times["patroni_healthy"] = time.monotonic()
                seen = rt.stats()["nodes"]
                lagging = {
                    n: s["reason"] for n, s in seen.items() if not _serving_all(rt, new, [n])
                }
                recovered = await _wait(lambda: _serving_all(rt, new, names), RECOVERY)
                load.phase = "after"
                await asyncio.sleep(AFTER)
            times["load_end"] = time.monotonic()
            await load.settle(10)
    new_leader = cluster.node(new)
    rewound = any("pg_rewind" in _read_from(m.node.log_path, logs[m.name]) for m in cluster.members)
    return Run(
        scn,
        load,
        watcher,
        times,
        leader.name,
        new,
        recovered,
        await check_ledger(new_leader.dsn_for(DB), load.ledger),
        rewound,
        lagging,
    )


def _read_from(path: Any, offset: int) -> str:
    with open(path, errors="replace") as f:
        f.seek(offset)
        return f.read()


# -- figures ---------------------------------------------------------------------------------


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _figures(run: Run) -> dict[str, Any]:
    scn, t, load, w = run.scenario, run.times, run.load, run.watcher
    ops = load.ops
    writes = [op for op in ops if not op.read]
    fault = t["fault"]
    promoted = w.first_writable(run.new_leader, fault) if scn.moves else None
    if not scn.moves:
        # The same leader: when it took writes again after being unwritable.
        gone = next((tt for tt, names in w.writable if tt >= fault and not names), None)
        promoted = w.first_writable(run.new_leader, gone) if gone is not None else None
    router_primary = load.first_change(
        promoted if promoted is not None else fault,
        lambda c: c.node == "" and c.primary == run.new_leader,
    )
    if router_primary is None and promoted is not None:
        before = [c for c in load.changes if c.node == "" and c.at <= promoted]
        if before and before[-1].primary == run.new_leader:
            router_primary = promoted
    first_ack = min(
        (
            end
            for start, end, node in load.ledger.writers
            if node == run.new_leader and promoted is not None and end >= promoted
        ),
        default=None,
    )
    failed = [op for op in writes if op.error and op.started >= fault - 0.5]
    outage = None
    if failed:
        last = max(op.started for op in failed)
        resumed = [op.ended for op in writes if not op.error and op.started > last]
        if resumed:
            outage = min(resumed) - min(op.started for op in failed)
    rejoin_patroni = run.times["patroni_healthy"] - fault
    return {
        "scenario": scn.name,
        "what": scn.what,
        "discovery": scn.discovery,
        "ops": len(ops),
        "acknowledged_writes": len(load.ledger.writers),
        "errors": dict(Counter(op.error for op in ops if op.error)),
        "read_errors_outside_tx": sum(1 for op in ops if op.read and not op.in_tx and op.error),
        "write_errors": sum(1 for op in writes if op.error),
        "patroni_new_leader_writable_s": _r(promoted - fault if promoted else None),
        "router_primary_after_writable_s": _r(
            router_primary - promoted if router_primary and promoted else None
        ),
        "first_ack_after_writable_s": _r(first_ack - promoted if first_ack and promoted else None),
        "write_outage_s": _r(outage),
        "patroni_healthy_s": _r(rejoin_patroni),
        "router_serving_all_after_patroni_s": _r(
            run.recovered - t["patroni_healthy"] if run.recovered else None
        ),
        "rewound": run.rewound,
        "stale": len(load.stale),
        "misrouted": len(load.misrouted),
        "lost": len(run.lost),
        "hung": sum(op.hung for op in ops),
        "not_serving_when_patroni_healthy": run.lagging,
        "refusal_details": sorted(
            {op.detail[:160] for op in writes if op.error == "PrimaryUnavailable"}
        )[:3],
        "driver_internal": [
            (op.kind, op.detail[:100]) for op in ops if op.error in DRIVER_INTERNAL
        ],
    }


def _publish(figures: dict[str, Any]) -> None:
    print(f"\n[reliability-ha] {json.dumps(figures)}")
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({**figures, "cores": os.cpu_count()}) + "\n")


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ha_db(patroni_cluster: PatroniCluster) -> PatroniCluster:
    leader = patroni_cluster.leader()
    with leader.connect() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.execute(f"CREATE DATABASE {DB}")
    patroni_cluster.wait_caught_up()
    return patroni_cluster


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Run | BaseException]]:
    kept: dict[str, Run | BaseException] = {}
    yield kept
    kept.clear()


@pytest_asyncio.fixture
async def run(
    request: pytest.FixtureRequest,
    ha_db: PatroniCluster,
    patroni_cluster: PatroniCluster,
    runs: dict[str, Run | BaseException],
) -> Run:
    name: str = request.param
    if name not in runs:
        try:
            result = await _run(ha_db, SCENARIOS[name])
            result.figures = _figures(result)
            _publish(result.figures)
            runs[name] = result
        except BaseException as exc:
            runs[name] = exc
            raise
    found = runs[name]
    if isinstance(found, BaseException):
        pytest.fail(f"the {name} scenario's run failed: {found!r}")
    return found


def _params() -> list[Any]:
    return [
        pytest.param(s.name, marks=[pytest.mark.ha_long] if s.long else [], id=s.name)
        for s in SCENARIOS.values()
    ]


scenario = pytest.mark.parametrize("run", _params(), indirect=True)


# -- the invariants --------------------------------------------------------------------------


@scenario
async def test_no_write_on_a_node_that_was_not_primary(run: Run) -> None:
    """Every acknowledged write ran on a node that said it was not in recovery around then
    (the watcher's samples, 20 ms apart when the machine keeps up, from the one before the
    write began to the one after it ended, widened by 50 ms)."""
    wrong = [
        (round(start, 3), node)
        for start, end, node in run.load.ledger.writers
        if node not in run.watcher.writable_during(start - 0.05, end + 0.05)
    ]
    assert not wrong, wrong[:10]
    assert not run.load.misrouted, run.load.misrouted[:10]


def _during(op: Op, windows: list[tuple[float, float]]) -> bool:
    """Whether *op* was under way at some moment of a window with no primary (widened by the
    router's reaction time): an op begun just before the primary went away fails inside it."""
    ended = op.ended or op.started
    return any(op.started <= b + 1.0 and ended >= a - 0.1 for a, b in windows)


#: A read's connection failing on every node it tried (the driver's documented errors).
READ_CONNECTION_ERRORS = frozenset(
    {"ConnectionDoesNotExistError", "ConnectionResetError", "ConnectionRefusedError"}
)


@scenario
async def test_no_failed_read_outside_transactions(run: Run) -> None:
    """A read outside a transaction fails only while no node accepts writes (widened by the
    router's reaction time), and then only with PrimaryUnavailable (its floor was past every
    replica: the position read after a commit is the primary's insert position, which may
    never reach a replica when the primary dies, and no primary was there to read it on), or
    with a connection error when, besides, a member was seen down around it (its retries ran
    out on nodes that were going away). Replicas stay up in every scenario but one way: a
    leader that demotes itself (failsafe mode under load: see issue 17's notes) restarts
    postgres, and Patroni restarts its replicas' postgres to follow. Counted in the figures."""
    windows = run.watcher.no_primary_windows(run.times["fault"] - 1, run.times["load_end"])

    def allowed(op: Op) -> bool:
        if not _during(op, windows):
            return False
        if op.error == "PrimaryUnavailable":
            return True
        return op.error in READ_CONNECTION_ERRORS and run.watcher.member_down_during(
            op.started - 1.0, op.ended + 0.1
        )

    wrong = [
        (op.kind, op.phase, op.error, round(op.started - run.times["fault"], 3), op.detail[:120])
        for op in run.load.ops
        if op.read and not op.in_tx and op.error and not allowed(op)
    ]
    assert not wrong, (wrong[:10], windows)


#: Scenarios whose stale-read invariant is known broken, with why: an expected failure of exactly
#: that pair, never a loosened assertion. Empty. History: crash-restart and member-lost read
#: stale after the issue 12 merge because a session opened after a commit whose position could
#: not be read did not inherit the loss (fixed in router._scope.Scope.session); member-lost
#: then read stale on the *old leader* once it came back as a standby: it replayed its own WAL
#: past the point where the new leader's timeline forked, so its replay position was above
#: commits it did not have (positions on two timelines do not compare). Replicas off the
#: primary's timeline are now left out of every read (router.core.Topology.off_timeline;
#: staged deterministically in tests/integration/test_*_faults.py).
KNOWN_STALE: dict[str, str] = {}


@scenario
async def test_no_stale_read_your_writes_read(run: Run, request: pytest.FixtureRequest) -> None:
    known = KNOWN_STALE.get(run.scenario.name)
    if known is not None:
        request.applymarker(pytest.mark.xfail(strict=False, reason=known))
    stale = run.load.stale
    if run.scenario.may_lose and run.lost:
        # A stale read of a write the failover lost (async replication) is that loss, said
        # in full; any other stale read is a read sent too far behind, loss or not.
        lost = run.load.ledger.lost
        excused = {what for what, write, _ in run.load.stale_reads if write in lost}
        behind = [what for what in stale if what not in excused]
        assert not behind, behind[:10]
        pytest.skip(
            f"{len(run.lost)} acknowledged writes lost by async replication: {run.lost[:5]};"
            f" {len(stale)} stale reads, each of a lost write: {stale[:5]}"
        )
    assert not stale, stale[:10]


@scenario
async def test_acknowledged_writes_kept(run: Run) -> None:
    """Nothing acknowledged is lost, except where asynchronous replication loses it (a crashed
    leader; counted in the figures)."""
    if run.scenario.may_lose:
        return
    assert not run.lost, run.lost


@scenario
async def test_write_errors_are_router_or_connection_errors(run: Run) -> None:
    """No driver-internal error class reaches the application; PrimaryUnavailable only while
    no node accepted writes (widened by the monitor's reaction time)."""
    kinds = Counter(op.error for op in run.load.ops if op.error and not op.read)
    assert not (set(kinds) & DRIVER_INTERNAL), kinds
    assert set(kinds) <= WRITE_ERRORS_ALLOWED, kinds
    windows = run.watcher.no_primary_windows(run.times["fault"] - 1, run.times["load_end"])
    early = [
        round(op.started - run.times["fault"], 3)
        for op in run.load.ops
        if op.error == "PrimaryUnavailable" and not _during(op, windows)
    ]
    assert not early, (early[:10], windows)


@scenario
async def test_router_uses_the_new_leader_promptly(run: Run) -> None:
    """The router takes the new (or restarted) leader as its primary within 0.5 s of it
    accepting writes (goal; the bound here is 1 s for a loaded 2-core machine), and every
    member serves again within 2 s of Patroni reporting the cluster healthy."""
    lag = run.figures["router_primary_after_writable_s"]
    if run.scenario.name.startswith("etcd-stop-failsafe"):
        return  # nothing moves
    assert lag is not None, run.figures
    assert lag <= 1.0, run.figures
    serving = run.figures["router_serving_all_after_patroni_s"]
    assert serving is not None, run.figures
    assert serving <= 2.0, run.figures


# -- tokens across a failover that lost WAL ----------------------------------------------------


async def test_a_token_past_a_lost_position_reads_the_primary_then_resets(
    ha_db: PatroniCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Asynchronous replication: the leader's WAL senders are held, it acknowledges writes
    its replicas never receive, and dies. Patroni fails over (primary_start_timeout 0) to a
    replica without them. A session carrying the token of those writes neither waits forever
    nor reads silently: it reads on the primary, its floor is reset to the new primary's
    position, ``position-lost`` is counted, and a WARNING names the lost range."""
    cluster = ha_db
    await asyncio.to_thread(lambda: cluster.patch_config(primary_start_timeout=0))
    leader = await asyncio.to_thread(cluster.leader)
    config = _config(cluster, "ha-token", "patroni").replace(ryw_wait=0.5)
    # The SQLAlchemy factories too: they decide their reads themselves (no read after which
    # to settle the floor), and read on the primary until it had written past the lost WAL.
    sa = router.sqlalchemy.async_sessionmaker(config.replace(application_name="ha-token-sa"))
    async with AsyncRouter(config) as rt:
        await sa.router.open()
        await rt.execute(
            "DROP TABLE IF EXISTS tl; CREATE TABLE tl (id int PRIMARY KEY, pad text)"
            "; ALTER TABLE tl ALTER pad SET STORAGE EXTERNAL"
        )
        await rt.execute("INSERT INTO tl VALUES (0, '')")
        await asyncio.to_thread(cluster.wait_caught_up)
        await asyncio.to_thread(cluster.hold_wal_sending)
        async with rt.session() as s:
            # ~2 MB of WAL the replicas never get: past anything the new leader writes soon.
            for i in range(1, 21):
                await s.execute("INSERT INTO tl VALUES ($1, repeat('x', 100000))", i)
            token = s.token()
        assert token is not None
        await asyncio.to_thread(cluster.kill_postgres, leader)
        new = await asyncio.to_thread(lambda: cluster.wait_leader(60, other_than=leader.name))
        assert await _wait(lambda: rt.stats()["primary"] == new.name, 10)
        caplog.clear()
        started = time.monotonic()
        async with rt.session(after=token) as s:
            count = await s.fetchval("SELECT count(*) FROM tl")
            first = rt.last_decision
            again = await s.fetchval("SELECT count(*) FROM tl")
        took = time.monotonic() - started
        lost = 21 - count
        print(f"\n[reliability-ha] token-after-loss: lost {lost} of 20 acknowledged inserts")
        assert first is not None
        assert first.node == new.name, first
        assert count == again
        assert took < 3.0, took
        assert rt.stats()["decisions"][new.name].get("position-lost", 0) >= 1
        warnings = [r for r in caplog.records if "lost in a failover" in r.getMessage()]
        assert warnings
        assert warnings[0].levelno == logging.WARNING
        assert await _wait(lambda: sa.router.stats()["primary"] == new.name, 10)
        caplog.clear()
        try:
            async with sa(after=token) as session:
                sa_count = (await session.execute(text("SELECT count(*) FROM tl"))).scalar()
            async with sa(after=token) as session:
                sa_again = (await session.execute(text("SELECT count(*) FROM tl"))).scalar()
            sa_stats = sa.router.stats()
        finally:
            await sa.aclose()
        assert sa_count == sa_again == count
        assert sa_stats["decisions"][new.name].get("position-lost", 0) >= 1, sa_stats
        assert any("lost in a failover" in r.getMessage() for r in caplog.records)
        # Async replication lost them: the count is what the test is about, not a bug.
        assert lost > 0, "the held WAL senders should have kept the inserts from the replicas"


async def test_synchronous_mode_loses_no_acknowledged_write(ha_db: PatroniCluster) -> None:
    """The same fault with synchronous_mode on: the commit is not acknowledged while the sync
    standby cannot confirm it, so the failover loses nothing acknowledged."""
    cluster = ha_db
    await asyncio.to_thread(cluster.set_synchronous, True)
    await asyncio.to_thread(lambda: cluster.patch_config(primary_start_timeout=0))
    leader = await asyncio.to_thread(cluster.leader)
    async with AsyncRouter(_config(cluster, "ha-sync", "patroni")) as rt:
        await rt.execute("DROP TABLE IF EXISTS ts; CREATE TABLE ts (id int PRIMARY KEY)")
        await asyncio.to_thread(cluster.wait_caught_up)
        await asyncio.to_thread(cluster.hold_wal_sending)
        acked = []
        for i in range(5):
            try:
                await rt.execute("INSERT INTO ts VALUES ($1)", i, timeout=0.5)
                acked.append(i)
            except Exception:  # not acknowledged: the sync standby has not confirmed it
                pass
        await asyncio.to_thread(cluster.kill_postgres, leader)
        new = await asyncio.to_thread(lambda: cluster.wait_leader(60, other_than=leader.name))
        with new.connect(DB) as conn:
            rows = {r[0] for r in conn.execute("SELECT id FROM ts").fetchall()}
        assert set(acked) <= rows
        assert not acked, "a commit was acknowledged without the sync standby"
