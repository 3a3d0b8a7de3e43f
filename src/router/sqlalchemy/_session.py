"""``RoutedSession``: a :class:`~sqlalchemy.orm.Session` whose ``get_bind`` routes.

``Session.get_bind`` is SQLAlchemy's documented hook for choosing an engine per statement;
the async factory gets the same routing by making this class the ``sync_session_class`` of
its ``AsyncSession``. Per session transaction (design §4, "auto session"):

- reads go to one node chosen at the transaction's first read (a replica at or past the
  session's floor, else the primary) and held until the transaction ends: its reads share
  one connection and never move;
- the first write (a flush, ``insert/update/delete``, ``FOR UPDATE``, a volatile function,
  anything the classifier calls WRITE) goes to the primary, and from then on everything does,
  so lazy loads after a flush see the flushed rows;
- when a transaction that wrote commits, the session's floor rises to the primary's WAL
  position, read once its connections are back in their pools (read-your-writes;
  :meth:`RoutedSession.token`).

A read-only session (``readonly=True``, or the ``postgresql_readonly`` execution option on a
statement) raises :class:`~router.errors.ReadOnlyViolation` for a write before sending it.
``primary=True`` (or the ``router_primary`` execution option on a statement) sends reads to
the primary without pinning the transaction; a ``/* router:primary */`` comment is a WRITE to
the classifier, so it pins it, as in the core's sessions. Nothing is retried inside
SQLAlchemy; nor do reads wait for a replica to catch up (``ryw_wait`` is not used): a replica
behind the floor is skipped.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.util import EMPTY_DICT

from router._context import SHARED_FLOOR
from router._context import attach as attach_shared_floor
from router._pooler import refuse_session_state
from router._scope import Scope
from router.core import Classification, Decision, Effect, Hint, Reason, Route
from router.errors import ReadOnlyViolation, RouterError
from router.sqlalchemy._routing import Routing
from router.sqlalchemy._statements import FLUSH, NO_STATEMENT

__all__ = ["PRIMARY_OPTION", "READONLY_OPTION", "RoutedAsyncSession", "RoutedSession"]

logger = logging.getLogger("router.sqlalchemy")

#: Execution option (statement, ``execute(..., execution_options=...)``, session): run on
#: the primary.
PRIMARY_OPTION: Final = "router_primary"
#: SQLAlchemy's PostgreSQL execution option, honoured per statement and per session: run
#: on the transaction's replica, and refuse a write with ``ReadOnlyViolation``.
READONLY_OPTION: Final = "postgresql_readonly"

_OPTIONS: Final = frozenset({PRIMARY_OPTION, READONLY_OPTION})
#: Statements that may be DDL, classified even once the transaction is on the primary.
_MAYBE_DDL: Final = (TextClause, ExecutableDDLElement)
_READ_CONNECTION: Final = Classification(
    Route.READ, frozenset(), "a connection of a read-only session"
)
_AFTER_WRITE: Final = "a write earlier in this transaction"
_HINTED: Final = "router_primary option"
_HINT_COMMENT: Final = "router:primary hint"
_BLIND: Final = "the WAL position of an earlier commit is unknown"


def _route_options(
    execution_options: Any, bind_arguments: dict[str, Any] | None
) -> dict[str, Any] | None:
    """*bind_arguments* plus the routing options among *execution_options*: SQLAlchemy
    hands bind arguments, not execution options, to ``get_bind``."""
    primary = execution_options.get(PRIMARY_OPTION)
    readonly = execution_options.get(READONLY_OPTION)
    if not primary and not readonly:
        return bind_arguments
    found = dict(bind_arguments or {})
    if primary:
        found[PRIMARY_OPTION] = True
    if readonly:
        found[READONLY_OPTION] = True
    return found


class RoutedSession(Session):
    """A :class:`~sqlalchemy.orm.Session` whose statements go to the node that may serve
    them. Made by :func:`router.sqlalchemy.sessionmaker` (or, inside an ``AsyncSession``, by
    :func:`router.sqlalchemy.async_sessionmaker`), which passes these keywords through:

    ``readonly``
        Every statement on one replica per transaction; a write raises
        :class:`~router.errors.ReadOnlyViolation` before it is sent.
    ``primary``
        Every statement on the primary.
    ``after``
        A token (:meth:`token`, from any session or process on this cluster) whose commit
        this session's reads must see.
    ``consistency``
        ``"read_your_writes"`` (the router's default), ``"bounded"``, ``"eventual"`` or
        ``"strong"``.
    """

    _router_routing: ClassVar[Routing]
    # Defaults on the class: a session sets its own only when they differ (sessions are
    # made per request, so their construction is on the hot path).
    _router_readonly = False
    _router_primary = False
    _router_after: str | None = None
    _router_unchecked = False
    # The current transaction: its read node, its primary once it wrote, whether it
    # committed having written.
    _router_read: Decision | None = None
    _router_write: Decision | None = None
    _router_committed = False
    _router_last: Decision | None = None
    # The primary, once a statement of the current transaction ran there.
    _router_on_primary: str | None = None
    # The statement being executed (from execute/scalar/scalars), and the transaction-local
    # settings this transaction ran on its replica, with how many the primary has had.
    _router_executing: tuple[Any, Any] | None = None
    _router_locals: list[tuple[Any, Any]] | None = None
    _router_replayed = 0
    # DDL that changes what the router knows from the catalog ran in this transaction.
    _router_catalog = False

    def __init__(
        self,
        bind: Any = None,
        *,
        readonly: bool = False,
        primary: bool = False,
        after: str | None = None,
        consistency: str | None = None,
        **kw: Any,
    ) -> None:
        if bind is not None or kw.pop("binds", None):
            raise TypeError("a routed session chooses its engines itself: give no bind(s)")
        super().__init__(**kw)
        options = getattr(self, "execution_options", None)  # SQLAlchemy >= 2.1
        if options:
            readonly = readonly or bool(options.get(READONLY_OPTION))
            primary = primary or bool(options.get(PRIMARY_OPTION))
        if readonly:
            self._router_readonly = True
        if primary:
            self._router_primary = True
        routing = self._router_routing
        if after is None and consistency is None:
            # What engine.new_scope() makes, without its checks: sessions are made per request.
            self._router_scope: Scope = routing.root_scope.session(None, None)
        else:
            self._router_after = after
            self._router_scope, self._router_unchecked = routing.new_scope(consistency, after)
        if SHARED_FLOOR.get() is not None:  # a web request's or job's floor (router.web)
            attach_shared_floor(self._router_scope, routing.engine)

    # -- public ------------------------------------------------------------------------

    @property
    def readonly(self) -> bool:
        return self._router_readonly

    @property
    def consistency(self) -> str:
        return self._router_scope.consistency.value

    @property
    def last_decision(self) -> Decision | None:
        """Where this session's latest statement ran, and why (``node``, ``primary``,
        ``reason``, ``detail``); ``None`` before any."""
        return self._router_last

    def token(self) -> str | None:
        """The latest commit position this session has seen (its own commits, its ``after``
        token, its reads), as a token for ``factory(after=...)`` here or in another process;
        ``None`` before any."""
        return self._router_routing.token(self._router_scope, self._router_after)

    # -- routing -----------------------------------------------------------------------

    def get_bind(
        self,
        mapper: Any = None,
        *,
        clause: ClauseElement | None = None,
        bind: Any = None,
        router_primary: bool = False,
        postgresql_readonly: bool = False,
        **kw: Any,
    ) -> Any:
        """The engine of the node that may run *clause* now (see the module docstring).
        Raises :class:`~router.errors.ReadOnlyViolation` for a write in a read-only session
        or statement, :class:`~router.errors.PrimaryUnavailable` /
        :class:`~router.errors.TopologyError` for a write without a usable primary."""
        if bind is not None:
            return bind
        routing = self._router_routing
        if routing.monitor.topology is not routing.seen:
            routing.refresh()
        if self._router_unchecked:
            assert self._router_after is not None
            routing.check_token(self._router_after)
            self._router_unchecked = False
        readonly = self._router_readonly or postgresql_readonly
        primary = self._router_primary or router_primary
        if clause is not None:
            options = getattr(clause, "_execution_options", None)
            if options and not _OPTIONS.isdisjoint(options):
                readonly = readonly or bool(options.get(READONLY_OPTION))
                primary = primary or bool(options.get(PRIMARY_OPTION))
        write = self._router_write
        cls: Classification | None
        if self._flushing:
            cls = FLUSH
        elif (
            write is not None
            and not readonly
            and not routing.pooled
            and not isinstance(clause, _MAYBE_DDL)
        ):
            cls = None  # pinned: no need to look at the statement
        elif clause is None:
            cls = _READ_CONNECTION if readonly else NO_STATEMENT
        else:
            cls = routing.classify(clause)
        if routing.pooled and cls is not None:
            refuse_session_state(cls)
        if cls is None or (
            write is not None and not readonly and cls is not FLUSH and cls.route is Route.WRITE
        ):
            assert write is not None
            if cls is not None and cls.changes_catalog:
                self._router_catalog = True
            if isinstance(clause, UpdateBase):
                decision = write
            else:
                decision = routing.variant(write, Reason.PINNED, _AFTER_WRITE)
        elif cls.route is Route.WRITE and cls.standby_refuses:
            # A read only the primary can serve (an unlogged table...): there, without
            # pinning the transaction.
            decision = routing.variant(routing.write(), Reason.CLASSIFIER, cls.reason)
        elif cls.route is Route.WRITE:
            if cls.changes_catalog:
                self._router_catalog = True
            if readonly:
                where = "session" if self._router_readonly else "statement"
                raise ReadOnlyViolation(f"{cls.reason}: not allowed in a read-only {where}")
            if write is None:
                write = self._router_write = routing.write()
            # The classifier makes a hinted statement a WRITE, as the core does: it pins
            # the transaction (router_primary=True does not).
            if cls.hint is Hint.PRIMARY:
                decision = routing.variant(write, Reason.HINT, _HINT_COMMENT)
            else:
                decision = write
        elif write is not None:
            decision = routing.variant(write, Reason.PINNED, _AFTER_WRITE)
        elif primary:
            decision = routing.variant(routing.write(), Reason.HINT, _HINTED)
        elif (held := self._router_read) is not None:
            # The transaction's read node. The floor was not lost when it was chosen, and is
            # lost only by a commit, which ends the transaction (and forgets the node).
            decision = held
        elif (
            (scope := self._router_scope).lost  # _router_lost(), its usual answer first
            and scope.wants_position
            and not self._router_read_position(commit=False)
        ):
            decision = routing.variant(routing.write(), Reason.CONSISTENCY, _BLIND)
        else:
            core = routing.engine
            decision = core.read_decision(scope)
            if (
                decision.wait_for is None
                and not decision.primary
                and scope.seen_on is None
                and not core.redirects
            ):
                # The everyday read (a replica, nothing to confirm, no earlier read of the
                # session to settle: Scope.unsettled is false while seen_on is None, no
                # redirect): what Routing.read's steps come to then, in this frame.
                core.read_served(scope, decision)
            else:
                decision = routing.read(scope, decision)
            self._router_read = decision
        self._router_last = decision
        # The engine for the decision, counted in the core's decisions (Routing.record) and
        # made the current task's (or thread's) last_decision; here rather than in a method
        # of Routing: this runs for every statement.
        routing.record(decision)
        node = decision.node
        assert node is not None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("statement to %s (%s: %s)", node, decision.reason.value, decision.detail)
        if decision.primary:
            # On the primary, a read-only session (and replica emulation) gets connections
            # whose transactions are READ ONLY.
            if self._router_readonly or (routing.emulate and decision.reason is Reason.SHADOW):
                engine = routing.read_only_bind(node)
            else:
                engine = routing.binds[node]
            if decision.reason is not Reason.SHADOW:
                self._router_on_primary = node
            if self._router_locals is not None:
                self._router_replay(engine)
            return engine
        if cls is not None and cls.effects and Effect.SET_LOCAL in cls.effects:
            self._router_keep_local(clause)
        # Behind a transaction pooler a replica's transactions are READ ONLY (its
        # connections cannot start read-only).
        return routing.read_only_bind(node) if routing.pooled else routing.binds[node]

    def _router_keep_local(self, clause: ClauseElement | None) -> None:
        """Keep a transaction-local setting (``SET LOCAL``, ``set_config(..., true)``, ``SET
        TRANSACTION``, ``SET CONSTRAINTS``) run on the transaction's replica, to run it again
        on the primary if the transaction moves there (its first write): it applies to every
        statement of the transaction wherever that runs."""
        executing = self._router_executing
        if executing is None or executing[0] is not clause:
            return  # not through Session.execute (nothing to replay it from)
        if self._router_locals is None:
            self._router_locals = []
        self._router_locals.append(executing)

    def _router_replay(self, engine: Any) -> None:
        kept = self._router_locals
        assert kept is not None
        if self._router_replayed == len(kept):
            return
        # Counted first: the connection's own begin must not replay them a second time.
        start, self._router_replayed = self._router_replayed, len(kept)
        conn = self.connection(bind_arguments={"bind": engine})
        for statement, params in kept[start:]:
            conn.execute(statement, params)

    def _router_lost(self) -> bool:
        """Whether the floor is behind a commit whose position could not be read (this
        session's, or, for a new session, one made through the router before it: see
        :meth:`router._scope.Scope.session`): reads go to the primary until one is."""
        scope = self._router_scope
        return bool(scope.lost) and scope.wants_position

    def _router_read_position(self, *, commit: bool = True) -> bool:
        """Raise the floor to the primary's position now (after a commit, or to cover a lost
        one); ``False``, and reads on the primary until it succeeds, when it cannot be read
        (the position of a *commit* is then lost: :meth:`~router._scope.Scope.lose_position`,
        which the factory's next sessions inherit)."""
        scope = self._router_scope
        losses = scope.losses()
        try:
            lsn = self._router_routing.commit_position()
        except (RouterError, SQLAlchemyError, OSError) as exc:
            # The commit is done; without its position the guarantee holds only on the
            # primary. Tried again at the next read.
            if commit:
                if not scope.lost:
                    logger.warning(
                        "could not read the primary's WAL position after a commit (%s): this"
                        " session reads from the primary until it can",
                        type(exc).__name__,
                    )
                scope.lose_position()
            return False
        scope.regain_position(lsn, losses)
        return True

    # SQLAlchemy hands ``get_bind`` the bind arguments, not the execution options: copy the
    # routing options across; and keep the statement with its parameters, for
    # _router_keep_local (here rather than in a do_orm_execute listener, with which SQLAlchemy
    # builds an ORMExecuteState for every statement). Every ORM statement comes through
    # these (Session.get, Query and lazy loads call Session.execute). Hidden from type
    # checkers, which keep Session's overloads.
    if not TYPE_CHECKING:

        def execute(
            self, statement, params=None, *, execution_options=EMPTY_DICT, bind_arguments=None, **kw
        ):
            self._router_executing = (statement, params)
            if execution_options and not _OPTIONS.isdisjoint(execution_options):
                bind_arguments = _route_options(execution_options, bind_arguments)
            return super().execute(
                statement,
                params,
                execution_options=execution_options,
                bind_arguments=bind_arguments,
                **kw,
            )

        def scalar(
            self, statement, params=None, *, execution_options=EMPTY_DICT, bind_arguments=None, **kw
        ):
            self._router_executing = (statement, params)
            if execution_options and not _OPTIONS.isdisjoint(execution_options):
                bind_arguments = _route_options(execution_options, bind_arguments)
            return super().scalar(
                statement,
                params,
                execution_options=execution_options,
                bind_arguments=bind_arguments,
                **kw,
            )

        def scalars(
            self, statement, params=None, *, execution_options=EMPTY_DICT, bind_arguments=None, **kw
        ):
            self._router_executing = (statement, params)
            if execution_options and not _OPTIONS.isdisjoint(execution_options):
                bind_arguments = _route_options(execution_options, bind_arguments)
            return super().scalars(
                statement,
                params,
                execution_options=execution_options,
                bind_arguments=bind_arguments,
                **kw,
            )


def _after_commit(session: Session) -> None:
    # Also fired when a savepoint is released; only the outermost commit counts.
    if (
        isinstance(session, RoutedSession)
        and session._router_write is not None
        and session.get_nested_transaction() is None
    ):
        session._router_committed = True


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # _parent: what the public ``parent`` property returns, without its frame (this runs for
    # every transaction of every routed session).
    if transaction._parent is not None or not isinstance(session, RoutedSession):
        return
    committed = session._router_committed
    session._router_read = session._router_write = None
    primary, session._router_on_primary = session._router_on_primary, None
    session._router_locals = session._router_executing = None
    session._router_replayed = 0
    if primary is not None:
        # Monotonic reads: what it read there bounds the session's next read elsewhere.
        session._router_scope.read_on(primary, replica=False)
    changed, session._router_catalog = session._router_catalog, False
    if committed:
        session._router_committed = False
        if session._router_scope.wants_position:
            session._router_read_position()
        if changed:
            session._router_routing.catalog_changed()


event.listen(RoutedSession, "after_commit", _after_commit)
event.listen(RoutedSession, "after_transaction_end", _after_transaction_end)


class RoutedAsyncSession(AsyncSession):
    """An :class:`~sqlalchemy.ext.asyncio.AsyncSession` over a :class:`RoutedSession`;
    made by :func:`router.sqlalchemy.async_sessionmaker`."""

    @property
    def routed(self) -> RoutedSession:
        """The routed sync session underneath."""
        return cast(RoutedSession, self.sync_session)

    @property
    def readonly(self) -> bool:
        return self.routed.readonly

    @property
    def consistency(self) -> str:
        return self.routed.consistency

    @property
    def last_decision(self) -> Decision | None:
        """Where this session's latest statement ran, and why."""
        return self.routed.last_decision

    def token(self) -> str | None:
        """See :meth:`RoutedSession.token`."""
        return self.routed.token()
