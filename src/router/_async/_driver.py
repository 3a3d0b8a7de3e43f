"""Every asyncpg call the generated code makes. Its twin over psycopg is
``router/_sync/_driver.py``: same names, same behaviour, different driver."""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias

import asyncpg

from router._async._dsn import asyncpg_dsn
from router._catalog_load import load_catalog_async
from router._pooler import note_pooler_mismatch
from router._scope import Call
from router.core import FunctionCatalog, caused

__all__ = [
    "BROKEN_PROTOCOL",
    "CONNECT_ERRORS",
    "DATABASE_ERRORS",
    "MONITOR_BROKEN",
    "READ_ONLY_ERRORS",
    "STANDBY_REFUSALS",
    "Connection",
    "abandoned",
    "connection_lost",
    "closed",
    "connect_monitor",
    "dsn",
    "execute",
    "fetchrow",
    "load_catalog",
    "lost",
    "note_pooler_mismatch",
    "open_connection",
    "run",
    "run_held",
    "scalar",
    "settle",
    "terminate",
]

# An explicit alias: mypyc (tools/build_mypyc.py) takes the bare assignment of an untyped
# module's class for a variable, not a type.
Connection: TypeAlias = asyncpg.Connection

#: Failures of the connection itself (not of the statement): a read that met one before any
#: row came back may run again elsewhere.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # SQLSTATE class 08, e.g. PgBouncer's 08P01 ("server login has been failing",
    # "query_wait_timeout"): the pooler gave up on this client's connection.
    asyncpg.PostgresConnectionError,
)
#: Failing to get a connection at all.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    asyncpg.PostgresConnectionError,
)
#: The server's verdict on a statement.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError,)
#: SQLSTATE 25006: a write reached a node in recovery or a read-only transaction.
READ_ONLY_ERRORS: tuple[type[BaseException], ...] = (asyncpg.ReadOnlySQLTransactionError,)
#: The errors a standby's refusal of a read comes as (25006 from a view or function that
#: writes; 0A000 for an unlogged or temporary relation during recovery): which of them are
#: refusals, ``router.core.refused_by_standby`` decides, by SQLSTATE and message.
STANDBY_REFUSALS: tuple[type[BaseException], ...] = (
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.FeatureNotSupportedError,
)
#: The client's protocol state is broken (e.g. asyncpg read a server's FATAL on an idle
#: connection before the EOF): nothing was sent, and the connection is done for.
BROKEN_PROTOCOL: tuple[type[BaseException], ...] = (asyncpg.InternalClientError,)
#: A monitor connection that is of no further use.
MONITOR_BROKEN: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    ConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
)


#: A named prepared statement that should be on the server connection is not, or one of the
#: same name already is: symptoms of a transaction pooler (see
#: :func:`~router._pooler.note_pooler_mismatch`).
_STATEMENT_LOST: tuple[type[BaseException], ...] = (
    asyncpg.InvalidSQLStatementNameError,
    asyncpg.DuplicatePreparedStatementError,
    # "bind message supplies 1 parameters, but prepared statement ... requires 0"
    asyncpg.ProtocolViolationError,
)


def connection_lost(exc: BaseException) -> Exception:
    """What the application sees for *exc*, a :data:`BROKEN_PROTOCOL` error on a connection it
    holds (a transaction's, a session's): asyncpg's documented "connection closed" error, not
    its internal state-machine complaint."""
    error: Exception = asyncpg.ConnectionDoesNotExistError(
        f"the server closed the connection ({type(exc).__name__}: {exc})"
    )
    return error


def connect_failed(exc: BaseException) -> BaseException:
    """What the application sees for *exc*, a failure to open a connection. The server closing
    the socket before it answered asyncpg's SSL request reaches asyncpg as a builtin
    ``ConnectionError("unexpected connection_lost() call")`` (not a documented asyncpg error);
    closed a few bytes later, during the startup exchange, the same event is asyncpg's
    ``ConnectionDoesNotExistError``: that is what it becomes here. PostgreSQL 18 makes this
    common: at the end of a fast shutdown (a switchover's demotion) its postmaster terminates
    the "dead-end" children still reading a startup packet, where 15 let them answer
    57P03 (``CannotConnectNowError``). Either way nothing was sent. Every other error, the
    ``ConnectionError`` subclasses (refused, reset) included, is returned unchanged; but
    asyncpg's ``TimeoutError`` at ``connect_timeout``, which says nothing, gets words."""
    if type(exc) is TimeoutError and not str(exc):
        return TimeoutError(
            "the server did not complete the connection within pool.connect_timeout"
        )
    if type(exc) is not ConnectionError:
        return exc
    error: Exception = asyncpg.ConnectionDoesNotExistError(
        f"the server closed the connection while it was being opened ({exc})"
    )
    return error


async def open_connection(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """``asyncpg.connect(*args, **kwargs)`` failing as :func:`connect_failed` says: for the
    connections no :class:`~router._async._pool.NodePool` opens (the SQLAlchemy async
    engines' ``async_creator_fn``), so that every front door raises the same errors."""
    try:
        return await asyncpg.connect(*args, **kwargs)
    except BaseException as exc:
        failed = connect_failed(exc)
        if failed is not exc:
            raise caused(failed, exc) from exc
        raise


async def run_held(conn: asyncpg.Connection, call: Call) -> Any:
    """:func:`run` on a connection a transaction or session holds: a connection found broken
    is closed and reported as :func:`connection_lost`."""
    try:
        return await run(conn, call)
    except BROKEN_PROTOCOL as exc:
        terminate(conn)
        raise caused(connection_lost(exc), exc) from exc


def abandoned(exc: BaseException) -> bool:
    """Whether *exc* means a statement was given up on while under way: asyncpg's ``timeout``
    ran out, or the task was cancelled. asyncpg then sends a cancel request over a new
    connection and keeps the old one busy until the server confirms it, which on a dead link
    (connect hangs, reads stall) never happens: such a connection is to be closed, not
    released or used for a ROLLBACK."""
    return isinstance(exc, (TimeoutError, asyncio.CancelledError))


def lost(exc: BaseException, conn: asyncpg.Connection | None) -> bool:
    """Whether *exc* is a failure of the connection itself (a read that met it before any row
    came back may run again elsewhere)."""
    return isinstance(exc, CONNECTION_ERRORS)


def dsn(conninfo: str) -> str:
    """What the driver connects with, from a libpq conninfo (URL or key=value)."""
    return asyncpg_dsn(conninfo)


async def run(conn: asyncpg.Connection, call: Call) -> Any:
    """Run *call* (``fetch``, ``fetchrow``, ``fetchval``, ``execute``, ``executemany``).
    A driver's cached statement that vanished under it (a transaction pooler in between,
    unannounced) gets a note saying so."""
    try:
        return await getattr(conn, call.method)(call.query, *call.args, **call.kw)
    except _STATEMENT_LOST as exc:
        note_pooler_mismatch(exc)
        raise


async def execute(conn: asyncpg.Connection, sql: str, timeout: float | None = None) -> None:
    """A statement without parameters or rows (``BEGIN``, ``COMMIT``, ``SET ...``), given up
    after *timeout* s (``None``: never) with :class:`TimeoutError`: the connection is then
    :func:`abandoned`."""
    await conn.execute(sql, timeout=timeout)


async def scalar(conn: asyncpg.Connection, sql: str, timeout: float | None = None) -> Any:
    """The first value of *sql*'s first row (*timeout*: as :func:`execute`)."""
    try:
        return await conn.fetchval(sql, timeout=timeout)
    except _STATEMENT_LOST as exc:
        note_pooler_mismatch(exc)
        raise


async def fetchrow(conn: asyncpg.Connection, sql: str, timeout: float) -> Any:
    return await conn.fetchrow(sql, timeout=timeout)


async def connect_monitor(dsn: str, timeout: float, application_name: str) -> Any:
    """A connection of the monitor's own: no statement cache, bounded by *timeout* (from the
    client: nothing is set on the server, which suits a pooler in between)."""
    return await asyncpg.connect(
        dsn,
        timeout=timeout,
        statement_cache_size=0,
        server_settings={"application_name": application_name},
    )


def closed(conn: asyncpg.Connection) -> bool:
    """Whether *conn* is of no further use. When the socket of a pooled connection is lost,
    asyncpg hands it back to its pool by itself and detaches the proxy its user still holds:
    every method of that proxy, ``is_closed()`` included, then raises ``InterfaceError``."""
    try:
        is_closed: bool = conn.is_closed()
    except asyncpg.InterfaceError:
        return True
    return is_closed


async def settle(conn: asyncpg.Connection, timeout: float | None) -> bool:
    """Wait until the server has confirmed the cancel of *conn*'s abandoned statement, up to
    *timeout* s: ``True`` when *conn* is usable again, ``False`` when it was closed instead
    (the cancel could not be sent, or went unanswered). Closing at once would have dropped the
    cancel (asyncpg's closing ends its pending cancel requests), leaving the statement running
    on its server, its locks held."""
    if closed(conn):
        return False
    try:
        await conn._protocol._wait_for_cancellation(timeout)  # closes conn when it runs out
    except (TimeoutError, OSError, asyncpg.InterfaceError):
        terminate(conn)
    return not closed(conn)


async def give_up_queued(conn: asyncpg.Connection, timeout: float) -> None:
    """Behind a transaction pooler: let the cancel asyncpg sent for *conn*'s statement given up
    on be acted on (up to *timeout* s), then close *conn*. A pooler may hold the statement in
    its queue for a server connection, and PgBouncer drops a cancel for a client still waiting
    in that queue ("cancel request for idle client"): the statement would run as soon as a
    server connection frees up, after its caller was told it timed out. Closing the client
    connection takes it out of the queue; a statement already on a server was cancelled
    there by then."""
    if closed(conn):
        return
    pending = set(conn._cancellations)  # asyncpg's tasks sending and awaiting the cancel
    if pending:
        await asyncio.wait(pending, timeout=timeout)
    terminate(conn)


def terminate(conn: asyncpg.Connection) -> None:
    """Close *conn* now, without a goodbye to the server (safe from anywhere)."""
    if not closed(conn):
        conn.terminate()


async def load_catalog(conn: asyncpg.Connection) -> FunctionCatalog:
    try:
        return await load_catalog_async(conn)
    except _STATEMENT_LOST as exc:
        note_pooler_mismatch(exc)
        raise
