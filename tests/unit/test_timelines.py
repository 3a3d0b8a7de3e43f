"""Replicas on another history than the primary's (design §5, issue 17): a standby that
streams an older timeline, or a former primary that replays its own WAL past the point where
the new primary's timeline forked, is left out of every read, whatever its replay position
says: positions on two timelines do not compare."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from router.core._eligibility import Cause, Consistency, eligible
from router.core._ha import HaMember, HaView
from router.core._health import GateParams
from router.core._lsn import Lsn
from router.core._nodes import NodeStatus, Observation
from router.core._topology import Topology, tick

PARAMS = GateParams(readmit_hold=0.0, max_lag_seconds=None)
FORK = Lsn(0x5_0000_0000)
#: The old primary wrote this far past the fork before it crashed.
OLD_END = Lsn(FORK + 8 * 1024 * 1024)
#: A commit on the new timeline: above the fork, below the old primary's end.
COMMIT = Lsn(FORK + 4096)


def writer(lsn: Lsn, timeline: int) -> NodeStatus:
    return NodeStatus(in_recovery=False, wal_lsn=lsn, timeline=timeline)


def standby(replay: Lsn, timeline: int | None, *, sees: bool = True) -> NodeStatus:
    return NodeStatus(in_recovery=True, replay_lsn=replay, timeline=timeline, sees_receiver=sees)


def run(*rounds: Mapping[str, Observation], ha: HaView | None = None) -> Topology:
    topology = Topology.initial(["a", "b", "c"])
    for i, observations in enumerate(rounds):
        topology = tick(topology, observations, float(i), PARAMS, ha=ha)
    return topology


#: a led timeline 1; it crashed, b was promoted (timeline 2) and took a commit; a comes back
#: as a standby replaying its own WAL (past the fork), not streaming.
BEFORE = {"a": writer(OLD_END, 1), "b": standby(FORK, 1), "c": standby(FORK, 1)}
AFTER = {"b": writer(Lsn(COMMIT + 100), 2), "c": standby(COMMIT, 2)}
BACK = {**AFTER, "a": standby(OLD_END, None)}


@pytest.mark.parametrize("consistency", [c for c in Consistency if c is not Consistency.STRONG])
def test_a_former_primary_replaying_its_own_wal_is_out_at_every_level(
    consistency: Consistency,
) -> None:
    topology = run(BEFORE, AFTER, BACK)
    assert topology.primary == "b"
    assert topology.primary_timeline == 2
    found = eligible(topology, consistency, floor=COMMIT)
    assert found.replicas == ("c",)
    exclusion = {e.name: e for e in found.excluded}["a"]
    assert exclusion.cause is Cause.TIMELINE
    assert "former primary of timeline 1" in exclusion.reason
    # Not one to wait on: no replay position on this history will ever mean anything.
    assert "a" not in found.behind_floor


def test_it_comes_back_once_it_streams_the_primary_s_timeline_and_stays_through_a_pause() -> None:
    rewound = {**AFTER, "a": standby(COMMIT, 2)}
    paused = {**AFTER, "a": standby(COMMIT, None)}  # its WAL receiver restarts
    topology = run(BEFORE, AFTER, BACK, rewound)
    assert topology.node("a").led_timeline is None
    assert eligible(topology, Consistency.READ_YOUR_WRITES, floor=COMMIT).replicas == ("a", "c")
    topology = run(BEFORE, AFTER, BACK, rewound, paused)
    assert eligible(topology, Consistency.READ_YOUR_WRITES, floor=COMMIT).replicas == ("a", "c")


def test_a_standby_streaming_an_older_timeline_is_out() -> None:
    behind = {**AFTER, "a": standby(COMMIT, 2), "c": standby(OLD_END, 1)}
    found = eligible(run(BEFORE, behind), Consistency.EVENTUAL)
    assert found.replicas == ("a",)
    assert {e.name: e.cause for e in found.excluded}["c"] is Cause.TIMELINE
    assert "streams timeline 1" in {e.name: e for e in found.excluded}["c"].reason


def test_without_a_view_of_the_wal_receiver_the_replay_position_alone_is_trusted() -> None:
    """A user without pg_read_all_stats sees no receiver: the former primary would never be
    seen streaming, so it is not held out for ever (the documented cost of the privilege)."""
    blind = {**AFTER, "a": standby(OLD_END, None, sees=False), "c": standby(COMMIT, None)}
    topology = run(BEFORE, AFTER, blind)
    assert eligible(topology, Consistency.READ_YOUR_WRITES, floor=COMMIT).replicas == ("a", "c")


def _view(a_timeline: int | None) -> HaView:
    members = {
        "a": HaMember("a", "pg0", "replica", "running", timeline=a_timeline),
        "b": HaMember("b", "pg1", "leader", "running", timeline=2),
        "c": HaMember("c", "pg2", "replica", "streaming", timeline=2),
    }
    return HaView(members, leader="b", leader_member="pg1")


def test_patroni_s_timeline_speaks_when_sql_cannot() -> None:
    blind = {**AFTER, "a": standby(OLD_END, None, sees=False), "c": standby(COMMIT, None)}
    old = run(BEFORE, AFTER, blind, ha=_view(1))
    assert eligible(old, Consistency.READ_YOUR_WRITES).replicas == ("c",)
    # Patroni knows the members but not yet a's timeline: the former primary waits for it.
    unknown = run(BEFORE, AFTER, blind, ha=_view(None))
    assert eligible(unknown, Consistency.READ_YOUR_WRITES).replicas == ("c",)
    current = run(BEFORE, AFTER, blind, ha=_view(2))
    assert eligible(current, Consistency.READ_YOUR_WRITES).replicas == ("a", "c")


def test_no_primary_timeline_no_rule() -> None:
    """Before any timeline is known (no primary, or a server that reports none) nothing
    changes."""
    topology = run(BEFORE, {"b": replace(writer(COMMIT, 2), timeline=None)}, BACK)
    assert topology.primary_timeline == 2  # BACK's b reports it again
    topology = run({"a": standby(OLD_END, None), "c": standby(COMMIT, None)})
    assert topology.primary_timeline is None
    assert eligible(topology, Consistency.EVENTUAL).replicas == ("a", "c")


# -- without timelines: a standby seen past the primary's position -----------------------


def test_a_standby_seen_past_the_primary_s_later_position_is_on_another_history() -> None:
    """An unprivileged router sees no WAL receiver; a router started after the failover never
    saw the former primary lead. Its replay position above a later position of the primary
    is enough: on one history a standby never passes its primary."""
    blind_back = {**AFTER, "a": standby(OLD_END, None, sees=False)}
    topology = Topology.initial(["a", "b", "c"])  # a fresh router: never saw a lead
    topology = tick(topology, blind_back, 0.0, PARAMS)
    # One round: the replay position and the primary's were sampled together: no proof.
    assert topology.node("a").ahead_of is None
    topology = tick(topology, blind_back, 1.0, PARAMS)
    assert topology.node("a").ahead_of == Lsn(COMMIT + 100)
    found = eligible(topology, Consistency.EVENTUAL)
    assert found.replicas == ("c",)
    assert "another history" in {e.name: e for e in found.excluded}["a"].reason
    # The primary moves past it: still out (the mark stays).
    later = {**blind_back, "b": writer(Lsn(OLD_END + 4096), 2)}
    topology = tick(topology, later, 2.0, PARAMS)
    assert eligible(topology, Consistency.EVENTUAL).replicas == ("c",)
    # Rewound: its replay position goes back below the fork, then climbs on the new history.
    rewound = {**later, "a": standby(Lsn(FORK - 4096), None, sees=False)}
    topology = tick(topology, rewound, 3.0, PARAMS)
    assert topology.node("a").ahead_of is None
    assert eligible(topology, Consistency.EVENTUAL).replicas == ("a", "c")


def test_a_replica_at_the_primary_s_position_is_not_ahead() -> None:
    level = {"b": writer(COMMIT, 2), "a": standby(COMMIT, None, sees=False)}
    topology = Topology.initial(["a", "b"])
    for t in range(3):
        topology = tick(topology, level, float(t), PARAMS)
    assert topology.node("a").ahead_of is None
    assert eligible(topology, Consistency.EVENTUAL).replicas == ("a",)
