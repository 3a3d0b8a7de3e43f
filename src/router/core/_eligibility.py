"""Which replicas may serve a read, under a consistency level and a session's floor.

:func:`eligible` runs on the hot path of every replica read: it looks at the current
:class:`~router.core._topology.Topology` and returns the names of the replicas a policy may pick
from, in configuration order, plus, for each replica left out, why. Reasons are built only when
asked for.

Levels (design §4):

- ``strong``: no replica; the primary serves.
- ``read_your_writes`` (the default): replicas the lag gate admits whose last observed replay
  position is at or past the session's floor (its latest commit position, or the highest
  position it has read at: monotonic reads).
- ``bounded``: replicas the lag gate admits; the floor still applies when one is given.
- ``eventual``: any up replica, lag ignored; the floor still applies when one is given.

A per-call ``max_staleness`` replaces the lag gate for ``read_your_writes``, ``bounded`` and
``eventual``: a replica qualifies when its *known* lags are within it, whatever the gate's
hysteresis says (an explicit bound from the caller is an answer, not a hint). Unknown lag never
qualifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from router.core._health import format_bytes, format_seconds, suspect
from router.core._lsn import Lsn
from router.core._nodes import Health, NodeHealth, Role
from router.core._topology import Topology

__all__ = ["Cause", "Consistency", "Eligibility", "Exclusion", "Staleness", "eligible"]


class Consistency(StrEnum):
    STRONG = "strong"
    READ_YOUR_WRITES = "read_your_writes"
    BOUNDED = "bounded"
    EVENTUAL = "eventual"


class Cause(StrEnum):
    """Why a replica was left out; ``FLOOR`` is the only one a short wait may cure."""

    DOWN = "down"
    ROLE = "role"
    LAG_GATE = "lag_gate"
    STALENESS = "staleness"
    TIMELINE = "timeline"
    FLOOR = "floor"


@dataclass(frozen=True, slots=True, kw_only=True)
class Staleness:
    """A per-call bound on replica lag; ``None`` leaves that dimension unbounded.

    Raises ``ValueError`` for a negative or NaN bound.
    """

    max_bytes: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.max_bytes is not None and self.max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, not {self.max_bytes}")
        if self.max_seconds is not None and not self.max_seconds >= 0:
            raise ValueError(f"max_seconds must be >= 0, not {self.max_seconds}")

    def admits(self, node: NodeHealth) -> bool:
        """Whether ``node``'s known lags are within this bound (unknown never is)."""
        if self.max_bytes is not None and (
            node.lag_bytes is None or node.lag_bytes > self.max_bytes
        ):
            return False
        return self.max_seconds is None or (
            node.lag_seconds is not None and node.lag_seconds <= self.max_seconds
        )


@dataclass(frozen=True, slots=True)
class Exclusion:
    """One replica left out: ``name``, ``cause``, and (lazily) a human ``reason``."""

    node: NodeHealth
    cause: Cause
    floor: Lsn | None = None
    staleness: Staleness | None = None

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def reason(self) -> str:
        node = self.node
        if self.cause is Cause.FLOOR:
            at = "nothing" if node.replay_lsn is None else str(node.replay_lsn)
            return f"replayed {at}, session needs {self.floor}"
        if self.cause is Cause.STALENESS and self.staleness is not None:
            return _staleness_reason(node, self.staleness)
        if self.cause is Cause.ROLE:
            return f"role {node.role}"
        if self.cause is Cause.TIMELINE:
            return _timeline_reason(node)
        return node.reason


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The outcome of :func:`eligible`.

    ``replicas``: names a policy may choose from, configuration order. ``excluded``: every other
    node that is not the primary, with its cause. ``min_replay``: the lowest replay position
    among ``replicas`` (``None`` if none, or if one has never reported any). Empty ``replicas``:
    fall back to the primary, or raise ``NoReplicaAvailable`` with :attr:`reason`.
    """

    consistency: Consistency
    replicas: tuple[str, ...]
    excluded: tuple[Exclusion, ...] = ()
    min_replay: Lsn | None = None

    def __bool__(self) -> bool:
        return bool(self.replicas)

    @property
    def behind_floor(self) -> tuple[str, ...]:
        """Replicas that qualify in every way but the floor: the ones worth waiting on
        (``ryw_wait``)."""
        return tuple(e.name for e in self.excluded if e.cause is Cause.FLOOR)

    @property
    def reason(self) -> str:
        """Why no replica qualifies (or ``""`` when some do)."""
        if self.replicas:
            return ""
        if self.consistency is Consistency.STRONG:
            return "consistency strong: primary only"
        if not self.excluded:
            return "no replica known"
        parts = "; ".join(f"{e.name}: {e.reason}" for e in self.excluded)
        return f"no eligible replica ({parts})"


def eligible(
    topology: Topology,
    consistency: Consistency,
    *,
    floor: Lsn | None = None,
    max_staleness: Staleness | None = None,
) -> Eligibility:
    """The replicas that may serve a read now.

    ``floor``: the session's floor position (read-your-writes, monotonic reads); a replica
    qualifies only if its last observed replay position is at or past it. ``max_staleness``:
    a per-call lag bound that replaces the lag gate. Nodes last seen as primary are neither
    eligible nor listed as excluded.

    Without ``max_staleness`` the answer per level is computed once per topology value, and a
    floor that every eligible replica has passed returns that same object: the common read
    costs a dict lookup and a comparison.
    """
    if consistency is Consistency.STRONG:
        return _STRONG
    if max_staleness is not None:
        return _compute(topology, consistency, floor, max_staleness)
    memo = topology.memo
    # Keyed by the level's name: an Enum member's __hash__ is a Python-level call, on every read.
    base: Eligibility | None = memo.get(consistency._name_)
    if base is None:
        base = memo[consistency._name_] = _compute(topology, consistency, None, None)
    if floor is None or not base.replicas:
        return base
    lowest = base.min_replay
    if lowest is not None and floor <= lowest:
        return base
    return _compute(topology, consistency, floor, None)


def _compute(
    topology: Topology,
    consistency: Consistency,
    floor: Lsn | None,
    max_staleness: Staleness | None,
) -> Eligibility:
    gated = max_staleness is None and consistency is not Consistency.EVENTUAL
    names: list[str] = []
    excluded: list[Exclusion] = []
    lowest: Lsn | None = None
    blank = False  # an eligible replica with no replay position: no floor fast path
    for node in topology.nodes:
        role = node.role
        if role is _PRIMARY:
            continue
        cause: Cause | None = None
        if node.health is not _UP or suspect(node):
            # A suspect node (a pooled connection broke, its check is under way) is out at any
            # consistency, eventual included: behind a pooler that check may take as long as
            # the pooler's query_wait_timeout, and every read sent there meanwhile fails.
            cause = Cause.DOWN
        elif role is not _REPLICA:
            cause = Cause.ROLE
        elif topology.off_timeline(node):
            # At every level: its data may hold commits the cluster lost, or lack ones it has
            # at positions it has "replayed" on another history.
            cause = Cause.TIMELINE
        elif gated:
            if not node.admitted:
                cause = Cause.LAG_GATE
        elif max_staleness is not None and not max_staleness.admits(node):
            cause = Cause.STALENESS
        replay = node.replay_lsn
        if cause is None and floor is not None and (replay is None or replay < floor):
            cause = Cause.FLOOR
        if cause is None:
            names.append(node.name)
            if replay is None:
                blank = True
            elif lowest is None or replay < lowest:
                lowest = replay
        else:
            excluded.append(Exclusion(node, cause, floor, max_staleness))
    return Eligibility(consistency, tuple(names), tuple(excluded), None if blank else lowest)


_PRIMARY: Final = Role.PRIMARY
_REPLICA: Final = Role.REPLICA
_UP: Final = Health.UP
_STRONG: Final = Eligibility(Consistency.STRONG, ())


def _staleness_reason(node: NodeHealth, bound: Staleness) -> str:
    if bound.max_bytes is not None:
        if node.lag_bytes is None:
            return "byte lag unknown"
        if node.lag_bytes > bound.max_bytes:
            lag, limit = format_bytes(node.lag_bytes), format_bytes(bound.max_bytes)
            return f"lag {lag} > {limit} max staleness"
    if node.lag_seconds is None:
        return "time lag unknown"
    limit = "?" if bound.max_seconds is None else format_seconds(bound.max_seconds)
    return f"lag {format_seconds(node.lag_seconds)} > {limit} max staleness"


def _timeline_reason(node: NodeHealth) -> str:
    if node.ahead_of is not None:
        return f"replayed past the primary's {node.ahead_of}: another history"
    if node.timeline is not None:
        return f"streams timeline {node.timeline}, older than the primary's"
    if node.led_timeline is not None:
        return f"former primary of timeline {node.led_timeline}, not streaming the primary's yet"
    return "on an older timeline than the primary's (Patroni)"
