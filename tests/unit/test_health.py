"""Node health and the lag gate, driven by an injected clock (``now`` is just a number)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.core._health import (
    GateParams,
    format_bytes,
    format_seconds,
    mark_failed,
    observe,
    report_failure,
    suspect,
)
from router.core._lsn import Lsn
from router.core._nodes import (
    CheckFailure,
    FailureKind,
    Health,
    NodeHealth,
    NodeStatus,
    Observation,
    Role,
    WalHistory,
)
from router.errors import ConfigurationError

MiB = 1024 * 1024
PARAMS = GateParams(
    max_lag_bytes=16 * MiB,
    max_lag_seconds=10.0,
    readmit_fraction=0.5,
    readmit_hold=2.0,
    failures_to_down=2,
    probe_backoff_initial=0.5,
    probe_backoff_max=4.0,
)
PRIMARY = Lsn(0x10_0000_0000)
EPOCH = 1_800_000_000.0  # the servers' wall clock; unrelated to the monotonic `now`
TIMEOUT = CheckFailure(FailureKind.TIMEOUT)


def replica(
    behind: int = 0, *, age: float | None = 0.1, paused: bool = False, primary: Lsn = PRIMARY
) -> NodeStatus:
    """A replica `behind` bytes behind `primary` whose last replayed commit was `age` s ago."""
    return NodeStatus(
        in_recovery=True,
        replay_lsn=Lsn(primary - behind),
        receive_lsn=primary,
        replay_paused=paused,
        last_replay_at=None if age is None else EPOCH - age,
        server_now=EPOCH,
    )


def admitted_replica(now: float = 0.0) -> NodeHealth:
    health = NodeHealth(name="r1")
    for t in (now - 3.0, now - 1.0, now):
        health = observe(health, replica(), PRIMARY, t, PARAMS)
    assert health.admitted
    return health


def run(
    health: NodeHealth, series: Sequence[Observation], start: float = 0.0, step: float = 0.5
) -> list[NodeHealth]:
    out = []
    for i, obs in enumerate(series):
        health = observe(health, obs, PRIMARY, start + i * step, PARAMS)
        out.append(health)
    return out


# -- lag ------------------------------------------------------------------------------------


def test_idle_primary_is_not_lag() -> None:
    # Caught up, but the last commit was an hour ago: the primary is idle, the replica is fine.
    health = observe(admitted_replica(), replica(0, age=3600.0), PRIMARY, 1.0, PARAMS)
    assert (health.lag_bytes, health.lag_seconds) == (0, 0.0)
    assert health.role is Role.REPLICA
    assert health.up
    assert health.admitted
    assert health.reason == "lag 0 B, 0 s"


def test_first_sight_admits_at_once_if_lag_is_low() -> None:
    health = observe(NodeHealth(name="r1"), replica(0, age=3600.0), PRIMARY, 0.0, PARAMS)
    assert health.admitted
    assert health.reason == "admitted: lag 0 B, 0 s"
    # ... but not when high, nor after a failure: then the hold applies.
    high = observe(NodeHealth(name="r1"), replica(10 * MiB), PRIMARY, 0.0, PARAMS)
    assert not high.admitted
    assert high.reason == "held out: lag 10 MiB, 0.1 s, above the re-admit mark"
    failed = mark_failed(NodeHealth(name="r1"), FailureKind.CONNECT_FAILED, 0.0, PARAMS)
    failed = observe(failed, replica(), PRIMARY, 0.5, PARAMS)
    assert not failed.admitted
    assert failed.reason == "re-admitting: lag 0 B, 0 s, low for 0/2 s"
    assert observe(failed, replica(), PRIMARY, 2.5, PARAMS).admitted


def test_replica_ahead_of_the_sampled_primary_is_caught_up() -> None:
    status = replica(0)
    ahead = NodeStatus(
        in_recovery=True, replay_lsn=Lsn(PRIMARY + 100), last_replay_at=0.0, server_now=EPOCH
    )
    for obs in (status, ahead):
        health = observe(NodeHealth(name="r1"), obs, PRIMARY, 0.0, PARAMS)
        assert (health.lag_bytes, health.lag_seconds) == (0, 0.0)


def test_time_lag_when_behind() -> None:
    health = observe(admitted_replica(), replica(4096, age=30.0), PRIMARY, 1.0, PARAMS)
    assert health.lag_bytes == 4096
    assert health.lag_seconds == pytest.approx(30.0)
    assert not health.admitted
    assert health.reason == "lag 30 s > 10 s budget"


def test_byte_lag_over_budget() -> None:
    health = observe(admitted_replica(), replica(int(24.1 * MiB)), PRIMARY, 1.0, PARAMS)
    assert not health.admitted
    assert health.reason == "lag 24.1 MiB > 16 MiB budget"


def test_wal_history_removes_false_lag_after_a_commitless_blip() -> None:
    # The primary sat at PRIMARY for ten minutes (no commits), then wrote a few bytes of WAL
    # without a commit (a hint-bit FPI): the replica, a moment behind, shows 600 s by the
    # replay timestamp alone.
    history = WalHistory().record("p", PRIMARY, 0.0).record("p", PRIMARY, 599.5)
    blip = Lsn(PRIMARY + 8192)
    history = history.record("p", blip, 600.0)
    status = replica(8192, age=600.0, primary=blip)
    without = observe(admitted_replica(599.5), status, blip, 600.0, PARAMS)
    assert without.lag_seconds == pytest.approx(600.0)
    assert not without.admitted
    with_history = observe(admitted_replica(599.5), status, blip, 600.0, PARAMS, history=history)
    assert with_history.lag_seconds == pytest.approx(0.5)
    assert with_history.admitted


def test_wal_history_never_raises_the_timestamp_estimate() -> None:
    history = WalHistory().record("p", Lsn(0), 0.0).record("p", PRIMARY, 100.0)
    health = observe(
        admitted_replica(), replica(4096, age=3.0), PRIMARY, 101.0, PARAMS, history=history
    )
    assert health.lag_seconds == pytest.approx(3.0)


def test_wal_history_alone_gives_a_time_lag() -> None:
    history = WalHistory().record("p", Lsn(PRIMARY - 4096), 0.0).record("p", PRIMARY, 1.0)
    status = replica(4096, age=None)
    health = observe(NodeHealth(name="r1"), status, PRIMARY, 1.5, PARAMS, history=history)
    assert health.lag_seconds == pytest.approx(1.5)
    assert observe(NodeHealth(name="r1"), status, PRIMARY, 1.5, PARAMS).lag_seconds is None


def test_wal_history_bookkeeping() -> None:
    h = WalHistory()
    assert h.latest is None
    assert h.seconds_behind(PRIMARY, 1.0) is None
    h = h.record("p", PRIMARY, 1.0).record("p", PRIMARY, 2.0)
    assert h.samples == ((2.0, PRIMARY),)  # same position: the later time is kept
    h = h.record("p", Lsn(PRIMARY + 1), 3.0)
    assert h.latest == PRIMARY + 1
    assert h.seconds_behind(PRIMARY, 3.5) == pytest.approx(1.5)
    assert h.seconds_behind(Lsn(PRIMARY - 1), 3.5) is None
    assert h.record("q", PRIMARY, 4.0).samples == ((4.0, PRIMARY),)  # a new primary
    assert h.record("p", Lsn(1), 4.0).samples == ((4.0, Lsn(1)),)  # went back: restored
    for i in range(200):
        h = h.record("p", Lsn(PRIMARY + 10 + i), 10.0 + i)
    assert len(h.samples) == WalHistory.LIMIT


def test_paused_replay_behind_is_lagging() -> None:
    health = observe(admitted_replica(), replica(4096, paused=True), PRIMARY, 1.0, PARAMS)
    assert not health.admitted
    assert health.replay_paused
    assert health.reason == "replay paused 4 KiB behind"


def test_paused_replay_caught_up_is_fine() -> None:
    health = observe(admitted_replica(), replica(0, paused=True), PRIMARY, 1.0, PARAMS)
    assert health.admitted
    assert health.lag_bytes == 0


def test_unknown_primary_position_neither_drops_nor_admits() -> None:
    kept = observe(admitted_replica(), replica(), None, 1.0, PARAMS)
    assert kept.admitted
    assert (kept.lag_bytes, kept.lag_seconds) == (None, None)
    assert kept.reason == "lag unknown: primary position unknown"
    fresh = NodeHealth(name="r1")
    for t in range(10):
        fresh = observe(fresh, replica(), None, float(t), PARAMS)
        assert not fresh.admitted
    assert fresh.reason == "held out, lag unknown: primary position unknown"


def test_unknown_time_lag_never_admits_when_there_is_a_seconds_budget() -> None:
    health = NodeHealth(name="r1")
    for t in range(10):
        health = observe(health, replica(4096, age=None), PRIMARY, float(t), PARAMS)
        assert not health.admitted
    assert health.reason == "held out, lag unknown: no replay timestamp"
    bytes_only = GateParams(max_lag_bytes=16 * MiB, max_lag_seconds=None, readmit_hold=0.0)
    assert observe(NodeHealth(name="r1"), replica(4096, age=None), PRIMARY, 0, bytes_only).admitted


def test_no_replay_position_is_unknown() -> None:
    status = NodeStatus(in_recovery=True, replay_lsn=None, server_now=EPOCH)
    health = observe(NodeHealth(name="r1"), status, PRIMARY, 0.0, PARAMS)
    assert health.reason == "held out, lag unknown: no replay position"


def test_budgets_off_admit_after_the_hold() -> None:
    params = GateParams(max_lag_bytes=None, max_lag_seconds=None, readmit_hold=1.0)
    health = mark_failed(NodeHealth(name="r1"), FailureKind.TIMEOUT, -1.0, params)
    health = observe(health, replica(10**10, age=None), PRIMARY, 0.0, params)
    assert not health.admitted
    health = observe(health, replica(10**10, age=None), PRIMARY, 1.0, params)
    assert health.admitted


def test_zero_budget_means_caught_up() -> None:
    params = GateParams(max_lag_bytes=0, max_lag_seconds=None, readmit_hold=0.0)
    assert observe(NodeHealth(name="r1"), replica(0), PRIMARY, 0.0, params).admitted
    assert not observe(NodeHealth(name="r1"), replica(1), PRIMARY, 0.0, params).admitted


# -- hysteresis -----------------------------------------------------------------------------


def test_oscillating_lag_drops_once_and_readmits_after_the_hold() -> None:
    # Budget 16 MiB, re-admit mark 8 MiB, hold 2 s, a check every 0.5 s.
    lags_mib = [1, 17, 15, 17, 15, 17, 9, 15, 7, 7, 9, 7, 7, 7, 7, 7, 15, 17]
    series = [replica(int(m * MiB)) for m in lags_mib]
    states = run(admitted_replica(-0.5), series)
    admitted = [s.admitted for s in states]
    drops = sum(1 for a, b in zip([True, *admitted], admitted, strict=False) if a and not b)
    assert admitted[:2] == [True, False]
    # 7 MiB from t=5.5 (index 11) on: back at t=7.5 (index 15), not before.
    assert admitted[2:15] == [False] * 13
    assert admitted[15:17] == [True, True]  # 15 MiB is inside the band: kept
    assert admitted[17] is False  # 17 MiB: over budget
    assert drops == 2
    assert states[14].reason == "re-admitting: lag 7 MiB, 0.1 s, low for 1.5/2 s"
    assert states[15].reason == "admitted: lag 7 MiB, 0.1 s"
    assert states[7].reason == "held out: lag 15 MiB, 0.1 s, above the re-admit mark"


def test_failed_check_restarts_the_hold_and_never_admits() -> None:
    low = replica(MiB)
    series: list[Observation] = [replica(20 * MiB), low, low, low, TIMEOUT, low, low, low, low, low]
    states = run(admitted_replica(-0.5), series)
    assert [s.admitted for s in states] == [False] * 9 + [True]
    assert states[4].reason == "check failed: timeout (1/2 to down)"
    assert states[4].lag_bytes == MiB  # the last known value, not refreshed
    assert states[4].low_since is None


def test_broken_connection_restarts_the_hold() -> None:
    low = replica(MiB)
    broken = CheckFailure(FailureKind.BROKEN_CONNECTION)
    series: list[Observation] = [replica(20 * MiB), low, low, low, broken, low, low, low, low, low]
    states = run(admitted_replica(-0.5), series)
    assert [s.admitted for s in states] == [False] * 9 + [True]
    assert states[4].health is Health.DOWN


def test_failure_keeps_an_admitted_node_until_it_is_down() -> None:
    states = run(admitted_replica(-0.5), [TIMEOUT, replica(), TIMEOUT, TIMEOUT])
    assert [s.admitted for s in states] == [True, True, True, False]
    assert [s.health for s in states] == [Health.UP, Health.UP, Health.UP, Health.DOWN]


lag_events = st.one_of(
    st.integers(min_value=0, max_value=40).map(lambda m: replica(m * MiB // 2)),
    st.integers(min_value=0, max_value=30).map(lambda age: replica(4096, age=float(age))),
    st.just(replica(4096, paused=True)),
    st.just(replica(4096, age=None)),
    st.sampled_from([CheckFailure(kind) for kind in FailureKind]),
    st.none(),  # primary position unknown this tick
)


@settings(max_examples=300, deadline=None)
@given(st.lists(lag_events, max_size=40), st.floats(min_value=0.05, max_value=1.5))
def test_gate_invariants(events: list[NodeStatus | CheckFailure | None], step: float) -> None:
    health = NodeHealth(name="r1")
    low_run_start: float | None = None  # start of the current run of ticks with a low, known lag
    mark_b = PARAMS.max_lag_bytes * PARAMS.readmit_fraction  # type: ignore[operator]
    mark_s = PARAMS.max_lag_seconds * PARAMS.readmit_fraction  # type: ignore[operator]
    for i, event in enumerate(events):
        now = i * step
        before = health
        first_sight = before.checked_at is None and before.failures == 0
        obs: Observation = replica() if event is None else event
        health = observe(before, obs, None if event is None else PRIMARY, now, PARAMS)
        known_low = (
            isinstance(obs, NodeStatus)
            and event is not None
            and health.lag_bytes is not None
            and health.lag_seconds is not None
            and health.lag_bytes <= mark_b
            and health.lag_seconds <= mark_s
            and not (obs.replay_paused and health.lag_bytes > 0)
        )
        low_run_start = (now if low_run_start is None else low_run_start) if known_low else None
        if health.admitted and not before.admitted:
            # Admission only after a continuous low run as long as the hold.
            assert low_run_start is not None
            assert first_sight or now - low_run_start >= PARAMS.readmit_hold
        if isinstance(obs, CheckFailure):
            assert health.admitted <= before.admitted
            assert health.lag_bytes in (before.lag_bytes, None)
            assert health.lag_seconds in (before.lag_seconds, None)
        if health.admitted:
            assert health.up
            assert health.role is Role.REPLICA
            if health.lag_bytes is not None:
                assert health.lag_bytes <= PARAMS.max_lag_bytes  # type: ignore[operator]
            if health.lag_seconds is not None:
                assert health.lag_seconds <= PARAMS.max_lag_seconds  # type: ignore[operator]
        if before.admitted and not health.admitted:
            assert (
                not health.up
                or health.reason.startswith(("lag ", "replay paused"))
                or health.role is not Role.REPLICA
            )


# -- failures, down, backoff ----------------------------------------------------------------


def test_consecutive_failures_mark_down_and_back_off() -> None:
    health = admitted_replica()
    health = mark_failed(health, FailureKind.TIMEOUT, 1.0, PARAMS)
    assert health.up
    assert health.should_probe(1.0)
    health = mark_failed(health, FailureKind.TIMEOUT, 2.0, PARAMS)
    assert health.health is Health.DOWN
    assert not health.admitted
    assert health.role is Role.REPLICA  # the role it was last seen with
    assert (health.lag_bytes, health.lag_seconds) == (None, None)
    assert health.reason == "down: 2 consecutive timeouts"
    delays = []
    now = 2.0
    for _ in range(6):
        delays.append(health.probe_delay)
        assert not health.should_probe(health.next_probe_at - 0.01)
        now = health.next_probe_at
        assert health.should_probe(now)
        health = mark_failed(health, FailureKind.CONNECT_FAILED, now, PARAMS)
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert health.reason == "down: 8 consecutive failures, last connect failed"
    assert health.failures == 8


def test_broken_connection_is_down_at_once() -> None:
    health = mark_failed(admitted_replica(), FailureKind.BROKEN_CONNECTION, 1.0, PARAMS, "EOF")
    assert health.health is Health.DOWN
    assert health.reason == "down: broken connection"
    assert health.last_error == "EOF"
    assert health.next_probe_at == 1.5


def test_observe_failure_is_mark_failed() -> None:
    start = admitted_replica()
    failure = CheckFailure(FailureKind.ERROR, "boom")
    assert observe(start, failure, PRIMARY, 1.0, PARAMS) == mark_failed(
        start, FailureKind.ERROR, 1.0, PARAMS, "boom"
    )


def test_success_brings_a_node_up_but_not_into_the_gate() -> None:
    health = NodeHealth(name="r1")
    assert health.health is Health.DOWN
    assert health.should_probe(0.0)
    health = mark_failed(health, FailureKind.CONNECT_FAILED, 0.0, PARAMS)
    assert health.reason == "down: connect failed"
    health = observe(health, replica(), PRIMARY, 0.5, PARAMS)
    assert health.up
    assert not health.admitted
    assert (health.failures, health.probe_delay, health.last_failure) == (
        0,
        0.0,
        FailureKind.CONNECT_FAILED,
    )
    health = observe(health, replica(), PRIMARY, 2.5, PARAMS)
    assert health.admitted


# -- failures the shells report (a pooled connection) ---------------------------------------

BROKEN = FailureKind.BROKEN_CONNECTION
PRIMARY_STATUS = NodeStatus(in_recovery=False, wal_lsn=PRIMARY, server_now=EPOCH)


def up_primary(now: float = 0.0) -> NodeHealth:
    return observe(NodeHealth(name="p"), PRIMARY_STATUS, None, now, PARAMS)


def test_a_broken_pooled_connection_makes_a_primary_suspect_not_down() -> None:
    health = report_failure(up_primary(), BROKEN, 1.0, PARAMS, "ConnectionDoesNotExistError")
    assert health.up
    assert health.role is Role.PRIMARY  # writes still go there
    assert suspect(health)
    assert health.failures == 1
    assert health.reason == "suspect: broken connection, checking (1/2 to down)"
    assert health.last_error == "ConnectionDoesNotExistError"
    assert health.should_probe(1.0)  # checked now, not after a backoff
    # More connections of the same pool found broken before the check add nothing.
    assert report_failure(health, BROKEN, 1.1, PARAMS, "another") is health
    # A check begun before the connection broke does not clear the suspicion ...
    assert observe(health, PRIMARY_STATUS, None, 0.9, PARAMS) is health
    # ... one begun after it decides: the primary answers, so it is fine.
    fine = observe(health, PRIMARY_STATUS, None, 1.0, PARAMS)
    assert (fine.up, fine.failures, fine.reason) == (True, 0, "primary")
    assert not suspect(fine)


def test_a_suspect_node_whose_check_fails_is_down() -> None:
    health = report_failure(up_primary(), BROKEN, 1.0, PARAMS)
    for kind in (FailureKind.CONNECT_FAILED, FailureKind.TIMEOUT):
        down = observe(health, CheckFailure(kind, "refused"), None, 1.0, PARAMS)
        assert down.health is Health.DOWN
        assert down.failures == 2
        assert down.reason == f"down: 2 consecutive failures, last {kind.value.replace('_', ' ')}"
        assert down.next_probe_at == 1.0 + PARAMS.probe_backoff_initial


def test_a_broken_connection_takes_a_replica_out_until_a_check_clears_it() -> None:
    health = report_failure(admitted_replica(), BROKEN, 1.0, PARAMS)
    assert health.up
    assert not health.admitted  # reads go elsewhere at once
    assert suspect(health)
    # Its lag stayed low all along: the check that clears it re-admits it without a hold.
    back = observe(health, replica(), PRIMARY, 1.0, PARAMS)
    assert back.admitted
    assert back.reason.startswith("admitted: ")
    # A failed check instead restarts the hold, as ever.
    failed = observe(health, TIMEOUT, PRIMARY, 1.0, PARAMS)
    assert failed.health is Health.DOWN
    again = observe(failed, replica(), PRIMARY, 1.5, PARAMS)
    assert again.up
    assert not again.admitted


def test_a_broken_connection_counts_towards_down() -> None:
    # After a failed check, a broken connection is the second failure in a row.
    health = mark_failed(up_primary(), FailureKind.TIMEOUT, 1.0, PARAMS)
    down = report_failure(health, BROKEN, 1.2, PARAMS)
    assert down.health is Health.DOWN
    assert down.reason == "down: 2 consecutive failures, last broken connection"
    # With failures_to_down=1, one broken connection is enough.
    strict = GateParams(failures_to_down=1, probe_backoff_initial=0.5)
    assert report_failure(up_primary(), BROKEN, 1.0, strict).health is Health.DOWN


def test_a_failure_reported_on_a_down_node_does_not_push_its_probe() -> None:
    down = mark_failed(
        mark_failed(up_primary(), FailureKind.TIMEOUT, 1.0, PARAMS),
        FailureKind.TIMEOUT,
        2.0,
        PARAMS,
    )
    assert down.next_probe_at == 2.5
    health = down
    for i, kind in enumerate([BROKEN, FailureKind.CONNECT_FAILED, BROKEN, BROKEN]):
        health = report_failure(health, kind, 2.1 + i / 10, PARAMS, f"error {i}")
        assert (health.health, health.failures, health.probe_delay, health.next_probe_at) == (
            Health.DOWN,
            2,
            0.5,
            2.5,
        )
        assert (health.last_failure, health.last_error) == (kind, f"error {i}")
    assert report_failure(health, BROKEN, 2.4, PARAMS, "error 3") is health


def test_a_connect_failure_reported_on_an_up_node_is_a_failed_check() -> None:
    start = admitted_replica()
    kind = FailureKind.CONNECT_FAILED
    assert report_failure(start, kind, 1.0, PARAMS, "x") == mark_failed(
        start, kind, 1.0, PARAMS, "x"
    )


reports = st.tuples(
    st.sampled_from(["report", "check"]),
    st.sampled_from([*FailureKind, None]),  # None: a successful check
    st.floats(min_value=0.0, max_value=0.6),  # time since the previous event
    st.floats(min_value=0.0, max_value=0.6),  # how long before the event its check began
)


@settings(max_examples=300, deadline=None)
@given(st.lists(reports, max_size=40), st.booleans())
def test_reports_never_admit_nor_delay_a_probe(
    events: list[tuple[str, FailureKind | None, float, float]], as_replica: bool
) -> None:
    health = admitted_replica() if as_replica else up_primary()
    now = 0.0
    for source, kind, step, began_before in events:
        now += step
        before = health
        if source == "report":
            health = report_failure(before, kind or BROKEN, now, PARAMS)
            assert health.admitted <= before.admitted
            assert health.role is before.role
            if not before.up:
                assert (health.health, health.failures) == (Health.DOWN, before.failures)
                assert (health.next_probe_at, health.probe_delay) == (
                    before.next_probe_at,
                    before.probe_delay,
                )
            elif health.health is Health.DOWN:
                assert health.failures >= PARAMS.failures_to_down
            if suspect(before) and kind in (None, BROKEN):
                assert health is before
        else:
            obs: Observation = replica() if as_replica else PRIMARY_STATUS
            if kind is not None:
                obs = CheckFailure(kind)
            health = observe(before, obs, PRIMARY, now - began_before, PARAMS)
            if (
                suspect(before)
                and kind is None
                and began_before > 0
                and now - began_before < before.next_probe_at
            ):
                assert health is before
        if suspect(health):
            assert health.up
            assert not health.admitted
            assert 0 < health.failures < PARAMS.failures_to_down


# -- primary --------------------------------------------------------------------------------


def test_primary_has_no_gate() -> None:
    status = NodeStatus(in_recovery=False, wal_lsn=PRIMARY, server_now=EPOCH)
    health = observe(NodeHealth(name="p"), status, None, 0.0, PARAMS)
    assert health.role is Role.PRIMARY
    assert health.up
    assert not health.admitted
    assert (health.lag_bytes, health.lag_seconds, health.wal_lsn) == (0, 0.0, PRIMARY)
    assert health.reason == "primary"


def test_promotion_and_demotion() -> None:
    promoted = observe(
        admitted_replica(), NodeStatus(in_recovery=False, wal_lsn=PRIMARY), None, 1.0, PARAMS
    )
    assert promoted.role is Role.PRIMARY
    assert not promoted.admitted
    demoted = observe(promoted, replica(), PRIMARY, 2.0, PARAMS)
    assert demoted.role is Role.REPLICA
    assert not demoted.admitted
    assert observe(demoted, replica(), PRIMARY, 4.0, PARAMS).admitted


# -- params and formatting ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_lag_bytes": -1}, "max_lag_bytes"),
        ({"max_lag_seconds": -0.1}, "max_lag_seconds"),
        ({"max_lag_seconds": float("nan")}, "max_lag_seconds"),
        ({"max_lag_seconds": float("inf")}, "max_lag_seconds"),
        ({"readmit_fraction": 1.5}, "readmit_fraction"),
        ({"readmit_hold": -1.0}, "readmit_hold"),
        ({"failures_to_down": 0}, "failures_to_down"),
        ({"probe_backoff_initial": 0.0}, "probe_backoff_initial"),
        ({"probe_backoff_initial": 2.0, "probe_backoff_max": 1.0}, "probe_backoff_max"),
    ],
)
def test_params_are_validated(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        GateParams(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (16 * MiB, "16 MiB"),
        (int(24.1 * MiB), "24.1 MiB"),
        (150 * MiB, "150 MiB"),
        (3 * 1024 * MiB, "3 GiB"),
        (5000 * 1024 * MiB, "5000 GiB"),
    ],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0.0, 0.25, 7.0, 30.04, 123.4)] == [
        "0 s", "0.2 s", "7 s", "30 s", "123 s",
    ]  # fmt: skip
