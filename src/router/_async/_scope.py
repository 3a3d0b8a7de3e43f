"""What a caller has seen: the state behind read-your-writes and monotonic reads."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from router.core import Classification, Consistency, Effect, Lsn
from router.core._route import Decision

__all__ = ["LAST_DECISION", "Call", "Scope", "commit_position", "needs_session"]

#: The decision behind the latest statement of the current task (or thread): where it ran
#: and why. Read through ``AsyncRouter.last_decision``.
LAST_DECISION: ContextVar[Decision | None] = ContextVar("router_last_decision", default=None)

#: Effects whose state lives on one connection: only a session can keep them.
_SESSION_ONLY = frozenset({Effect.TX_BEGIN, Effect.TX_END, Effect.SAVEPOINT, Effect.PIN})
_POSITION_QUERY = "SELECT pg_current_wal_insert_lsn()::text"


def needs_session(cls: Classification) -> bool:
    """Whether the statement leaves state (a transaction block, a setting, ...) that a pooled
    connection would lose, or leak to the next caller, outside a session."""
    return bool(cls.effects) and not cls.effects.isdisjoint(_SESSION_ONLY)


async def commit_position(conn: Any) -> Lsn:
    """The primary's WAL insert position, read after a commit: at or past its commit record
    whatever ``synchronous_commit`` says, so a replica that replayed it has the commit."""
    return Lsn.parse(await conn.fetchval(_POSITION_QUERY))


class Scope:
    """The consistency a caller reads at and the WAL position it must not read behind.

    The router has one for calls made outside any session; each session has its own. A write
    that commits raises the floor to the position after its commit record; with
    ``read_your_writes`` later reads go only to replicas that have replayed it. ``sticky``: the
    replica the session read from last, preferred while it stays eligible (a replica's replay
    position only moves forward, so staying on it keeps reads monotonic for free).
    """

    __slots__ = ("consistency", "floor", "parent", "sticky")

    def __init__(
        self, consistency: Consistency, floor: Lsn | None = None, parent: Scope | None = None
    ) -> None:
        self.consistency = consistency
        self.floor = floor
        self.parent = parent
        self.sticky: str | None = None

    def advance(self, lsn: Lsn | None) -> None:
        """Raise the floor to *lsn* (never lower it); the parent scope sees it too, so the
        router's token covers every session's commits."""
        scope: Scope | None = self
        while scope is not None and lsn is not None:
            if scope.floor is None or lsn > scope.floor:
                scope.floor = lsn
            scope = scope.parent

    @property
    def wants_position(self) -> bool:
        """Whether a commit's WAL position is worth a round trip to fetch."""
        return self.consistency is Consistency.READ_YOUR_WRITES


class Call:
    """One statement on its way: the driver method, its arguments, and its classification."""

    __slots__ = ("args", "cls", "kw", "method", "query")

    def __init__(
        self,
        method: str,
        query: str,
        args: tuple[Any, ...],
        kw: dict[str, Any],
        cls: Classification,
    ) -> None:
        self.method = method
        self.query = query
        self.args = args
        self.kw = kw
        self.cls = cls

    async def on(self, conn: Any) -> Any:
        """Run it on a driver connection."""
        return await getattr(conn, self.method)(self.query, *self.args, **self.kw)
