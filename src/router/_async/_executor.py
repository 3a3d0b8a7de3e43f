"""The I/O half of a router: pools, the monitor, statements on nodes, retries.

:class:`Executor` carries out what the routing engine (:class:`router._engine.RoutingEngine`)
decides: it takes a connection of the decided node's pool, waits there for a floor when the
decision says so, runs the driver's call, reads commit positions, and tells the engine what
happened. :class:`~router._async._router.AsyncRouter` (the public face, lifecycle) and the
sessions (``_session.py``) both run statements through it.

The sync ``Executor`` is generated from this file by ``tools/unasync.py``: keep driver calls in
``_driver.py`` and concurrency in ``_runtime.py``, and everything else flavour-neutral.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from random import Random
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from router._async import _driver as driver
from router._async._monitor import Monitor
from router._async._pool import NodePool
from router._async._runtime import Background, finish, sleep
from router._engine import RoutingEngine
from router._introspect import describe
from router._pooler import refuse_session_state
from router._scope import (
    LAST_DECISION,
    POSITION_QUERY,
    REPLAY_QUERY,
    Call,
    Scope,
    needs_session,
)
from router._stats import State
from router._telemetry import NO_SPAN, NodeAddress, Telemetry
from router.config import RouterConfig
from router.core import (
    Classifier,
    Decision,
    FailureKind,
    Lsn,
    Reason,
    Role,
    Topology,
    caused,
    raised_in,
    refused_by_standby,
    reraise,
)
from router.errors import (
    PoolTimeout,
    PrimaryUnavailable,
    RouterError,
    SessionStateError,
    TopologyError,
)

__all__ = ["NO_CONNECTION", "Executor"]

logger = logging.getLogger("router")

#: Failures that leave the function catalog for the next topology change to load.
_CATALOG_LATER: tuple[type[BaseException], ...] = (
    PrimaryUnavailable,
    TopologyError,
    *driver.CONNECT_ERRORS,
    *driver.DATABASE_ERRORS,
)
#: Failures to get a connection.
NO_CONNECTION: tuple[type[BaseException], ...] = (
    PoolTimeout,
    RouterError,
    *driver.CONNECT_ERRORS,
)
#: Failures that leave a position unread (the caller degrades: see _primary_position).
_NO_POSITION: tuple[type[BaseException], ...] = (
    PrimaryUnavailable,
    TopologyError,
    PoolTimeout,
    TimeoutError,
    *driver.CONNECT_ERRORS,
    *driver.DATABASE_ERRORS,
)
#: Behind a transaction pooler, how long a read given up at its timeout waits for its cancel
#: to be acted on before its connection is closed and the caller hears of it.
CANCEL_DELIVERY_WAIT = 1.0

Clock = Callable[[], float]


class _Retry(Exception):
    """The one signal to run a statement again elsewhere (nothing was sent, or nothing came
    back): a connection that failed (*cause*), for the caller to decide the next node; or a
    replica that missed its wait, with the next decision (*instead*: the primary)."""

    def __init__(self, node: str, cause: BaseException, instead: Decision | None = None) -> None:
        self.node = node
        self.cause = cause
        self.instead = instead
        super().__init__(node)


class Executor:
    """Pools, monitor and the routing engine of one router, and the statements run on them."""

    def __init__(
        self, config: RouterConfig, classifier: Classifier | None, rng: Random | None, clock: Clock
    ) -> None:
        self.config = config
        self._ryw_wait = config.ryw_wait
        #: Bound of the router's own statements (BEGIN, COMMIT, position reads).
        self.command_timeout = config.pool.command_timeout
        # The driver's `timeout` for reads outside a transaction that name none: behind a
        # pooler a read may queue for a server that never comes (query_wait_timeout, 120 s).
        self._read_timeout = config.effective_read_timeout
        nodes = config.all_nodes
        self.addresses = {n.name: NodeAddress(n.name, n.host, n.port, n.dbname) for n in nodes}
        settings = config.pool_settings()
        self.pools = {n.name: NodePool(n.name, driver.dsn(n.connect_dsn), settings) for n in nodes}
        for n in nodes:
            self.pools[n.name].stats.weight = n.weight
        self.monitor = Monitor(
            {n.name: driver.dsn(n.connect_dsn) for n in nodes},
            config.gate_params(),
            interval=config.monitor_interval,
            timeout=config.monitor_timeout,
            application_name=config.application_name,
            on_change=self.topology_changed,
            on_roles=self.assume_roles,
            clock=clock,
            patroni_urls=config.patroni_urls,
            addresses={n.address: n.name for n in nodes},
        )
        #: The routing engine: every decision of this router, its sessions and the session
        #: factories built over it.
        self.engine = RoutingEngine(
            config,
            self.monitor,
            {name: pool.stats for name, pool in self.pools.items()},
            classifier=classifier,
            rng=rng,
        )
        self.telemetry = Telemetry(record_sql=config.record_sql)
        self.background = Background()
        self.state = State.NEW

    async def refresh_catalog(self) -> None:
        """Read user functions' volatility and the relations standbys refuse (unlogged
        tables, views that write) from the primary again: STABLE and IMMUTABLE functions may
        run on replicas, VOLATILE ones may not. DDL that changes them through the router
        does this by itself once it has committed."""
        primary = self.engine.write_decision().node
        assert primary is not None
        pool = self.pools[primary]
        conn = await pool.acquire()
        failed: BaseException | None = None
        try:
            catalog = await driver.load_catalog(conn)
        except BaseException as exc:
            failed = exc
        await finish(partial(pool.release, conn), failed)  # a `finally` (see finish)
        self.engine.classifier.set_catalog(catalog)

    async def catalog_changed(self) -> None:
        """DDL that changes what the router knows from the catalog committed through it:
        reload it before the next decision. The DDL is done whatever happens here; a failure
        (logged) leaves the old catalog until :meth:`refresh_catalog` or the next such DDL."""
        if not self.engine.own_classifier:
            return
        try:
            await self.refresh_catalog()
        except _CATALOG_LATER as exc:
            logger.warning("could not reload the catalog after DDL (%s)", type(exc).__name__)

    def topology_changed(self, old: Topology, new: Topology) -> None:
        self.engine.topology_changed(old, new)
        if self.state is not State.OPEN:
            return  # open() syncs the pools and reports the topology itself
        if old.primary != new.primary or old.split_brain != new.split_brain:
            logger.warning("topology changed: %s", describe(new))
        else:
            logger.info("topology changed: %s", describe(new))
        self.background.spawn(partial(self.sync_roles, new), name="router-sync-roles")

    def assume_roles(self, topology: Topology) -> None:
        """Each pool's connections set for its node's role (no I/O: see
        ``NodePool.set_read_only``); a node whose check failed keeps its last known role.
        The monitor calls it before it makes a topology with new roles current: the next
        decision may send a write to a promoted replica, whose connections must not still
        be read-only by then (a transaction's write is not retried on 25006)."""
        for node in topology.nodes:
            if node.role is not Role.UNKNOWN:
                self.pools[node.name].set_read_only(node.role is Role.REPLICA)

    async def sync_roles(self, topology: Topology) -> None:
        self.assume_roles(topology)
        if self.engine.system_id is None:
            self.engine.system_id = self.engine.identify(self.monitor.system_ids)
        engine = self.engine
        if engine.own_classifier and engine.classifier.catalog is None and topology.primary:
            # The primary was away at open(): user functions have been WRITE meanwhile (the
            # safe side); now their volatility can be read.
            try:
                await self.refresh_catalog()
            except _CATALOG_LATER:
                logger.warning("could not load the function catalog yet; will try again")

    async def call(
        self, scope: Scope, method: str, query: str, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> Any:
        """A statement outside any transaction and outside any pinned session."""
        cls = self.engine.classify(query)
        if self.engine.pooled:
            refuse_session_state(cls)
        if needs_session(cls):
            raise SessionStateError(
                f"{cls.reason}: outside a session this would be lost on a pooled connection"
                " (use router.session() or router.transaction())"
            )
        if not self.engine.to_primary(cls):  # the everyday read: as route() does, one frame less
            return await self._read(scope, self._read_call(method, query, args, kw, cls))
        return await self.route(scope, Call(method, query, args, kw, cls))

    async def route(self, scope: Scope, call: Call) -> Any:
        """A statement outside any transaction block, to the node its classification asks."""
        cls = call.classification
        if self.engine.to_primary(cls):
            if cls.standby_refuses:
                read = self._read_call(call.method, call.query, call.args, call.kw, cls)
                return await self._primary_read(scope, read, cls.reason)
            return await self._write(scope, call)
        read = self._read_call(call.method, call.query, call.args, call.kw, cls)
        return await self._read(scope, read)

    def _read_call(
        self, method: str, query: str, args: tuple[Any, ...], kw: dict[str, Any], cls: Any
    ) -> Call:
        """A read outside a transaction, with ``read_timeout`` as its driver timeout unless
        it names one."""
        if self._read_timeout is not None and kw.get("timeout", 0) is None:
            kw = {**kw, "timeout": self._read_timeout}
        return Call(method, query, args, kw, cls)

    async def _primary_read(
        self, scope: Scope, call: Call, why: str, reason: Reason = Reason.CLASSIFIER
    ) -> Any:
        """A read only the primary can serve (*why*): nothing to retry it on, no commit."""
        decision = self.engine.primary_for(reason, why)
        try:
            return await self._run(scope, decision, call, write=False)
        except _Retry as failed:
            raise caused(failed.cause, None) from None

    async def _write(self, scope: Scope, call: Call) -> Any:
        decision = self.engine.decide_write(call.classification)
        # Each retry runs after its `except` block, which awaits nothing (mypyc: see
        # router/core/_chain.py); raised_in gives what it raises the block's context.
        broken: _Retry | None = None
        refused: BaseException | None = None
        try:
            return await self._run(scope, decision, call, write=True)
        except _Retry as retry:
            # (Its own name: mypyc gives a name one type in the whole function.)
            broken = retry
        except driver.READ_ONLY_ERRORS as exc:
            refused = exc
        if broken is not None:
            # The pooled connection was already broken (the server's goodbye read while it
            # was idle): nothing was sent, so once more on a fresh decision and connection.
            try:
                retried = self.engine.primary_for(Reason.RETRY, "resent: nothing was sent")
                return await self._run(scope, retried, call, write=True)
            except _Retry as again:
                raised_in(again, broken)
                raise caused(_surfaced(broken.cause), None) from None
            except BaseException as late:
                raised_in(late, broken)
                raise
        # The node we believed primary is not (a failover happened): the statement wrote
        # nothing, so rediscover and try once on the new primary.
        assert refused is not None
        try:
            assert decision.node is not None
            await self._rediscover(decision.node)
            retried = self.engine.primary_for(Reason.RETRY, "after 25006")
            return await self._run(scope, retried, call, write=True)
        except BaseException as late:
            raised_in(late, refused)
            raise

    async def _rediscover(self, suspect: str) -> None:
        self.monitor.request_rediscovery(suspect)
        topology = await self.monitor.check(patient=True)
        # The pools already follow the new roles (the monitor's on_roles); a primary that
        # was away until now has its catalog read before the retry.
        await self.sync_roles(topology)

    async def settle(
        self, scope: Scope, decision: Decision, exclude: Iterable[str] = (), *, retry: bool = False
    ) -> Decision:
        """*decision* would move a session's reads to another replica (monotonic reads: see
        :class:`Scope`): raise its floor past its last read first, and decide again."""
        lsn = await self._primary_position()
        if lsn is None:
            return decision
        return self.engine.settled(scope, lsn, exclude, retry=retry)

    async def _primary_position(self) -> Lsn | None:
        """The primary's WAL position now, or ``None`` when it cannot be read (logged)."""
        try:
            node = self.engine.write_decision().node
            assert node is not None
            pool = self.pools[node]
            conn = await pool.acquire()
            failed: BaseException | None = None
            try:
                position = await self.commit_position(conn)
            except BaseException as exc:
                failed = exc
            await finish(partial(pool.release, conn, settled=True), failed)  # see finish
            return position
        except _NO_POSITION as exc:
            # Without it the next read may go to the primary or a replica that is merely
            # at the floor; the read is served rather than refused.
            logger.warning("could not read the primary's position (%s)", type(exc).__name__)
            return None

    async def _read(self, scope: Scope, call: Call) -> Any:
        if scope.lost:
            await self.regain_position(scope)
        decision = self.engine.unconfirmed_floor(scope) or self.engine.read_decision(scope)
        if self.engine.needs_settling(scope, decision):
            decision = await self.settle(scope, decision)
        # The retry runs after its `except` block, which awaits nothing (mypyc: see
        # router/core/_chain.py); raised_in gives what it raises the block's context.
        failed: BaseException | None = None
        retry: _Retry | None = None
        again = ""
        try:
            return await self._run(scope, decision, call, write=False)
        except _Retry as first:
            # (Its own name: mypyc gives a name one type in the whole function.)
            failed = retry = first
        except driver.STANDBY_REFUSALS as exc:
            ran = LAST_DECISION.get()
            code = getattr(exc, "sqlstate", None)
            if ran is None or ran.primary or not refused_by_standby(code, str(exc)):
                raise  # the statement's own error (on the primary too), not the standby's
            # It can never succeed on a standby (a view or function that writes, a relation
            # the catalog did not know as unlogged); the replica wrote nothing. Remembered,
            # so the next one goes to the primary at once.
            assert ran.node is not None
            why = f"{ran.node} refused it ({_first_line(exc)})"
            self.engine.classifier.learn_refusal(call.query, why)
            logger.info("a replica refused a read; it runs on the primary from now on: %s", why)
            again = f"{why}; run again on the primary"
            failed = exc
        try:
            if retry is not None:
                return await self._read_retrying(scope, retry, call)
            return await self._primary_read(scope, call, again, Reason.RETRY)
        except BaseException as late:
            assert failed is not None
            raised_in(late, failed)
            raise

    async def _read_retrying(self, scope: Scope, first: _Retry, call: Call) -> Any:
        failed = {first.node}
        retry = self.config.retry
        if retry.attempts <= 1:
            raise first.cause
        retrying = AsyncRetrying(
            stop=stop_after_attempt(retry.attempts - 1),
            # Not wait_exponential_jitter: its `initial` is deprecated in tenacity 9.2 and its
            # replacement `multiplier` is missing before 9.1; this is the same wait.
            wait=wait_exponential(multiplier=retry.backoff_initial, max=retry.backoff_max)
            + wait_random(0, retry.jitter),
            retry=retry_if_exception_type(_Retry),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    decision = self.engine.read_decision(scope, failed, retry=True)
                    try:
                        return await self._run(scope, decision, call, write=False)
                    except _Retry as again:
                        failed.add(again.node)
                        raise
        except _Retry as last:
            raise caused(_surfaced(last.cause), None) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run(self, scope: Scope, decision: Decision, call: Call, *, write: bool) -> Any:
        """Run one statement on the decided node (in autocommit), with telemetry: one loop
        over decisions. A :class:`_Retry` that brings the next decision (a replica that did not
        replay the floor within ``ryw_wait``: the engine's fallback, the primary) is taken
        here; any other goes to the caller, whose retry policy decides the next node."""
        while True:
            if self.engine.redirects:
                decision, emulate = self.engine.shadowed(decision, read=not write)
            else:
                emulate = False
            node = decision.node
            assert node is not None
            pool = self.pools[node]
            stats = pool.stats
            self.engine.record(decision)
            telemetry = self.telemetry
            span = (
                telemetry.start(
                    call.method,
                    self.addresses[node],
                    primary=decision.primary,
                    reason=decision.reason.value,
                    detail=decision.detail,
                    route=call.classification.route.value,
                    sql=call.query,
                )
                if telemetry.tracing()
                else NO_SPAN  # no SDK: nothing to build
            )
            in_flight = stats.in_flight
            in_flight.append(None)
            started = time.perf_counter()
            instead: Decision | None = None
            try:
                result = await self._on_node(
                    pool, decision, call, scope, write=write, read_only=emulate
                )
            except _Retry as again:
                if again.instead is None:
                    stats.errors += 1
                    Telemetry.fail(span, again)
                    raise
                instead = again.instead  # nothing was sent: not an error of the node
            except BaseException as exc:
                stats.errors += 1
                Telemetry.fail(span, exc)
                raise
            finally:
                in_flight.pop()
                if span is not NO_SPAN:  # NO_SPAN.end() does nothing
                    span.end()
            if instead is not None:
                # Outside the try: mypyc (tools/build_mypyc.py) compiles no `continue` in a
                # try/finally.
                decision = instead
                continue
            stats.latency.update(time.perf_counter() - started)
            if write:
                stats.writes += 1
                if call.classification.changes_catalog:
                    await self.catalog_changed()
            else:
                stats.reads += 1
                if scope.parent is not None:
                    self.engine.read_served(scope, decision)
            return result

    async def _on_node(
        self,
        pool: NodePool,
        decision: Decision,
        call: Call,
        scope: Scope,
        *,
        write: bool,
        read_only: bool = False,
    ) -> Any:
        """The statement's result. Raises :class:`_Retry` when it is to run elsewhere: a read
        whose connection failed before any row came back, or a read whose replica did not
        reach ``wait_for`` in time (then with the engine's fallback decision)."""
        node = pool.name
        try:
            conn = await pool.acquire()
        except PoolTimeout as exc:
            if write:
                raise
            raise caused(_Retry(node, exc), exc) from exc
        except driver.CONNECT_ERRORS as exc:
            self.monitor.report_failure(node, FailureKind.CONNECT_FAILED, type(exc).__name__)
            if write:
                raise
            raise caused(_Retry(node, exc), exc) from exc
        # The caller's own statement is under way (not one of the router's).
        running = False
        given_up = False
        # What the `except` block below decided, done after it: mypyc mis-compiles an `await`
        # in an `except` or `finally` block (router/core/_chain.py), so the block awaits
        # nothing and the connection goes back (once a `finally`) after it.
        failed: BaseException | None = None
        queued = False
        served = False
        result: Any = None
        try:
            if decision.wait_for is None or await self.wait_replayed(
                conn, node, decision.wait_for, ask=decision.ask
            ):
                running = True
                result = await (
                    self._read_only(conn, call) if read_only else driver.run(conn, call)
                )
                running = False
                if write:
                    await self.after_commit(scope, conn, node)
                elif decision.primary and self.engine.unverified(scope):
                    await self._settle_after_read(scope, conn, node)
                served = True
        except BaseException as exc:
            # A statement given up on (its timeout, or the task cancelled) says nothing about
            # the node: the monitor judges that.
            abandoned = driver.abandoned(exc)
            # Only a failure of the connection itself says anything about the node; a closed
            # connection alone does not (asyncpg closes it after some of its own errors).
            lost = driver.lost(exc, conn) and not abandoned
            if lost:
                self.monitor.report_failure(node, FailureKind.BROKEN_CONNECTION, type(exc).__name__)
            # The driver's protocol state is broken: nothing was sent, the connection is done.
            broken = isinstance(exc, driver.BROKEN_PROTOCOL)
            if broken:
                driver.terminate(conn)
            elif abandoned and running:
                # The caller's statement timed out: the driver has asked its server to cancel
                # it, and the connection goes back once the server confirms (in the
                # background). It is not run again elsewhere: a timeout is no lost connection.
                given_up = True
                # A read queued in the pooler must not start after its caller heard "timed
                # out": see driver.give_up_queued (awaited below).
                queued = isinstance(exc, TimeoutError) and self.config.pooler_mode == "transaction"
            elif abandoned:
                # The router's own statement (bounded by command_timeout): the link may be
                # dead, and the driver would wait for a cancel's confirmation as long.
                driver.terminate(conn)
            if given_up:
                failed = exc
            elif (
                not write and isinstance(exc, Exception) and (lost or broken or driver.closed(conn))
            ):
                failed = raised_in(caused(_Retry(node, exc), exc), exc)  # `raise ... from exc`
            elif write and broken:
                self.monitor.report_failure(node, FailureKind.BROKEN_CONNECTION, type(exc).__name__)
                failed = raised_in(caused(_Retry(node, exc), exc), exc)  # `raise ... from exc`
            else:
                failed = exc
        if given_up:
            try:
                if queued:
                    await driver.give_up_queued(conn, CANCEL_DELIVERY_WAIT)
            except BaseException as late:
                assert failed is not None
                raised_in(late, failed)
                raise
            finally:
                pool.abandon(conn)
        else:
            # One statement outside any transaction block: nothing can be left open; a
            # DO or CALL may have left session state, which goes with a reset (not behind
            # a transaction pooler: its server connection is no longer this one's).
            dirty = call.classification.opaque and not self.engine.pooled
            # runtime.finish(release, failed), written out: this runs for every statement,
            # and finish() would add a partial and a coroutine frame to each.
            try:
                await pool.release(conn, dirty=dirty, settled=True)
            except BaseException as late:
                if failed is not None:
                    raised_in(late, failed)
                raise
        if failed is not None:
            reraise(failed)
        if served:
            return result
        # The replica did not catch up within ryw_wait (nothing was sent): the primary serves.
        missed = TimeoutError(f"{node} did not replay {decision.wait_for} in time")
        raise _Retry(node, missed, instead=self.engine.missed(node, decision))

    async def _read_only(self, conn: driver.Connection, call: Call) -> Any:
        """*call* inside a READ ONLY transaction (replica emulation on the primary)."""
        await self.command(conn, "BEGIN READ ONLY")
        failed: BaseException | None = None
        try:
            result = await driver.run(conn, call)
        except BaseException as exc:
            failed = exc
        if failed is not None:
            # (Once the `except` block's own work: see finish.)
            if not driver.abandoned(failed) and not driver.closed(conn):
                await finish(partial(self.command, conn, "ROLLBACK"), failed)
            reraise(failed)
        await self.command(conn, "COMMIT")
        return result

    async def command(self, conn: driver.Connection, sql: str) -> None:
        """A statement of the router's own (``BEGIN``, ``COMMIT``, ``ROLLBACK``) on *conn*,
        bounded by ``pool.command_timeout``. Given up on (that timeout, or the task cancelled),
        the connection is closed, not left waiting for the server to confirm the cancel: the
        server rolls back what was open, and the caller must not hand *conn* back as usable."""
        await self._own(conn, sql, value=False)

    async def commit_position(self, conn: driver.Connection) -> Lsn:
        """The primary's WAL insert position, read on *conn* after a commit (bounded as
        :meth:`command`, and *conn* closed likewise when given up on)."""
        return Lsn.parse(await self._own(conn, POSITION_QUERY, value=True))

    async def _own(self, conn: driver.Connection, sql: str, *, value: bool) -> Any:
        """*sql* of the router's own on *conn* (its first value when *value*), as
        :meth:`command` says."""
        try:
            if value:
                return await driver.scalar(conn, sql, self.command_timeout)
            await driver.execute(conn, sql, self.command_timeout)
            return None
        except driver.BROKEN_PROTOCOL as exc:
            # The connection had already received the server's goodbye: nothing was sent.
            driver.terminate(conn)
            raise caused(driver.connection_lost(exc), exc) from exc
        except BaseException as exc:
            if driver.abandoned(exc):
                driver.terminate(conn)
            raise

    async def _settle_after_read(self, scope: Scope, conn: driver.Connection, node: str) -> None:
        """The primary's position after a read there, to settle *scope*'s unconfirmed floor
        (:meth:`RoutingEngine.settle_floor`); the read's result stands when it cannot be read."""
        try:
            position = await self.commit_position(conn)
        except Exception:
            return  # checked again at the next read on the primary
        self.engine.settle_floor(scope, node, position)

    async def after_commit(self, scope: Scope, conn: driver.Connection, node: str) -> None:
        """Raise *scope*'s floor past a commit just made on *conn* (of *node*).

        The commit stands whatever happens here: when its position cannot be read (the
        connection lost, the read timed out, the server refused it) the caller still gets the
        statement's result, and the scope reads from the primary until a later position read
        covers the commit (:meth:`regain_position`). Only a cancellation of the caller's own
        goes on up, the position marked lost all the same."""
        if not scope.wants_position:
            return
        try:
            self.engine.committed(scope, await self.commit_position(conn))
        except Exception as exc:
            first = not scope.lost
            self.engine.position_lost(scope)
            if driver.lost(exc, conn):
                self.monitor.report_failure(node, FailureKind.BROKEN_CONNECTION, type(exc).__name__)
            # Said once per spell (each further one at DEBUG): it may go on for every write.
            logger.log(
                logging.WARNING if first else logging.DEBUG,
                "%s: could not read the WAL position after a commit (%s); the commit stands,"
                " and reads that must see it go to the primary until a position is read",
                node,
                type(exc).__name__,
            )
        except BaseException:
            self.engine.position_lost(scope)
            raise

    async def regain_position(self, scope: Scope) -> None:
        """Read the primary's position for a scope that lost one (see :meth:`after_commit`);
        on failure its reads go on to the primary."""
        losses = scope.losses()
        try:
            pool = self.pools[self.engine.write_decision().node or ""]
            conn = await pool.acquire()
        except NO_CONNECTION:
            return
        failed: BaseException | None = None
        lsn: Lsn | None = None
        try:
            lsn = await self.commit_position(conn)
        except Exception:
            pass  # returns once the connection is back
        except BaseException as exc:
            failed = exc
        await finish(partial(pool.release, conn, settled=True), failed)  # a `finally` (see finish)
        if lsn is not None:
            scope.regain_position(lsn, losses)

    async def wait_replayed(
        self, conn: driver.Connection, node: str, target: Lsn, *, ask: bool = False
    ) -> bool:
        """Wait, up to ``ryw_wait``, until *node* has replayed *target* (PostgreSQL before 19
        has no ``WAIT FOR LSN``: poll with a short, growing pause). *ask*: *node* missed a
        wait just now; wait only if its first answer shows it caught up with what it missed
        (see :class:`WaitMisses`)."""
        deadline = time.monotonic() + self._ryw_wait
        pause = 0.0005
        while True:
            replayed = Lsn.parse(await driver.scalar(conn, REPLAY_QUERY, self.command_timeout))
            if ask:
                ask = False
                if not self.engine.asked(node, replayed, target):
                    return False
            left = deadline - time.monotonic()
            if self.engine.replayed(node, replayed, target, final=left <= 0):
                return True
            if left <= 0:
                return False
            await sleep(min(pause, left))
            pause = min(pause * 2, 0.02)


def _first_line(exc: BaseException) -> str:
    code = getattr(exc, "sqlstate", None)
    text = str(exc).strip().split("\n", 1)[0]
    return f"{code}: {text}" if code else text


def _surfaced(exc: BaseException) -> BaseException:
    """What the application sees for a failure the router gave up retrying: the driver's
    documented connection error rather than its broken-protocol internals."""
    return driver.connection_lost(exc) if isinstance(exc, driver.BROKEN_PROTOCOL) else exc
