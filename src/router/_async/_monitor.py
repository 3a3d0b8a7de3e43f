"""The monitor: checks every node on an interval and keeps the topology current (generated
into ``router/_sync`` by ``tools/unasync.py``).

Each node gets a connection of its own (not from the pools, so a busy pool cannot starve the
monitor). Behind a pooler it goes through the pooler, as the application's statements do: a
node is as healthy as the path to it, so a dead PgBouncer in front of a live server marks the
node down, and a server dead behind a live PgBouncer (whose queries queue) times out. (A
direct monitor DSN would see a healthy server behind a dead pooler, and admit a node no
statement can reach.) A round runs the checks of the nodes that are due concurrently, each
bounded by ``monitor_timeout``, and folds the outcomes into a new
:class:`~router.core.Topology` with :func:`~router.core.tick`: roles, lag, the lag gate and
health are all decided there. A replica held out at first sight by its last replayed commit's
age alone gets a second look within the round (:mod:`router.core._confirm`): on an idle
primary, WAL without commits makes a caught-up replica look minutes behind for a moment.

With ``patroni_urls`` a round also reads Patroni's ``GET /cluster`` (the first URL that
answers, alongside the SQL checks) and hands the view to :func:`~router.core.tick`, which
cross-checks it with what each node said; when no URL answers, the round is SQL alone.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from router import _fork
from router._async import _driver as driver
from router._async._runtime import Lock, Loop, blocking, gather, guard, settle, sleep
from router._patroni import fetch_cluster
from router.core import (
    CONFIRM_WITHIN,
    CheckFailure,
    FailureKind,
    GateParams,
    HaView,
    Lsn,
    NodeStatus,
    Observation,
    Topology,
    confirm_pauses,
    parse_cluster,
    tick,
    unconfirmed,
)

__all__ = ["CHECK_QUERY", "Monitor"]

logger = logging.getLogger(__name__)

#: One round trip tells everything about a node. ``pg_current_wal_lsn()`` and
#: ``pg_walfile_name()`` fail on a standby, so they are only evaluated on a primary. The
#: timeline: a primary's from the name of the WAL file it writes; a standby's, the one its WAL
#: receiver streams (visible to superusers and ``pg_read_all_stats``, NULL to others).
CHECK_QUERY = """
SELECT r.in_recovery,
       CASE WHEN r.in_recovery THEN NULL ELSE pg_current_wal_lsn()::text END,
       pg_last_wal_replay_lsn()::text,
       pg_last_wal_receive_lsn()::text,
       CASE WHEN r.in_recovery THEN pg_is_wal_replay_paused() ELSE false END,
       extract(epoch FROM pg_last_xact_replay_timestamp())::float8,
       extract(epoch FROM clock_timestamp())::float8,
       CASE WHEN r.in_recovery
            THEN (SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming')
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END,
       pg_has_role('pg_read_all_stats', 'USAGE')
FROM (SELECT pg_is_in_recovery() AS in_recovery) AS r
"""


def _lsn(text: str | None) -> Lsn | None:
    return None if text is None else Lsn.parse(text)


def _status(row: Any) -> NodeStatus:
    """The :class:`NodeStatus` of a row of :data:`CHECK_QUERY`."""
    in_recovery, wal, replay, receive, paused, replayed_at, server_now, timeline, sees = row
    return NodeStatus(
        in_recovery=in_recovery,
        wal_lsn=_lsn(wal),
        replay_lsn=_lsn(replay),
        receive_lsn=_lsn(receive),
        replay_paused=bool(paused),
        last_replay_at=replayed_at,
        server_now=server_now,
        timeline=timeline,
        sees_receiver=bool(sees),
    )


def _back_per_ha(topology: Topology) -> list[str]:
    """Down nodes that the HA manager's last view reports running or streaming."""
    ha = topology.ha
    assert ha is not None
    return [
        n.name
        for n in topology.nodes
        if not n.up
        and (m := ha.members.get(n.name)) is not None
        and m.state in ("running", "streaming")
    ]


class Monitor:
    """Keeps :attr:`topology` current. No I/O until :meth:`start` or :meth:`check`."""

    def __init__(
        self,
        dsns: Mapping[str, str],
        params: GateParams,
        *,
        interval: float,
        timeout: float,
        application_name: str,
        on_change: Callable[[Topology, Topology], Any] | None = None,
        on_roles: Callable[[Topology], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        patroni_urls: Sequence[str] = (),
        addresses: Mapping[tuple[str, int], str] | None = None,
        confirm_within: float = CONFIRM_WITHIN,
    ) -> None:
        self._dsns = dict(dsns)
        self._confirm_within = confirm_within
        self._patroni_urls = tuple(patroni_urls)
        self._addresses = dict(addresses or {})
        self._patroni_down = False
        #: Patroni members that match no configured node, said once each.
        self._strangers: set[str] = set()
        self._params = params
        self._interval = interval
        self._timeout = timeout
        self._app = f"{application_name} monitor"
        self._on_change = on_change
        self._on_roles = on_roles
        self._clock = clock
        self._conns: dict[str, driver.Connection] = {}
        self.system_ids: dict[str, int] = {}
        self.topology = Topology.initial(self._dsns)
        self._loop = Loop(self._round, interval, "router-monitor")
        self._round_lock = Lock()
        self._running: dict[str, float] = {}  # node -> when its check under way began
        self._late: dict[str, Observation] = {}  # outcomes that came after their round
        self._stragglers: set[Any] = set()
        self._closed = False
        self.rounds = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._loop.start()
        _fork.on_fork(self)

    def _after_fork(self) -> None:
        """In the child of a fork: the parent's check connections stay the parent's, neither
        used nor closed here, and no round is under way (its thread is not here; the loop
        starts again)."""
        for conn in self._conns.values():
            _fork.abandon(conn)
        self._conns = {}
        self._round_lock = Lock()
        self._running = {}
        self._late = {}
        self._stragglers = set()

    async def close(self) -> None:
        _fork.forget(self)
        self._closed = True
        await self._loop.stop()
        await settle(self._stragglers)
        conns, self._conns = self._conns, {}
        for conn in conns.values():
            driver.terminate(conn)

    async def _round(self) -> None:
        await self.check()

    # -- rounds ------------------------------------------------------------------------

    def request_rediscovery(self, suspect: str | None = None) -> None:
        """Roles may have changed (e.g. SQLSTATE 25006 from the believed primary): check all
        nodes at once instead of waiting for the next tick."""
        with guard():
            self.topology = self.topology.request_rediscovery(self._clock(), suspect)
        self._loop.wake()

    def learn_replay(self, name: str, lsn: Lsn) -> None:
        """A replay position seen by a read-your-writes check: newer than the last tick's."""
        with guard():
            topology = self.topology
            health = topology.by_name.get(name)
            if health is not None and (health.replay_lsn is None or lsn > health.replay_lsn):
                self.topology = topology.replace(dataclasses.replace(health, replay_lsn=lsn))

    def report_failure(self, name: str, kind: FailureKind, detail: str = "") -> None:
        """A pool connection of *name* failed: fold it in now, not at the next tick, and check
        the node at once when it is still up (a broken connection makes it suspect: that check
        decides whether it is down)."""
        with guard():
            old = self.topology
            new = old.report_failure(name, kind, self._clock(), self._params, detail)
            self.topology = new
        if new is old:
            return
        self._changed(old)
        if new.node(name).up:
            self._loop.wake()

    async def check(self, *, patient: bool = False, nodes: Sequence[str] | None = None) -> Topology:
        """Run one round of checks now (of every node while a rediscovery is pending, of
        *nodes* when given).

        A round waits for its checks up to half the monitor interval (up to their own bound
        when *patient*, as at start-up): a slower check goes on in the background and its
        outcome is folded into a later round, so a node that hangs does not hold up the checks
        of the others. A check under way longer than ``monitor_timeout`` counts as a timeout.
        """
        async with self._round_lock:
            now = self._clock()
            topology = self.topology
            if nodes is not None:
                due = [n for n in nodes if n in self._dsns]
            elif topology.rediscover:
                due = list(self._dsns)
            else:
                due = list(topology.due(now))
            if topology.ha is not None:
                # A down node Patroni reports running again is probed now, not after its
                # backoff: back in service within a round or two of being healthy.
                due += [n for n in _back_per_ha(topology) if n not in due]
            with guard():
                observed, self._late = self._late, {}
                running = dict(self._running)
            late = CheckFailure(FailureKind.TIMEOUT, f"no answer within {self._timeout:g} s")
            for name, began in running.items():
                if self._clock() - began > self._timeout:
                    observed[name] = late
            names = [n for n in due if n not in running]
            bound = 2 * self._timeout + 1 if patient else min(self._timeout, self._interval / 2)
            thunks: list[Any] = [partial(self._check, n) for n in names]
            if self._patroni_urls:
                thunks.append(self._ha_view)
            outcomes = await gather(thunks, timeout=bound, stragglers=self._stragglers)
            ha = outcomes.pop() if self._patroni_urls else None
            if not isinstance(ha, HaView):
                ha = None
            with guard():
                for name, outcome in zip(names, outcomes, strict=True):
                    if not isinstance(outcome, TimeoutError):  # else it comes in a later round
                        observed[name] = outcome
                        self._late.pop(name, None)
                old = self.topology
                # Fold into the *current* value: a rediscovery asked for meanwhile survives.
                self._publish(tick(old, observed, now, self._params, ha))
            self._changed(old)
            await self._second_looks(old, bound, ha)
            self.rounds += 1
            return self.topology

    async def _second_looks(self, before: Topology, bound: float, ha: HaView | None) -> None:
        """Check the primary and the replicas :func:`~router.core.unconfirmed` names again a
        moment later, and fold them in as seen from *before* (the topology the round found):
        a replica whose time lag rested on its last replayed commit alone gets the bound of
        the primary's WAL history instead, if it has caught up meanwhile (see
        :mod:`router.core._confirm`)."""
        names = unconfirmed(before, self.topology, self._params)
        started = self._clock()
        for pause in confirm_pauses(self._params, self._confirm_within) if names else ():
            await sleep(pause)
            primary = self.topology.primary
            if primary is None or self._closed or self.topology.rediscover:
                return  # a rediscovery asked for meanwhile: a round of every node decides
            if self._clock() - started > self._confirm_within:
                return  # the looks themselves were slow
            if primary in self._running:
                continue  # its check of the round is still under way
            looked = self.topology
            checks = [n for n in (primary, *names) if n not in self._running]
            now = self._clock()
            thunks: list[Any] = [partial(self._check, n) for n in checks]
            outcomes = await gather(
                thunks, timeout=min(bound, self._timeout), stragglers=self._stragglers
            )
            with guard():
                current = self.topology
                if current.rediscover:
                    return  # the next round takes these outcomes (they wait in _late)
                observed: dict[str, Observation] = {}
                for name, outcome in zip(checks, outcomes, strict=True):
                    if not isinstance(outcome, TimeoutError):
                        observed[name] = outcome
                        self._late.pop(name, None)
                seen = observed.get(primary)
                if not isinstance(seen, NodeStatus) or seen.in_recovery:
                    # No primary position: the replicas' outcomes could not say their lag.
                    # What the primary said counts, and the looks are over.
                    primary_only = {primary: seen} if seen is not None else {}
                    self._publish(tick(current, primary_only, now, self._params, ha))
                    names = ()
                else:
                    # As first seen (or admitted) again, so that the round's verdict from the
                    # last commit alone is replaced, not held against the replica; unless
                    # something happened to it meanwhile (a broken connection reported).
                    again = [
                        before.node(n)
                        for n in names
                        if n in observed and current.node(n) is looked.node(n)
                    ]
                    self._publish(tick(current.replace(*again), observed, now, self._params, ha))
                    names = unconfirmed(before, self.topology, self._params)
            self._changed(current)
            if not names:
                return

    def _publish(self, new: Topology) -> None:
        """Make *new* the topology (under ``guard()``). Roles that changed reach ``on_roles``
        first: what follows them (the pools' read-only sessions) is in place before anything
        decides by them (``on_change`` comes after, and may run once another thread has
        already decided)."""
        old = self.topology
        if self._on_roles is not None and [(n.name, n.role) for n in old.nodes] != [
            (n.name, n.role) for n in new.nodes
        ]:
            self._on_roles(new)
        self.topology = new

    def _changed(self, old: Topology) -> None:
        new = self.topology
        if self._on_change is not None and (
            old.primary != new.primary
            or old.split_brain != new.split_brain
            or [(n.role, n.health, n.admitted) for n in old.nodes]
            != [(n.role, n.health, n.admitted) for n in new.nodes]
        ):
            self._on_change(old, new)

    async def _ha_view(self) -> HaView | None:
        """Patroni's view from the first URL that answers; ``None`` (SQL alone) when none
        does, said once at WARNING until one answers again."""
        for url in self._patroni_urls:
            try:
                body = await blocking(fetch_cluster, url, self._timeout)
            except (OSError, ValueError) as exc:
                logger.debug("Patroni REST API %s: %s", url, exc)
                continue
            view = parse_cluster(body, self._addresses, url)
            if view is not None:
                self._warn_strangers(view)
                if self._patroni_down:
                    logger.warning("Patroni REST API answers again (%s)", url)
                self._patroni_down = False
                return view
        if not self._patroni_down:
            logger.warning("no Patroni REST API answered: topology from SQL discovery alone")
        self._patroni_down = True
        return None

    def _warn_strangers(self, view: HaView) -> None:
        new = [m for m in view.unmatched if m not in self._strangers]
        if new:
            self._strangers.update(new)
            logger.warning(
                "Patroni reports member(s) %s, which match no configured node by host and "
                "port: the router does not use them until it is configured again "
                "(RouterConfig.from_patroni learns the members at start)",
                ", ".join(sorted(new)),
            )

    async def _check(self, name: str) -> Observation:
        self._running[name] = self._clock()
        try:
            outcome = await self._probe(name)
        finally:
            self._running.pop(name, None)
        with guard():
            self._late[name] = outcome  # taken by this round, or by the next if this one is over
        return outcome

    async def _probe(self, name: str) -> Observation:
        conn = self._conns.get(name)
        if conn is not None and not driver.closed(conn):
            try:
                return _status(await driver.fetchrow(conn, CHECK_QUERY, self._timeout))
            except TimeoutError:
                self._drop(name, conn)
                return CheckFailure(FailureKind.TIMEOUT, f"no answer within {self._timeout:g} s")
            except (*driver.MONITOR_BROKEN, *driver.BROKEN_PROTOCOL):
                # The monitor's own connection broke (a reset, an idle link dropped, a server's
                # goodbye read while idle): that says nothing about the node yet. A fresh
                # connection, now, does.
                self._drop(name, conn)
            except driver.DATABASE_ERRORS as exc:
                self._drop(name, conn)
                return CheckFailure(FailureKind.ERROR, f"{type(exc).__name__}: {exc}")
        return await self._probe_fresh(name)

    async def _probe_fresh(self, name: str) -> Observation:
        """A check of *name* on a new connection of the monitor's (kept for the next one)."""
        conn: driver.Connection | None = None
        try:
            conn = await driver.connect_monitor(self._dsns[name], self._timeout, self._app)
            if self._closed:  # a straggler of the last round: nobody will close it
                driver.terminate(conn)
                return CheckFailure(FailureKind.ERROR, "the monitor is closed")
            self._conns[name] = conn
            row = await driver.fetchrow(
                conn, "SELECT system_identifier FROM pg_control_system()", self._timeout
            )
            if row is not None:
                self.system_ids[name] = int(row[0])
            return _status(await driver.fetchrow(conn, CHECK_QUERY, self._timeout))
        except TimeoutError:
            self._drop(name, conn)
            return CheckFailure(FailureKind.TIMEOUT, f"no answer within {self._timeout:g} s")
        except (*driver.MONITOR_BROKEN, *driver.BROKEN_PROTOCOL) as exc:
            self._drop(name, conn)
            return CheckFailure(FailureKind.CONNECT_FAILED, f"{type(exc).__name__}: {exc}")
        except driver.DATABASE_ERRORS as exc:
            self._drop(name, conn)
            return CheckFailure(FailureKind.ERROR, f"{type(exc).__name__}: {exc}")

    def _drop(self, name: str, conn: driver.Connection | None) -> None:
        """Forget *conn*, the connection of *name* a check failed on (not one a later
        check may have opened meanwhile)."""
        if conn is not None and self._conns.get(name) is conn:
            del self._conns[name]
        if conn is not None:
            driver.terminate(conn)
