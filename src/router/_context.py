"""A floor shared by the sessions of one unit of work: a web request, a background job.

Whoever runs the unit of work (``router.web``'s middleware, its job helper) sets
:data:`SHARED_FLOOR` to a :class:`SharedFloor` for its duration. Every session a router or a
SQLAlchemy session factory makes meanwhile is *attached* to it (:func:`attach`):

- the session starts at or past the shared floor's starting position, when that position is
  of this router's cluster and possible (see :meth:`SharedFloor.floor_for`);
- each of the session's commits is recorded on the shared floor, so that the unit of work
  can hand its clients the position after its writes (:meth:`SharedFloor.position`).

Reads never raise a shared floor: only commits do, so "the request wrote" is exactly "a
commit was recorded". Without a shared floor in the context nothing changes (one
``ContextVar`` lookup per new session). A context variable, not a thread-local: each asyncio
task and each thread sees its own, and the object it holds is shared by the tasks and threads
a request spawns (they inherit the context).
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from enum import Enum
from typing import Final, Protocol

from router.core import Lsn, Position, Role, Topology

__all__ = ["SHARED_FLOOR", "SharedFloor", "Start", "attach"]

#: Seconds a starting position may stay ahead of what the monitor saw of the primary before it
#: is judged impossible (the monitor samples the primary every ``monitor_interval``; a
#: position another process committed a moment ago is ahead of the last sample, legitimately).
DEFAULT_HORIZON: Final = 5.0


class Start(Enum):
    """What became of a shared floor's starting position (the last attach's verdict)."""

    NONE = "none"  # no starting position
    UNCHECKED = "unchecked"  # applied; the router did not know its cluster yet
    APPLIED = "applied"  # applied: some replica may not have replayed it yet
    SETTLED = "settled"  # applied, but every replica has replayed it: no longer needed
    FOREIGN = "foreign"  # of another cluster: ignored
    IMPOSSIBLE = "impossible"  # ahead of the primary for longer than the horizon: ignored


class _Floored(Protocol):
    """What :func:`attach` sets on a session's scope (``router._scope.Scope``)."""

    floor: Lsn | None
    shared: SharedFloor | None
    verified: int
    lost: int

    @property
    def wants_position(self) -> bool: ...


class _Cluster(Protocol):
    """What :func:`attach` reads of a routing engine (``router._engine.RoutingEngine``)."""

    @property
    def system_id(self) -> int | None: ...

    @property
    def topology(self) -> Topology: ...


class SharedFloor:
    """The floor of one unit of work. Mutable and thread-safe; made per request or job.

    *start*: the position the unit's sessions must not read behind (the client's token),
    already checked for authenticity by whoever made it; *issued_at*: when that position was
    handed out (Unix time), to judge a position ahead of the primary; *horizon*: how long it
    may be (default :data:`DEFAULT_HORIZON`).
    """

    __slots__ = (
        "_cluster",
        "_committed",
        "_lock",
        "horizon",
        "issued_at",
        "lost",
        "sent",
        "start",
        "verdict",
    )

    def __init__(
        self,
        start: Position | None = None,
        *,
        issued_at: float | None = None,
        horizon: float = DEFAULT_HORIZON,
    ) -> None:
        self.start = start
        self.issued_at = issued_at
        self.horizon = horizon
        self.verdict = Start.NONE
        #: The position that went back to the client (router.web), if any.
        self.sent: Lsn | None = None
        self._committed: Lsn | None = None
        #: Commits of the unit's sessions whose position could not be read, not yet covered
        #: by a position read after them (kept by ``router._scope.Scope``, under its lock).
        #: While it is not 0 the unit's new sessions start behind a commit of its own.
        self.lost = 0
        self._cluster: _Cluster | None = None
        self._lock = threading.Lock()

    @property
    def committed(self) -> Lsn | None:
        """The latest commit position of the unit's sessions; ``None`` if none wrote."""
        return self._committed

    def floor_for(self, system_id: int | None, topology: Topology, now: float) -> Lsn | None:
        """The floor a new session of a router on cluster *system_id* starts from, and the
        verdict on the starting position (in :attr:`verdict`). Pure: no I/O, *now* given."""
        start = self.start
        if start is None:
            self.verdict = Start.NONE
            return None
        if system_id is None:
            # The router has not met its cluster yet (a factory's first session): the position
            # came signed from this application, so it is applied; the worst case is reads on
            # the primary, never a stale one.
            self.verdict = Start.UNCHECKED
            return start.lsn
        if system_id != start.system_id:
            self.verdict = Start.FOREIGN
            return None
        primary_lsn = topology.primary_lsn
        if primary_lsn is not None and start.lsn > primary_lsn:
            age = None if self.issued_at is None else now - self.issued_at
            if age is None or age > self.horizon:
                # No primary of this cluster ever wrote it (a failover lost it, a restored
                # backup, a clone sharing the system identifier): honouring it would send every
                # read of this client to the primary for good.
                self.verdict = Start.IMPOSSIBLE
                return None
            self.verdict = Start.APPLIED
            return start.lsn
        replicas = [n for n in topology.nodes if n.role is Role.REPLICA]
        if (
            not start.uncertain  # commits past it may not be replayed
            and replicas
            and all(n.replay_lsn is not None and n.replay_lsn >= start.lsn for n in replicas)
        ):
            self.verdict = Start.SETTLED
        else:
            self.verdict = Start.APPLIED
        return start.lsn

    def covered(self, lsn: Lsn) -> None:
        """The primary's position *lsn* was read by one of the unit's sessions after the unit
        began: an uncertain starting position is settled at it (the unit's next sessions
        need not read it again, and what the unit hands on is no longer uncertain)."""
        with self._lock:
            start = self.start
            if start is not None and start.uncertain:
                self.start = Position(start.system_id, max(start.lsn, lsn))

    def record_commit(self, lsn: Lsn) -> None:
        """A session of this unit committed a write; *lsn* is past its commit record."""
        with self._lock:
            if self._committed is None or lsn > self._committed:
                self._committed = lsn

    def position(self) -> Position | None:
        """The position after this unit's commits (at or past its starting position when that
        was applied), for the client's next request; ``None`` when nothing was committed or
        the cluster is unknown. A commit whose position could not be read counts: the
        position is then *uncertain* (at the start, or at 0 without one, when no commit
        position was read at all), and the next request learns the primary's first."""
        committed = self._committed
        lost = self.lost > 0
        if committed is None and not lost:
            return None
        system_id = self._cluster.system_id if self._cluster is not None else None
        if system_id is None:
            return None
        lsn = Lsn(0) if committed is None else committed
        start = self.start
        applied = (
            start is not None
            and start.system_id == system_id
            and self.verdict in (Start.APPLIED, Start.SETTLED, Start.UNCHECKED)
        )
        if applied and start is not None and start.lsn > lsn:
            lsn = start.lsn
        uncertain = lost or (applied and start is not None and start.uncertain)
        return Position(system_id, lsn, uncertain)

    def _join(self, cluster: _Cluster) -> bool:
        with self._lock:
            if self._cluster is None:
                self._cluster = cluster
                return True
            if self._cluster is cluster:
                return True
            mine, theirs = self._cluster.system_id, cluster.system_id
            return mine is not None and mine == theirs


#: The shared floor of the current request or job, if any.
SHARED_FLOOR: ContextVar[SharedFloor | None] = ContextVar("router_shared_floor", default=None)


def attach(scope: _Floored, cluster: _Cluster) -> None:
    """Attach a new session's *scope* to the current shared floor, if there is one: raise its
    floor to the shared starting position and to the unit's commits so far, and have its
    commits recorded there. Sessions of a
    second cluster in the same unit of work are left alone (a position means nothing across
    clusters)."""
    shared = SHARED_FLOOR.get()
    if shared is None or not shared._join(cluster):
        return
    lsn = shared.floor_for(cluster.system_id, cluster.topology, time.time())
    # The unit's own commits too (a session that wrote before this one opened, in the same
    # request or job): read-your-writes holds within the unit as it does across requests.
    committed = shared.committed
    if committed is not None and (lsn is None or committed > lsn):
        lsn = committed
    if lsn is not None and (scope.floor is None or lsn > scope.floor):
        scope.floor = lsn
        scope.verified = -1  # like an imported token: checked after a failover (Scope.unverified)
    uncertain_start = (
        shared.start is not None
        and shared.start.uncertain
        and shared.verdict in (Start.APPLIED, Start.UNCHECKED)
    )
    if (shared.lost or uncertain_start) and scope.wants_position:
        # A session of this unit committed without its position being read: this one reads
        # where that commit surely is until a position read covers it (Scope.lose_position).
        scope.lost = max(scope.lost, 1)
    scope.shared = shared
