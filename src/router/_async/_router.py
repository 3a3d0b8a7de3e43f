"""``AsyncRouter``: every statement to the node that may serve it.

The public face and lifecycle; the decisions are the routing engine's
(:mod:`router._engine`), the I/O the executor's (:mod:`router._async._executor`).
The sync ``Router`` is generated from this file by ``tools/unasync.py``: keep driver calls in
``_driver.py`` and concurrency in ``_runtime.py``, and everything else flavour-neutral.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from random import Random
from types import TracebackType
from typing import Any, Self

from router._async._executor import NO_CONNECTION, Executor
from router._async._queries import Queries
from router._async._runtime import gather, sleep
from router._async._session import AsyncSession, AsyncTransaction
from router._introspect import Explanation, describe, explain, last_errors, stats
from router._scope import LAST_DECISION
from router._stats import State
from router._telemetry import Telemetry
from router.config import RouterConfig
from router.core import Classifier, Decision
from router.errors import ConfigurationError, PrimaryUnavailable

__all__ = ["AsyncRouter", "Explanation"]

logger = logging.getLogger("router")

#: How often wait_ready() looks whether the monitor has found the primary.
_READY_POLL = 0.02


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
        self._executor = executor = Executor(config, classifier, rng, clock)
        #: The routing engine: every decision of this router, its sessions and the session
        #: factories built over it (:mod:`router._engine`).
        self.engine = executor.engine
        self._scope = self.engine.scope
        self._pools = executor.pools
        self._monitor = executor.monitor
        self._telemetry = executor.telemetry
        self._addresses = executor.addresses

    @property
    def _state(self) -> State:
        return self._executor.state

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
        if self._state is State.OPEN:
            return self
        if self._state is State.CLOSED:
            raise RuntimeError(f"a closed {type(self).__name__} cannot be opened again")
        topology = await self._monitor.check(patient=True)
        # A second round at once, of the nodes that answered (on the connections the first
        # opened; one that did not is not waited for twice): a standby replaying past a
        # later position of the primary is on another history (Topology.off_timeline),
        # which one round cannot show; no read may go there before the monitor's next round.
        answered = [n.name for n in topology.nodes if n.up]
        if topology.primary is not None and len(answered) > 1:
            topology = await self._monitor.check(patient=True, nodes=answered)
        # Connections are opened for their node's role from the first.
        self._executor.assume_roles(topology)
        # A node that did not answer its check gets an empty pool: filling it now would wait
        # out connect_timeout for nothing. It fills when it is used.
        opening = [
            partial(pool.open, fill=topology.node(name).up) for name, pool in self._pools.items()
        ]
        for failed in await gather(opening, timeout=self.config.pool.connect_timeout + 5):
            if isinstance(failed, BaseException):
                raise failed
        await self._executor.sync_roles(topology)
        self.engine.system_id = self.engine.identify(self._monitor.system_ids)
        if self.engine.own_classifier and topology.primary is not None:
            await self.refresh_catalog()
        self._monitor.start()
        Telemetry.watch(self)
        self._executor.state = State.OPEN
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
        if self._state is not State.OPEN:
            raise RuntimeError(f"the {type(self).__name__} is not open")
        deadline = time.monotonic() + timeout
        asked = False
        while True:
            primary = self._monitor.topology.primary
            if primary is not None:
                pool = self._pools[primary]
                try:
                    conn = await pool.acquire()
                except NO_CONNECTION:
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
        await self._executor.refresh_catalog()

    async def close(self) -> None:
        """Stop the monitor and close every pool (idempotent)."""
        if self._state is State.CLOSED:
            return
        self._executor.state = State.CLOSED
        await self._monitor.close()
        await self._executor.background.close()
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

    # -- queries outside a transaction ----------------------------------------------

    def _query(self, method: str, query: str, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        # The executor's call handed back as it is (async: not a coroutine of its own, the
        # executor's is awaited by the caller; one frame less per statement).
        return self._executor.call(self._scope, method, query, args, kw)

    def transaction(
        self, *, readonly: bool = False, isolation: str | None = None
    ) -> AsyncTransaction:
        """A transaction held on one node from start to end: a replica when *readonly*
        (a WRITE inside raises :class:`ReadOnlyViolation` before it is sent), else the
        primary."""
        return AsyncTransaction(self._executor, self._scope, readonly=readonly, isolation=isolation)

    def session(self, *, consistency: str | None = None, after: str | None = None) -> AsyncSession:
        """A session: reads on replicas at or past its floor, writes on the primary, session
        state pinned to the primary, reads monotonic whichever node serves them. Under
        ``read_your_writes`` it starts at or past every commit made through this router
        before it was opened. *after*: a token from :meth:`token` (of any
        router or process on this cluster) the session's reads must not be behind."""
        return AsyncSession(self._executor, self.engine.new_scope(consistency, after))

    def token(self) -> str | None:
        """An opaque string for the latest commit position seen by this router (any session),
        for ``session(after=...)`` here or in another process; ``None`` before any write."""
        return self.engine.token()

    # -- introspection -----------------------------------------------------------------

    @property
    def last_decision(self) -> Decision | None:
        """Where the latest statement of the current task ran, and why (``node``,
        ``primary``, ``reason``, ``detail``); ``None`` before any. Per task (async) or per
        thread (sync)."""
        return LAST_DECISION.get()

    def explain(self, sql: str) -> Explanation:
        """Where *sql* would go now from outside any session, and why. Sends nothing."""
        return explain(self.engine, sql)

    def stats(self) -> dict[str, Any]:
        """Per node: role, health, lag, pool use and counters; plus decisions by reason."""
        topology, rounds = self._monitor.topology, self._monitor.rounds
        return stats(topology, self._pools, self.engine.decisions, rounds)

    def gauge_lag_bytes(self) -> Iterable[tuple[str, int]]:
        return [
            (n.name, n.lag_bytes) for n in self._monitor.topology.nodes if n.lag_bytes is not None
        ]

    def gauge_decisions(self) -> Iterable[tuple[str, str, int]]:
        return [(node, reason, n) for (node, reason), n in self.engine.decisions.items()]

    def gauge_pool_in_use(self) -> Iterable[tuple[str, int]]:
        return [(name, pool.usage()["in_use"]) for name, pool in self._pools.items()]
