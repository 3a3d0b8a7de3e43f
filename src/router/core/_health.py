"""Node health and the replica lag gate: one pure transition per monitor check.

The monitor checks a node and hands the result here as an :data:`Observation`: a
:class:`NodeStatus` when the check succeeded, a :class:`CheckFailure` when it did not.
:func:`observe` returns the node's next :class:`NodeHealth`; :func:`mark_failed` is its
transition for a failed check, and :func:`report_failure` the one for a failure the shells see
outside the monitor (a pooled connection that broke, or could not be opened). Time is the
caller's monotonic ``now``; nothing here reads a clock.

Rules (design §5):

- byte lag = primary WAL position - replica replay position, never negative;
- time lag = 0 when the replica has replayed the primary's position (an idle primary is not
  lag), else the replica's ``now()`` - its last replayed commit time, tightened by the primary's
  WAL history when the caller keeps one (see :class:`WalHistory`; at first sight the monitor
  takes a second look, :mod:`router.core._confirm`); unknown is ``None``, never 0;
- a paused replay that is behind is lagging;
- gate with hysteresis: a replica is dropped when a lag exceeds its budget and re-admitted only
  after its lags stay at or below ``budget * readmit_fraction`` for ``readmit_hold`` seconds;
  a failed check, or a check whose lag is unknown, never admits and restarts that hold; a
  replica on its very first check (never failed) is admitted at once when its lag is low;
- ``failures_to_down`` consecutive failures, or a check whose connection broke, mark a node
  down; a down node is probed on an exponential backoff; a success brings it up, not back into
  the gate;
- a pooled connection that broke under a shell makes an up node *suspect*: one failure towards
  ``failures_to_down``, a replica stops taking reads at once, a primary keeps taking writes, and
  the node is due for a check now, which decides (further broken connections add nothing until
  then; a check begun before the suspicion does not clear it). One connection breaking says
  little about the node: an idle connection dropped by a firewall, ``pg_terminate_backend``, a
  reset. A failure reported on a down node changes only its last error: its probes are the
  monitor's, and must not be pushed later;
- a primary has no gate: its health only says whether writes can go anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Final

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

__all__ = [
    "GateParams",
    "format_bytes",
    "format_seconds",
    "mark_failed",
    "observe",
    "report_failure",
    "suspect",
]


_LABEL: Final = {
    FailureKind.CONNECT_FAILED: "connect failed",
    FailureKind.TIMEOUT: "timeout",
    FailureKind.ERROR: "error",
    FailureKind.BROKEN_CONNECTION: "broken connection",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class GateParams:
    """What the lag gate and the health machine need from the configuration.

    ``max_lag_bytes`` / ``max_lag_seconds``: budgets; ``None`` switches that budget off.
    ``readmit_fraction``: a dropped replica comes back at or below ``budget * fraction``.
    ``readmit_hold``: ... and only after staying there this long (seconds).
    ``failures_to_down``: consecutive failed checks that mark a node down.
    ``probe_backoff_initial`` / ``probe_backoff_max``: seconds between probes of a down node,
    doubling from the first to the cap. Raises ``ConfigurationError`` naming the bad field.
    """

    max_lag_bytes: int | None = 16 * 1024 * 1024
    max_lag_seconds: float | None = 5.0
    readmit_fraction: float = 0.5
    readmit_hold: float = 2.0
    failures_to_down: int = 2
    probe_backoff_initial: float = 0.5
    probe_backoff_max: float = 5.0

    def __post_init__(self) -> None:
        if self.max_lag_bytes is not None and self.max_lag_bytes < 0:
            raise ConfigurationError(
                "max_lag_bytes", f"must be >= 0 or None, not {self.max_lag_bytes}"
            )
        if self.max_lag_seconds is not None and not 0 <= self.max_lag_seconds < math.inf:
            raise ConfigurationError(
                "max_lag_seconds",
                f"must be a finite number >= 0 or None, not {self.max_lag_seconds}",
            )
        if not 0 <= self.readmit_fraction <= 1:
            raise ConfigurationError(
                "readmit_fraction", f"must be between 0 and 1, not {self.readmit_fraction}"
            )
        if not 0 <= self.readmit_hold < math.inf:
            raise ConfigurationError("readmit_hold", f"must be >= 0, not {self.readmit_hold}")
        if self.failures_to_down < 1:
            raise ConfigurationError(
                "failures_to_down", f"must be >= 1, not {self.failures_to_down}"
            )
        if not 0 < self.probe_backoff_initial < math.inf:
            raise ConfigurationError(
                "probe_backoff_initial", f"must be > 0, not {self.probe_backoff_initial}"
            )
        if not self.probe_backoff_initial <= self.probe_backoff_max < math.inf:
            raise ConfigurationError(
                "probe_backoff_max",
                f"must be >= probe_backoff_initial ({self.probe_backoff_initial}), "
                f"not {self.probe_backoff_max}",
            )


def format_bytes(n: float) -> str:
    """``"512 B"``, ``"1.5 KiB"``, ``"24.1 MiB"``, ``"16 MiB"``: for reasons, not parsing."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{_number(n)} {unit}"


def _number(x: float) -> str:
    text = f"{x:.1f}" if x < 100 else f"{x:.0f}"
    return text.removesuffix(".0")


def format_seconds(s: float) -> str:
    """``"0 s"``, ``"0.2 s"``, ``"30 s"``, ``"123 s"``: for reasons, not parsing."""
    return f"{_number(s)} s"


def mark_failed(
    health: NodeHealth, kind: FailureKind, now: float, params: GateParams, detail: str = ""
) -> NodeHealth:
    """The node after a failed check (see :func:`report_failure` for a shell's failure).

    Never admits and never makes a lag known: the hold towards re-admission restarts. Down after
    ``params.failures_to_down`` consecutive failures or at once for ``BROKEN_CONNECTION``; a down
    node's next probe waits ``probe_backoff_initial``, doubling per further failure up to
    ``probe_backoff_max``.
    """
    failures = health.failures + 1
    mixed = failures > 1 and (health.mixed_failures or health.last_failure is not kind)
    label = _LABEL[kind]
    down = (
        not health.up
        or kind is FailureKind.BROKEN_CONNECTION
        or failures >= params.failures_to_down
    )
    if not down:
        return replace(
            health,
            failures=failures,
            last_failure=kind,
            mixed_failures=mixed,
            last_error=detail,
            low_since=None,
            next_probe_at=now,
            reason=f"check failed: {label} ({failures}/{params.failures_to_down} to down)",
        )
    if health.probe_delay <= 0:
        delay = params.probe_backoff_initial
    else:
        delay = min(params.probe_backoff_max, health.probe_delay * 2)
    if failures == 1:
        reason = f"down: {label}"
    elif not mixed:
        reason = f"down: {failures} consecutive {_plural(kind)}"
    else:
        reason = f"down: {failures} consecutive failures, last {label}"
    return replace(
        health,
        health=Health.DOWN,
        admitted=False,
        lag_bytes=None,
        lag_seconds=None,
        failures=failures,
        last_failure=kind,
        mixed_failures=mixed,
        last_error=detail,
        probe_delay=delay,
        next_probe_at=now + delay,
        low_since=None,
        reason=reason,
    )


def suspect(health: NodeHealth) -> bool:
    """Whether *health* is suspect: up, with a broken pooled connection reported since its
    last check, and waiting for the check that decides (see :func:`report_failure`)."""
    return (
        health.up and health.failures > 0 and health.last_failure is FailureKind.BROKEN_CONNECTION
    )


def report_failure(
    health: NodeHealth, kind: FailureKind, now: float, params: GateParams, detail: str = ""
) -> NodeHealth:
    """The node after a failure a shell saw on one of its pooled connections (not a check).

    On a down node: only ``last_failure`` and ``last_error`` change (its probes are the
    monitor's: a report must not push the next one later). ``BROKEN_CONNECTION`` on an up node
    makes it suspect: one failure towards ``failures_to_down`` (down only if that reaches it),
    not admitted (a replica stops taking reads; a primary keeps taking writes), due for a check
    at ``now``. A suspect node's further broken connections return *health* itself: they add
    nothing until a check decides. Any other kind counts as a failed check
    (:func:`mark_failed`). The caller asks the monitor for an immediate check when the result
    is up and not *health* itself.
    """
    if not health.up:
        if (health.last_failure, health.last_error) == (kind, detail):
            return health
        return replace(health, last_failure=kind, last_error=detail)
    if kind is not FailureKind.BROKEN_CONNECTION:
        return mark_failed(health, kind, now, params, detail)
    if suspect(health):
        return health
    failures = health.failures + 1
    if failures >= params.failures_to_down:
        return mark_failed(health, kind, now, params, detail)
    mixed = failures > 1 and (health.mixed_failures or health.last_failure is not kind)
    to_down = params.failures_to_down
    # low_since is kept: a replica whose lag has stayed low comes back with the next good check,
    # without a fresh hold (a failed check restarts the hold).
    return replace(
        health,
        admitted=False,
        failures=failures,
        last_failure=kind,
        mixed_failures=mixed,
        last_error=detail,
        next_probe_at=now,
        reason=f"suspect: broken connection, checking ({failures}/{to_down} to down)",
    )


def _plural(kind: FailureKind) -> str:
    return {
        FailureKind.CONNECT_FAILED: "connect failures",
        FailureKind.TIMEOUT: "timeouts",
        FailureKind.ERROR: "errors",
        FailureKind.BROKEN_CONNECTION: "broken connections",
    }[kind]


def observe(
    health: NodeHealth,
    observation: Observation,
    primary_lsn: Lsn | None,
    now: float,
    params: GateParams,
    *,
    history: WalHistory | None = None,
) -> NodeHealth:
    """The node after one check.

    ``primary_lsn`` is the primary's ``pg_current_wal_lsn()`` from this tick, ``None`` when
    unknown (no primary, primary check failed, two primaries): a replica's lag is then unknown,
    which neither drops nor admits it. ``history``, when given, tightens the time lag (see
    :class:`WalHistory`). Pure: same inputs, same result.
    """
    if isinstance(observation, CheckFailure):
        return mark_failed(health, observation.kind, now, params, observation.detail)
    if suspect(health) and now < health.next_probe_at:
        return health  # a check begun before the connection broke cannot clear the suspicion
    status = observation
    # The hold is there to stop flapping. A node on its first check that has never failed has
    # nothing to flap from: a router that just started can use its replicas at once.
    first_sight = health.checked_at is None and health.failures == 0
    common = replace(
        health,
        health=Health.UP,
        wal_lsn=status.wal_lsn,
        replay_lsn=status.replay_lsn,
        receive_lsn=status.receive_lsn,
        replay_paused=status.replay_paused,
        failures=0,
        mixed_failures=False,
        probe_delay=0.0,
        next_probe_at=now,
        checked_at=now,
        timeline=status.timeline,
        sees_receiver=status.sees_receiver,
    )
    if not status.in_recovery:
        return replace(
            common,
            role=Role.PRIMARY,
            led_timeline=status.timeline if status.timeline is not None else health.led_timeline,
            admitted=False,
            lag_bytes=0,
            lag_seconds=0.0,
            low_since=None,
            reason="primary",
        )
    replica = replace(common, role=Role.REPLICA)
    return _gate(replica, status, primary_lsn, now, params, history, first_sight)


def _gate(  # noqa: PLR0917 - private, called from one place
    health: NodeHealth,
    status: NodeStatus,
    primary_lsn: Lsn | None,
    now: float,
    params: GateParams,
    history: WalHistory | None,
    first_sight: bool,
) -> NodeHealth:
    replay = status.replay_lsn
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    unknown = ""
    if primary_lsn is None:
        unknown = "primary position unknown"
    elif replay is None:
        unknown = "no replay position"
    elif replay >= primary_lsn:
        lag_bytes, lag_seconds = 0, 0.0
    else:
        lag_bytes = primary_lsn - replay
        if status.server_now is not None and status.last_replay_at is not None:
            lag_seconds = max(0.0, status.server_now - status.last_replay_at)
        if history is not None:
            bound = history.seconds_behind(replay, now)
            if bound is not None and (lag_seconds is None or bound < lag_seconds):
                lag_seconds = bound
        if status.replay_paused:
            return _drop(
                health, lag_bytes, lag_seconds, f"replay paused {format_bytes(lag_bytes)} behind"
            )

    over = _over_budget(lag_bytes, lag_seconds, params)
    if over:
        return _drop(health, lag_bytes, lag_seconds, over)
    if not unknown and params.max_lag_seconds is not None and lag_seconds is None:
        unknown = "no replay timestamp"
    if unknown:
        # Unknown is not zero: never admits; an admitted replica stays (a dead primary must not
        # take every replica out of service with it).
        held = "" if health.admitted else "held out, "
        return replace(
            health,
            lag_bytes=lag_bytes,
            lag_seconds=lag_seconds,
            low_since=None,
            reason=f"{held}lag unknown: {unknown}",
        )
    shown = _lag_text(lag_bytes, lag_seconds)
    if not _below_mark(lag_bytes, lag_seconds, params):
        reason = shown if health.admitted else f"held out: {shown}, above the re-admit mark"
        return replace(
            health, lag_bytes=lag_bytes, lag_seconds=lag_seconds, low_since=None, reason=reason
        )
    low_since = now if health.low_since is None else health.low_since
    if health.admitted:
        reason = shown
    elif first_sight or now - low_since >= params.readmit_hold:
        return replace(
            health,
            admitted=True,
            lag_bytes=lag_bytes,
            lag_seconds=lag_seconds,
            low_since=low_since,
            reason=f"admitted: {shown}",
        )
    else:
        low_for = _number(now - low_since)
        reason = f"re-admitting: {shown}, low for {low_for}/{format_seconds(params.readmit_hold)}"
    return replace(
        health, lag_bytes=lag_bytes, lag_seconds=lag_seconds, low_since=low_since, reason=reason
    )


def _drop(
    health: NodeHealth, lag_bytes: int | None, lag_seconds: float | None, reason: str
) -> NodeHealth:
    return replace(
        health,
        admitted=False,
        lag_bytes=lag_bytes,
        lag_seconds=lag_seconds,
        low_since=None,
        reason=reason,
    )


def _over_budget(lag_bytes: int | None, lag_seconds: float | None, params: GateParams) -> str:
    budget_b, budget_s = params.max_lag_bytes, params.max_lag_seconds
    if budget_b is not None and lag_bytes is not None and lag_bytes > budget_b:
        return f"lag {format_bytes(lag_bytes)} > {format_bytes(budget_b)} budget"
    if budget_s is not None and lag_seconds is not None and lag_seconds > budget_s:
        return f"lag {format_seconds(lag_seconds)} > {format_seconds(budget_s)} budget"
    return ""


def _below_mark(lag_bytes: int | None, lag_seconds: float | None, params: GateParams) -> bool:
    # "At or below" so that a zero budget (must be caught up) can re-admit at zero lag.
    fraction = params.readmit_fraction
    if params.max_lag_bytes is not None and (
        lag_bytes is None or lag_bytes > params.max_lag_bytes * fraction
    ):
        return False
    return params.max_lag_seconds is None or (
        lag_seconds is not None and lag_seconds <= params.max_lag_seconds * fraction
    )


def _lag_text(lag_bytes: int | None, lag_seconds: float | None) -> str:
    b = "?" if lag_bytes is None else format_bytes(lag_bytes)
    s = "?" if lag_seconds is None else format_seconds(lag_seconds)
    return f"lag {b}, {s}"
