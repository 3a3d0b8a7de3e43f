"""What the shells share: the pools' settings and per-node counters, and lifecycle states."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from router.core import Ewma

__all__ = ["NodeStats", "PoolSettings", "State"]


class State(enum.StrEnum):
    """A router's (or session factory's) lifecycle: made (no I/O yet), open, closed for good.
    A ``StrEnum``: its values read and compare as the strings they are."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class PoolSettings:
    min_size: int
    max_size: int
    acquire_timeout: float
    connect_timeout: float
    max_lifetime: float | None
    max_idle: float | None
    max_queries: int | None
    statement_cache_size: int  # asyncpg
    prepare_threshold: int | None  # psycopg; None: never prepare
    application_name: str
    replica_read_only: bool
    command_timeout: float | None = None  # the pool's own statements (reset, SET)


@dataclass(slots=True)
class NodeStats:
    """Per-node counters; also what the policies read (name, weight, outstanding, latency)."""

    name: str
    weight: float = 1.0
    #: One entry per statement under way on the node: ``append`` / ``pop``, each one atomic
    #: step, so threads need no lock to count (a ``+= 1`` is a read and a write).
    in_flight: list[None] = field(default_factory=list, repr=False)
    latency: Ewma = field(default_factory=lambda: Ewma(alpha=0.2))
    waiting: int = 0
    acquired: int = 0
    acquire_wait: float = 0.0
    errors: int = 0
    reads: int = 0
    writes: int = 0

    @property
    def outstanding(self) -> int:
        """Statements under way on the node (what ``least-outstanding`` compares)."""
        return len(self.in_flight)

    @property
    def ewma_latency(self) -> float | None:
        return self.latency.value
