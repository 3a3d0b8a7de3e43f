"""What a caller has seen: the state behind read-your-writes and monotonic reads."""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from router._context import SHARED_FLOOR
from router.core import Classification, Consistency, Decision, Effect, Lsn

if TYPE_CHECKING:
    from router._context import SharedFloor

__all__ = [
    "LAST_DECISION",
    "POSITION_LOST",
    "POSITION_QUERY",
    "REPLAY_QUERY",
    "Call",
    "Scope",
    "begin_statement",
    "needs_session",
]

#: The decision behind the latest statement of the current task (or thread): where it ran
#: and why. Read through ``AsyncRouter.last_decision``.
LAST_DECISION: ContextVar[Decision | None] = ContextVar("router_last_decision", default=None)

#: Effects whose state lives on one connection: only a session can keep them.
_SESSION_ONLY = frozenset({Effect.TX_BEGIN, Effect.TX_END, Effect.SAVEPOINT, Effect.PIN})
#: The primary's WAL insert position, read after a commit: at or past its commit record
#: whatever ``synchronous_commit`` says, so a replica that replayed it has the commit.
POSITION_QUERY = "SELECT pg_current_wal_insert_lsn()::text"
#: A replica's replay position: what a read there sees at least.
REPLAY_QUERY = "SELECT pg_last_wal_replay_lsn()::text"
#: The decision counter (``stats()["decisions"][node]``) of reads whose floor named WAL the
#: primary never had (lost in a failover): the floor was reset.
POSITION_LOST = "position-lost"
#: Floors only rise; threads of a sync router share its scope, so the rise is atomic.
_ADVANCE = threading.Lock()


_ISOLATION = {
    "serializable": "SERIALIZABLE",
    "repeatable_read": "REPEATABLE READ",
    "read_committed": "READ COMMITTED",
    "read_uncommitted": "READ UNCOMMITTED",
}


def begin_statement(isolation: str | None, readonly: bool) -> str:
    """``BEGIN`` with an isolation level (``"repeatable_read"`` or ``"repeatable read"``,
    as asyncpg and SQL spell them) and READ ONLY; a :class:`ValueError` for a level that
    does not exist, before anything is sent."""
    sql = "BEGIN"
    if isolation is not None:
        level = _ISOLATION.get(isolation.strip().lower().replace(" ", "_"))
        if level is None:
            choices = ", ".join(sorted(_ISOLATION))
            raise ValueError(f"isolation: {isolation!r} is not one of {choices}")
        sql += f" ISOLATION LEVEL {level}"
    return sql + " READ ONLY" if readonly else sql


def needs_session(cls: Classification) -> bool:
    """Whether the statement leaves state (a transaction block, a setting, ...) that a pooled
    connection would lose, or leak to the next caller, outside a session."""
    return bool(cls.effects) and not cls.effects.isdisjoint(_SESSION_ONLY)


class Scope:
    """The consistency a caller reads at and the WAL position it must not read behind.

    Every front door (the raw routers, their sessions, the SQLAlchemy sessions) keeps these
    rules through this class alone:

    - **Read-your-writes.** A write that commits raises the floor to the position after its
      commit record (:meth:`advance`); with ``read_your_writes`` later reads go only to
      replicas that have replayed it.
    - **What a new session and a call outside a session see** (the router's *root* scope):
      every commit made through this router before, by any task or thread, in a session or
      outside one (the root scope's :attr:`floor`). A per-task floor would offload more, but
      a commit made in a task of its own (``asyncio.wait_for`` before Python 3.12, a task per
      operation) would then be missed by the code that awaited it. Offload under steady
      writes comes from confirming a replica's position when the monitor has not seen it at
      the floor yet (the front doors do, at the read), not from a weaker floor.
    - **Monotonic reads, in a session** (a scope with a parent): no read returns an older state
      than an earlier read of the session, whichever node served either. A read on node *n*
      is recorded (:meth:`read_on`); before a read on another replica, the session's floor
      must first rise to a position at or past what *n* showed (:meth:`unsettled` says when;
      the front door reads the primary's position, which is past anything any node showed
      before, and calls :meth:`settle_reads`). Staying on the same node, or moving to the primary,
      needs nothing: a node's state only moves forward, and the primary is ahead of all.
      Calls outside a session are read-your-writes but not monotonic among themselves: each
      may go to another replica.

    ``sticky``: the replica the session read from last, preferred while it stays eligible.
    ``shared``: the floor of the web request or job the session belongs to
    (``router._context``), told of its commits.
    """

    __slots__ = (
        "consistency",
        "epoch",
        "floor",
        "kept",
        "lost",
        "parent",
        "seen_on",
        "shared",
        "sticky",
        "verified",
    )

    def __init__(
        self, consistency: Consistency, floor: Lsn | None = None, parent: Scope | None = None
    ) -> None:
        self.consistency = consistency
        self.floor = floor
        self.parent = parent
        self.sticky: str | None = None
        #: The node a read of this session ran on since its floor was last set from a
        #: position read after it (``None``: nothing unaccounted for).
        self.seen_on: str | None = None
        self.shared: SharedFloor | None = None
        #: Commits whose position could not be read since the floor was last known to cover
        #: them all (0: none). While it is not 0 the floor is behind this scope's writes (or,
        #: inherited by a new session, behind a commit made through the router before it).
        self.lost = 0
        #: On the router's own scope (the root): how many times the primary moved to another
        #: node. A floor is known to exist on the current primary's timeline when it was
        #: raised, or checked there, in the current epoch (``verified``); an imported token
        #: (an ``after=`` floor) is not, until checked.
        self.epoch = 0
        if floor is not None:
            self.verified = -1
        else:  # the root's epoch (self.root, without its frame: sessions are made per request)
            root = self if parent is None else parent
            while root.parent is not None:
                root = root.parent
            self.verified = root.epoch
        #: ``(epoch, lsn)``: the latest commit of that epoch that could not raise the floor
        #: while it was unverified (:meth:`settle` never resets it below that).
        self.kept: tuple[int, Lsn] | None = None

    @property
    def root(self) -> Scope:
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    @classmethod
    def for_router(cls, consistency: Consistency) -> Scope:
        """A router's scope for calls outside any session."""
        return cls(consistency)

    def session(self, consistency: Consistency | None, after: Lsn | None) -> Scope:
        """A new session's scope under this root: at or past *after* and, under
        ``read_your_writes``, at or past every commit made through the router before (unless
        a web request's or job's floor is in force: see ``router._context``), including one
        whose position could not be read (the root's :attr:`lost`: the session starts with
        the loss, and reads on the primary until a position read covers it)."""
        level = self.consistency if consistency is None else consistency
        floor = after
        # Inside a unit of work with a floor of its own (router.web's request or job scope),
        # that floor says what the session must see (attached by the caller): other requests'
        # commits are not waited for, as the web scope promises.
        if level is Consistency.READ_YOUR_WRITES and SHARED_FLOOR.get() is None:
            seen = self.floor
            if seen is not None and (floor is None or seen > floor):
                floor = seen
        scope = Scope(level, floor, self)
        if floor is not None and floor is not after:
            # The router's own floor, not an imported one: as verified as the router's.
            scope.verified = self.verified
        if self.lost and level is Consistency.READ_YOUR_WRITES and SHARED_FLOOR.get() is None:
            # A commit made through the router before went by without its position: the
            # floor taken above is behind it, and so may be any token of the session that
            # made it (a session handing its token to the next one): until a position read
            # covers it, this session reads where it surely is, as that session does.
            scope.lost = 1
        return scope

    @property
    def read_floor(self) -> Lsn | None:
        """The position reads of this scope must be at or past."""
        return self.floor

    def advance(self, lsn: Lsn | None) -> None:
        """A commit's position, read after the commit (so after every read this scope made):
        raise the floor to *lsn* (never lower it), and the parents' (the router's floor
        covers every session's commits)."""
        if lsn is None:
            return
        epoch = self.root.epoch
        with _ADVANCE:
            scope: Scope | None = self
            while scope is not None:
                if scope.floor is None or lsn > scope.floor:
                    scope.floor = lsn
                    scope.verified = epoch
                elif scope.verified != epoch and (
                    scope.kept is None or scope.kept[0] != epoch or lsn > scope.kept[1]
                ):
                    # Below a floor not known on this timeline (one :meth:`settle` may reset):
                    # a commit of this timeline the reset must not go below.
                    scope.kept = (epoch, lsn)
                scope = scope.parent
            if self.shared is not None:
                self.shared.record_commit(lsn)
        self.seen_on = None

    def read_on(self, node: str, replayed: Lsn | None = None, *, replica: bool) -> None:
        """A read of this session ran on *node* (a replica known to have replayed at least
        *replayed*). Nothing for calls outside a session."""
        if self.parent is None:
            return
        if self.consistency is Consistency.READ_YOUR_WRITES:
            self.seen_on = node
        if replica:
            # Stay on this replica while it is eligible (its replay only moves forward); and
            # never go below what it is known to have replayed.
            self.sticky = node
            if replayed is not None and (self.floor is None or replayed > self.floor):
                self.floor = replayed

    def unsettled(self, node: str | None, primary: bool) -> bool:
        """Whether a read on *node* must wait for :meth:`settle`: it is a replica other than
        the node this session last read from, and that read is not yet covered by the floor."""
        seen = self.seen_on
        return seen is not None and not primary and node != seen

    def settle_reads(self, lsn: Lsn) -> None:
        """The primary's position, read after the session's last read: the floor covers it."""
        if self.floor is None or lsn > self.floor:
            self.floor = lsn
        self.seen_on = None

    def lose_position(self) -> None:
        """A commit went by whose position could not be read (the commit stands): the floor
        is behind it, here, in the parent scopes and on the shared floor of the unit of work,
        until :meth:`regain_position`. Sessions opened meanwhile under the same root (or the
        same shared floor) start with the loss (:meth:`session`, ``router._context.attach``):
        their floor, and any token handed to them, may be behind that commit."""
        with _ADVANCE:
            for lossy in self._lossy():
                lossy.lost += 1

    def _lossy(self) -> list[Scope | SharedFloor]:
        """This scope, its parents and its shared floor: whatever a lost position concerns."""
        found: list[Scope | SharedFloor] = []
        scope: Scope | None = self
        while scope is not None:
            found.append(scope)
            scope = scope.parent
        if self.shared is not None:
            found.append(self.shared)
        return found

    def losses(self) -> list[tuple[Scope | SharedFloor, int]]:
        """What :meth:`regain_position` needs: each scope up the chain (and the shared floor)
        with its count of lost positions, taken *before* the primary's position is read."""
        with _ADVANCE:
            return [(lossy, lossy.lost) for lossy in self._lossy()]

    def regain_position(self, lsn: Lsn, losses: list[tuple[Scope | SharedFloor, int]]) -> None:
        """*lsn*, the primary's position read after :meth:`losses` was taken, covers every
        commit lost before: raise the floor to it, and forget those losses (not one lost
        meanwhile, which *lsn* may not cover)."""
        self.advance(lsn)
        with _ADVANCE:
            for lossy, lost in losses:
                if lossy.lost == lost:
                    lossy.lost = 0
        if self.shared is not None:
            self.shared.covered(lsn)

    def unverified(self, known: Lsn | None, fork: Lsn | None = None) -> bool:
        """Whether the floor must be checked on the primary before a read: it was not
        raised or checked since the primary last moved (or it was imported), and it is not at
        or below *fork* (the WAL the current primary shares with the one before it), and,
        while the primary never moved, it is past *known* (the primary's latest sampled
        position; ``None``: unknown)."""
        floor = self.floor
        root = self.root
        if floor is None or self.verified == root.epoch:
            return False
        if fork is not None and floor <= fork:
            return False
        return root.epoch > 0 or known is None or floor > known

    def settle(self, primary_lsn: Lsn) -> Lsn | None:
        """The primary's current position *primary_lsn* was read: every floor of the chain
        at or below it is verified; an unverified floor beyond it names WAL the primary never
        had (lost in a failover) and is reset to *primary_lsn*, or to the latest commit made
        on this timeline meanwhile if that is later. Returns this scope's lost floor, or
        ``None``.

        Other tasks commit while the position is read, and their positions may be past
        *primary_lsn*: a floor they raised is verified (and kept), and one they could not
        raise (it was past them) is reset no lower than they got (``kept``). Resetting to
        *primary_lsn* alone would put the router's floor behind their commits, and their
        next reads on replicas that have not replayed them."""
        epoch = self.root.epoch
        lost = None
        with _ADVANCE:
            scope: Scope | None = self
            while scope is not None:
                floor = scope.floor
                if floor is not None and floor > primary_lsn and scope.verified != epoch:
                    kept = scope.kept[1] if scope.kept and scope.kept[0] == epoch else None
                    reset = kept if kept is not None and kept > primary_lsn else primary_lsn
                    if reset < floor:
                        if scope is self:
                            lost = floor
                        scope.floor = reset
                scope.verified = epoch
                scope.kept = None
                scope = scope.parent
        return lost

    @property
    def wants_position(self) -> bool:
        """Whether a commit's WAL position is worth a round trip to fetch."""
        return self.consistency is Consistency.READ_YOUR_WRITES


class Call:
    """One statement on its way: the driver method, its arguments, and its classification."""

    __slots__ = ("args", "classification", "kw", "method", "query")

    def __init__(
        self,
        method: str,
        query: str,
        args: tuple[Any, ...],
        kw: dict[str, Any],
        classification: Classification,
    ) -> None:
        self.method = method
        self.query = query
        self.args = args
        self.kw = kw
        self.classification = classification
