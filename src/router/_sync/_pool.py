"""One psycopg_pool per node: the sync twin of ``router/_async/_pool.py`` (same interface).

psycopg_pool has what asyncpg's pool lacks (``max_lifetime``, ``max_idle``, ``drain()``), so
this side is thin. Connections run in autocommit: a transaction is a ``BEGIN`` the router
sends. As on the async side, the pool gets no reset callback (one would move every return
onto a worker thread); :meth:`NodePool.release` resets only what changed session state.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
import psycopg_pool
from psycopg.pq import TransactionStatus

from router._stats import NodeStats, PoolSettings
from router.errors import PoolTimeout

__all__ = ["NodePool"]

logger = logging.getLogger(__name__)

#: What a connection may carry over from its last user: the session's settings, cursors,
#: LISTENs, advisory locks, temporary tables, prepared statements (psycopg forgets its own
#: when it sees DISCARD ALL).
_RESET = "DISCARD ALL"
_IDLE = TransactionStatus.IDLE


class NodePool:
    """The pool of one node. No I/O until :meth:`open`."""

    def __init__(self, name: str, dsn: str, settings: PoolSettings) -> None:
        self.name = name
        self.stats = NodeStats(name)
        self._dsn = dsn
        self._settings = settings
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None
        self._read_only = False
        self._lock = threading.Lock()
        self._in_use = 0

    def __repr__(self) -> str:
        return f"NodePool({self.name!r}, read_only={self._read_only})"

    @property
    def read_only(self) -> bool:
        return self._read_only

    def set_read_only(self, read_only: bool) -> None:
        """New connections get ``default_transaction_read_only`` per the node's role; a role
        change drains the old ones (a promoted replica must not keep read-only sessions)."""
        read_only = read_only and self._settings.replica_read_only
        if read_only == self._read_only:
            return
        self._read_only = read_only
        if self._pool is not None:
            self._pool.drain()

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        if self._read_only:
            conn.execute("SET default_transaction_read_only = on")

    def open(self) -> None:
        s = self._settings
        self._pool = psycopg_pool.ConnectionPool(
            self._dsn,
            kwargs={
                "autocommit": True,
                "prepare_threshold": s.prepare_threshold,
                "application_name": s.application_name,
                "connect_timeout": max(2, round(s.connect_timeout)),
            },
            min_size=s.min_size,
            max_size=s.max_size,
            timeout=s.acquire_timeout,
            max_lifetime=s.max_lifetime if s.max_lifetime is not None else 10 * 365 * 86400.0,
            max_idle=s.max_idle if s.max_idle is not None else 10 * 365 * 86400.0,
            # A node down at start-up is not fatal: the monitor reports it, and the pool
            # fills when it comes back.
            open=False,
            configure=self._configure,
            name=self.name,
        )
        self._pool.open(wait=False)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=10)

    def terminate(self) -> None:
        self.close()

    def acquire(self) -> psycopg.Connection[Any]:
        """A connection of this node; :class:`PoolTimeout` if none is free in time."""
        pool = self._pool
        if pool is None:
            raise RuntimeError(f"the pool of {self.name} is not open")
        stats = self.stats
        with self._lock:
            self._in_use += 1
            waits = self._in_use > self._settings.max_size
            if waits:
                stats.waiting += 1
        started = time.perf_counter() if waits else 0.0
        try:
            conn = pool.getconn()
        except psycopg_pool.PoolTimeout:
            with self._lock:
                self._in_use -= 1
            raise PoolTimeout(self.name, self._settings.acquire_timeout) from None
        except BaseException:
            with self._lock:
                self._in_use -= 1
            raise
        finally:
            if waits:
                with self._lock:
                    stats.waiting -= 1
                    stats.acquire_wait += time.perf_counter() - started
        stats.acquired += 1
        return conn

    def release(
        self, conn: psycopg.Connection[Any], *, dirty: bool = False, settled: bool = False
    ) -> None:
        """Give *conn* back; reset it first if its session state changed (*dirty*) or it was
        left inside a transaction (not possible when *settled*). A connection that cannot be
        reset is closed instead (the pool replaces it)."""
        try:
            self._release(conn, dirty, settled)
        finally:
            with self._lock:
                self._in_use -= 1

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
                    conn.execute(_RESET)
                    self._configure(conn)
            except psycopg.Error:
                conn.close()
        pool.putconn(conn)

    def usage(self) -> dict[str, int]:
        pool = self._pool
        waiting = self.stats.waiting
        if pool is None:
            return {"size": 0, "idle": 0, "in_use": 0, "waiting": waiting}
        s = pool.get_stats()
        size, idle = s.get("pool_size", 0), s.get("pool_available", 0)
        return {"size": size, "idle": idle, "in_use": size - idle, "waiting": waiting}
