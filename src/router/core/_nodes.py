"""The values the health machine works on: what a check saw, and what is known about a node.

Transitions live in :mod:`router.core._health`; the view over all nodes in
:mod:`router.core._topology`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from router.core._lsn import Lsn

__all__ = [
    "CheckFailure",
    "FailureKind",
    "Health",
    "NodeHealth",
    "NodeStatus",
    "Observation",
    "Role",
    "WalHistory",
]


class Role(StrEnum):
    """The role a node reported at its last successful check."""

    PRIMARY = "primary"
    REPLICA = "replica"
    UNKNOWN = "unknown"


class Health(StrEnum):
    UP = "up"
    DOWN = "down"


class FailureKind(StrEnum):
    """Why a check, or a connection the shell was using, failed."""

    CONNECT_FAILED = "connect_failed"
    TIMEOUT = "timeout"
    ERROR = "error"
    BROKEN_CONNECTION = "broken_connection"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    """One successful check of a node.

    ``in_recovery``: ``pg_is_in_recovery()``. ``wal_lsn``: ``pg_current_wal_lsn()`` (primary
    only). ``replay_lsn`` / ``receive_lsn``: ``pg_last_wal_replay_lsn()`` /
    ``pg_last_wal_receive_lsn()``. ``replay_paused``: ``pg_is_wal_replay_paused()``.
    ``last_replay_at``: ``pg_last_xact_replay_timestamp()`` as epoch seconds. ``server_now``: the
    node's ``now()`` in the same query, epoch seconds. ``None`` where the server said NULL.
    ``timeline``: a primary's timeline (of the WAL it writes); a standby's, the one its WAL
    receiver streams (``None`` while it streams nothing, or when this user may not see it).
    ``sees_receiver``: whether this user may see a standby's WAL receiver (superuser or
    ``pg_read_all_stats``): only then does a ``None`` timeline mean "streams nothing".
    """

    in_recovery: bool
    wal_lsn: Lsn | None = None
    replay_lsn: Lsn | None = None
    receive_lsn: Lsn | None = None
    replay_paused: bool = False
    last_replay_at: float | None = None
    server_now: float | None = None
    timeline: int | None = None
    sees_receiver: bool = False


@dataclass(frozen=True, slots=True)
class CheckFailure:
    """A check that failed. ``detail`` goes to :attr:`NodeHealth.last_error`, never to the
    reason; the shell must keep secrets out of it."""

    kind: FailureKind
    detail: str = ""


Observation = NodeStatus | CheckFailure


@dataclass(frozen=True, slots=True)
class WalHistory:
    """Recent ``(now, pg_current_wal_lsn())`` samples of the primary, oldest first.

    Why: ``now() - pg_last_xact_replay_timestamp()`` is really "time since the last replayed
    commit". When the primary writes WAL without commits (hint-bit full-page images under data
    checksums, checkpoints, vacuum) a replica a few microseconds behind would show minutes of
    lag. The samples give a second upper bound: a replica that has replayed the position the
    primary had at time ``t`` is at most ``now - t`` behind. The lag gate takes the smaller.
    """

    node: str | None = None
    samples: tuple[tuple[float, Lsn], ...] = ()

    LIMIT: ClassVar[int] = 64

    @property
    def latest(self) -> Lsn | None:
        return self.samples[-1][1] if self.samples else None

    def record(self, node: str, lsn: Lsn, now: float) -> WalHistory:
        """Add a sample of ``node``'s position; a new primary, or a position that went back
        (a restored node), starts a fresh history."""
        samples = self.samples
        if node != self.node or not samples or lsn < samples[-1][1]:
            return WalHistory(node, ((now, lsn),))
        if lsn == samples[-1][1]:
            # The primary was still there at `now`: the later time gives the tighter bound.
            return WalHistory(node, (*samples[:-1], (now, lsn)))
        return WalHistory(node, (*samples[-(self.LIMIT - 1) :], (now, lsn)))

    def seconds_behind(self, replay: Lsn, now: float) -> float | None:
        """Upper bound on how far behind a replica at ``replay`` is, or ``None`` when no sample is
        old enough to say."""
        for at, lsn in reversed(self.samples):
            if lsn <= replay:
                return max(0.0, now - at)
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeHealth:
    """What the router knows about one node; a new value after every check.

    ``role``: as last reported (a down node keeps the role it was last seen with). ``admitted``:
    may serve replica reads (the lag gate's verdict; never for a primary). ``lag_bytes`` /
    ``lag_seconds``: ``None`` is unknown. ``replay_lsn``: last observed replay position (the
    read-your-writes floor compares against it). ``failures``: consecutive failed checks.
    ``last_failure`` / ``mixed_failures``: the latest failure's kind, and whether the current run
    of failures mixed kinds. ``next_probe_at``: when a down node is due for its next probe.
    ``low_since``: since when the lag has stayed at or below the re-admit mark. ``reason``: a
    short human string for telemetry. ``timeline`` / ``sees_receiver``: from the latest check
    (see :class:`NodeStatus`). ``led_timeline``: the timeline this node was last seen writing
    as a primary, kept while it is a standby until it is seen streaming the current primary's
    timeline (a former primary's WAL past the fork belongs to a history the cluster left).
    ``ahead_of``: a primary position this standby had replayed past (on one history a standby
    never passes its primary: it replays another), kept until its replay position goes back
    (it was rewound or rebuilt) or it is seen streaming the primary's timeline.
    """

    name: str
    role: Role = Role.UNKNOWN
    health: Health = Health.DOWN
    admitted: bool = False
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    wal_lsn: Lsn | None = None
    replay_lsn: Lsn | None = None
    receive_lsn: Lsn | None = None
    replay_paused: bool = False
    failures: int = 0
    last_failure: FailureKind | None = None
    mixed_failures: bool = False
    last_error: str = ""
    probe_delay: float = 0.0
    next_probe_at: float = -math.inf
    low_since: float | None = None
    checked_at: float | None = None
    timeline: int | None = None
    sees_receiver: bool = False
    led_timeline: int | None = None
    ahead_of: Lsn | None = None
    reason: str = "not checked yet"

    @property
    def up(self) -> bool:
        return self.health is Health.UP

    def should_probe(self, now: float) -> bool:
        """True when a check is due: always for an up node, after the backoff for a down one."""
        return now >= self.next_probe_at
