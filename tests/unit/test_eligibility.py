"""Eligibility: consistency levels, session floors, per-call staleness, and the reasons."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core._eligibility import Cause, Consistency, Eligibility, Staleness, eligible
from router.core._lsn import Lsn
from router.core._nodes import FailureKind, Health, NodeHealth, Role
from router.core._topology import Topology

MiB = 1024 * 1024
BASE = Lsn(0x7_0000_0000)


def node(
    name: str,
    *,
    role: Role = Role.REPLICA,
    up: bool = True,
    admitted: bool = True,
    behind: int = 0,
    seconds: float | None = 0.0,
    reason: str = "",
) -> NodeHealth:
    return NodeHealth(
        name=name,
        role=role,
        health=Health.UP if up else Health.DOWN,
        admitted=admitted and role is Role.REPLICA,
        lag_bytes=behind if up else None,
        lag_seconds=seconds if up else None,
        replay_lsn=Lsn(BASE - behind) if role is Role.REPLICA else None,
        reason=reason or ("replica" if role is Role.REPLICA else str(role)),
    )


def topology(*nodes: NodeHealth) -> Topology:
    return Topology((node("p", role=Role.PRIMARY), *nodes))


CLUSTER = topology(
    node("r1"),
    node("r2", behind=4096, seconds=0.5),
    node("r3", admitted=False, behind=40 * MiB, seconds=30.0, reason="lag 40 MiB > 16 MiB budget"),
    node("r4", up=False, reason="down: 2 consecutive timeouts"),
    node("r5", role=Role.UNKNOWN),
)


def names(result: Eligibility) -> tuple[str, ...]:
    return result.replicas


def causes(result: Eligibility) -> dict[str, Cause]:
    return {e.name: e.cause for e in result.excluded}


@pytest.mark.parametrize(
    ("consistency", "floor", "staleness", "expected"),
    [
        (Consistency.STRONG, None, None, ()),
        (Consistency.READ_YOUR_WRITES, None, None, ("r1", "r2")),
        (Consistency.READ_YOUR_WRITES, BASE, None, ("r1",)),
        (Consistency.READ_YOUR_WRITES, Lsn(BASE - 4096), None, ("r1", "r2")),
        (Consistency.READ_YOUR_WRITES, Lsn(BASE + 1), None, ()),
        (Consistency.BOUNDED, None, None, ("r1", "r2")),
        (Consistency.BOUNDED, None, Staleness(max_bytes=1024), ("r1",)),
        (Consistency.BOUNDED, None, Staleness(max_seconds=60.0), ("r1", "r2", "r3")),
        (Consistency.BOUNDED, None, Staleness(max_bytes=64 * MiB, max_seconds=10), ("r1", "r2")),
        (Consistency.BOUNDED, BASE, Staleness(max_seconds=60.0), ("r1",)),
        (Consistency.EVENTUAL, None, None, ("r1", "r2", "r3")),
        (Consistency.EVENTUAL, Lsn(BASE - 4096), None, ("r1", "r2")),
        (Consistency.EVENTUAL, None, Staleness(max_seconds=1.0), ("r1", "r2")),
    ],
)
def test_levels(
    consistency: Consistency, floor: Lsn | None, staleness: Staleness | None, expected: tuple[str]
) -> None:
    result = eligible(CLUSTER, consistency, floor=floor, max_staleness=staleness)
    assert names(result) == expected
    assert bool(result) == bool(expected)
    if consistency is not Consistency.STRONG:
        listed = set(result.replicas) | {e.name for e in result.excluded}
        assert listed == {"r1", "r2", "r3", "r4", "r5"}  # every non-primary node, once


def test_causes_and_reasons() -> None:
    result = eligible(CLUSTER, Consistency.READ_YOUR_WRITES, floor=Lsn(BASE + 16))
    assert causes(result) == {
        "r1": Cause.FLOOR,
        "r2": Cause.FLOOR,
        "r3": Cause.LAG_GATE,
        "r4": Cause.DOWN,
        "r5": Cause.ROLE,
    }
    reasons = {e.name: e.reason for e in result.excluded}
    assert reasons == {
        "r1": "replayed 7/0, session needs 7/10",
        "r2": "replayed 6/FFFFF000, session needs 7/10",
        "r3": "lag 40 MiB > 16 MiB budget",
        "r4": "down: 2 consecutive timeouts",
        "r5": "role unknown",
    }
    assert result.behind_floor == ("r1", "r2")
    assert result.reason.startswith("no eligible replica (r1: replayed 7/0, session needs 7/10;")
    assert "r4: down: 2 consecutive timeouts" in result.reason


def test_staleness_reasons() -> None:
    unknown = node("r6", seconds=None)
    result = eligible(
        topology(*CLUSTER.nodes[1:], unknown),
        Consistency.BOUNDED,
        max_staleness=Staleness(max_bytes=1024, max_seconds=0.2),
    )
    reasons = {e.name: e.reason for e in result.excluded if e.cause is Cause.STALENESS}
    assert reasons == {
        "r2": "lag 4 KiB > 1 KiB max staleness",
        "r3": "lag 40 MiB > 1 KiB max staleness",
        "r6": "time lag unknown",
    }
    bytes_unknown = NodeHealth(name="r7", role=Role.REPLICA, health=Health.UP)
    result = eligible(
        topology(bytes_unknown), Consistency.EVENTUAL, max_staleness=Staleness(max_bytes=1)
    )
    assert result.excluded[0].reason == "byte lag unknown"
    slow = node("r8", seconds=3.0)
    result = eligible(topology(slow), Consistency.EVENTUAL, max_staleness=Staleness(max_seconds=1))
    assert result.excluded[0].reason == "lag 3 s > 1 s max staleness"


def test_replica_with_no_replay_position_is_behind_any_floor() -> None:
    blank = NodeHealth(name="r1", role=Role.REPLICA, health=Health.UP, admitted=True)
    assert eligible(topology(blank), Consistency.READ_YOUR_WRITES).replicas == ("r1",)
    result = eligible(topology(blank), Consistency.READ_YOUR_WRITES, floor=Lsn(0))
    assert result.excluded[0].reason == "replayed nothing, session needs 0/0"


def test_reasons_when_nothing_qualifies() -> None:
    assert eligible(CLUSTER, Consistency.STRONG).reason == "consistency strong: primary only"
    assert eligible(topology(), Consistency.EVENTUAL).reason == "no replica known"
    assert eligible(CLUSTER, Consistency.EVENTUAL).reason == ""


def test_staleness_validation() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        Staleness(max_bytes=-1)
    with pytest.raises(ValueError, match="max_seconds"):
        Staleness(max_seconds=float("nan"))


healths = st.builds(
    NodeHealth,
    name=st.sampled_from(["a", "b", "c", "d"]),
    role=st.sampled_from(Role),
    health=st.sampled_from(Health),
    admitted=st.booleans(),
    lag_bytes=st.none() | st.integers(min_value=0, max_value=2**40),
    lag_seconds=st.none() | st.floats(min_value=0, max_value=1e4),
    replay_lsn=st.none() | st.integers(min_value=0, max_value=2**40).map(Lsn),
)


@given(
    st.lists(healths, max_size=4, unique_by=lambda h: h.name),
    st.sampled_from(Consistency),
    st.none() | st.integers(min_value=0, max_value=2**40).map(Lsn),
    st.none() | st.builds(Staleness, max_bytes=st.none() | st.integers(0, 2**40)),
)
def test_eligible_replicas_satisfy_every_rule(
    nodes: list[NodeHealth],
    consistency: Consistency,
    floor: Lsn | None,
    staleness: Staleness | None,
) -> None:
    topo = Topology(tuple(nodes))
    result = eligible(topo, consistency, floor=floor, max_staleness=staleness)
    for name in result.replicas:
        n = topo.node(name)
        assert n.up
        assert n.role is Role.REPLICA
        if floor is not None:
            assert n.replay_lsn is not None
            assert n.replay_lsn >= floor
        if staleness is not None:
            assert staleness.admits(n)
        elif consistency in (Consistency.READ_YOUR_WRITES, Consistency.BOUNDED):
            assert n.admitted
    for e in result.excluded:
        assert e.reason  # every exclusion explains itself
    # A floor only ever removes replicas.
    without = eligible(topo, consistency, max_staleness=staleness)
    assert set(result.replicas) <= set(without.replicas)
    assert set(result.replicas) | set(result.behind_floor) == set(without.replicas)


def test_common_reads_reuse_one_answer_per_topology() -> None:
    first = eligible(CLUSTER, Consistency.READ_YOUR_WRITES)
    assert first.min_replay == Lsn(BASE - 4096)
    assert eligible(CLUSTER, Consistency.READ_YOUR_WRITES) is first
    assert eligible(CLUSTER, Consistency.READ_YOUR_WRITES, floor=Lsn(BASE - 4096)) is first
    behind = eligible(CLUSTER, Consistency.READ_YOUR_WRITES, floor=Lsn(BASE - 4095))
    assert behind is not first
    assert behind.replicas == ("r1",)
    assert behind.min_replay == BASE
    assert eligible(CLUSTER, Consistency.EVENTUAL) is not first
    staleness = Staleness(max_seconds=60.0)
    once = eligible(CLUSTER, Consistency.BOUNDED, max_staleness=staleness)
    assert eligible(CLUSTER, Consistency.BOUNDED, max_staleness=staleness) == once
    # A new topology value starts afresh.
    moved = CLUSTER.replace(node("r2", admitted=False, reason="lag 17 MiB > 16 MiB budget"))
    assert eligible(moved, Consistency.READ_YOUR_WRITES).replicas == ("r1",)
    assert eligible(CLUSTER, Consistency.READ_YOUR_WRITES) is first


def test_no_fast_path_past_a_replica_without_replay_position() -> None:
    blank = NodeHealth(name="r9", role=Role.REPLICA, health=Health.UP, admitted=True)
    topo = topology(node("r1"), blank)
    base = eligible(topo, Consistency.READ_YOUR_WRITES)
    assert base.replicas == ("r1", "r9")
    assert base.min_replay is None
    assert eligible(topo, Consistency.READ_YOUR_WRITES, floor=Lsn(0)).replicas == ("r1",)


@pytest.mark.parametrize("consistency", [Consistency.EVENTUAL, Consistency.BOUNDED])
def test_a_suspect_replica_is_out_at_every_level(consistency: Consistency) -> None:
    """A broken pooled connection makes a replica suspect until its check decides; behind a
    pooler that check can take the pooler's query_wait_timeout, and reads sent there meanwhile
    fail: the levels that ignore the lag gate leave it out too."""
    broken = replace(
        node("r1", admitted=False, reason="suspect: broken connection, checking (1/2 to down)"),
        failures=1,
        last_failure=FailureKind.BROKEN_CONNECTION,
    )
    staleness = Staleness(max_seconds=60.0) if consistency is Consistency.BOUNDED else None
    result = eligible(topology(broken, node("r2")), consistency, max_staleness=staleness)
    assert names(result) == ("r2",)
    assert causes(result) == {"r1": Cause.DOWN}
