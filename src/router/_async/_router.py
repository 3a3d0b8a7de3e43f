"""``AsyncRouter``: every statement to the node that may serve it.

The sync ``Router`` is generated from this file by ``tools/unasync.py``: keep driver calls in
``_driver.py`` and concurrency in ``_runtime.py``, and everything else flavour-neutral.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from functools import partial
from random import Random
from types import TracebackType
from typing import Any, Self

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
from router._async._queries import Queries
from router._async._runtime import Background, gather, guard, sleep
from router._context import attach as attach_shared_floor
from router._introspect import Explanation, describe, explain, last_errors, stats
from router._pooler import refuse_session_state
from router._scope import (
    LAST_DECISION,
    POSITION_LOST,
    POSITION_QUERY,
    REPLAY_QUERY,
    Call,
    Scope,
    needs_session,
)
from router._telemetry import NodeAddress, Telemetry
from router.config import Fallback, PoolerMode, RouterConfig
from router.core import (
    Classification,
    Classifier,
    Consistency,
    FailureKind,
    Hint,
    Lsn,
    Policy,
    Position,
    Role,
    Topology,
    WaitMisses,
    as_policy,
    decode_token,
    encode_token,
    policy_from_name,
    refused_by_standby,
)
from router.core._route import Decision, Reason, choose_read, choose_write
from router.errors import (
    ConfigurationError,
    InvalidQuery,
    NoReplicaAvailable,
    PoolTimeout,
    PrimaryUnavailable,
    RouterError,
    SessionStateError,
    TopologyError,
)

__all__ = ["AsyncRouter", "Explanation"]

logger = logging.getLogger("router")

_NOTHING: frozenset[str] = frozenset()
#: Failures that leave the function catalog for the next topology change to load.
_CATALOG_LATER: tuple[type[BaseException], ...] = (
    PrimaryUnavailable,
    TopologyError,
    *driver.CONNECT_ERRORS,
    *driver.DATABASE_ERRORS,
)
_LOST = "the position of an earlier commit could not be read"
#: How often wait_ready() looks whether the monitor has found the primary.
_READY_POLL = 0.02
#: Failures to get a connection.
_NO_CONNECTION: tuple[type[BaseException], ...] = (
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


class _Retry(Exception):
    """A read's connection failed before any row came back: try another node."""

    def __init__(self, node: str, cause: BaseException) -> None:
        self.node = node
        self.cause = cause
        super().__init__(node)


def _policy(config: RouterConfig) -> Policy:
    if isinstance(config.policy, str):
        return policy_from_name(config.policy)
    return as_policy(config.policy)


class AsyncRouter(Queries):
    """Routes each statement, transaction and session of an application to the primary or a
    replica of a PostgreSQL cluster with streaming replication.

    ``fetch``/``fetchrow``/``fetchval``/``execute``/``executemany`` take the driver's arguments
    and run outside any transaction: a READ on an eligible replica, anything else on the
    primary. Under ``read_your_writes`` such a read is at or past every commit made through
    this router before (see :class:`~router._scope.Scope`).
    :meth:`transaction` holds one node for a whole transaction; :meth:`session` gives
    read-your-writes, monotonic reads and session state. No I/O until :meth:`open`.
    """

    def __init__(
        self,
        config: RouterConfig,
        *,
        classifier: Classifier | None = None,
        rng: Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(config, RouterConfig):
            # Only the type: a connection string given here holds the password.
            raise ConfigurationError(
                "config",
                f"must be a RouterConfig (RouterConfig.from_url(url) builds one from a URL);"
                f" got a {type(config).__name__}",
            )
        self.config = config
        self._own_classifier = classifier is None
        self._classifier = classifier or Classifier(
            read_functions=config.read_functions,
            write_functions=config.write_functions,
            cache_size=config.classifier_cache_size,
        )
        self._policy = _policy(config)
        self._rng = rng or Random()
        self._clock = clock
        self._params = config.gate_params()
        self._consistency = Consistency(str(config.consistency))
        self._scope = Scope.for_router(self._consistency)
        self._fallback_to_primary = Fallback(str(config.fallback)) is Fallback.PRIMARY
        self._ryw_wait = config.ryw_wait
        # A replica is waited on when its lag, as the monitor last estimated it, is within the
        # wait: the estimate is only as fine as the monitor's interval (a replica a moment
        # behind after an idle spell reads as up to one interval behind), hence the margin.
        self._wait_within = config.ryw_wait + config.monitor_interval
        # A replica that just missed a wait is not waited on again before the monitor's next
        # look at it (on a replica further behind than the wait, every read would pay it),
        # unless it is seen to have caught up meanwhile: asked while no other replica can be
        # waited on, first a quarter of ryw_wait after the miss, less often after each ask in
        # vain (a stall of its replay on a busy host is over in tens of milliseconds).
        self._wait_misses = WaitMisses(
            config.monitor_interval, time.monotonic, first_ask=max(config.ryw_wait / 4, 0.002)
        )
        self._command_timeout = config.pool.command_timeout
        self._primary_weight = config.primary_read_weight
        # Behind a transaction pooler statements that leave session state are refused (and
        # the pools set nothing for a session: config.pool_settings()).
        self._pooled = config.pooler_mode is PoolerMode.TRANSACTION
        # The driver's `timeout` for reads outside a transaction that name none: behind a
        # pooler a read may queue for a server that never comes (query_wait_timeout, 120 s).
        self._read_timeout = config.effective_read_timeout
        nodes = config.all_nodes
        self._addresses = {n.name: NodeAddress(n.name, n.host, n.port, n.dbname) for n in nodes}
        settings = config.pool_settings()
        self._pools = {n.name: NodePool(n.name, driver.dsn(n.connect_dsn), settings) for n in nodes}
        for n in nodes:
            self._pools[n.name].stats.weight = n.weight
        self._stats = {name: pool.stats for name, pool in self._pools.items()}
        self._monitor = Monitor(
            {n.name: driver.dsn(n.connect_dsn) for n in nodes},
            self._params,
            interval=config.monitor_interval,
            timeout=config.monitor_timeout,
            application_name=config.application_name,
            on_change=self._topology_changed,
            clock=clock,
            patroni_urls=config.patroni_urls,
            addresses={n.address: n.name for n in nodes},
        )
        self._telemetry = Telemetry(record_sql=config.record_sql)
        self._decisions: Counter[tuple[str, str]] = Counter()
        self._background = Background()
        self._system_id: int | None = None
        self._last_primary: str | None = None
        #: (lower, upper) bound of the latest failover's switch point (see _topology_changed).
        self._fork: tuple[Lsn | None, Lsn | None] = (None, None)
        self._state = "new"

    def __repr__(self) -> str:
        names = ", ".join(self._pools)
        return (
            f"<{type(self).__name__} {self._state} nodes=[{names}] policy={self.config.policy!r}>"
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self, *, wait_for_primary: float | None = None) -> Self:
        """Discover roles, open a pool per node and start the monitor.

        Takes about ``monitor_timeout`` (a check of every node, at once) however many nodes
        are down or do not answer, and succeeds even when none is reachable: the router then
        serves as soon as they come (an application that may start before its database).
        *wait_for_primary*: then wait up to that many seconds for the primary to answer
        (:meth:`wait_ready`); if it does not, the router is closed again and
        :class:`PrimaryUnavailable` says each node's reason."""
        if self._state == "open":
            return self
        if self._state == "closed":
            raise RuntimeError(f"a closed {type(self).__name__} cannot be opened again")
        topology = await self._monitor.check(patient=True)
        # A node that did not answer its check gets an empty pool: filling it now would wait
        # out connect_timeout for nothing. It fills when it is used.
        opening = [
            partial(pool.open, fill=topology.node(name).up) for name, pool in self._pools.items()
        ]
        for failed in await gather(opening, timeout=self.config.pool.connect_timeout + 5):
            if isinstance(failed, BaseException):
                raise failed
        await self._sync_roles(topology)
        self._system_id = self._cluster_identity()
        if self._own_classifier and topology.primary is not None:
            await self.refresh_catalog()
        self._monitor.start()
        Telemetry.watch(self)
        self._state = "open"
        if topology.primary is None:
            logger.warning("no primary found at start-up: %s", describe(topology))
        else:
            logger.info("router open: %s", describe(topology))
        if wait_for_primary is not None:
            try:
                await self.wait_ready(wait_for_primary)
            except BaseException:
                await self.close()
                raise
        return self

    async def wait_ready(self, timeout: float) -> None:
        """Return once the primary answers (a connection of its pool opens), waiting up to
        *timeout* s; else raise :class:`PrimaryUnavailable` with each node's last failure (a
        wrong password, a refused connection, no answer). For start-up (``open(
        wait_for_primary=...)``) and readiness probes; reads and writes need not wait for it."""
        if self._state != "open":
            raise RuntimeError(f"the {type(self).__name__} is not open")
        deadline = time.monotonic() + timeout
        asked = False
        while True:
            primary = self._monitor.topology.primary
            if primary is not None:
                pool = self._pools[primary]
                try:
                    conn = await pool.acquire()
                except _NO_CONNECTION:
                    pass
                else:
                    await pool.release(conn, settled=True)
                    return
            left = deadline - time.monotonic()
            if left <= 0:
                topology = self._monitor.topology
                raise PrimaryUnavailable(
                    f"no primary answered within {timeout:g} s: {describe(topology)}"
                    f"{last_errors(topology)}"
                )
            if not asked:
                # Check every node now, not at its next probe (a node found down is probed
                # on a backoff).
                self._monitor.request_rediscovery()
                asked = True
            await sleep(min(_READY_POLL, left))
            asked = asked and self._monitor.topology.rediscover

    async def refresh_catalog(self) -> None:
        """Read user functions' volatility and the relations standbys refuse (unlogged
        tables, views that write) from the primary again: STABLE and IMMUTABLE functions may
        run on replicas, VOLATILE ones may not. DDL that changes them through the router
        does this by itself once it has committed."""
        primary = self._write_decision().node
        assert primary is not None
        pool = self._pools[primary]
        conn = await pool.acquire()
        try:
            self._classifier.set_catalog(await driver.load_catalog(conn))
        finally:
            await pool.release(conn)

    async def _catalog_changed(self) -> None:
        """DDL that changes what the router knows from the catalog committed through it:
        reload it before the next decision. The DDL is done whatever happens here; a failure
        (logged) leaves the old catalog until :meth:`refresh_catalog` or the next such DDL."""
        if not self._own_classifier:
            return
        try:
            await self.refresh_catalog()
        except _CATALOG_LATER as exc:
            logger.warning("could not reload the catalog after DDL (%s)", type(exc).__name__)

    async def close(self) -> None:
        """Stop the monitor and close every pool (idempotent)."""
        if self._state == "closed":
            return
        self._state = "closed"
        await self._monitor.close()
        await self._background.close()
        await gather([pool.close for pool in self._pools.values()], timeout=15)

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _cluster_identity(self) -> int | None:
        ids = self._monitor.system_ids
        distinct = set(ids.values())
        if len(distinct) > 1:
            logger.error("nodes belong to different clusters (system_identifier): %s", ids)
        primary = self._monitor.topology.primary
        if primary is not None and primary in ids:
            return ids[primary]
        return next(iter(distinct), None)

    def _topology_changed(self, old: Topology, new: Topology) -> None:
        if new.primary is not None and new.primary != self._last_primary:
            if self._last_primary is not None:
                # Another node leads now: floors from before may name WAL it never had. The
                # WAL it shares with the old primary ends between what it had replayed when
                # last seen as a replica and its first position as the primary.
                self._scope.epoch += 1
                self._fork = (old.node(new.primary).replay_lsn, new.primary_lsn)
            self._last_primary = new.primary
        if self._state != "open":
            return  # open() syncs the pools and reports the topology itself
        if old.primary != new.primary or old.split_brain != new.split_brain:
            logger.warning("topology changed: %s", describe(new))
        else:
            logger.info("topology changed: %s", describe(new))
        self._background.spawn(partial(self._sync_roles, new), name="router-sync-roles")

    async def _sync_roles(self, topology: Topology) -> None:
        for node in topology.nodes:
            if node.role is not Role.UNKNOWN:
                await self._pools[node.name].set_read_only(node.role is Role.REPLICA)
        if self._system_id is None:
            self._system_id = self._cluster_identity()
        if self._own_classifier and self._classifier.catalog is None and topology.primary:
            # The primary was away at open(): user functions have been WRITE meanwhile (the
            # safe side); now their volatility can be read.
            try:
                await self.refresh_catalog()
            except _CATALOG_LATER:
                logger.warning("could not load the function catalog yet; will try again")

    # -- queries outside a transaction ----------------------------------------------

    async def _query(
        self, method: str, query: str, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> Any:
        return await self._call(self._scope, method, query, args, kw)

    def transaction(
        self, *, readonly: bool = False, isolation: str | None = None
    ) -> AsyncTransaction:
        """A transaction held on one node from start to end: a replica when *readonly*
        (a WRITE inside raises :class:`ReadOnlyViolation` before it is sent), else the
        primary."""
        return AsyncTransaction(self, self._scope, readonly=readonly, isolation=isolation)

    def session(self, *, consistency: str | None = None, after: str | None = None) -> AsyncSession:
        """A session: reads on replicas at or past its floor, writes on the primary, session
        state pinned to the primary, reads monotonic whichever node serves them. Under
        ``read_your_writes`` it starts at or past every commit made through this router
        before it was opened. *after*: a token from :meth:`token` (of any
        router or process on this cluster) the session's reads must not be behind."""
        return AsyncSession(self, self._new_scope(consistency, after))

    def _new_scope(self, consistency: str | None = None, after: str | None = None) -> Scope:
        """A session's scope: its consistency, and the floor of the *after* token."""
        level = Consistency(consistency) if consistency is not None else None
        floor = None
        if after is not None:
            floor = decode_token(after, system_id=self._system_id).lsn
        scope = self._scope.session(level, floor)
        attach_shared_floor(scope, self)  # a web request's or job's floor (router.web)
        return scope

    def token(self) -> str | None:
        """An opaque string for the latest commit position seen by this router (any session),
        for ``session(after=...)`` here or in another process; ``None`` before any write."""
        return self._token(self._scope)

    def _token(self, scope: Scope) -> str | None:
        if scope.floor is None or self._system_id is None:
            return None
        return encode_token(Position(self._system_id, scope.floor))

    # -- the paths ---------------------------------------------------------------------

    def _classify(self, query: str) -> Classification:
        if type(query) is not str:
            raise TypeError(f"the SQL text must be a str; got a {type(query).__name__}")
        if "\0" in query:
            # libpq would send the text up to the NUL and drop the rest without a word.
            raise InvalidQuery(
                f"the SQL text contains a NUL character at position {query.index(chr(0))};"
                " PostgreSQL cannot receive it (nothing was sent)"
            )
        return self._classifier.classify(query)

    async def _call(
        self, scope: Scope, method: str, query: str, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> Any:
        """A statement outside any transaction and outside any pinned session."""
        cls = self._classify(query)
        if self._pooled:
            refuse_session_state(cls)
        if needs_session(cls):
            raise SessionStateError(
                f"{cls.reason}: outside a session this would be lost on a pooled connection"
                " (use router.session() or router.transaction())"
            )
        return await self._route(scope, Call(method, query, args, kw, cls))

    async def _route(self, scope: Scope, call: Call) -> Any:
        """A statement outside any transaction block, to the node its classification asks."""
        cls = call.cls
        if cls.route == "write" or cls.hint is Hint.PRIMARY:
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
        decision = replace(self._write_decision(), reason=reason, detail=why)
        try:
            return await self._run(scope, decision, call, write=False)
        except _Retry as failed:
            raise failed.cause from None

    def _write_decision(self) -> Decision:
        topology = self._monitor.topology
        decision = choose_write(topology)
        if decision.node is None:
            if topology.split_brain:
                raise TopologyError(f"writes refused: {decision.detail}")
            raise PrimaryUnavailable(f"writes refused: {decision.detail}{last_errors(topology)}")
        return decision

    async def _write(self, scope: Scope, call: Call) -> Any:
        decision = self._write_decision()
        if call.cls.hint is Hint.PRIMARY:
            decision = replace(decision, reason=Reason.HINT, detail="router:primary hint")
        try:
            return await self._run(scope, decision, call, write=True)
        except _Retry as broken:
            # The pooled connection was already broken (the server's goodbye read while it
            # was idle): nothing was sent, so once more on a fresh decision and connection.
            retried = replace(
                self._write_decision(), reason=Reason.RETRY, detail="resent: nothing was sent"
            )
            try:
                return await self._run(scope, retried, call, write=True)
            except _Retry:
                raise _surfaced(broken.cause) from None
        except driver.READ_ONLY_ERRORS:
            # The node we believed primary is not (a failover happened): the statement wrote
            # nothing, so rediscover and try once on the new primary.
            assert decision.node is not None
            await self._rediscover(decision.node)
            retried = replace(self._write_decision(), reason=Reason.RETRY, detail="after 25006")
            return await self._run(scope, retried, call, write=True)

    async def _rediscover(self, suspect: str) -> None:
        self._monitor.request_rediscovery(suspect)
        topology = await self._monitor.check(patient=True)
        # The retry must not take a connection the new primary's pool opened while it was a
        # replica (default_transaction_read_only): sync the pools now, not in a later task.
        await self._sync_roles(topology)

    def _read_decision(
        self,
        scope: Scope,
        exclude: Iterable[str] = (),
        *,
        retry: bool = False,
        wait: bool = True,
    ) -> Decision:
        """Where a read of *scope* goes now (no I/O). *wait*: whether a replica that has not
        yet replayed the scope's floor, as far as the monitor knows, may be chosen, to confirm
        its position there first (and wait up to ``ryw_wait`` for it): under steady writes
        each commit moves the floor past the monitor's last look, and the replica has usually
        replayed it by the time the read comes."""
        topology = self._monitor.topology
        if scope.lost and scope.wants_position:
            # A commit's position could not be read: only the primary surely has it. With no
            # primary, no replica can be shown to have it: refuse rather than read stale.
            if topology.primary is not None:
                return replace(self._write_decision(), reason=Reason.CONSISTENCY, detail=_LOST)
            raise PrimaryUnavailable(
                f"reads refused: {_LOST}, and no primary is reachable to read it"
                + last_errors(topology)
            )
        excluded = frozenset(exclude) if exclude else _NOTHING
        floor = scope.read_floor
        sticky = scope.sticky
        if sticky is not None and sticky not in excluded and scope.parent is not None:
            decision = choose_read(
                topology,
                scope.consistency,
                _prefer(sticky),
                self._stats,
                self._rng,
                floor=floor,
                exclude=excluded,
            )
            if decision.node == sticky:
                return decision
        decision = choose_read(
            topology,
            scope.consistency,
            self._policy,
            self._stats,
            self._rng,
            floor=floor,
            wait=wait,
            wait_within=self._wait_within,
            no_wait=self._wait_misses,
            ask=self._wait_misses.askable,
            exclude=excluded,
            fallback_to_primary=self._fallback_to_primary,
            primary_weight=self._primary_weight,
        )
        stuck = decision.node is None or decision.node in excluded
        if stuck and decision.primary and floor is not None:
            # No primary to fall back to (or it just failed this call), and the monitor's
            # last look (up to one interval old) saw no replica at the floor: ask one (a
            # position check, or a wait within ryw_wait) rather than fail.
            asked = choose_read(
                topology,
                scope.consistency,
                self._policy,
                self._stats,
                self._rng,
                floor=floor,
                wait=True,
                exclude=excluded,
            )
            if asked.node is not None:
                return asked
        if decision.node is None:
            if decision.primary:
                raise PrimaryUnavailable(decision.detail + last_errors(topology))
            raise NoReplicaAvailable(decision.detail + last_errors(topology))
        if retry:
            decision = replace(decision, reason=Reason.RETRY, detail=f"retry: {decision.detail}")
        return decision

    async def _settle(
        self, scope: Scope, decision: Decision, exclude: Iterable[str] = (), *, retry: bool = False
    ) -> Decision:
        """*decision* would move a session's reads to another replica (monotonic reads: see
        :class:`Scope`): raise its floor past its last read first, and decide again."""
        lsn = await self._primary_position()
        if lsn is None:
            return decision
        scope.settle_reads(lsn)
        return self._read_decision(scope, exclude, retry=retry)

    async def _primary_position(self) -> Lsn | None:
        """The primary's WAL position now, or ``None`` when it cannot be read (logged)."""
        try:
            node = self._write_decision().node
            assert node is not None
            pool = self._pools[node]
            conn = await pool.acquire()
            try:
                return await self._commit_position(conn)
            finally:
                await pool.release(conn, settled=True)
        except _NO_POSITION as exc:
            # Without it the next read may go to the primary or a replica that is merely
            # at the floor; the read is served rather than refused.
            logger.warning("could not read the primary's position (%s)", type(exc).__name__)
            return None

    def _unconfirmed_floor(self, scope: Scope) -> Decision | None:
        """The primary, when *scope*'s floor may name WAL lost in a failover (raised before
        the primary moved, or imported, and not confirmed since): the position read there
        after the statement settles the floor (:meth:`_settle_floor`)."""
        topology = self._monitor.topology
        if (
            topology.primary is None
            or scope.consistency is not Consistency.READ_YOUR_WRITES
            or not scope.unverified(topology.primary_lsn, self._fork[0])
        ):
            return None
        primary = choose_write(topology)
        return replace(primary, reason=Reason.CONSISTENCY, detail="floor unconfirmed")

    async def _read(self, scope: Scope, call: Call) -> Any:
        if scope.lost:
            await self._regain_position(scope)
        decision = self._unconfirmed_floor(scope) or self._read_decision(scope)
        if scope.unsettled(decision.node, decision.primary):
            decision = await self._settle(scope, decision)
        try:
            return await self._run(scope, decision, call, write=False)
        except _Retry as failed:
            return await self._read_retrying(scope, failed, call)
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
            self._classifier.learn_refusal(call.query, why)
            logger.info("a replica refused a read; it runs on the primary from now on: %s", why)
            again = f"{why}; run again on the primary"
            return await self._primary_read(scope, call, again, Reason.RETRY)

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
                    decision = self._read_decision(scope, failed, retry=True)
                    try:
                        return await self._run(scope, decision, call, write=False)
                    except _Retry as again:
                        failed.add(again.node)
                        raise
        except _Retry as last:
            raise _surfaced(last.cause) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run(self, scope: Scope, decision: Decision, call: Call, *, write: bool) -> Any:
        """Run one statement on the decided node (in autocommit), with telemetry."""
        node = decision.node
        assert node is not None
        emulate = False
        if not decision.primary and (self.config.shadow or self.config.emulate_replicas):
            # Shadow mode: say where it would have gone, send it to the primary. Replica
            # emulation: run it on the primary inside a READ ONLY transaction, so a write
            # that would have been misrouted fails loudly in development.
            primary = self._write_decision().node
            assert primary is not None
            emulate = self.config.emulate_replicas
            would = f"would go to {node}: {decision.detail}"
            decision = Decision(primary, True, Reason.SHADOW, would)
            node = primary
        pool = self._pools[node]
        stats = pool.stats
        self._decisions[(node, decision.reason.value)] += 1
        LAST_DECISION.set(decision)
        span = self._telemetry.start(
            call.method,
            self._addresses[node],
            primary=decision.primary,
            reason=decision.reason.value,
            detail=decision.detail,
            route=call.cls.route.value,
            sql=call.query,
        )
        with guard():
            stats.outstanding += 1
        started = time.perf_counter()
        try:
            done, result = await self._on_node(
                pool, decision, call, scope, write=write, read_only=emulate
            )
        except BaseException as exc:
            stats.errors += 1
            Telemetry.fail(span, exc)
            raise
        finally:
            with guard():
                stats.outstanding -= 1
            span.end()
        if not done:
            # The replica did not catch up within ryw_wait: the primary serves instead.
            fallback = replace(
                self._write_decision(),
                reason=Reason.CONSISTENCY,
                detail=self._missed(node, decision),
            )
            return await self._run(scope, fallback, call, write=write)
        stats.latency.update(time.perf_counter() - started)
        if write:
            stats.writes += 1
            if call.cls.changes_catalog:
                await self._catalog_changed()
        else:
            stats.reads += 1
            if scope.parent is not None:
                self._read_on(scope, decision)
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
    ) -> tuple[bool, Any]:
        """``(True, result)``, or ``(False, None)`` when ``wait_for`` was not reached in time.
        A read whose connection failed before any row came back raises :class:`_Retry`."""
        node = pool.name
        try:
            conn = await pool.acquire()
        except PoolTimeout as exc:
            if write:
                raise
            raise _Retry(node, exc) from exc
        except driver.CONNECT_ERRORS as exc:
            self._monitor.report_failure(node, FailureKind.CONNECT_FAILED, type(exc).__name__)
            if write:
                raise
            raise _Retry(node, exc) from exc
        # The caller's own statement is under way (not one of the router's).
        running = False
        given_up = False
        try:
            if decision.wait_for is not None and not await self._wait_replayed(
                conn, node, decision.wait_for, ask=decision.ask
            ):
                return False, None
            running = True
            result = await (self._read_only(conn, call) if read_only else driver.run(conn, call))
            running = False
            if write:
                await self._after_commit(scope, conn, node)
            elif decision.primary and scope.unverified(
                self._monitor.topology.primary_lsn, self._fork[0]
            ):
                await self._settle_after_read(scope, conn, node)
            return True, result
        except BaseException as exc:
            # A statement given up on (its timeout, or the task cancelled) says nothing about
            # the node: the monitor judges that.
            abandoned = driver.abandoned(exc)
            # Only a failure of the connection itself says anything about the node; a closed
            # connection alone does not (asyncpg closes it after some of its own errors).
            lost = driver.lost(exc, conn) and not abandoned
            if lost:
                self._monitor.report_failure(
                    node, FailureKind.BROKEN_CONNECTION, type(exc).__name__
                )
            # The driver's protocol state is broken: nothing was sent, the connection is done.
            broken = isinstance(exc, driver.BROKEN_PROTOCOL)
            if broken:
                driver.terminate(conn)
            elif abandoned and running:
                # The caller's statement timed out: the driver has asked its server to cancel
                # it, and the connection goes back once the server confirms (in the
                # background). It is not run again elsewhere: a timeout is no lost connection.
                given_up = True
                raise
            elif abandoned:
                # The router's own statement (bounded by command_timeout): the link may be
                # dead, and the driver would wait for a cancel's confirmation as long.
                driver.terminate(conn)
            if not write and isinstance(exc, Exception) and (lost or broken or driver.closed(conn)):
                raise _Retry(node, exc) from exc
            if write and broken:
                self._monitor.report_failure(
                    node, FailureKind.BROKEN_CONNECTION, type(exc).__name__
                )
                raise _Retry(node, exc) from exc
            raise
        finally:
            if given_up:
                pool.abandon(conn)
            else:
                # One statement outside any transaction block: nothing can be left open.
                await pool.release(conn, settled=True)

    async def _read_only(self, conn: driver.Connection, call: Call) -> Any:
        """*call* inside a READ ONLY transaction (replica emulation on the primary)."""
        await self._command(conn, "BEGIN READ ONLY")
        try:
            result = await driver.run(conn, call)
        except BaseException as exc:
            if not driver.abandoned(exc) and not driver.closed(conn):
                await self._command(conn, "ROLLBACK")
            raise
        await self._command(conn, "COMMIT")
        return result

    async def _command(self, conn: driver.Connection, sql: str) -> None:
        """A statement of the router's own (``BEGIN``, ``COMMIT``, ``ROLLBACK``) on *conn*,
        bounded by ``pool.command_timeout``. Given up on (that timeout, or the task cancelled),
        the connection is closed, not left waiting for the server to confirm the cancel: the
        server rolls back what was open, and the caller must not hand *conn* back as usable."""
        try:
            await driver.execute(conn, sql, self._command_timeout)
        except driver.BROKEN_PROTOCOL as exc:
            driver.terminate(conn)
            raise driver.connection_lost(exc) from exc
        except BaseException as exc:
            if driver.abandoned(exc):
                driver.terminate(conn)
            raise

    async def _commit_position(self, conn: driver.Connection) -> Lsn:
        """The primary's WAL insert position, read on *conn* after a commit (bounded as
        :meth:`_command`, and *conn* closed likewise when given up on)."""
        try:
            return Lsn.parse(await driver.scalar(conn, POSITION_QUERY, self._command_timeout))
        except driver.BROKEN_PROTOCOL as exc:
            # The connection had already received the server's goodbye: nothing was sent.
            driver.terminate(conn)
            raise driver.connection_lost(exc) from exc
        except BaseException as exc:
            if driver.abandoned(exc):
                driver.terminate(conn)
            raise

    async def _settle_after_read(self, scope: Scope, conn: driver.Connection, node: str) -> None:
        """The primary's position after a read there, to settle *scope*'s unconfirmed floor
        (:meth:`_settle_floor`); the read's result stands when it cannot be read."""
        try:
            position = await self._commit_position(conn)
        except Exception:
            return  # checked again at the next read on the primary
        self._settle_floor(scope, node, position)

    def _settle_floor(self, scope: Scope, node: str, position: Lsn) -> None:
        """A read on the primary with a floor not known to exist on its timeline: *position*
        is the primary's WAL position read just after. A floor beyond it names WAL the primary
        never had: lost in a failover (asynchronous replication); so is a floor this router
        raised before the failover past the WAL the new primary had then (``_fork``). Reset,
        count (``position-lost``) and log it."""
        floor = scope.floor
        own = scope.verified >= 0  # raised by this router (not imported), before the failover
        # Raised on this timeline meanwhile (another task's commit): nothing to check.
        checked = scope.verified == scope.root.epoch
        lo, hi = self._fork
        scope.settle(position)
        if floor is None or checked:
            return
        if floor > position or (own and hi is not None and floor > hi):
            start = min(position, hi) if hi is not None else position
            what = "was lost"
        elif own and lo is not None and floor > lo:
            start, what = lo, "may have been lost"
        else:
            return
        self._decisions[(node, POSITION_LOST)] += 1
        logger.warning(
            "read-your-writes position %s: the WAL in (%s, %s] %s in a failover (asynchronous"
            " replication); read on the primary %s, the floor is now %s",
            floor,
            start,
            floor,
            what,
            node,
            scope.floor,
        )

    async def _after_commit(self, scope: Scope, conn: driver.Connection, node: str) -> None:
        """Raise *scope*'s floor past a commit just made on *conn* (of *node*).

        The commit stands whatever happens here: when its position cannot be read (the
        connection lost, the read timed out, the server refused it) the caller still gets the
        statement's result, and the scope reads from the primary until a later position read
        covers the commit (:meth:`_regain_position`). Only a cancellation of the caller's own
        goes on up, the position marked lost all the same."""
        if not scope.wants_position:
            return
        try:
            scope.advance(await self._commit_position(conn))
        except Exception as exc:
            first = not scope.lost
            scope.lose_position()
            if driver.lost(exc, conn):
                self._monitor.report_failure(
                    node, FailureKind.BROKEN_CONNECTION, type(exc).__name__
                )
            # Said once per spell (each further one at DEBUG): it may go on for every write.
            logger.log(
                logging.WARNING if first else logging.DEBUG,
                "%s: could not read the WAL position after a commit (%s); the commit stands,"
                " and reads that must see it go to the primary until a position is read",
                node,
                type(exc).__name__,
            )
        except BaseException:
            scope.lose_position()
            raise

    async def _regain_position(self, scope: Scope) -> None:
        """Read the primary's position for a scope that lost one (see :meth:`_after_commit`);
        on failure its reads go on to the primary."""
        losses = scope.losses()
        try:
            pool = self._pools[self._write_decision().node or ""]
            conn = await pool.acquire()
        except _NO_CONNECTION:
            return
        try:
            lsn = await self._commit_position(conn)
        except Exception:
            return
        finally:
            await pool.release(conn, settled=True)
        scope.regain_position(lsn, losses)

    def _read_on(self, scope: Scope, decision: Decision) -> None:
        """A read of the session *scope* ran as *decision* says (see :meth:`Scope.read_on`)."""
        node = decision.node
        assert node is not None
        if decision.primary:
            scope.read_on(node, replica=False)
            return
        health = self._monitor.topology.by_name.get(node)
        scope.read_on(node, None if health is None else health.replay_lsn, replica=True)

    def _missed(self, node: str, decision: Decision) -> str:
        """Why a read waited on (or confirmed on) *node* went to the primary after all."""
        target = decision.wait_for
        if decision.ask:
            return f"{node} was asked again after a missed wait and had not replayed {target}"
        if self._ryw_wait > 0:
            return f"{node} did not replay {target} within ryw_wait"
        return f"{node} had not replayed {target} (asked it)"

    def _replayed(self, node: str, replayed: Lsn, target: Lsn, *, final: bool) -> bool:
        """Whether *node*, seen at *replayed*, has replayed *target*; the monitor learns the
        position. A *final* miss holds the replica off further waits and confirmations
        until the monitor's next look, or until an ask sees it caught up (see
        :class:`WaitMisses`), when a wait was in vain, or when the replica is behind even the
        primary's position at the monitor's last look (it is far behind, not a moment): a
        confirmation that came a moment early costs one round trip, not the replica's
        offload for an interval. A replica seen at *target* is held off no longer."""
        self._monitor.learn_replay(node, replayed)
        if replayed >= target:
            self._wait_misses.caught_up(node)
            return True
        if final:
            known = self._monitor.topology.primary_lsn
            if self._ryw_wait > 0 or known is None or replayed < known:
                self._wait_misses.missed(node, target)
        return False

    async def _wait_replayed(
        self, conn: driver.Connection, node: str, target: Lsn, *, ask: bool = False
    ) -> bool:
        """Wait, up to ``ryw_wait``, until *node* has replayed *target* (PostgreSQL before 19
        has no ``WAIT FOR LSN``: poll with a short, growing pause). *ask*: *node* missed a
        wait just now; wait only if its first answer shows it caught up with what it missed
        (see :class:`WaitMisses`)."""
        deadline = time.monotonic() + self._ryw_wait
        pause = 0.0005
        while True:
            replayed = Lsn.parse(await driver.scalar(conn, REPLAY_QUERY, self._command_timeout))
            if ask:
                ask = False
                if replayed < target and not self._wait_misses.recovered(node, replayed):
                    self._monitor.learn_replay(node, replayed)
                    self._wait_misses.missed(node, target)  # asked less often from now on
                    return False
            left = deadline - time.monotonic()
            if self._replayed(node, replayed, target, final=left <= 0):
                return True
            if left <= 0:
                return False
            await sleep(min(pause, left))
            pause = min(pause * 2, 0.02)

    # -- introspection -----------------------------------------------------------------

    @property
    def last_decision(self) -> Decision | None:
        """Where the latest statement of the current task ran, and why (``node``,
        ``primary``, ``reason``, ``detail``); ``None`` before any. Per task (async) or per
        thread (sync)."""
        return LAST_DECISION.get()

    def explain(self, sql: str) -> Explanation:
        """Where *sql* would go now from outside any session, and why. Sends nothing."""
        return explain(self, sql)

    def stats(self) -> dict[str, Any]:
        """Per node: role, health, lag, pool use and counters; plus decisions by reason."""
        return stats(self._monitor.topology, self._pools, self._decisions, self._monitor.rounds)

    def gauge_lag_bytes(self) -> Iterable[tuple[str, int]]:
        return [
            (n.name, n.lag_bytes) for n in self._monitor.topology.nodes if n.lag_bytes is not None
        ]

    def gauge_decisions(self) -> Iterable[tuple[str, str, int]]:
        return [(node, reason, n) for (node, reason), n in self._decisions.items()]

    def gauge_pool_in_use(self) -> Iterable[tuple[str, int]]:
        return [(name, pool.usage()["in_use"]) for name, pool in self._pools.items()]


def _first_line(exc: BaseException) -> str:
    code = getattr(exc, "sqlstate", None)
    text = str(exc).strip().split("\n", 1)[0]
    return f"{code}: {text}" if code else text


def _surfaced(exc: BaseException) -> BaseException:
    """What the application sees for a failure the router gave up retrying: the driver's
    documented connection error rather than its broken-protocol internals."""
    return driver.connection_lost(exc) if isinstance(exc, driver.BROKEN_PROTOCOL) else exc


def _prefer(name: str) -> Policy:
    def choose(candidates: Sequence[Any], rng: Random, /) -> Any:
        for candidate in candidates:
            if candidate.name == name:
                return candidate
        return None

    return choose


from router._async._session import AsyncSession, AsyncTransaction  # noqa: E402
