"""Every psycopg call the generated code makes: the twin of ``router/_async/_driver.py``
(same names, same behaviour) over psycopg 3."""

from __future__ import annotations

import math
import select
import time
from typing import Any

import psycopg
import psycopg.errors as e
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from router._catalog_load import load_catalog as _load_catalog
from router._pooler import note_pooler_mismatch
from router._scope import Call
from router._sync._deadline import Deadline
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
    "discard",
    "dsn",
    "execute",
    "fetchrow",
    "load_catalog",
    "lost",
    "note_pooler_mismatch",
    "run",
    "run_held",
    "scalar",
    "settle",
    "terminate",
]

Connection = psycopg.Connection[Any]

#: Server errors that say the connection (or the server) is going away, not the statement.
_SERVER_GONE: tuple[type[BaseException], ...] = (
    e.ConnectionException,
    e.AdminShutdown,
    e.CrashShutdown,
    e.CannotConnectNow,
    e.TooManyConnections,
    # PgBouncer's own refusals (08P01: "server login has been failing", "query_wait_timeout").
    e.ProtocolViolation,
)
#: Failing to get a connection at all.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (OSError, psycopg.OperationalError)
#: The server's verdict on a statement (and the client's own errors).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (psycopg.Error,)
#: SQLSTATE 25006: a write reached a node in recovery or a read-only transaction.
READ_ONLY_ERRORS: tuple[type[BaseException], ...] = (e.ReadOnlySqlTransaction,)
#: The errors a standby's refusal of a read comes as (25006 from a view or function that
#: writes; 0A000 for an unlogged or temporary relation during recovery): which of them are
#: refusals, ``router.core.refused_by_standby`` decides, by SQLSTATE and message.
STANDBY_REFUSALS: tuple[type[BaseException], ...] = (
    e.ReadOnlySqlTransaction,
    e.FeatureNotSupported,
)
#: psycopg's protocol state cannot break apart from the connection: nothing to add.
BROKEN_PROTOCOL: tuple[type[BaseException], ...] = ()
#: A monitor connection that is of no further use.
MONITOR_BROKEN: tuple[type[BaseException], ...] = (OSError, psycopg.OperationalError)


#: Symptoms of a transaction pooler (see :func:`note_pooler_mismatch`).
_STATEMENT_LOST: tuple[type[BaseException], ...] = (
    e.InvalidSqlStatementName,
    e.DuplicatePreparedStatement,
    # "bind message supplies 1 parameters, but prepared statement ... requires 0"
    e.ProtocolViolation,
)


def abandoned(exc: BaseException) -> bool:
    """Whether *exc* means the caller's statement was given up on at its deadline
    (:func:`run`'s ``TimeoutError``). Unlike the async twin's, the connection has nothing
    left to wait for by then: the server answered the cancel (the connection is usable), or
    the link was cut (it is broken, and its pool replaces it)."""
    return isinstance(exc, TimeoutError)


def lost(exc: BaseException, conn: Connection | None) -> bool:
    """Whether *exc* is a failure of the connection itself (a read that met it before any row
    came back may run again elsewhere). psycopg raises ``OperationalError`` for a lost
    connection and for some statement errors (``QueryCanceled``): the connection's own
    state tells them apart."""
    if isinstance(exc, (OSError, *_SERVER_GONE)):
        return True
    if isinstance(exc, psycopg.OperationalError):
        return conn is None or conn.broken or conn.closed or exc.sqlstate is None
    return False


def dsn(conninfo: str) -> str:
    """What the driver connects with: libpq's own conninfo."""
    return conninfo


def run(conn: Connection, call: Call) -> Any:
    """Run *call* (``fetch``, ``fetchrow``, ``fetchval``, ``execute``, ``executemany``) with
    psycopg's arguments: ``args`` is ``(params,)``. A ``timeout`` in ``call.kw`` (seconds,
    ``None``: none) is kept by a :class:`~router._sync._deadline.Deadline`: past it the
    server is asked to cancel the statement and :class:`TimeoutError` is raised, as by the
    async twin. A prepared statement of psycopg's that vanished under it (a transaction
    pooler in between, unannounced) gets a note saying so."""
    try:
        timeout = call.kw.get("timeout")
        if timeout is None:
            return _run(conn, call)
        return _run_within(conn, call, timeout)
    except _STATEMENT_LOST as exc:
        note_pooler_mismatch(exc)
        raise


def _run_within(conn: Connection, call: Call, timeout: float) -> Any:
    with Deadline(conn, timeout) as deadline:
        try:
            return _run(conn, call)
        except (psycopg.Error, OSError) as exc:
            if not deadline.expired:
                raise
            failure = exc
    # Raised after the block, which waits for the cancel request to be delivered.
    how = (
        "given up and its connection closed"
        if conn.broken or conn.closed
        else "cancelled on the server"
    )
    raise caused(
        TimeoutError(f"no answer within {timeout:g} s: the statement was {how}"), failure
    ) from failure


def _run(conn: Connection, call: Call) -> Any:
    method = call.method
    kw = call.kw
    if method == "executemany":
        with conn.cursor() as cur:
            cur.executemany(call.query, *call.args)
        return None
    cur = conn.execute(call.query, *call.args, prepare=kw.get("prepare"))
    if method == "fetch":
        return cur.fetchall()
    if method == "fetchrow":
        return cur.fetchone()
    if method == "fetchval":
        row = cur.fetchone()
        return None if row is None else row[kw.get("column", 0)]
    status = cur.statusmessage
    while cur.nextset():  # several statements: the status of the last, as asyncpg's
        status = cur.statusmessage
    return status or ""


def execute(conn: Connection, sql: str, timeout: float | None = None) -> None:
    """A statement without parameters or rows (``BEGIN``, ``COMMIT``, ``SET ...``).

    *timeout* cannot be kept: psycopg waits for the server's answer, and a cancel needs an
    answer too. What bounds a dead link here is the kernel's (``tcp_user_timeout`` and
    keepalives, which the pool sets from ``command_timeout``; see ``_pool.py``)."""
    conn.execute(sql)


def scalar(conn: Connection, sql: str, timeout: float | None = None) -> Any:
    """The first value of *sql*'s first row (*timeout*: as :func:`execute`)."""
    try:
        row = conn.execute(sql).fetchone()
    except _STATEMENT_LOST as exc:
        note_pooler_mismatch(exc)
        raise
    return None if row is None else row[0]


def fetchrow(conn: Connection, sql: str, timeout: float) -> Any:
    """One row of *sql*, given up after *timeout* s by the server: a :class:`TimeoutError`
    here, as the async twin's timeout is. psycopg cannot bound a query from the client, so the
    statement runs in a transaction of its own with ``SET LOCAL statement_timeout``, sent in
    one round trip: nothing outlives it on a pooler's shared server connection, and no
    start-up parameter is needed (PgBouncer refuses ``options``)."""
    ms = max(1, int(timeout * 1000))
    try:
        cur = conn.execute(
            f"BEGIN; SET LOCAL statement_timeout = {ms}; {sql}; COMMIT", prepare=False
        )
        while cur.description is None and cur.nextset():
            pass
        return cur.fetchone()
    except e.QueryCanceled as exc:
        raise caused(TimeoutError(f"no answer within {timeout:g} s"), exc) from exc


def connect_monitor(dsn: str, timeout: float, application_name: str) -> Connection:
    """A connection of the monitor's own, in autocommit, never preparing. The server bounds
    its queries (:func:`fetchrow`), and the kernel an unanswered link (``tcp_user_timeout``,
    keepalives)."""
    params = conninfo_to_dict(dsn)
    ms = max(1, int(timeout * 1000))
    params.update(
        application_name=application_name,
        connect_timeout=max(2, math.ceil(timeout)),  # libpq's floor is 2 s
        tcp_user_timeout=ms,
        keepalives=1,
        keepalives_idle=max(1, math.ceil(timeout)),
        keepalives_interval=1,
        keepalives_count=2,
    )
    started = time.monotonic()
    try:
        return psycopg.connect(make_conninfo("", **params), autocommit=True, prepare_threshold=None)
    except psycopg.OperationalError as exc:
        if time.monotonic() - started < timeout or isinstance(exc, e.ConnectionTimeout):
            raise
        # The kernel gave up on an unanswered handshake (tcp_user_timeout), which libpq
        # words as "server closed the connection unexpectedly": say what happened.
        raise caused(TimeoutError(f"no answer within {timeout:g} s"), None) from None


def discard(conn: Connection) -> None:
    """``DISCARD ALL`` on *conn* (idle, in autocommit): every trace of its session state is
    gone from the server, and psycopg is told that its prepared statements are gone too.

    psycopg notices a ``DISCARD ALL`` only the first time a connection runs one (it looks at
    the outcome of statements new to its cache, psycopg 3.3): from the second reset on it
    went on using ``_pg3_*`` names the server had dropped, and the next prepared statement
    on the connection (the router's commit-position read among them) failed with
    ``InvalidSqlStatementName``. Its registry is emptied here, with nothing queued for the
    server, which has nothing left to deallocate."""
    conn.execute("DISCARD ALL", prepare=False)
    prepared = conn._prepared
    prepared.clear()
    prepared._to_flush.clear()


def closed(conn: Connection) -> bool:
    """Whether *conn* is of no further use. asyncpg's event loop reads a server's goodbye to
    an idle connection (a shutdown, a kill, a failover) as it comes, and closes the
    connection; here nothing reads an idle connection, so read what has come (a NOTIFY stays
    queued for psycopg), and close the connection if the server has hung up."""
    if conn.closed or conn.broken:
        return True
    pgconn = conn.pgconn
    if pgconn.transaction_status == TransactionStatus.ACTIVE:
        return False  # a statement of its own is running: what arrives is its answer
    try:
        while _readable(pgconn.socket):  # a FATAL, then the end of the stream
            pgconn.consume_input()
    except psycopg.OperationalError:
        conn.close()
        return True
    return False


def _readable(fd: int) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def settle(conn: Connection, timeout: float | None) -> bool:
    """Whether *conn* is usable: psycopg has waited for the server to confirm a cancel
    before it raised (see :func:`abandoned`), nothing is left to wait for."""
    return not conn.closed


def give_up_queued(conn: Connection, timeout: float) -> None:
    """Nothing left to do: the deadline's watchdog has had the cancel answered, or cut the
    link after :data:`~router._sync._deadline.CANCEL_GRACE` (a statement queued in a pooler
    leaves the queue with its client), before the statement's call returned."""


def terminate(conn: Connection) -> None:
    """Close *conn* now (from the thread using it)."""
    if not conn.closed:
        conn.close()


def load_catalog(conn: Connection) -> FunctionCatalog:
    try:
        return _load_catalog(conn)
    except _STATEMENT_LOST as exc:
        note_pooler_mismatch(exc)
        raise


def connection_lost(exc: BaseException) -> Exception:
    """The twin of the async driver's: psycopg has no broken-protocol error of its own."""
    return psycopg.OperationalError(str(exc))


def run_held(conn: Connection, call: Call) -> Any:
    """:func:`run` on a connection a transaction or session holds (the async twin maps a
    broken protocol state; psycopg raises its own connection errors)."""
    return run(conn, call)
