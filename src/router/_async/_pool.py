"""One asyncpg pool per node, with the statistics the policies and ``stats()`` need.

asyncpg resets every connection on release (``RESET ALL``, ``UNLISTEN *``, ... one round
trip each time). The router knows from the classifier whether a statement changed session
state, so the pool's own reset is switched off and :meth:`NodePool.release` resets only the
connections that need it, with ``DISCARD ALL``: asyncpg's own reset leaves temporary tables
and SQL-level prepared statements behind, for the next user of the connection to meet.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from functools import partial
from typing import Any

import asyncpg

from router import _fork
from router._async._connect import ResettingConnection
from router._async._driver import closed as connection_closed
from router._async._driver import connect_failed, settle
from router._async._runtime import finish
from router._pool_logs import quiet_reconnects
from router._stats import NodeStats, PoolSettings
from router.core import caused, raised_in
from router.errors import PoolTimeout

__all__ = ["NodePool"]

logger = logging.getLogger(__name__)


async def _no_reset(conn: asyncpg.Connection) -> None:
    """The pool's reset hook: nothing. :meth:`NodePool.release` decides."""


_READ_ONLY = "SET default_transaction_read_only = on"
_READ_WRITE = "RESET default_transaction_read_only"


class NodePool:
    """The pool of one node. No I/O until :meth:`open`."""

    def __init__(self, name: str, dsn: str, settings: PoolSettings) -> None:
        self.name = name
        self.stats = NodeStats(name)
        self._dsn = dsn
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._read_only = False
        # Whether the role changed since the pool opened: until then every connection's
        # session was set for the role the node has (see ResettingConnection.read_only_session).
        self._flipped = False
        # Set in the child of a fork: the pool was the parent's (see _after_fork).
        self._forked = False
        # Server pid -> when that connection was opened: asyncpg has no max lifetime. Until
        # ``_next_expiry`` no connection can be due, and releases skip the check.
        self._born: dict[int, tuple[float, weakref.ref[asyncpg.Connection]]] = {}
        self._next_expiry = math.inf
        # Connections handed out and not yet released. Exact: the router is its asyncpg
        # pool's only user, on one event loop.
        self._in_use = 0
        # Connections whose statement was given up on, waiting for its cancel (abandon()).
        self._settling: set[asyncio.Task[None]] = set()

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

    async def _refence(self, pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
        """Set *conn*, opened for the node's other role, for the one it has now; a connection
        that fails it is closed and the error raised (as for a failed connect)."""
        read_only = self._read_only
        failed: BaseException | None = None
        try:
            await conn.execute(
                _READ_ONLY if read_only else _READ_WRITE, timeout=self._settings.command_timeout
            )
        except BaseException as exc:
            conn.terminate()
            failed = exc
        if failed is not None:
            # Given back after the `except` block: mypyc mis-compiles an `await` in one
            # (router/core/_chain.py). finish raises *failed* again.
            await finish(partial(pool.release, conn), failed)
        conn.mark_read_only_session(read_only)

    async def _init(self, conn: asyncpg.Connection) -> None:
        lifetime = self._settings.max_lifetime
        if lifetime is not None:
            born = time.monotonic()
            self._born[conn.get_server_pid()] = (born, weakref.ref(conn))
            self._next_expiry = min(self._next_expiry, born + lifetime)
        read_only = self._read_only
        if read_only:
            await conn.execute(_READ_ONLY, timeout=self._settings.command_timeout)
        conn.mark_read_only_session(read_only)

    async def open(self, *, fill: bool = True) -> None:
        """Open the pool: with ``min_size`` connections when *fill* (a node known down is
        not waited on: its pool opens empty, and connects when it is used)."""
        s = self._settings
        quiet_reconnects("asyncpg.pool")
        kwargs: dict[str, Any] = {
            "max_size": s.max_size,
            "max_queries": s.max_queries or 50_000,
            "max_inactive_connection_lifetime": s.max_idle or 0.0,
            "statement_cache_size": s.statement_cache_size,
            "server_settings": {"application_name": s.application_name},
            "timeout": s.connect_timeout,
            "init": self._init,
            "reset": _no_reset,
            "connection_class": ResettingConnection,
        }
        down: BaseException | None = None
        try:
            min_size = s.min_size if fill else 0
            self._pool = await asyncpg.create_pool(self._dsn, min_size=min_size, **kwargs)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            # A node down at start-up is not fatal: the monitor reports it and the pool fills
            # when it comes back.
            logger.warning("%s: could not open its connections (%s); will retry", self.name, exc)
            down = exc
        if down is not None:
            # After the `except` block: mypyc mis-compiles an `await` in one
            # (router/core/_chain.py).
            try:
                self._pool = await asyncpg.create_pool(self._dsn, min_size=0, **kwargs)
            except BaseException as late:
                raised_in(late, down)
                raise
        _fork.on_fork(self)

    def _after_fork(self) -> None:
        """In the child of a fork: asyncio's loop and tasks, and this pool's connections, are
        the parent's; none of them survives a fork. The connections are left to the parent,
        neither used nor closed here (a statement on one would interleave with the parent's on
        the same server session), and the router says so at its first use (:meth:`acquire`)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            _fork.abandon(pool)
            self._forked = True

    async def close(self) -> None:
        _fork.forget(self)
        settling = list(self._settling)
        for task in settling:
            task.cancel()
        await asyncio.gather(*settling, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            # A graceful close says goodbye on every connection: bounded, for a link that
            # no longer answers.
            bound = self._settings.command_timeout or self._settings.connect_timeout
            try:
                await asyncio.wait_for(pool.close(), timeout=bound)
            except (TimeoutError, OSError):
                pool.terminate()

    def _not_open(self) -> str:
        if self._forked:
            return (
                f"the pool of {self.name} was opened in the parent of this forked process: an"
                " AsyncRouter (or the async SQLAlchemy factory) does not survive a fork"
                " (asyncio's loop and the connections are the parent's). Open one in each"
                " worker process, e.g. in the application's lifespan; the sync Router redoes"
                " itself after a fork"
            )
        return f"the pool of {self.name} is not open"

    def terminate(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    async def acquire(self) -> asyncpg.Connection:
        """A connection of this node; :class:`PoolTimeout` if none is free in time. Failing to
        open one raises the driver's connection errors (see :func:`connect_failed`)."""
        pool = self._pool
        if pool is None:
            raise RuntimeError(self._not_open())
        stats = self.stats
        self._in_use += 1
        try:
            if self._in_use <= self._settings.max_size:
                # A slot is free: asyncpg's timeout would only arm and cancel a timer here,
                # twice (it also times the release). Connecting is bounded by connect_timeout.
                conn = await pool.acquire()
            else:
                conn = await self._wait(pool)
            if self._flipped and conn.read_only_session is not self._read_only:
                await self._refence(pool, conn)
        except BaseException as exc:
            self._in_use -= 1
            failed = connect_failed(exc)
            if failed is not exc:
                raise caused(failed, exc) from exc
            raise
        stats.acquired += 1
        return conn

    async def _wait(self, pool: asyncpg.Pool) -> asyncpg.Connection:
        stats = self.stats
        stats.waiting += 1
        started = time.perf_counter()
        try:
            return await pool.acquire(timeout=self._settings.acquire_timeout)
        except TimeoutError:
            raise caused(PoolTimeout(self.name, self._settings.acquire_timeout), None) from None
        finally:
            stats.waiting -= 1
            stats.acquire_wait += time.perf_counter() - started

    async def release(
        self, conn: asyncpg.Connection, *, dirty: bool = False, settled: bool = False
    ) -> None:
        """Give *conn* back; reset it first if its session state changed (*dirty*) or it was
        left inside a transaction (not possible when *settled*: a single statement that
        neither begins nor ends one). A connection that cannot be reset is closed instead."""
        try:
            pool = self._pool
            if settled and not dirty and pool is not None and time.monotonic() < self._next_expiry:
                # The common case, as _release() has it (here: one coroutine less per call).
                await pool.release(conn)
            else:
                await self._release(conn, dirty, settled)
        finally:
            self._in_use -= 1

    def abandon(self, conn: asyncpg.Connection) -> None:
        """Give back *conn*, whose statement was given up on while under way (its timeout, a
        cancelled task): asyncpg has asked the server to cancel it. Once the server confirms
        (within ``command_timeout``), the connection goes back to the pool, its transaction
        rolled back; else it is closed. In the background: the caller has its error now."""
        task = asyncio.get_running_loop().create_task(
            self._settle(conn), name=f"router-settle-{self.name}"
        )
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, conn: asyncpg.Connection) -> None:
        try:
            await settle(conn, self._settings.command_timeout)
            await self._release(conn, dirty=False, settled=False)
        except BaseException:
            # (The pool closing.) A terminated connection's slot goes back to its pool.
            if not connection_closed(conn):
                conn.terminate()
            raise
        finally:
            self._in_use -= 1

    async def _release(self, conn: asyncpg.Connection, dirty: bool, settled: bool) -> None:
        pool = self._pool
        if pool is None:
            if not connection_closed(conn):
                conn.terminate()
            return
        if settled and not dirty and time.monotonic() < self._next_expiry:
            await pool.release(conn)  # the common case: nothing to check, nothing to reset
            return
        if connection_closed(conn):
            await pool.release(conn)  # nothing to reset: asyncpg finishes its own clean-up
            return
        timeout = self._settings.command_timeout
        try:
            if self._expired(conn):
                conn.terminate()  # the pool opens a fresh one when it needs it
            elif not conn.is_closed() and conn.is_in_transaction():
                await conn.execute("ROLLBACK", timeout=timeout)
            if dirty and not conn.is_closed():
                await conn.reset(timeout=timeout)
                read_only = self._read_only
                if read_only:  # DISCARD ALL reset it too
                    await conn.execute(_READ_ONLY, timeout=timeout)
                conn.mark_read_only_session(read_only)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            # OSError covers TimeoutError: a connection whose reset ran out is abandoned too.
            if not connection_closed(conn):
                conn.terminate()
        await pool.release(conn)

    def _expired(self, conn: asyncpg.Connection) -> bool:
        lifetime = self._settings.max_lifetime
        if lifetime is None or conn.is_closed():
            return False
        now = time.monotonic()
        if now < self._next_expiry:
            return False
        # Forget connections asyncpg has closed by itself (idle, max_queries, expired).
        for pid, (_, ref) in list(self._born.items()):
            alive = ref()
            if alive is None or alive.is_closed():
                del self._born[pid]
        entry = self._born.get(conn.get_server_pid())
        expired = entry is not None and now - entry[0] >= lifetime
        if expired:
            del self._born[conn.get_server_pid()]
        self._next_expiry = min((b for b, _ in self._born.values()), default=math.inf) + lifetime
        return expired

    def usage(self) -> dict[str, int]:
        pool = self._pool
        if pool is None:
            return {"size": 0, "idle": 0, "in_use": 0, "waiting": self.stats.waiting}
        size, idle = pool.get_size(), pool.get_idle_size()
        return {"size": size, "idle": idle, "in_use": size - idle, "waiting": self.stats.waiting}
