"""One psycopg_pool per node: the sync twin of ``router/_async/_pool.py`` (same interface).

psycopg_pool has what asyncpg's pool lacks (``max_lifetime``, ``max_idle``, ``drain()``), so
this side is thin. Connections run in autocommit: a transaction is a ``BEGIN`` the router
sends. As on the async side, the pool gets no reset callback (one would move every return
onto a worker thread); :meth:`NodePool.release` resets only what changed session state.

Where the two pools differ under faults, this one is made to behave as asyncpg's: a
connection the server hung up on while idle is not handed out, and a client that needs a new
connection hears at once that it could not be opened (psycopg_pool opens connections on
worker threads, retries for minutes and lets its clients wait out their timeout; the router
must know now, to send a read elsewhere and to mark the node down).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from typing import Any, Final

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from router import _fork
from router._pool_logs import quiet_reconnects
from router._stats import NodeStats, PoolSettings
from router._sync._connect import reporting as _reporting
from router._sync._driver import closed as connection_closed
from router._sync._driver import discard
from router.core import caused
from router.errors import PoolTimeout

__all__ = ["NodePool"]

logger = logging.getLogger(__name__)

_IDLE = TransactionStatus.IDLE
_READ_ONLY: Final = "SET default_transaction_read_only = on"
_READ_WRITE: Final = "RESET default_transaction_read_only"
#: How often a client waiting for a connection that is being opened looks whether opening it
#: failed (psycopg_pool offers no way to wake it when it does).
_FAILURE_POLL: Final = 0.005
#: A connection given back less than this long ago is handed out again unexamined.
_FRESH: Final = 0.05
#: Keepalive probes after the idle time, this many seconds apart, this many of them.
_KEEPALIVE_INTERVAL: Final = 1
_KEEPALIVE_COUNT: Final = 3


def _link_limits(dsn: str, command_timeout: float | None) -> dict[str, Any]:
    """libpq's TCP settings that bound a statement on a dead link, from *command_timeout*.

    psycopg cannot give up on a statement from the client (the async twin's ``timeout=``): it
    waits for the server's answer, and a cancel needs an answer too. The kernel can: data
    unacknowledged for ``tcp_user_timeout`` ends the connection (a COMMIT sent into a dead
    link), and so do keepalive probes unanswered while a statement waits for its result (a
    server host that went away). Neither ends a statement the server is merely slow to answer,
    nor one behind a relay that still acknowledges (a proxy, a load balancer). Settings the DSN
    gives itself are kept."""
    if command_timeout is None:
        return {}
    ms = max(1, round(command_timeout * 1000))
    limits: dict[str, Any] = {
        "tcp_user_timeout": ms,
        "keepalives": 1,
        "keepalives_idle": max(1, math.ceil(command_timeout)),
        "keepalives_interval": _KEEPALIVE_INTERVAL,
        "keepalives_count": _KEEPALIVE_COUNT,
    }
    given = conninfo_to_dict(dsn)
    return {key: value for key, value in limits.items() if key not in given}


class NodePool:
    """The pool of one node. No I/O until :meth:`open`."""

    def __init__(self, name: str, dsn: str, settings: PoolSettings) -> None:
        self.name = name
        self.stats = NodeStats(name)
        self._dsn = dsn
        self._settings = settings
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None
        self._read_only = False
        # The connections whose session is read-only (what was set on each, whatever the
        # role is now), and whether the role changed since the pool opened: until then every
        # connection was set for the role its node has.
        self._read_only_sessions: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        self._flipped = False
        # In the child of a fork: whether the pool reopens filled (None: it was not open).
        self._reopen: bool | None = None
        self._lock = threading.Lock()
        # Two counters kept as list lengths: append() and pop() are each one atomic step,
        # where `n += 1` under a lock is three lock operations per call on the hot path.
        # Acquires begun and not yet released (waiters included): more than max_size waits.
        self._in_use: list[None] = []
        # Connections handed out and not yet given back. psycopg_pool's own size counts the
        # slot of a connection being (re)opened too, which may retry for minutes while its
        # node is down: size minus idle is not what is in use.
        self._lent: list[None] = []
        # Failed attempts to open a connection (any thread), and the latest failure.
        self._connect_failures = 0
        self._connect_error: BaseException | None = None
        # id(connection) -> when it was last given back.
        self._returned: dict[int, float] = {}

    def __repr__(self) -> str:
        return f"NodePool({self.name!r}, read_only={self._read_only})"

    @property
    def read_only(self) -> bool:
        return self._read_only

    def set_read_only(self, read_only: bool) -> None:
        """The node's role as the router knows it now: a replica's connections get
        ``default_transaction_read_only = on``, the primary's not. In force for the next
        connection handed out, with no I/O here: the router's decisions follow a new role
        in the same step, so a promoted replica's first write must not meet a connection
        still read-only. A connection set for the other role is set again as it is handed
        out (one round trip, after a role change only; none is reopened)."""
        read_only = read_only and self._settings.replica_read_only
        if read_only == self._read_only:
            return
        self._read_only = read_only
        self._flipped = self._flipped or self._pool is not None

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        read_only = self._read_only
        if read_only:
            # Never prepared: a router statement on every new connection would otherwise be
            # the first a transaction pooler's shared server connections see collide.
            conn.execute(_READ_ONLY, prepare=False)
            self._read_only_sessions.add(conn)
        else:
            self._read_only_sessions.discard(conn)

    def _refence(
        self,
        pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]],
        conn: psycopg.Connection[Any],
    ) -> None:
        """Set *conn*, opened for the node's other role, for the one it has now; a connection
        that fails it is closed and the error raised (as for a failed connect)."""
        try:
            if self._read_only:
                self._configure(conn)
            else:
                conn.execute(_READ_WRITE, prepare=False)
                self._read_only_sessions.discard(conn)
        except BaseException:
            conn.close()
            pool.putconn(conn)
            raise

    def _connect_failed(self, exc: BaseException) -> None:
        with self._lock:
            # The error first: a client that sees the count change reads it (_getconn).
            self._connect_error = exc
            self._connect_failures += 1

    def open(self, *, fill: bool = True) -> None:
        """Open the pool: its workers start opening ``min_size`` connections when *fill* (a
        node known down is not connected to now: a worker stuck connecting to a node that
        does not answer would hold up ``close()`` as long)."""
        s = self._settings
        quiet_reconnects("psycopg.pool", self.name)
        self._pool = psycopg_pool.ConnectionPool(
            self._dsn,
            connection_class=_reporting(self._connect_failed),
            kwargs={
                "autocommit": True,
                "prepare_threshold": s.prepare_threshold,
                "application_name": s.application_name,
                "connect_timeout": max(2, round(s.connect_timeout)),
                **_link_limits(self._dsn, s.command_timeout),
            },
            min_size=s.min_size if fill else 0,
            max_size=s.max_size,
            timeout=s.acquire_timeout,
            max_lifetime=s.max_lifetime if s.max_lifetime is not None else 10 * 365 * 86400.0,
            max_idle=s.max_idle if s.max_idle is not None else 10 * 365 * 86400.0,
            # A node down at start-up is not fatal: the monitor reports it, and the pool
            # fills when it comes back.
            open=False,
            configure=self._configure,
            name=self.name,
            # Give up a failed connection at once (after one immediate retry) rather than
            # retry it in the background for minutes with a backoff of seconds: the next
            # client that needs a connection tries again, as with asyncpg, so a node that
            # comes back is used as soon as the monitor readmits it.
            reconnect_timeout=0.0,
        )
        self._pool.open(wait=False)
        _fork.on_fork(self)

    def _after_fork(self) -> None:
        """In the child of a fork: the parent's connections stay the parent's (a server
        session each, on a socket this process shares), neither used nor closed here; the
        bookkeeping of the parent's threads goes."""
        pool, self._pool = self._pool, None
        if pool is not None:
            _fork.abandon(pool)
        self._lock = threading.Lock()
        self._in_use = []
        self._lent = []
        self._returned = {}
        self._read_only_sessions = weakref.WeakSet()
        self._flipped = False
        self._reopen = None if pool is None else pool.min_size > 0

    def _resume_after_fork(self) -> None:
        """Open this process's own pool (at its first use), set for the node's role as the
        parent last knew it (the monitor corrects it at its first round)."""
        with self._lock:
            if self._pool is None and self._reopen is not None:
                self.open(fill=self._reopen)
                self._reopen = None

    def _not_open(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[Any]]:
        """:meth:`acquire` found no pool: in the child of a fork, this process's own opens
        now (and the rest of the router resumes); else the pool is not open."""
        if self._reopen is not None:
            self._resume_after_fork()
            _fork.resume()
        pool = self._pool
        if pool is None:
            raise RuntimeError(f"the pool of {self.name} is not open")
        return pool

    def close(self) -> None:
        _fork.forget(self)
        self._reopen = None
        pool, self._pool = self._pool, None
        if pool is not None:
            # A worker still connecting ends by connect_timeout (libpq cannot be interrupted).
            pool.close(timeout=self._settings.connect_timeout)

    def terminate(self) -> None:
        self.close()

    def acquire(self) -> psycopg.Connection[Any]:
        """A connection of this node; :class:`PoolTimeout` if none is free in time."""
        pool = self._pool
        if pool is None:
            pool = self._not_open()
        in_use = self._in_use
        in_use.append(None)
        if len(in_use) > self._settings.max_size:
            return self._acquire_waiting(pool)
        try:
            conn = self._getconn(pool)
            if self._flipped and (conn in self._read_only_sessions) is not self._read_only:
                self._refence(pool, conn)
        except psycopg_pool.PoolTimeout:
            in_use.pop()
            raise caused(PoolTimeout(self.name, self._settings.acquire_timeout), None) from None
        except BaseException:
            in_use.pop()
            raise
        self._lent.append(None)
        self.stats.acquired += 1
        return conn

    def _acquire_waiting(
        self, pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]]
    ) -> psycopg.Connection[Any]:
        """:meth:`acquire` with every connection taken: counted as waiting while it waits."""
        stats = self.stats
        with self._lock:
            stats.waiting += 1
        started = time.perf_counter()
        try:
            conn = self._getconn(pool)
            if self._flipped and (conn in self._read_only_sessions) is not self._read_only:
                self._refence(pool, conn)
        except psycopg_pool.PoolTimeout:
            self._in_use.pop()
            raise caused(PoolTimeout(self.name, self._settings.acquire_timeout), None) from None
        except BaseException:
            self._in_use.pop()
            raise
        finally:
            with self._lock:
                stats.waiting -= 1
                stats.acquire_wait += time.perf_counter() - started
        self._lent.append(None)
        stats.acquired += 1
        return conn

    def _getconn(
        self, pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]]
    ) -> psycopg.Connection[Any]:
        """A connection the server has not hung up on while it was idle in the pool (asyncpg's
        pool replaces those by itself): else a statement, a write too, would meet a session
        that ended before it was sent. While it waits for a connection to be opened, a failure
        to open one is raised (``psycopg.OperationalError``), as asyncpg's ``acquire()``
        raises it; waiting for a release from a full pool ends in ``PoolTimeout``."""
        timeout = self._settings.acquire_timeout
        failures = self._connect_failures
        # With room to grow, the wait may be for a connection being opened: look for a
        # failure every few ms. A full pool waits for a release, first come first served.
        first = (
            min(timeout, _FAILURE_POLL) if len(self._lent) < self._settings.max_size else timeout
        )
        try:
            conn = pool.getconn(timeout=first)
        except psycopg_pool.PoolTimeout:
            # The deadline counts from the first attempt, which waited `first` seconds.
            return self._getconn_polling(pool, failures, time.monotonic() + timeout - first)
        # _fresh(), inline for the common case: a connection given back a moment ago.
        if time.monotonic() - self._returned.pop(id(conn), 0.0) < _FRESH:
            return conn
        if not connection_closed(conn):
            return conn
        pool.putconn(conn)
        return self._getconn_polling(pool, failures, time.monotonic() + timeout)

    def _getconn_polling(
        self,
        pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]],
        failures: int,
        deadline: float,
    ) -> psycopg.Connection[Any]:
        while True:
            error = self._connect_error
            if self._connect_failures != failures and error is not None:
                raise caused(psycopg.OperationalError(f"{self.name}: {error}"), error) from error
            left = deadline - time.monotonic()
            if left <= 0:
                raise psycopg_pool.PoolTimeout(f"no connection of {self.name} in time")
            opening = len(self._lent) < self._settings.max_size
            try:
                conn = pool.getconn(timeout=min(left, _FAILURE_POLL) if opening else left)
            except psycopg_pool.PoolTimeout:
                continue
            found = self._fresh(pool, conn)
            if found is not None:
                return found

    def _fresh(
        self,
        pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]],
        conn: psycopg.Connection[Any],
    ) -> psycopg.Connection[Any] | None:
        """*conn*, or ``None`` when the server hung up on it (given back: the pool opens a
        replacement). Looking costs a system call, which hands the GIL to the other threads:
        only a connection idle for a while is looked at (a busy one was fine a moment ago)."""
        returned = self._returned.pop(id(conn), 0.0)
        if time.monotonic() - returned < _FRESH or not connection_closed(conn):
            return conn
        pool.putconn(conn)
        return None

    def release(
        self, conn: psycopg.Connection[Any], *, dirty: bool = False, settled: bool = False
    ) -> None:
        """Give *conn* back; reset it first if its session state changed (*dirty*) or it was
        left inside a transaction (not possible when *settled*). A connection that cannot be
        reset is closed instead (the pool replaces it)."""
        try:
            pool = self._pool
            if settled and not dirty and pool is not None:
                self._returned[id(conn)] = time.monotonic()
                pool.putconn(conn)
            else:
                self._release(conn, dirty, settled)
        finally:
            try:
                self._in_use.pop()
                self._lent.pop()
            except IndexError:  # pragma: no cover - a release without an acquire
                logger.warning("%s: a connection was given back twice", self.name)

    def abandon(self, conn: psycopg.Connection[Any]) -> None:
        """Give back *conn*, whose statement was given up on while under way (the async twin
        waits for the cancel in the background; psycopg has waited already)."""
        self.release(conn)

    def _release(self, conn: psycopg.Connection[Any], dirty: bool, settled: bool) -> None:
        pool = self._pool
        if pool is None:
            conn.close()
            return
        if not (settled and not dirty) and not conn.closed and not conn.broken:
            try:
                if conn.info.transaction_status != _IDLE:
                    conn.execute("ROLLBACK")
                if dirty:
                    # What the last user left (settings, cursors, LISTENs, advisory locks,
                    # temporary tables, prepared statements) goes, psycopg's registry too.
                    discard(conn)
                    self._configure(conn)
            except psycopg.Error:
                conn.close()
        self._returned[id(conn)] = time.monotonic()
        pool.putconn(conn)

    def usage(self) -> dict[str, int]:
        """Open connections (``size``): the idle ones and those in use; not the slots whose
        connection is still being opened."""
        pool = self._pool
        waiting = self.stats.waiting
        if pool is None:
            return {"size": 0, "idle": 0, "in_use": 0, "waiting": waiting}
        idle = pool.get_stats().get("pool_available", 0)
        lent = len(self._lent)
        return {"size": idle + lent, "idle": idle, "in_use": lent, "waiting": waiting}
