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

Either way the caller gets :class:`TimeoutError`, as from the async twin.

Every read outside a transaction behind a transaction pooler has a deadline, so one that ends
in time must cost next to nothing: it takes no lock shared with other statements, wakes no
thread, starts none and makes no event. Arming it is an append to the watchdog's inbox (one
atomic step); the watchdog is woken only when the new deadline passes before it would wake
anyway (with one ``read_timeout`` for every read, deadlines come in the order they pass, and
it is not), and the statement that finds :data:`_COMPACT_AT` deadlines in the inbox moves
them to the heap itself. Disarming is taking the deadline's own claim (a one-item list, taken
by a ``pop``, one atomic step): the statement's end and the deadline's expiry each try to
take it, and the first decides.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import math
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
#: Deadlines in the watchdog's inbox that wake it, and in its heap past which it drops the
#: finished ones (each would otherwise stay until its time comes: up to ``read_timeout`` of
#: a busy process's reads).
_COMPACT_AT: Final = 1024
#: Seconds the watchdog thread lives on with no deadline under way.
_IDLE: Final = 60.0


class Deadline:
    """The deadline of one statement on *conn*: ``with Deadline(conn, timeout) as deadline:``
    around the blocking call; after it, :attr:`expired` says whether the statement was given
    up on (its error then is the cancel's or the cut link's: raise ``TimeoutError``).

    Leaving the block waits for a cancel under way to be delivered, so that it cannot reach
    the next statement on the connection."""

    __slots__ = ("_claim", "_conn", "_done", "_settled", "at", "expired", "finished", "timeout")

    def __init__(self, conn: psycopg.Connection[Any], timeout: float) -> None:
        self._conn = conn
        self.timeout = timeout
        self.at = 0.0
        #: Taken by whichever comes first, the statement's end or its expiry: one ``pop``
        #: (a single atomic step), and the other finds it empty.
        self._claim = [True]
        #: The statement's block has been left.
        self.finished = False
        #: The deadline passed first: the statement was given up on.
        self.expired = False
        self._done: threading.Event | None = None  # the statement has ended (expiry only)
        self._settled: threading.Event | None = None  # the expiry's thread has ended

    def __enter__(self) -> Deadline:
        at = self.at = _monotonic() + self.timeout
        watchdog = _WATCHDOG
        inbox = watchdog.inbox
        inbox.append(self)
        # Read after the append (see _Watchdog.wakes_by).
        if at < watchdog.wakes_by or len(inbox) >= _COMPACT_AT:
            watchdog.see_to()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._claim.pop()
        except IndexError:
            pass
        else:
            self.finished = True  # the watchdog drops it when it comes across it
            return
        if self.finished:
            return  # left twice
        # The expiry came first; it made its events before it took the claim.
        done, settled = self._done, self._settled
        assert done is not None
        assert settled is not None
        with _WATCHDOG.lock:
            self.finished = True  # no link is cut from now on
        done.set()
        settled.wait()

    def expire(self) -> None:
        """The deadline has passed: called on a thread of its own, never the statement's."""
        if self.finished:
            return
        # Made before the claim is taken: the statement's end finds them once it has lost it.
        done = self._done = threading.Event()
        settled = self._settled = threading.Event()
        try:
            self._claim.pop()
        except IndexError:
            return  # the statement ended first
        self.expired = True
        try:
            self._cancel(done)
        finally:
            settled.set()

    def _cancel(self, done: threading.Event) -> None:
        conn = self._conn
        try:
            conn.cancel_safe(timeout=CANCEL_GRACE)
        except (psycopg.Error, OSError) as exc:
            # CancellationTimeout included: the link may be dead; cut it below.
            logger.debug("cancel request failed (%s)", type(exc).__name__)
        if done.wait(CANCEL_GRACE):
            return
        with _WATCHDOG.lock:
            if self.finished:
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
    may block for up to :data:`CANCEL_GRACE`, and must not hold up the others).

    New deadlines come in through :attr:`inbox`, appended by the statements' threads without
    a lock; the thread moves them to its heap each time it wakes, dropping the finished ones.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start afresh (in a forked child: no watchdog thread there, and the lock may have
        been held at the fork)."""
        #: Guards the heap, the thread's start and end, and the cut of a link (against the
        #: end of the statement given up on).
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self.inbox: collections.deque[Deadline] = collections.deque()
        #: By when the thread looks at :attr:`inbox` again, at the latest: a deadline that
        #: passes before must wake it. Set under the lock, to a time only right before the
        #: thread waits with the inbox empty; infinite while it is awake or not running, so
        #: that a deadline added meanwhile, which it may have missed, wakes it
        #: (:meth:`see_to` takes the lock: its notice lands once the thread waits, or it
        #: starts a thread). Read by the statements' threads after their append.
        self.wakes_by = math.inf
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._idle = _IDLE
        self._thread: threading.Thread | None = None

    def see_to(self) -> None:
        """A new deadline passes before the thread would wake, or the inbox is long, or the
        thread is not running: see to the deadlines. A long inbox is taken here and now (it
        stays short however long the thread takes to wake); the thread is woken if a deadline
        passes before it would wake."""
        with self.lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="router-deadlines", daemon=True
                )
                self._thread.start()
                return
            if len(self.inbox) >= _COMPACT_AT:
                self._take_inbox()
                heap = self._heap
                if not heap or heap[0][0] >= self.wakes_by:
                    return
            self._wake.notify()

    def pending(self) -> int:
        """Deadlines held (under way, or finished and not yet dropped)."""
        with self.lock:
            return len(self.inbox) + len(self._heap)

    def _run(self) -> None:
        while True:
            with self.lock:
                due = self._next_due()
                if due is None:
                    self._thread = None
                    return
            threading.Thread(target=due.expire, name="router-deadline-cancel", daemon=True).start()

    def _next_due(self) -> Deadline | None:
        """The next deadline to pass (waiting for it), or ``None`` once none has been under
        way for :data:`_IDLE` s (the caller holds the lock)."""
        heap = self._heap
        idle_since: float | None = None
        while True:
            self.wakes_by = math.inf  # before the inbox is looked at: see wakes_by
            self._take_inbox()
            while heap and heap[0][2].finished:
                heapq.heappop(heap)
            now = time.monotonic()
            if heap:
                idle_since = None
                at = heap[0][0]
                if at <= now:
                    return heapq.heappop(heap)[2]
                if not self.inbox:
                    self.wakes_by = at
                    self._wake.wait(at - now)
                continue
            if self.inbox:
                continue
            if idle_since is None:
                idle_since = now
            elif now - idle_since >= _IDLE:
                return None
            # Nothing under way: wait as long as the last deadline's timeout, so that the
            # next one with the same timeout passes after the thread wakes (and need not
            # wake it).
            self.wakes_by = now + self._idle
            self._wake.wait(self._idle)

    def _take_inbox(self) -> None:
        """Move the inbox's deadlines under way to the heap."""
        inbox, heap, order = self.inbox, self._heap, self._order
        taken = None
        while inbox:
            taken = inbox.popleft()
            if not taken.finished:
                heapq.heappush(heap, (taken.at, next(order), taken))
        if taken is not None:
            self._idle = min(max(taken.timeout, 1.0), _IDLE)
        if len(heap) >= _COMPACT_AT:
            heap[:] = [entry for entry in heap if not entry[2].finished]
            heapq.heapify(heap)


_WATCHDOG: Final = _Watchdog()
_monotonic: Final = time.monotonic


def _watchdog() -> _Watchdog:
    return _WATCHDOG


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG.reset)
