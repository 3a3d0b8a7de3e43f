"""The routing engine's precomputed read path decides exactly as its general path.

``RoutingEngine.read_decision`` takes a short path for the everyday read (a replica eligible,
nothing excluded, no ``primary_read_weight``). Two engines with the same seed and policy, one
of them with the short path switched off, must make the same decisions, in the same order
(the policies' own state and the random draws included), across topologies and scopes.
"""

from __future__ import annotations

from random import Random
from typing import Any

import pytest

import router
from router._engine import RoutingEngine
from router._scope import Scope
from router._stats import NodeStats
from router.config import PolicyLiteral
from router.core import (
    CheckFailure,
    Decision,
    FailureKind,
    GateParams,
    Lsn,
    NodeStatus,
    Topology,
    tick,
)
from router.errors import RouterError

PARAMS = GateParams(max_lag_bytes=1000, max_lag_seconds=None)
NAMES = ["p", "r1", "r2"]


def _topology(r1: int, r2: int, primary: int = 4500, down: str | None = None) -> Topology:
    seen: dict[str, Any] = {
        "p": NodeStatus(in_recovery=False, wal_lsn=Lsn(primary)),
        "r1": NodeStatus(in_recovery=True, replay_lsn=Lsn(r1)),
        "r2": NodeStatus(in_recovery=True, replay_lsn=Lsn(r2)),
    }
    t = tick(Topology.initial(NAMES), seen, 0.0, PARAMS)
    if down is not None:
        t = tick(t, {down: CheckFailure(FailureKind.BROKEN_CONNECTION)}, 1.0, PARAMS)
    return t


class _Monitor:
    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def learn_replay(self, name: str, lsn: Lsn) -> None:
        pass

    def report_failure(self, name: str, kind: FailureKind, detail: str = "") -> None:
        pass

    def request_rediscovery(self, suspect: str | None = None) -> None:
        pass


# The short path is taken only when nothing is excluded: excluding a node that does not exist
# switches it off without changing what the general path decides (an instance attribute
# patched over the method would not do when the engine is compiled: tools/build_mypyc.py).
_OFF = ("no-such-node",)


def _engine(policy: PolicyLiteral, topology: Topology, **config: Any) -> RoutingEngine:
    cfg = router.RouterConfig(
        primary=router.NodeConfig(dsn="postgresql://app@p.invalid/app", name="p"),
        replicas=[
            router.NodeConfig(dsn="postgresql://app@r1.invalid/app", name="r1"),
            router.NodeConfig(dsn="postgresql://app@r2.invalid/app", name="r2", weight=2),
        ],
        policy=policy,
        **config,
    )
    stats = {n: NodeStats(n, weight=2.0 if n == "r2" else 1.0) for n in NAMES}
    return RoutingEngine(cfg, _Monitor(topology), stats, rng=Random(7))


def _decisions(
    engine: RoutingEngine, scopes: list[Scope], n: int = 40, *, quick: bool = True
) -> list[object]:
    out: list[object] = []
    for i in range(n):
        scope = scopes[i % len(scopes)]
        try:
            d: Decision | str = engine.read_decision(scope, () if quick else _OFF)
        except RouterError as exc:
            d = f"{type(exc).__name__}: {exc}"
        out.append(d)
        # Load moves between calls, as it does under way (least-outstanding, latency).
        if isinstance(d, Decision) and d.node is not None and i % 3 == 0:
            engine._stats[d.node].in_flight.append(None)
            engine._stats[d.node].latency.update(0.001 * (i % 5 + 1))
    return out


def _off_timeline() -> Topology:
    """r2 streams an older timeline than the primary's (another history): out at every level."""
    seen: dict[str, Any] = {
        "p": NodeStatus(in_recovery=False, wal_lsn=Lsn(4500), timeline=2),
        "r1": NodeStatus(in_recovery=True, replay_lsn=Lsn(4400), timeline=2, sees_receiver=True),
        "r2": NodeStatus(in_recovery=True, replay_lsn=Lsn(4400), timeline=1, sees_receiver=True),
    }
    return tick(Topology.initial(NAMES), seen, 0.0, PARAMS)


TOPOLOGIES = {
    "both-caught-up": _topology(4400, 4400),
    "r2-behind": _topology(4400, 3600),
    "r2-down": _topology(4400, 4400, down="r2"),
    "r1-past-the-lag-gate": _topology(1000, 4400),
    "primary-down": _topology(4400, 4400, down="p"),
    "r2-off-timeline": _off_timeline(),
}


@pytest.mark.parametrize("policy", ["round-robin", "random", "least-outstanding", "latency"])
@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
@pytest.mark.parametrize("floor", [None, 500, 4000, 4450])
def test_the_short_path_decides_as_the_general_one(
    policy: PolicyLiteral, name: str, floor: int | None
) -> None:
    topology = TOPOLOGIES[name]
    results = []
    for quick in (True, False):
        engine = _engine(policy, topology)
        own = engine.scope
        own.floor = None if floor is None else Lsn(floor)
        session = engine.new_scope()
        sticky = engine.new_scope()
        sticky.sticky = "r2"  # a session that last read on r2
        eventual = engine.new_scope("eventual")
        strong = engine.new_scope("strong")
        results.append(_decisions(engine, [own, session, sticky, eventual, strong], quick=quick))
    assert results[0] == results[1]
    assert any(isinstance(d, Decision) and not d.primary for d in results[0])


def test_primary_read_weight_takes_the_general_path() -> None:
    topology = _topology(4400, 4400)
    results = []
    for quick in (True, False):
        engine = _engine("random", topology, primary_read_weight=1.0)
        results.append(_decisions(engine, [engine.scope], n=60, quick=quick))
    assert results[0] == results[1]
    assert any(isinstance(d, Decision) and d.primary for d in results[0])


def test_a_new_topology_renews_the_candidates() -> None:
    engine = _engine("round-robin", _topology(4400, 4400))
    seen = {engine.read_decision(engine.scope).node for _ in range(4)}
    assert seen == {"r1", "r2"}
    engine._monitor.topology = _topology(4400, 4400, down="r1")  # type: ignore[misc]
    seen = {engine.read_decision(engine.scope).node for _ in range(4)}
    assert seen == {"r2"}


def test_an_exclusion_eligibility_makes_holds_on_the_short_path() -> None:
    # Whatever eligible() leaves out (here a replica on another history) the short path never
    # serves, not even as a session's sticky replica.
    engine = _engine("round-robin", _off_timeline())
    sticky = engine.new_scope()
    sticky.sticky = "r2"
    nodes = {engine.read_decision(s).node for s in (engine.scope, sticky) for _ in range(6)}
    assert nodes == {"r1"}


@pytest.mark.parametrize("policy", ["round-robin", "random", "least-outstanding"])
def test_the_plan_follows_every_new_topology(policy: PolicyLiteral) -> None:
    # One engine lives through a run of topologies (each a new value, as the monitor makes
    # them; some equal in content to an earlier one): its precomputed read must be made
    # again for each, exactly when eligible()'s memo (kept on the topology value) is.
    names = sorted(TOPOLOGIES)
    run = [TOPOLOGIES[n] for n in names] + [_topology(4400, 4400) for _ in range(2)]
    run += [_no_replica(), TOPOLOGIES["both-caught-up"], _no_replica()]
    run += [TOPOLOGIES[n] for n in reversed(names)]
    results = []
    for quick in (True, False):
        engine = _engine(policy, run[0])
        session = engine.new_scope()
        sticky = engine.new_scope()
        eventual = engine.new_scope("eventual")
        out: list[object] = []
        # One level at a time: a plan is made per level too (a change of level alone would
        # make it again).
        for scopes in ([engine.scope, session, sticky], [eventual]):
            for topology in run:
                engine._monitor.topology = topology  # type: ignore[misc]
                sticky.sticky = "r2"
                out.extend(_decisions(engine, scopes, 12, quick=quick))
        results.append(out)
    assert results[0] == results[1]
    assert {d.node for d in results[0] if isinstance(d, Decision)} >= {"r1", "r2"}


def _no_replica() -> Topology:
    """The primary alone: both replicas down."""
    t = _topology(4400, 4400, down="r1")
    return tick(t, {"r2": CheckFailure(FailureKind.BROKEN_CONNECTION)}, 2.0, PARAMS)


@pytest.mark.parametrize("policy", ["round-robin", "random", "least-outstanding", "latency"])
def test_no_replica_is_decided_by_the_general_path(policy: PolicyLiteral) -> None:
    # No plan is made of no replica: a policy is never asked to choose among none.
    results = []
    for quick in (True, False):
        engine = _engine(policy, _no_replica())
        results.append(_decisions(engine, [engine.scope, engine.new_scope()], 6, quick=quick))
    assert results[0] == results[1]
    assert all(isinstance(d, Decision) and d.node == "p" for d in results[0])
