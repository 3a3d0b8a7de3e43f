"""Deadlines for psycopg statements, which psycopg cannot bound from the client by itself.

asyncpg gives up a statement after its ``timeout``: it asks the server to cancel it and raises
``TimeoutError`` at once. psycopg blocks its thread until the server answers, and has no
per-statement timeout. Here one watchdog thread (shared by every connection of the process)
keeps the deadlines of the statements under way; when one passes, a short-lived thread

1. asks the server to cancel the statement (``Connection.cancel_safe``, a cancel request on a
   connection of its own, as asyncpg sends it; through PgBouncer the pooler forwards it to the
   server connection running the statement): the server answers the blocked call with
   ``QueryCanceled``, and the connection is usable at once;
2. if no answer has come within :data:`CANCEL_GRACE` seconds (a dead link, a pooler that
   keeps a queued query), shuts the connection's socket down: the blocked call fails now, and
   the connection is broken (its pool replaces it; the server, if it ever gets the
   statement, rolls back what it opened when it finds the client gone).

Either way the caller gets :class:`TimeoutError`, as from the async twin. A statement that
ends before its deadline costs a heap push and a flag; no thread is started for it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
import time
from typing import Any, Final

import psycopg

__all__ = ["CANCEL_GRACE", "Deadline"]

logger = logging.getLogger(__name__)

#: Seconds the server has to answer a cancel before the connection's socket is shut down.
CANCEL_GRACE: Final = 3.0
#: Finished deadlines left in the heap before it is rebuilt without them (each would
#: otherwise stay until its time comes: up to ``read_timeout`` of a busy process's reads).
_COMPACT_AT: Final = 1024


class Deadline:
    """The deadline of one statement on *conn*: ``with Deadline(conn, timeout) as deadline:``
    around the blocking call; after it, :attr:`expired` says whether the statement was given
    up on (its error then is the cancel's or the cut link's: raise ``TimeoutError``).

    Leaving the block waits for a cancel under way to be delivered, so that it cannot reach
    the next statement on the connection."""

    __slots__ = ("_conn", "_done", "_expired", "_finished", "_lock", "_settled", "at", "timeout")

    def __init__(self, conn: psycopg.Connection[Any], timeout: float) -> None:
        self._conn = conn
        self.timeout = timeout
        self.at = 0.0
        self._lock = threading.Lock()
        self._finished = False
        self._expired = False
        self._done = threading.Event()  # the statement has ended
        self._settled: threading.Event | None = None  # the expiry's thread has ended

    @property
    def expired(self) -> bool:
        return self._expired

    @property
    def finished(self) -> bool:
        return self._finished

    def __enter__(self) -> Deadline:
        self.at = time.monotonic() + self.timeout
        _watchdog().watch(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._finished = True
            settled = self._settled
        self._done.set()
        _watchdog().finished(self)
        if settled is not None:
            settled.wait()

    def expire(self) -> None:
        """The deadline has passed: called on a thread of its own, never the statement's."""
        with self._lock:
            if self._finished:
                return
            self._expired = True
            self._settled = threading.Event()
        try:
            self._cancel()
        finally:
            self._settled.set()

    def _cancel(self) -> None:
        conn = self._conn
        try:
            conn.cancel_safe(timeout=CANCEL_GRACE)
        except (psycopg.Error, OSError) as exc:
            # CancellationTimeout included: the link may be dead; cut it below.
            logger.debug("cancel request failed (%s)", type(exc).__name__)
        if self._done.wait(CANCEL_GRACE):
            return
        with self._lock:
            if self._finished:
                return
            logger.warning(
                "a statement given up after %g s did not end on cancel within %g s:"
                " its connection is closed",
                self.timeout,
                CANCEL_GRACE,
            )
            _shut_down(conn)


def _shut_down(conn: psycopg.Connection[Any]) -> None:
    """End *conn*'s link from another thread than its user's: ``shutdown`` wakes a thread
    blocked on the socket (a ``close`` here would pull the descriptor from under it)."""
    try:
        fd = conn.pgconn.socket
    except psycopg.Error:
        return  # already closed
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


class _Watchdog:
    """One thread that starts each passed deadline's expiry on a thread of its own (a cancel
    may block for up to :data:`CANCEL_GRACE`, and must not hold up the others)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start afresh (in a forked child: no watchdog thread there, and the lock may have
        been held at the fork)."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._finished = 0
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline) -> None:
        with self._lock:
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="router-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._wake.notify()

    def finished(self, deadline: Deadline) -> None:
        with self._lock:
            self._finished += 1
            if self._finished >= _COMPACT_AT and self._finished * 2 >= len(self._heap):
                # In place: the watchdog thread holds this very list.
                self._heap[:] = [entry for entry in self._heap if not entry[2].finished]
                heapq.heapify(self._heap)
                self._finished = 0

    def _run(self) -> None:
        while True:
            with self._lock:
                due = self._next_due()
                if due is None:
                    self._thread = None
                    return
            threading.Thread(target=due.expire, name="router-deadline-cancel", daemon=True).start()

    def _next_due(self) -> Deadline | None:
        """The next deadline to pass (waiting for it), or ``None`` after a minute with none."""
        heap = self._heap
        while True:
            while heap and heap[0][2].finished:
                heapq.heappop(heap)
                self._finished = max(0, self._finished - 1)
            if not heap:
                if not self._wake.wait(60.0) and not heap:
                    return None
                continue
            at, _, deadline = heap[0]
            left = at - time.monotonic()
            if left <= 0:
                heapq.heappop(heap)
                return deadline
            self._wake.wait(left)


_WATCHDOG: Final = _Watchdog()


def _watchdog() -> _Watchdog:
    return _WATCHDOG


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG.reset)
