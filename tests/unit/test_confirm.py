"""The second look at a replica whose time lag rests on its last replayed commit alone: which
replicas get one, what it does to the verdict, and that it never makes a lagging replica look
caught up. An injected clock: ``now`` is just a number, as the monitor passes it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from router.core import Topology, confirm_pauses, tick, unconfirmed
from router.core._health import GateParams
from router.core._lsn import Lsn
from router.core._nodes import NodeStatus, Observation

PARAMS = GateParams(max_lag_seconds=5.0, readmit_fraction=0.5, readmit_hold=2.0)
P0 = Lsn(0x3_0000_0000)
EPOCH = 1_800_000_000.0  # the servers' wall clock, unrelated to the monotonic `now`
START = 100.0


def primary(lsn: Lsn = P0) -> NodeStatus:
    return NodeStatus(in_recovery=False, wal_lsn=lsn)


def replica(
    replay: Lsn, *, age: float | None = 40.0, paused: bool = False, at: float = 0.0
) -> NodeStatus:
    """A replica at *replay* whose last replayed commit was *age* s before its clock read *at*
    (seconds after the first look)."""
    now = EPOCH + at
    return NodeStatus(
        in_recovery=True,
        replay_lsn=replay,
        receive_lsn=replay,
        replay_paused=paused,
        last_replay_at=None if age is None else now - age,
        server_now=now,
    )


def first_round(
    r: Observation, params: GateParams = PARAMS, *, p: Observation | None = None
) -> tuple[Topology, Topology]:
    before = Topology.initial(["p", "r"])
    return before, tick(before, {"p": p or primary(), "r": r}, START, params)


def second_look(
    before: Topology,
    after: Topology,
    r: Observation,
    *,
    p: Lsn = P0,
    at: float = 0.15,
    params: GateParams = PARAMS,
) -> Topology:
    """What the monitor does: the replica as the round found it, the new observations."""
    return tick(after.replace(before.node("r")), {"p": primary(p), "r": r}, START + at, params)


def test_the_pauses_stay_within_their_time() -> None:
    assert confirm_pauses(PARAMS) == (0.05, 0.1, 0.2, 0.4)
    assert sum(confirm_pauses(PARAMS, 3.0)) <= 3.0
    assert confirm_pauses(PARAMS, 0.1) == (0.05,)
    assert confirm_pauses(PARAMS, 0.0) == ()
    assert confirm_pauses(GateParams(max_lag_seconds=None)) == ()


def test_a_caught_up_replica_behind_wal_without_commits() -> None:
    # The idle primary wrote a checkpoint record (96 bytes) the replica has not replayed yet;
    # its last commit is 40 s old. The round alone says it lags 40 s.
    before, after = first_round(replica(Lsn(P0 - 96)))
    assert not after.node("r").admitted
    assert after.node("r").lag_seconds == pytest.approx(40.0)
    assert unconfirmed(before, after, PARAMS) == ("r",)
    # A moment later it has replayed it: no older than the first look, admitted at once.
    looked = second_look(before, after, replica(P0, at=0.15))
    r = looked.node("r")
    assert r.admitted
    assert (r.lag_bytes, r.lag_seconds) == (0, 0.0)
    assert r.reason == "admitted: lag 0 B, 0 s"
    assert unconfirmed(before, looked, PARAMS) == ()


def test_a_replica_that_caught_up_with_the_first_look_while_the_primary_moved_on() -> None:
    before, after = first_round(replica(Lsn(P0 - 96)))
    looked = second_look(before, after, replica(Lsn(P0 + 8), at=0.15), p=Lsn(P0 + 200))
    r = looked.node("r")
    # It has what the primary had at the first look, not what it has now: at most the time
    # since the first look behind, never 0.
    assert r.lag_seconds == pytest.approx(0.15)
    assert r.lag_bytes == 192
    assert r.admitted
    assert unconfirmed(before, looked, PARAMS) == ()


def test_a_replica_that_really_lags_keeps_its_lag() -> None:
    # It replays nothing new (a long apply delay, a broken link): every look leaves it at its
    # last commit's age, and it is never admitted.
    before, after = first_round(replica(Lsn(P0 - 4096)))
    looked = after
    for at in (0.05, 0.15, 0.35, 0.75):
        looked = second_look(before, looked, replica(Lsn(P0 - 4096), at=at), at=at)
        r = looked.node("r")
        assert not r.admitted
        assert r.lag_seconds == pytest.approx(40.0)
        assert unconfirmed(before, looked, PARAMS) == ("r",)
    assert looked.node("r").reason == "lag 40 s > 5 s budget"


def test_a_replica_that_has_replayed_no_commit_since_it_started() -> None:
    # pg_last_xact_replay_timestamp() is NULL: the round says "unknown"; the second look knows.
    before, after = first_round(replica(Lsn(P0 - 96), age=None))
    assert after.node("r").reason == "held out, lag unknown: no replay timestamp"
    assert unconfirmed(before, after, PARAMS) == ("r",)
    assert second_look(before, after, replica(P0, age=None)).node("r").admitted


def test_an_admitted_replica_the_round_would_drop() -> None:
    # E.g. after a failover: the new primary's history starts afresh.
    _, after = first_round(replica(P0))
    assert after.node("r").admitted
    moved = Lsn(P0 + 96)
    fresh = Topology(after.nodes)  # as after a failover: no history
    again = tick(fresh, {"p": primary(moved), "r": replica(P0)}, 101, PARAMS)
    assert not again.node("r").admitted
    assert again.node("r").reason == "lag 40 s > 5 s budget"
    assert unconfirmed(fresh, again, PARAMS) == ("r",)
    # Caught up a moment later: kept, as if never dropped.
    looked = tick(
        again.replace(fresh.node("r")), {"p": primary(moved), "r": replica(moved)}, 101.05, PARAMS
    )
    assert looked.node("r").admitted
    assert looked.node("r").reason == "lag 0 B, 0 s"


@pytest.mark.parametrize(
    ("why", "r", "params"),
    [
        ("paused", replica(Lsn(P0 - 96), paused=True), PARAMS),
        ("bytes over the mark", replica(Lsn(P0 - 9 * 1024 * 1024)), PARAMS),
        ("time lag below the mark", replica(Lsn(P0 - 96), age=1.0), PARAMS),
        ("no time budget", replica(Lsn(P0 - 96)), GateParams(max_lag_seconds=None)),
        ("caught up", replica(P0), PARAMS),
    ],
)
def test_no_second_look(why: str, r: NodeStatus, params: GateParams) -> None:
    before, after = first_round(r, params)
    assert unconfirmed(before, after, params) == (), why


def test_no_second_look_without_the_primary_position() -> None:
    before = Topology.initial(["p", "r"])
    after = tick(before, {"r": replica(Lsn(P0 - 96))}, START, PARAMS)
    assert unconfirmed(before, after, PARAMS) == ()


def test_no_second_look_for_a_replica_held_out_by_an_earlier_verdict() -> None:
    # Dropped in an earlier round: the hysteresis decides its return, not a second look.
    _, after = first_round(replica(Lsn(P0 - 96)))
    assert not after.node("r").admitted
    later = tick(Topology(after.nodes), {"p": primary(), "r": replica(Lsn(P0 - 96))}, 101, PARAMS)
    assert unconfirmed(after, later, PARAMS) == ()


def test_no_second_look_for_a_replica_on_another_history() -> None:
    # Seen replaying past the primary's position: its positions say nothing of its commits.
    before, after = first_round(replica(Lsn(P0 - 96)))
    assert unconfirmed(before, after, PARAMS) == ("r",)
    marked = after.replace(replace(after.node("r"), ahead_of=Lsn(P0 - 200)))
    assert unconfirmed(before, marked, PARAMS) == ()


def test_no_second_look_when_the_history_bounds_the_lag() -> None:
    _, after = first_round(replica(P0))
    moved = Lsn(P0 + 96)
    # A replica first seen now, behind the latest sample but past an older one.
    grown = Topology((*after.nodes[:1], Topology.initial(["r"]).nodes[0]), after.wal)
    looked = tick(grown, {"p": primary(moved), "r": replica(P0)}, START + 0.5, PARAMS)
    assert looked.node("r").lag_seconds == pytest.approx(0.5)
    assert unconfirmed(grown, looked, PARAMS) == ()
