"""Replicas a ``ryw_wait`` recently waited on in vain.

A read after the session's own write may wait on a replica for that write (``ryw_wait``). On
a replica that is further behind than the wait, every such read would wait its full length
and then go to the primary anyway. After one miss the replica is not waited on again for
``hold`` seconds (the router uses its monitor interval: by then the monitor has measured it
again), and the reads that would have waited go to another replica, or to the primary.

A miss alone does not tell a replica far behind from one a moment late (its replay stalled
for a few tens of milliseconds on a busy host): holding the latter off for the whole hold
would send every read after a write to the primary meanwhile. So while no other replica can
be waited on, a held replica may be *asked* (one position query, no wait) whether it has
replayed the position it missed; if it has, its hold ends there and the read waits on it as
usual. The first ask comes ``first_ask`` after the miss, and each ask that finds it still
short makes the pause before the next one half as long again (up to ``hold``): a replica far
behind costs a few round trips per hold, not one per read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from router.core._lsn import Lsn

__all__ = ["WaitMisses"]

#: How much longer each pause between asks in vain is than the one before: a replica whose
#: replay stalled is asked again within half the stall's length after it ends, and one far
#: behind about a dozen times per hold.
_GROWTH = 1.5


class _Hold(NamedTuple):
    until: float  # not waited on before this
    missed: Lsn  # the position it missed: caught up once it has replayed it
    ask_at: float  # may be asked from this time on
    gap: float  # the pause after the next ask in vain


class WaitMisses:
    """``node in misses``: whether *node* missed a wait less than ``hold`` seconds ago (and
    has not been seen to catch up since); :meth:`may_ask`: whether it may be asked now.

    *clock* is a monotonic clock in seconds (injected: the core reads no clock itself).
    Shared by the threads of a sync router: every update replaces one dict entry.
    """

    __slots__ = ("_clock", "_first_ask", "_hold", "_until")

    def __init__(self, hold: float, clock: Callable[[], float], first_ask: float = 0.01) -> None:
        self._hold = hold
        self._clock = clock
        self._first_ask = min(first_ask, hold) if hold > 0 else first_ask
        self._until: dict[str, _Hold] = {}

    def missed(self, node: str, target: Lsn) -> None:
        """*node* had not replayed *target* when a wait (or an ask) gave up: hold it off
        waits; when it was held already (an ask in vain), ask it less often."""
        now = self._clock()
        held = self._until.get(node)
        if held is None or now >= held.until:
            first = self._first_ask
            self._until[node] = _Hold(now + self._hold, target, now + first, first * _GROWTH)
        else:
            gap = min(held.gap * _GROWTH, self._hold)
            self._until[node] = held._replace(ask_at=now + held.gap, gap=gap)

    def recovered(self, node: str, replayed: Lsn) -> bool:
        """*node* was asked and is at *replayed*: whether it has caught up with the position
        it missed (then its hold is over), or was not held at all."""
        held = self._until.get(node)
        if held is not None and replayed < held.missed:
            return False
        self._until.pop(node, None)
        return True

    def caught_up(self, node: str) -> None:
        """*node* was seen at or past a position a read waited for: no longer held."""
        if node in self._until:
            self._until.pop(node, None)

    def __contains__(self, node: object) -> bool:
        held = self._until.get(node)  # type: ignore[call-overload]
        return held is not None and self._clock() < held.until

    def may_ask(self, node: str) -> bool:
        """Whether *node* is held and due to be asked whether it has caught up."""
        held = self._until.get(node)
        if held is None:
            return False
        now = self._clock()
        return now < held.until and now >= held.ask_at

    @property
    def askable(self) -> _Askable:
        """The held nodes due an ask, as a container (for :func:`~router.core._route.
        choose_read`)."""
        return _Askable(self)

    def __repr__(self) -> str:
        now = self._clock()
        held = sorted(n for n, h in self._until.items() if now < h.until)
        return f"WaitMisses(hold={self._hold:g}, held={held})"


class _Askable:
    __slots__ = ("_misses",)

    def __init__(self, misses: WaitMisses) -> None:
        self._misses = misses

    def __contains__(self, node: object) -> bool:
        return isinstance(node, str) and self._misses.may_ask(node)
