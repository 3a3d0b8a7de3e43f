"""Sessions and transactions of :class:`~router._async._router.AsyncRouter`: decisions from
its routing engine, statements run through its executor (no import of the router itself)."""

from __future__ import annotations

import contextlib
from functools import partial
from types import TracebackType
from typing import Any, Self

from router._async import _driver as driver
from router._async._executor import Executor
from router._async._pool import NodePool
from router._async._queries import Queries
from router._async._runtime import finish
from router._pooler import refuse_session_state
from router._scope import LAST_DECISION, Call, Scope, begin_statement
from router.core import Classification, Decision, Effect, FailureKind, Reason, reraise
from router.errors import ReadOnlyViolation, SessionStateError

__all__ = ["AsyncSession", "AsyncTransaction"]

_TX_CONTROL = frozenset({Effect.TX_BEGIN, Effect.TX_END})


class _Held:
    """A connection a session or transaction keeps between statements."""

    __slots__ = ("catalog", "conn", "decision", "dirty", "pool", "readonly", "wrote")

    def __init__(
        self, pool: NodePool, conn: driver.Connection, decision: Decision, readonly: bool
    ) -> None:
        self.pool = pool
        self.conn = conn
        self.decision = decision
        self.readonly = readonly
        self.wrote = False
        self.dirty = False
        #: DDL that changes what the router knows from the catalog ran since the last commit.
        self.catalog = False

    @property
    def node(self) -> str:
        return self.pool.name

    def check(self, cls: Classification, *, pooled: bool) -> None:
        """Refuse, before sending, what cannot run on this connection; note what will need a
        reset when it goes back (not behind a transaction pooler, *pooled*: its server
        connection is shared)."""
        if cls.route == "write" and self.readonly:
            raise ReadOnlyViolation(
                f"{cls.reason}: not allowed in a read-only transaction on {self.node}"
            )
        if cls.route == "write":
            self.wrote = True
            self.catalog = self.catalog or cls.changes_catalog
        if Effect.PIN in cls.effects or (cls.opaque and not pooled):
            self.dirty = True  # a DO or CALL may leave session state too


async def _hold(
    executor: Executor, scope: Scope, *, readonly: bool, isolation: str | None
) -> _Held:
    """A connection for a transaction: a replica when read-only (it may run a standby's
    isolation levels), else the primary. Failing to *start* on a replica is retried on the
    next candidate: nothing has been sent yet."""
    on_replica = readonly and (isolation or "").lower() != "serializable"
    if on_replica and scope.lost:
        await executor.regain_position(scope)
    failed: set[str] = set()
    while True:
        if on_replica:
            decision = executor.engine.read_decision(scope, failed, retry=bool(failed))
            if executor.engine.needs_settling(scope, decision):
                decision = await executor.settle(scope, decision, failed, retry=bool(failed))
        else:
            decision = executor.engine.write_decision()
        node = decision.node
        assert node is not None
        pool = executor.pools[node]
        try:
            conn = await pool.acquire()
        except driver.CONNECT_ERRORS as exc:
            if decision.primary or not on_replica:
                raise
            failed.add(node)
            executor.engine.node_failed(node, FailureKind.CONNECT_FAILED, type(exc).__name__)
            continue
        interrupted: BaseException | None = None
        caught_up = False
        try:
            caught_up = decision.wait_for is None or await executor.wait_replayed(
                conn, node, decision.wait_for, ask=decision.ask
            )
        except BaseException as exc:
            if driver.abandoned(exc):
                driver.terminate(conn)  # not left waiting for the cancel's confirmation
            interrupted = exc
        if interrupted is not None:
            # Given back after the `except` block: mypyc mis-compiles an `await` in one
            # (router/core/_chain.py). finish raises it again.
            await finish(partial(pool.release, conn), interrupted)
        if not caught_up:
            await pool.release(conn)
            decision = executor.engine.missed(node, decision)
            assert decision.node is not None
            pool = executor.pools[decision.node]
            conn = await pool.acquire()
        executor.engine.count(pool.name, decision.reason)
        return _Held(pool, conn, decision, readonly)


class AsyncTransaction(Queries):
    """One transaction on one node, from ``async with`` to its end: commit on success,
    rollback on an exception. Its query methods check each statement before sending it;
    :attr:`connection` is the driver's own connection (no checks)."""

    def __init__(
        self,
        executor: Executor,
        scope: Scope,
        *,
        readonly: bool,
        isolation: str | None,
        session: AsyncSession | None = None,
    ) -> None:
        self._executor = executor
        self._scope = scope
        self._readonly = readonly
        self._isolation = isolation
        self._session = session
        self._held: _Held | None = None
        self._own = True
        self._wrote_before = False

    @property
    def node(self) -> str:
        """The node this transaction runs on."""
        return self._active().node

    @property
    def decision(self) -> Decision:
        return self._active().decision

    @property
    def connection(self) -> driver.Connection:
        return self._active().conn

    def _active(self) -> _Held:
        if self._held is None:
            raise RuntimeError("the transaction is not active: use `async with`")
        return self._held

    async def __aenter__(self) -> Self:
        pinned = self._session._pinned if self._session is not None else None
        if pinned is not None:
            self._held, self._own = pinned, False
        else:
            self._held = await _hold(
                self._executor, self._scope, readonly=self._readonly, isolation=self._isolation
            )
        held = self._held
        failed: BaseException | None = None
        try:
            await self._executor.command(
                held.conn, begin_statement(self._isolation, self._readonly)
            )
        except BaseException as exc:
            failed = exc
        if failed is not None:
            # After the `except` block (see _hold): finish raises *failed* again.
            await finish(self._release, failed)
        self._wrote_before = held.wrote
        held.wrote = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        held = self._active()
        executor = self._executor
        # The `finally` below is a call after the `try` (see _hold, and finish).
        failed: BaseException | None = None
        try:
            if exc is None:
                # Given up on (pool.command_timeout), the COMMIT's outcome is unknown: its
                # TimeoutError goes to the caller, and the connection is closed.
                await executor.command(held.conn, "COMMIT")
                if held.wrote:
                    await executor.after_commit(self._scope, held.conn, held.node)
            elif driver.abandoned(exc) and self._own:
                # A statement given up on: the driver has asked its server to cancel it (its
                # locks must go now, not when it would have ended). The connection waits for
                # the server to confirm, up to command_timeout, then rolls back (past that, on
                # a dead link, it is closed and the server rolls back by itself): in the
                # background for a connection of this transaction's own, so that the caller
                # has its error now.
                self._held = None
                held.pool.abandon(held.conn)
            else:
                if driver.abandoned(exc):
                    await driver.settle(held.conn, executor.command_timeout)  # as above
                if not driver.closed(held.conn):
                    # Given up on, it closed the connection: the server rolls back, and the
                    # block's own error is the one to raise.
                    with contextlib.suppress(TimeoutError):
                        await executor.command(held.conn, "ROLLBACK")
        except BaseException as error:
            failed = error
        held.wrote = held.wrote or self._wrote_before
        changed, held.catalog = held.catalog and exc is None, False
        await finish(self._release, failed)
        if changed:
            await executor.catalog_changed()

    async def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None and self._own:
            await held.pool.release(held.conn, dirty=held.dirty)

    async def _query(
        self, method: str, query: str, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> Any:
        held = self._active()
        cls = self._executor.engine.classify(query)
        if self._executor.engine.pooled:
            refuse_session_state(cls)
        if not cls.effects.isdisjoint(_TX_CONTROL):
            raise SessionStateError(
                f"{cls.reason}: the transaction is ended by its `async with` block"
            )
        held.check(cls, pooled=self._executor.engine.pooled)
        LAST_DECISION.set(held.decision)
        result = await driver.run_held(held.conn, Call(method, query, args, kw, cls))
        self._executor.engine.read_served(self._scope, held.decision)
        return result


class AsyncSession(Queries):
    """Statements of one unit of work (a request, a job) with one consistency floor.

    Reads go to eligible replicas at or past the session's floor (its own commits, the
    ``after`` token, what it has read), writes to the primary. A statement that leaves
    session state (``SET``, ``LISTEN``, a temp table, ...) pins the session to one primary
    connection until it ends. ``BEGIN`` … ``COMMIT`` sent as statements hold one node for the
    transaction: a replica for ``BEGIN READ ONLY``, else the primary.
    """

    def __init__(self, executor: Executor, scope: Scope) -> None:
        self._executor = executor
        self._scope = scope
        self._pinned: _Held | None = None
        self._in_tx: _Held | None = None

    @property
    def consistency(self) -> str:
        return self._scope.consistency.value

    @property
    def pinned(self) -> bool:
        """Whether session state keeps this session on one primary connection."""
        return self._pinned is not None

    def token(self) -> str | None:
        """The latest commit position this session has seen, as a token (or ``None``)."""
        return self._executor.engine.token(self._scope)

    def transaction(
        self, *, readonly: bool = False, isolation: str | None = None
    ) -> AsyncTransaction:
        return AsyncTransaction(
            self._executor, self._scope, readonly=readonly, isolation=isolation, session=self
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """End the session: an open ``BEGIN`` is rolled back, a pinned connection reset."""
        in_tx, self._in_tx = self._in_tx, None
        pinned, self._pinned = self._pinned, None
        if in_tx is not None and in_tx is not pinned:
            await in_tx.pool.release(in_tx.conn, dirty=True)
        if pinned is not None:
            await pinned.pool.release(pinned.conn, dirty=True)

    async def _query(
        self, method: str, query: str, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> Any:
        executor = self._executor
        cls = executor.engine.classify(query)
        if executor.engine.pooled:
            refuse_session_state(cls)
        held = self._in_tx or self._pinned
        if held is None:
            if Effect.PIN in cls.effects:
                held = self._pinned = await self._pin(cls)
            elif Effect.TX_BEGIN in cls.effects:
                held = self._in_tx = await _hold(
                    executor,
                    self._scope,
                    readonly=bool(cls.readonly_begin),
                    isolation=cls.isolation,
                )
            else:
                return await executor.route(self._scope, Call(method, query, args, kw, cls))
        return await self._on_held(held, Call(method, query, args, kw, cls))

    async def _pin(self, cls: Classification) -> _Held:
        executor = self._executor
        decision = executor.engine.primary_for(Reason.PINNED, f"pinned: {cls.reason}")
        assert decision.node is not None
        pool = executor.pools[decision.node]
        conn = await pool.acquire()
        executor.engine.count(pool.name, Reason.PINNED)
        return _Held(pool, conn, decision, readonly=False)

    async def _on_held(self, held: _Held, call: Call) -> Any:
        executor = self._executor
        cls = call.classification
        if Effect.PIN in cls.effects and held is not self._pinned:
            if held.readonly:
                raise SessionStateError(
                    f"{cls.reason}: session state cannot be kept inside a read-only transaction"
                    " on a replica (use SET LOCAL, or set it before the transaction)"
                )
            self._pinned = held  # the primary connection of this transaction stays ours
        held.check(cls, pooled=executor.engine.pooled)
        LAST_DECISION.set(held.decision)
        result = await driver.run_held(held.conn, call)
        executor.engine.read_served(self._scope, held.decision)
        if held.catalog and (self._in_tx is None or Effect.TX_END in cls.effects):
            # Committed (or rolled back: then reloading changes nothing).
            held.catalog = False
            await executor.catalog_changed()
        if Effect.TX_END in cls.effects and held is self._in_tx:
            self._in_tx = None
            # The `finally` below is a call after the `try` (see _hold, and finish).
            failed: BaseException | None = None
            try:
                if held.wrote:
                    await executor.after_commit(self._scope, held.conn, held.node)
            except BaseException as exc:
                failed = exc
            held.wrote = False
            if held is not self._pinned:
                await finish(partial(held.pool.release, held.conn, dirty=held.dirty), failed)
            elif failed is not None:
                reraise(failed)
        elif held is self._pinned and self._in_tx is None and held.wrote:
            # Autocommit on the pinned connection: each write commits at once.
            held.wrote = False
            await executor.after_commit(self._scope, held.conn, held.node)
        return result
