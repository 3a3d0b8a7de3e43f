"""The read/write decision, pure: topology in, node and reason out."""

from __future__ import annotations

from itertools import pairwise
from random import Random
from typing import Any

import pytest

from router.core import (
    Candidate,
    CheckFailure,
    Consistency,
    FailureKind,
    GateParams,
    Lsn,
    NodeStatus,
    RoundRobinPolicy,
    Topology,
    WaitMisses,
    primary_only,
    tick,
)
from router.core._route import Decision, Reason, choose_read, choose_write

PARAMS = GateParams(max_lag_bytes=1000, max_lag_seconds=None)
STATS = {n: Candidate(n) for n in ("p", "r1", "r2")}


def topology(
    r1: int = 100, r2: int = 100, primary: int = 100, *, then: dict[str, object] | None = None
) -> Topology:
    """A topology after one round of checks with these positions, and optionally a second
    round in which some checks fail (``then``: node name -> CheckFailure)."""
    observations: dict[str, object] = {
        "p": NodeStatus(in_recovery=False, wal_lsn=Lsn(primary)),
        "r1": NodeStatus(in_recovery=True, replay_lsn=Lsn(r1)),
        "r2": NodeStatus(in_recovery=True, replay_lsn=Lsn(r2)),
    }
    t = tick(Topology.initial(["p", "r1", "r2"]), observations, 0.0, PARAMS)  # type: ignore[arg-type]
    if then:
        t = tick(t, then, 1.0, PARAMS)  # type: ignore[arg-type]
    return t


def read(t: Topology, **kw: object) -> tuple[str | None, bool, Reason]:
    kw.setdefault("consistency", Consistency.READ_YOUR_WRITES)
    d = choose_read(t, kw.pop("consistency"), RoundRobinPolicy(), STATS, Random(1), **kw)  # type: ignore[arg-type]
    return d.node, d.primary, d.reason


def test_reads_go_to_replicas_and_writes_to_the_primary() -> None:
    t = topology()
    assert read(t)[:2] in {("r1", False), ("r2", False)}
    w = choose_write(t)
    assert (w.node, w.primary) == ("p", True)


def test_strong_reads_the_primary() -> None:
    assert read(topology(), consistency=Consistency.STRONG) == ("p", True, Reason.CONSISTENCY)


def test_a_floor_excludes_replicas_behind_it() -> None:
    t = topology(r1=50, r2=100)
    assert read(t, floor=Lsn(80))[0] == "r2"
    assert read(t, floor=Lsn(150)) == ("p", True, Reason.CONSISTENCY)


def read_waiting(t: Topology, policy: RoundRobinPolicy | None = None, **kw: Any) -> Decision:
    """A read-your-writes read at floor 90 that may wait on a replica behind it."""
    return choose_read(
        t,
        Consistency.READ_YOUR_WRITES,
        policy or RoundRobinPolicy(),
        STATS,
        Random(1),
        floor=Lsn(90),
        wait=True,
        **kw,
    )


def test_waiting_picks_a_replica_behind_the_floor_and_says_what_to_wait_for() -> None:
    d = read_waiting(topology(r1=50, r2=60))
    assert d.node in {"r1", "r2"}
    assert d.wait_for == Lsn(90)
    assert d.reason is Reason.CONSISTENCY


def test_waiting_skips_a_replica_known_to_be_further_behind_than_the_wait() -> None:
    # r1 replayed its last transaction 0.2 s before the check, r2 0.005 s: waiting 10 ms is
    # worth it on r2 only; on r1 the read would wait in vain and then go to the primary.
    observations: dict[str, object] = {
        "p": NodeStatus(in_recovery=False, wal_lsn=Lsn(100)),
        "r1": NodeStatus(in_recovery=True, replay_lsn=Lsn(60), server_now=10.0, last_replay_at=9.8),
        "r2": NodeStatus(
            in_recovery=True, replay_lsn=Lsn(60), server_now=10.0, last_replay_at=9.995
        ),
    }
    t = tick(Topology.initial(["p", "r1", "r2"]), observations, 0.0, PARAMS)  # type: ignore[arg-type]
    assert t.by_name["r1"].lag_seconds == pytest.approx(0.2)

    def waits_on(within: float | None) -> set[str | None]:
        policy = RoundRobinPolicy()
        return {read_waiting(t, policy, wait_within=within).node for _ in range(20)}

    assert waits_on(None) == {"r1", "r2"}
    assert waits_on(0.01) == {"r2"}
    assert waits_on(1.0) == {"r1", "r2"}
    assert waits_on(0.001) == {"p"}  # neither can make it: the primary, at once
    d = read_waiting(t, wait_within=0.001)
    assert d.node == "p"
    assert d.detail.endswith(
        "not waited on: r1 is too far behind to wait on, r2 is too far behind to wait on"
    )


def test_a_replica_that_missed_a_wait_is_not_waited_on_until_the_hold_is_over() -> None:
    now = [100.0]
    misses = WaitMisses(0.5, lambda: now[0])
    assert "r1" not in misses
    misses.missed("r1", Lsn(90))
    assert "r1" in misses
    assert "r2" not in misses
    assert "held=['r1']" in repr(misses)
    t = topology(r1=50, r2=60)
    policy = RoundRobinPolicy()

    def waits_on() -> set[str | None]:
        return {read_waiting(t, policy, no_wait=misses).node for _ in range(6)}

    assert waits_on() == {"r2"}
    misses.missed("r2", Lsn(90))
    assert waits_on() == {"p"}  # both missed: the primary at once, no wait
    d = read_waiting(t, no_wait=misses)
    assert "not waited on: r1 missed a wait just now, r2 missed a wait just now" in d.detail
    now[0] += 0.5
    assert waits_on() == {"r1", "r2"}  # the hold is over: worth another try


def test_a_held_replica_is_asked_whether_it_caught_up_when_no_other_can_be_waited_on() -> None:
    now = [100.0]
    misses = WaitMisses(0.5, lambda: now[0], first_ask=0.01)
    t = topology(r1=50, r2=60)
    misses.missed("r1", Lsn(90))
    misses.missed("r2", Lsn(80))

    def decide() -> Decision:
        return read_waiting(t, no_wait=misses, ask=misses.askable)

    # Not at once: it missed just now.
    assert decide().node == "p"
    now[0] += 0.01
    # Both are due: the one known to have replayed the most is asked, with no wait first.
    d = decide()
    assert (d.node, d.ask, d.wait_for) == ("r2", True, Lsn(90))
    assert "ask r2, which missed a wait just now" in d.detail
    # Still short of the position it missed (80): asked again only after a longer pause.
    assert not misses.recovered("r2", Lsn(70))
    misses.missed("r2", Lsn(95))
    assert "r2" in misses
    assert not misses.may_ask("r2")
    assert decide().node == "r1"  # the other is still due
    misses.missed("r1", Lsn(95))
    assert decide().node == "p"
    now[0] += 0.015
    assert misses.may_ask("r2")
    # r2 has replayed what it missed: its hold is over, and it is waited on as any replica.
    assert misses.recovered("r2", Lsn(85))
    assert "r2" not in misses
    d = decide()
    assert (d.node, d.ask) == ("r2", False)
    # A wait that sees a replica at its floor ends its hold too.
    misses.caught_up("r1")
    assert "r1" not in misses
    assert not misses.may_ask("r1")


def test_asks_in_vain_grow_further_apart_and_stop_with_the_hold() -> None:
    now = [0.0]
    misses = WaitMisses(0.5, lambda: now[0], first_ask=0.01)
    misses.missed("r1", Lsn(90))
    asked_at = []
    while "r1" in misses:
        if misses.may_ask("r1"):
            asked_at.append(round(now[0], 3))
            misses.missed("r1", Lsn(90))  # still behind
        now[0] += 0.001
    gaps = [b - a for a, b in pairwise(asked_at)]
    assert asked_at[0] == pytest.approx(0.01)
    assert all(b > a for a, b in pairwise(gaps)), gaps
    assert 5 <= len(asked_at) <= 15, asked_at  # a few round trips per hold, not one per read
    assert now[0] == pytest.approx(0.5, abs=0.002)  # the hold itself is as long as before


def test_a_held_replica_is_not_asked_under_a_primary_only_policy() -> None:
    misses = WaitMisses(0.5, lambda: 0.0, first_ask=0.0)
    misses.missed("r1", Lsn(90))
    misses.missed("r2", Lsn(90))
    t = topology(r1=50, r2=60)
    d = choose_read(
        t,
        Consistency.READ_YOUR_WRITES,
        primary_only,
        STATS,
        Random(1),
        floor=Lsn(90),
        wait=True,
        no_wait=misses,
        ask=misses.askable,
    )
    assert (d.node, d.ask) == ("p", False)
    assert "r1 missed a wait just now, r2 missed a wait just now" in d.detail


def test_lagging_replicas_fall_back_to_the_primary_or_to_nothing() -> None:
    t = topology(r1=0, r2=0, primary=5000)
    assert read(t) == ("p", True, Reason.LAG_GATE)
    node, primary, reason = read(t, fallback_to_primary=False)
    assert (node, primary, reason) == (None, False, Reason.LAG_GATE)


def test_failed_replicas_are_skipped_and_then_the_primary_serves() -> None:
    t = topology()
    assert read(t, exclude={"r1"})[0] == "r2"
    assert read(t, exclude={"r1", "r2"}) == ("p", True, Reason.RETRY)


def test_down_replicas_are_not_offered() -> None:
    down = CheckFailure(FailureKind.BROKEN_CONNECTION)
    assert read(topology(then={"r2": down}))[0] == "r1"


def test_a_primary_only_policy_never_picks_a_replica() -> None:
    d = choose_read(topology(), Consistency.EVENTUAL, primary_only, STATS, Random(1))
    assert (d.node, d.reason) == ("p", Reason.CLASSIFIER)


def test_no_primary_and_two_primaries_leave_writes_nowhere() -> None:
    gone = topology(then={"p": CheckFailure(FailureKind.BROKEN_CONNECTION)})
    assert choose_write(gone).node is None
    assert "no primary" in choose_write(gone).detail
    assert read(gone)[0] in {"r1", "r2"}  # reads carry on
    two = tick(
        Topology.initial(["p", "r1"]),
        {"p": NodeStatus(in_recovery=False), "r1": NodeStatus(in_recovery=False)},
        0.0,
        PARAMS,
    )
    assert two.split_brain
    assert choose_write(two).node is None


@pytest.mark.parametrize("seed", range(5))
def test_round_robin_alternates(seed: int) -> None:
    t = topology()
    policy = RoundRobinPolicy()
    rng = Random(seed)
    picks = [choose_read(t, Consistency.EVENTUAL, policy, STATS, rng).node for _ in range(10)]
    assert picks.count("r1") == picks.count("r2") == 5


def test_a_primary_read_weight_offers_the_primary_to_the_policy() -> None:
    t = topology()
    counts = {"p": 0, "r1": 0, "r2": 0}
    rng = Random(7)
    from router.core import RandomPolicy

    for _ in range(3000):
        d = choose_read(t, Consistency.EVENTUAL, RandomPolicy(), STATS, rng, primary_weight=2.0)
        assert d.node is not None
        counts[d.node] += 1
        assert d.primary is (d.node == "p")
    # weights 2 : 1 : 1
    assert 1350 <= counts["p"] <= 1650, counts
    assert 600 <= counts["r1"] <= 900, counts
    without = {
        choose_read(t, Consistency.EVENTUAL, RandomPolicy(), STATS, rng).node for _ in range(200)
    }
    assert without == {"r1", "r2"}
