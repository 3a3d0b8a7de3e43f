"""Replicas a ``ryw_wait`` recently waited on in vain.

A read after the session's own write may wait on a replica for that write (``ryw_wait``). On
a replica that is further behind than the wait, every such read waits its full length and
then goes to the primary anyway. After one miss the replica is not waited on again for
``hold`` seconds (the router uses its monitor interval: by then the monitor has measured it
again), and the reads that would have waited go to the primary at once.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["WaitMisses"]


class WaitMisses:
    """``node in misses``: whether *node* missed a wait less than ``hold`` seconds ago.

    *clock* is a monotonic clock in seconds (injected: the core reads no clock itself).
    """

    __slots__ = ("_clock", "_hold", "_until")

    def __init__(self, hold: float, clock: Callable[[], float]) -> None:
        self._hold = hold
        self._clock = clock
        self._until: dict[str, float] = {}

    def missed(self, node: str) -> None:
        """*node* did not replay a session's position within the wait."""
        self._until[node] = self._clock() + self._hold

    def __contains__(self, node: object) -> bool:
        until = self._until.get(node)  # type: ignore[call-overload]
        return until is not None and self._clock() < until

    def __repr__(self) -> str:
        now = self._clock()
        held = sorted(n for n, until in self._until.items() if now < until)
        return f"WaitMisses(hold={self._hold:g}, held={held})"
