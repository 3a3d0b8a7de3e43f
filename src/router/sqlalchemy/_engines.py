"""One SQLAlchemy engine per node: pool limits from the router's configuration, connection
arguments from the node's conninfo, and the router's fences and failure reports.

The engine URL carries no password (nor anything a driver needs): it names the user, host,
port and database for ``repr`` and logs only. The driver is given the node's libpq conninfo
by a ``do_connect`` listener, so SQLAlchemy's own connection arguments for the dialect
(psycopg's adapters map, for one) are kept. At connect time the listener also looks up the
node's current role: a replica's connections start with ``default_transaction_read_only=on``
(as a start-up option: no extra round trip), a second fence behind the classifier. A pooled
connection opened for another role than its node has now (a promotion, a demotion) is opened
again as it is checked out.

Behind a transaction pooler (``pooler_mode="transaction"``) nothing is set at start-up or for
the session (PgBouncer refuses such start-up parameters, and a session setting would leak to
its other clients): the replicas' fence is the driver's ``BEGIN READ ONLY`` instead (see
``RoutedSession.get_bind``), and asyncpg's prepared statements get names unique across
clients (the pooler shares server connections, where asyncpg's counters would collide).

SQLAlchemy's pool only rolls back a connection it gets back: settings, temporary tables,
prepared statements, ``WITH HOLD`` cursors, advisory locks and ``LISTEN`` would go on to the
next session. :func:`discard_session_state` marks a connection that ran a statement leaving
such state, and discards it all (``DISCARD ALL``) when the connection goes back to its pool;
the others go back with the rollback alone (and all of them behind a transaction pooler, where
a session has no state of its own to discard).
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import URL, Engine, TextClause, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolResetState, QueuePool

from router import _fork
from router._async import _driver as async_driver
from router._async._dsn import asyncpg_dsn
from router._engine import RoutingEngine
from router._pooler import note_pooler_mismatch
from router._sync import _driver as psycopg_driver
from router._sync._deadline import Deadline
from router.config import NodeConfig, PoolerMode, RouterConfig
from router.core import Effect, FailureKind, Role, refused_by_standby

try:  # SQLAlchemy >= 2.1; the old name is deprecated there
    from sqlalchemy.util import await_
except ImportError:  # pragma: no cover - SQLAlchemy 2.0
    from sqlalchemy.util import await_only as await_

__all__ = ["async_node_engine", "discard_session_state", "sync_node_engine", "watch_errors"]

logger = logging.getLogger(__name__)

#: What SQLAlchemy derives from the URL; the conninfo given to the driver says it instead.
_URL_PARAMS: Final = ("host", "port", "user", "password", "dbname", "database")
_READ_ONLY_OPTION: Final = "-c default_transaction_read_only=on"
#: SQLSTATE 25006: a write reached a node in recovery or a read-only transaction.
_READ_ONLY_SQLSTATE: Final = "25006"
#: SQLSTATE class 08: the connection failed, e.g. PgBouncer's 08P01 ("server login has been
#: failing", "query_wait_timeout"), which SQLAlchemy does not count as a disconnect.
_CONNECTION_CLASS: Final = "08"
#: A prepared statement missing, or one of the same name present: a transaction pooler's sign.
_STATEMENT_LOST: Final = frozenset({"26000", "42P05"})

RoleOf = Callable[[str], Role]
#: Key in a pooled connection's ``info``: it ran a statement that leaves session state.
_STATE_LEFT: Final = "router_session_state"
#: Key in a pooled connection's ``info``: the role its node had when it was opened.
_OPENED_AS: Final = "router_opened_as"
#: Key in a pooled connection's ``info``: the deadline of the statement under way.
_DEADLINE: Final = "router_deadline"


def _url(drivername: str, node: NodeConfig) -> URL:
    host = node.host
    return URL.create(
        drivername,
        username=node.user,
        host=None if host.startswith("/") else host,
        port=node.port,
        database=node.dbname,
    )


def _pool_options(config: RouterConfig, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    pool = config.pool
    options: dict[str, Any] = {
        "pool_recycle": -1 if pool.max_lifetime is None else pool.max_lifetime
    }
    poolclass = (extra or {}).get("poolclass")
    if poolclass is None or (isinstance(poolclass, type) and issubclass(poolclass, QueuePool)):
        # Sizes for a queue pool (the default, sync and async); a NullPool or StaticPool
        # given in engine_options takes none.
        options.update(pool_size=pool.max_size, max_overflow=0, pool_timeout=pool.acquire_timeout)
    options.update(extra or {})
    return options


def _read_only(config: RouterConfig, role: Role) -> bool:
    """Whether a new connection of a node in *role* starts read-only (never behind a
    transaction pooler)."""
    return (
        config.replica_read_only
        and config.pooler_mode is not PoolerMode.TRANSACTION
        and role is Role.REPLICA
    )


def _follow_roles(engine: Engine, node: str, role_of: RoleOf) -> None:
    """A pooled connection opened for another role than *node* has now is opened again as
    it is checked out (``DisconnectionError``: SQLAlchemy reconnects that pool entry, through
    ``do_connect``, with the settings of the current role): a promoted replica's connections
    must not be read-only, nor carry a replica's read deadline, and a demoted primary's must
    be read-only. Checked at every checkout against the role the router decides by, so no
    session can take such a connection once the router names the new role, whichever thread
    or task sees the change first; only the connections used after a change are reopened."""

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        role = role_of(node)
        opened = record.info.get(_OPENED_AS)
        if opened is not None and role is not opened and role is not Role.UNKNOWN:
            raise DisconnectionError(f"{node} is {role} now: a connection opened for a {opened}")

    event.listen(engine, "checkout", checkout)


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def sync_node_engine(
    node: NodeConfig,
    config: RouterConfig,
    role_of: RoleOf,
    engine_options: Mapping[str, Any] | None = None,
) -> Engine:
    """A ``postgresql+psycopg`` engine for *node*."""
    engine = create_engine(
        _url("postgresql+psycopg", node), **_pool_options(config, engine_options)
    )
    conninfo = node.connect_dsn
    own_options = str(conninfo_to_dict(conninfo).get("options") or "")
    fixed: dict[str, Any] = {
        "application_name": config.application_name,
        "connect_timeout": max(1, math.ceil(config.pool.connect_timeout)),
        "prepare_threshold": config.effective_prepare_threshold,
    }

    def do_connect(dialect: Any, record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        # The first connection of a forked child: the core's monitor runs again.
        _fork.resume()
        for key in _URL_PARAMS:
            cparams.pop(key, None)
        cargs[:] = [conninfo]
        cparams.update(fixed)
        role = record.info[_OPENED_AS] = role_of(node.name)
        if _read_only(config, role):
            cparams["options"] = f"{own_options} {_READ_ONLY_OPTION}".strip()

    event.listen(engine, "do_connect", do_connect)
    _follow_roles(engine, node.name, role_of)
    timeout = config.effective_read_timeout
    if timeout is not None:
        _read_deadlines(engine, node.name, timeout, role_of)
    return engine


def _read_deadlines(engine: Engine, node: str, timeout: float, role_of: RoleOf) -> None:
    """Statements on *node* while it is a replica (reads, in read-only transactions) carry
    *timeout* (``read_timeout``): past it the server is asked to cancel the statement (or,
    with no answer, the link is cut) and :class:`TimeoutError` is raised, as asyncpg's
    ``command_timeout`` does in the async twin. Registered before :func:`watch_errors`: a
    statement given up on says nothing about the node."""

    def before(conn: Any, cursor: Any, statement: Any, *args: Any) -> None:
        if role_of(node) is Role.REPLICA:
            deadline = Deadline(conn.connection.driver_connection, timeout)
            conn.info[_DEADLINE] = deadline.__enter__()

    def after(conn: Any, cursor: Any, statement: Any, *args: Any) -> None:
        deadline = conn.info.pop(_DEADLINE, None)
        if deadline is not None:
            deadline.__exit__(None, None, None)

    def on_error(context: ExceptionContext) -> None:
        conn = context.connection
        deadline = None if conn is None else conn.info.pop(_DEADLINE, None)
        if deadline is None:
            return
        deadline.__exit__(None, None, None)  # waits for a cancel under way to be delivered
        if deadline.expired:
            raise TimeoutError(
                f"no answer within {timeout:g} s: the statement was given up on {node}"
                " (read_timeout)"
            ) from context.original_exception

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", on_error)


def async_node_engine(
    node: NodeConfig,
    config: RouterConfig,
    role_of: RoleOf,
    engine_options: Mapping[str, Any] | None = None,
) -> AsyncEngine:
    """A ``postgresql+asyncpg`` engine for *node*."""
    engine = create_async_engine(
        _url("postgresql+asyncpg", node), **_pool_options(config, engine_options)
    )
    dsn = asyncpg_dsn(node.connect_dsn)
    cache_size = config.effective_statement_cache_size
    pooled = config.pooler_mode is PoolerMode.TRANSACTION
    read_timeout = config.effective_read_timeout

    def do_connect(dialect: Any, record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        for key in _URL_PARAMS:
            cparams.pop(key, None)
        cargs[:] = [dsn]
        settings = {"application_name": config.application_name}
        role = record.info[_OPENED_AS] = role_of(node.name)
        if _read_only(config, role):
            settings["default_transaction_read_only"] = "on"
        cparams["server_settings"] = settings
        cparams["timeout"] = config.pool.connect_timeout
        # asyncpg.connect, with a server's close before it answered raised as the
        # ConnectionDoesNotExistError NodePool raises too, not asyncpg's bare ConnectionError
        # (which SQLAlchemy does not wrap: it would reach the application as it is).
        cparams["async_creator_fn"] = async_driver.open_connection
        if read_timeout is not None and role is Role.REPLICA:
            # A replica's statements (reads, in read-only transactions) are given up on at
            # read_timeout: asyncpg asks the server to cancel and raises TimeoutError.
            cparams["command_timeout"] = read_timeout
        cparams["prepared_statement_cache_size"] = cache_size
        if cache_size == 0:  # behind a transaction pooler: no cached statements at all
            cparams["statement_cache_size"] = 0
        if pooled:
            # SQLAlchemy prepares named statements even uncached: names of their own, or two
            # clients' "__asyncpg_stmt_1__" meet on one shared server connection.
            cparams["prepared_statement_name_func"] = _unique_statement_name

    event.listen(engine.sync_engine, "do_connect", do_connect)
    _follow_roles(engine.sync_engine, node.name, role_of)
    return engine


def watch_errors(engine: Engine, node: str, routing: RoutingEngine) -> None:
    """Report what SQLAlchemy's errors say about *node* to the router's monitor: a connection
    that could not be made or was lost marks the node failed at once (not at the next
    check); SQLSTATE 25006 from a node believed primary asks for rediscovery of the roles
    (a failover happened); a driver's prepared statement vanishing under it gets a note
    naming ``pooler_mode="transaction"``. Nothing is retried: the error reaches the caller
    unchanged."""

    def handle_error(context: ExceptionContext) -> None:
        error = context.original_exception
        monitor = routing.monitor
        sqlstate = getattr(error, "sqlstate", None) or ""
        if context.connection is None and not context.is_pre_ping:
            monitor.report_failure(node, FailureKind.CONNECT_FAILED, _driver_error(error))
        elif context.is_disconnect or sqlstate.startswith(_CONNECTION_CLASS):
            monitor.report_failure(node, FailureKind.BROKEN_CONNECTION, _driver_error(error))
        elif sqlstate in _STATEMENT_LOST and context.sqlalchemy_exception is not None:
            note_pooler_mismatch(context.sqlalchemy_exception, pooled=routing.pooled)
        elif (
            getattr(error, "sqlstate", None) == _READ_ONLY_SQLSTATE
            and monitor.topology.primary == node
        ):
            logger.warning("%s refused a write as read-only: rediscovering roles", node)
            monitor.request_rediscovery(node)
        elif (
            refused_by_standby(sqlstate, str(error))
            and routing.role_of(node) is Role.REPLICA
            and context.statement
        ):
            # Inside a transaction nothing is run again, but the same statement goes to the
            # primary from now on (a view or function that writes, an unknown unlogged table).
            first = str(error).strip().split("\n", 1)[0]
            why = f"{node} refused it ({getattr(error, 'sqlstate', '')}: {first})"
            for sql in _classified_texts(context):
                routing.learn_refusal(sql, why)
            logger.info("a replica refused a read; it runs on the primary from now on: %s", why)

    event.listen(engine, "handle_error", handle_error)


def _driver_error(error: BaseException) -> str:
    """The name of the driver's own error: SQLAlchemy's asyncpg dialect raises its DBAPI
    wrapper (``Error``, which says nothing) from asyncpg's (``CannotConnectNowError``)."""
    cause = error.__cause__
    return type(cause if isinstance(cause, Exception) else error).__name__


def _classified_texts(context: ExceptionContext) -> set[str]:
    """The texts a statement that failed is known by to the sessions' classification: what
    the driver was sent, and for ``text()`` its own text (bound parameters as ``:name``,
    where the driver was sent ``%(name)s`` or ``$1``: see ``_statements.classify_statement``)."""
    texts = {context.statement} if context.statement else set()
    compiled = getattr(context.execution_context, "compiled", None)
    clause = getattr(compiled, "statement", None)
    if isinstance(clause, TextClause):
        texts.add(clause.text)
    return texts


def discard_session_state(engine: Engine, routing: RoutingEngine, *, asyncpg: bool) -> None:
    """Give *engine*'s connections back to its pool without the session state a statement
    left on them (``SET``, temporary tables, ``PREPARE``, ``WITH HOLD`` cursors, advisory
    locks, ``LISTEN``): ``DISCARD ALL`` for those, and the driver's prepared statements
    forgotten with it; nothing more for the others. *asyncpg*: the engine's driver is
    asyncpg (else psycopg). Nothing behind a transaction pooler: a DISCARD ALL there would
    drop what the pooler keeps for its other clients (their prepared statements)."""
    if routing.config.pooler_mode is PoolerMode.TRANSACTION:
        return
    classifier = routing.classifier
    pin = Effect.PIN
    # Whether a text SQLAlchemy sends leaves session state, per text, while the classifier's
    # generation holds (the texts of an application are few and repeated; the classifier's
    # own cache costs a call and its checks per statement). Bounded like the classifier's.
    leaves: dict[str, bool] = {}
    size = max(1, routing.config.classifier_cache_size)
    seen = [classifier.generation]
    registered = threading.Lock()
    listening = False

    def mark(statement: str, context: Any) -> None:
        found = classifier.classify(statement)
        left = found.opaque or bool(found.effects and pin in found.effects)
        generation = classifier.generation
        if generation != seen[0]:
            leaves.clear()
            seen[0] = generation
        elif len(leaves) >= size:
            leaves.clear()
        if type(statement) is str:
            leaves[statement] = left
        if left:
            _left(context)

    def _left(context: Any) -> None:
        nonlocal listening
        context.root_connection.info[_STATE_LEFT] = True
        if not listening:
            # The pool's reset listener is added with the first connection to need it: a
            # pool event with a listener costs every connection's return a dispatch (and a
            # PoolResetState), which most applications never need. It stays for the
            # engine's life (a dispose keeps its pool's listeners).
            with registered:
                if not listening:
                    event.listen(engine, "reset", reset)
                    listening = True

    # The dialect's execute events, not the connection's before_cursor_execute: a connection
    # event makes SQLAlchemy take its event path for every connection, begin, execute and
    # commit of the engine (a joined dispatcher per connection); the dialect's events are
    # dispatched at the cursor alone. Each returns None: SQLAlchemy executes as usual. The
    # text SQLAlchemy sends is a str (the classifier's cached path; it never raises).
    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        left = leaves.get(statement)
        if left is None or classifier.generation != seen[0]:
            mark(statement, context)
        elif left:
            _left(context)

    def do_execute_no_params(cursor: Any, statement: str, context: Any) -> None:
        left = leaves.get(statement)
        if left is None or classifier.generation != seen[0]:
            mark(statement, context)
        elif left:
            _left(context)

    def reset(dbapi_connection: Any, record: Any, state: PoolResetState) -> None:
        if record is None or not record.info.pop(_STATE_LEFT, False):
            return
        if state.terminate_only or not state.asyncio_safe:
            return  # the connection is closed, not reused
        # DISCARD ALL cannot run inside a transaction block: end it first (SQLAlchemy's
        # own rollback after this finds nothing left to do).
        dbapi_connection.rollback()
        if asyncpg:
            _discard_asyncpg(dbapi_connection)
        else:
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            try:
                psycopg_driver.discard(dbapi_connection)
            finally:
                dbapi_connection.autocommit = autocommit

    event.listen(engine, "do_execute", do_execute)
    event.listen(engine, "do_executemany", do_execute)
    event.listen(engine, "do_execute_no_params", do_execute_no_params)


def _discard_asyncpg(adapted: Any) -> None:
    """``DISCARD ALL`` on SQLAlchemy's asyncpg connection, whose statements (SQLAlchemy's
    prepared-statement cache, asyncpg's own) the server has then forgotten: forgotten here
    too, without a Close sent for each."""
    conn = adapted._connection
    await_(conn.execute("DISCARD ALL"))
    cache = adapted._prepared_statement_cache
    if cache is not None:
        cache.clear()
    conn._mark_stmts_as_closed()
