"""``Topology`` and ``tick``: who is primary, split brain, no primary, rediscovery."""

from __future__ import annotations

import pytest

from router.core._health import GateParams
from router.core._lsn import Lsn
from router.core._nodes import CheckFailure, FailureKind, Health, NodeStatus, Role
from router.core._topology import Topology, tick

PARAMS = GateParams(readmit_hold=1.0, failures_to_down=2, probe_backoff_initial=0.5)
LSN = Lsn(0x5_0000_0000)
NOW = 1_800_000_000.0


def primary(lsn: Lsn = LSN) -> NodeStatus:
    return NodeStatus(in_recovery=False, wal_lsn=lsn, server_now=NOW)


def replica(behind: int = 0) -> NodeStatus:
    return NodeStatus(
        in_recovery=True,
        replay_lsn=Lsn(LSN - behind),
        last_replay_at=NOW - 0.2,
        server_now=NOW,
    )


DOWN = CheckFailure(FailureKind.CONNECT_FAILED)
HEALTHY: dict[str, NodeStatus] = {"p": primary(), "r1": replica(), "r2": replica(100)}


def settled() -> Topology:
    topology = Topology.initial(["p", "r1", "r2"])
    for t in (0.0, 0.5, 1.0):
        topology = tick(topology, HEALTHY, t, PARAMS)
    return topology


def test_initial() -> None:
    topology = Topology.initial(["p", "r1"])
    assert topology.primary is None
    assert not topology.primary_available
    assert not topology.split_brain
    assert topology.primary_lsn is None
    assert topology.replicas == ()
    assert topology.due(0.0) == ("p", "r1")
    assert topology.node("p").health is Health.DOWN
    assert topology.node("p").reason == "not checked yet"


def test_roles_are_discovered() -> None:
    topology = settled()
    assert topology.primary == "p"
    assert topology.primary_available
    assert topology.primary_lsn == LSN
    assert [n.name for n in topology.replicas] == ["r1", "r2"]
    assert topology.node("r2").lag_bytes == 100
    assert topology.node("r1").admitted
    assert not topology.node("p").admitted


def test_split_brain() -> None:
    topology = tick(settled(), {**HEALTHY, "r1": primary(Lsn(LSN + 10))}, 2.0, PARAMS)
    assert topology.split_brain
    assert topology.primary is None
    assert not topology.primary_available
    assert topology.primary_lsn is None
    # No single primary position: r2's lag is unknown, which keeps it as it was.
    r2 = topology.node("r2")
    assert r2.lag_bytes is None
    assert r2.admitted


def test_failover_is_not_a_split_brain() -> None:
    # The old primary fails its check (not down yet) while r1, promoted, answers as primary.
    topology = tick(settled(), {**HEALTHY, "p": DOWN, "r1": primary(Lsn(LSN + 10))}, 2.0, PARAMS)
    assert not topology.split_brain
    assert topology.primary == "r1"
    assert topology.node("p").up
    assert topology.node("p").role is Role.PRIMARY
    assert topology.node("r2").lag_bytes == 110
    assert topology.wal.node == "r1"


def test_failing_primary_stays_primary_until_down() -> None:
    topology = tick(settled(), {**HEALTHY, "p": DOWN}, 2.0, PARAMS)
    assert topology.primary == "p"
    assert topology.node("r1").admitted  # lag unknown this round: kept
    topology = tick(topology, {**HEALTHY, "p": DOWN}, 2.5, PARAMS)
    assert topology.primary is None
    assert not topology.primary_available
    assert not topology.split_brain
    # Reads carry on: the replicas stay admitted while the primary is away.
    assert all(n.admitted for n in topology.replicas)
    assert "p" not in topology.due(2.9)
    assert "p" in topology.due(3.0)


def test_two_failing_claimants_are_a_split_brain() -> None:
    topology = tick(settled(), {**HEALTHY, "r1": primary()}, 2.0, PARAMS)
    topology = tick(topology, {"p": DOWN, "r1": DOWN}, 2.5, PARAMS)
    assert topology.split_brain


def test_broken_connection_on_the_primary() -> None:
    topology = settled().mark_failed("p", FailureKind.BROKEN_CONNECTION, 2.0, PARAMS)
    assert not topology.primary_available
    assert topology.node("p").reason == "down: broken connection"
    topology = tick(topology, HEALTHY, 2.5, PARAMS)
    assert topology.primary == "p"


def test_a_broken_pooled_connection_on_the_primary_keeps_writes_going() -> None:
    topology = settled().report_failure("p", FailureKind.BROKEN_CONNECTION, 2.0, PARAMS, "EOF")
    assert topology.primary == "p"
    assert topology.primary_available
    assert topology.node("p").reason.startswith("suspect: broken connection")
    assert "p" in topology.due(2.0)
    # Further ones before a check: the very same value, nothing for the monitor to do.
    again = topology.report_failure("p", FailureKind.BROKEN_CONNECTION, 2.1, PARAMS)
    assert again is topology
    # A round begun before the report leaves it suspect; the next one clears it ...
    stale = tick(topology, HEALTHY, 1.9, PARAMS)
    assert stale.node("p").failures == 1
    cleared = tick(stale, HEALTHY, 2.0, PARAMS)
    assert cleared.node("p").failures == 0
    assert cleared.primary == "p"
    # ... or finds it gone.
    gone = tick(stale, {**HEALTHY, "p": DOWN}, 2.0, PARAMS)
    assert gone.primary is None
    assert gone.node("p").health is Health.DOWN


def test_a_broken_pooled_connection_on_a_replica_takes_it_out_until_checked() -> None:
    topology = settled().report_failure("r1", FailureKind.BROKEN_CONNECTION, 2.0, PARAMS)
    assert not topology.node("r1").admitted
    assert topology.node("r1").up
    assert tick(topology, HEALTHY, 2.0, PARAMS).node("r1").admitted


def test_a_failure_reported_on_a_down_node_keeps_its_probe_time() -> None:
    topology = tick(settled(), {**HEALTHY, "p": DOWN}, 2.0, PARAMS)
    topology = tick(topology, {**HEALTHY, "p": DOWN}, 2.5, PARAMS)
    due = topology.node("p").next_probe_at
    for kind in (FailureKind.BROKEN_CONNECTION, FailureKind.CONNECT_FAILED):
        topology = topology.report_failure("p", kind, 2.6, PARAMS, "refused")
        assert topology.node("p").next_probe_at == due
        assert "p" in topology.due(due)


def test_rediscovery_on_25006() -> None:
    topology = settled().request_rediscovery(5.0, suspect="p")
    assert topology.rediscover
    assert topology.node("p").role is Role.UNKNOWN
    assert topology.node("p").reason == "suspected demoted: read-only (25006)"
    assert not topology.primary_available  # no more writes sent there
    # A round that started before the request cannot restore the suspect.
    stale = tick(topology, HEALTHY, 4.9, PARAMS)
    assert stale.rediscover
    assert stale.node("p").role is Role.UNKNOWN
    assert stale.primary is None
    # A fresh round: p was really demoted and r1 promoted.
    fresh = tick(stale, {"p": replica(), "r1": primary(), "r2": replica()}, 5.0, PARAMS)
    assert not fresh.rediscover
    assert fresh.suspect is None
    assert fresh.primary == "r1"
    assert fresh.node("p").role is Role.REPLICA


def test_rediscovery_without_suspect_and_a_false_alarm() -> None:
    topology = settled().request_rediscovery(3.0)
    assert topology.rediscover
    assert topology.primary == "p"
    assert topology.request_rediscovery(4.0).rediscover_at == 3.0
    topology = settled().request_rediscovery(3.0, suspect="p")
    topology = tick(topology, HEALTHY, 3.0, PARAMS)
    assert topology.primary == "p"
    assert not topology.rediscover


def test_suspecting_a_replica_changes_nothing_but_the_flag() -> None:
    topology = settled().request_rediscovery(3.0, suspect="r1")
    assert topology.node("r1").role is Role.REPLICA
    assert topology.rediscover


def test_nodes_not_observed_keep_their_health() -> None:
    before = settled()
    after = tick(before, {"p": primary()}, 2.0, PARAMS)
    assert after.node("r1") == before.node("r1")


def test_names() -> None:
    topology = settled()
    with pytest.raises(KeyError):
        topology.node("nope")
    with pytest.raises(KeyError):
        tick(topology, {"nope": primary()}, 2.0, PARAMS)
    with pytest.raises(KeyError):
        topology.replace(Topology.initial(["nope"]).nodes[0])
    with pytest.raises(ValueError, match="unique"):
        Topology.initial(["a", "a"])
