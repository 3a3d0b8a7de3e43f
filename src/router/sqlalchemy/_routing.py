"""The routing state one session factory shares between its sessions (either flavour).

It holds the router core, a sync :class:`~sqlalchemy.Engine` per node (for the async factory,
each ``AsyncEngine``'s ``sync_engine``: the sessions' ``get_bind`` runs inside SQLAlchemy's
greenlet, where the sync facade works), and makes the decisions the sessions ask for, from the
core's topology, without I/O. Two things here do I/O, both on the sync facade and so in either
flavour: opening the core on first use (through the factory's *open_core*), and reading the
primary's WAL position after a commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Final

from sqlalchemy import Engine
from sqlalchemy.sql import ClauseElement

from router._scope import LAST_DECISION, POSITION_QUERY, Scope
from router.config import PoolerMode
from router.core import Classification, Consistency, Lsn, Role, Topology, decode_token
from router.core._route import Decision, Reason
from router.sqlalchemy._core import Core, role_in
from router.sqlalchemy._statements import StatementText, classify_statement

__all__ = ["Routing"]

logger = logging.getLogger("router.sqlalchemy")

_CLOSED: Final = "the session factory is closed"


class Routing:
    """Decisions and binds for the sessions of one factory. Thread-safe (sync sessions of
    one factory may run in many threads)."""

    def __init__(
        self,
        core: Core,
        binds: Mapping[str, Engine],
        *,
        open_core: Callable[[], None],
    ) -> None:
        self.core = core
        self.binds = dict(binds)
        self._open_core = open_core
        first = next(iter(self.binds.values()))
        config = core.config
        self._texts = StatementText(first.dialect, config.classifier_cache_size)
        #: Where a statement may run (see :func:`classify_statement`).
        self.classify: Callable[[ClauseElement], Classification] = partial(
            classify_statement, self._texts, core._classify
        )
        self._decisions = core._decisions
        self.monitor = core._monitor
        #: A new session's consistency and parent scope, unless it asks otherwise.
        self.consistency = Consistency(str(config.consistency))
        self.root_scope = core._scope
        self._shadow = config.shadow
        self._emulate = config.emulate_replicas
        #: Behind a transaction pooler: statements that leave session state are refused, and
        #: replicas' transactions are READ ONLY (their connections cannot start read-only).
        self.pooled = config.pooler_mode is PoolerMode.TRANSACTION
        # The topology the binds were last checked against; None until the core is open.
        self.seen: Topology | None = None
        self._roles: dict[str, Role] = {}
        self._read_only_binds: dict[str, Engine] = {}
        self._variants: dict[tuple[str, str], Decision] = {}
        self._lock = threading.Lock()
        self.state = "new"

    # -- lifecycle ---------------------------------------------------------------------

    def refresh(self) -> None:
        """Open the core on first use, and follow role changes. Sessions call it when the
        core's topology is not :attr:`seen` (an identity check on every ``get_bind``)."""
        if self.state == "closed":
            raise RuntimeError(_CLOSED)
        if self.state == "new":
            self._open_core()
            self.state = "open"
        topology = self.monitor.topology
        changed = []
        with self._lock:
            for health in topology.nodes:
                if health.role is Role.UNKNOWN:
                    continue  # a node that failed a check keeps its last known role
                before = self._roles.get(health.name)
                self._roles[health.name] = health.role
                if before is not None and before is not health.role:
                    changed.append((health.name, before, health.role))
            self.seen = topology
        for name, before, after in changed:
            # Its pooled connections were opened for the old role (a replica's read-only):
            # new ones get the new role's settings.
            logger.warning(
                "%s is now %s (was %s): its connections are replaced", name, after, before
            )
            self.binds[name].dispose()
            ro = self._read_only_binds.get(name)
            if ro is not None:
                ro.dispose()

    def close(self) -> None:
        self.state = "closed"
        self.seen = None

    def role_of(self, node: str) -> Role:
        return role_in(self.core, node)

    # -- scopes and tokens -------------------------------------------------------------

    def new_scope(self, consistency: str | None, after: str | None) -> tuple[Scope, bool]:
        """A session's scope, and whether its token still needs checking against the
        cluster (it can only be once the core is open and knows the cluster)."""
        scope = self.core._new_scope(consistency, after)
        return scope, after is not None and self.core._system_id is None

    def check_token(self, after: str) -> None:
        """Raise :class:`~router.errors.ForeignToken` for a token of another cluster."""
        decode_token(after, system_id=self.core._system_id)

    def token(self, scope: Scope, after: str | None) -> str | None:
        token = self.core._token(scope)
        return after if token is None and scope.floor is not None else token

    # -- decisions ---------------------------------------------------------------------

    def write(self) -> Decision:
        """The primary (raises :class:`PrimaryUnavailable` / :class:`TopologyError`)."""
        return self.core._write_decision()

    def variant(self, decision: Decision, reason: Reason, detail: str) -> Decision:
        """*decision*'s node with another reason; made once per node and *detail* (each
        detail the sessions use goes with one reason)."""
        assert decision.node is not None
        key = (decision.node, detail)
        found = self._variants.get(key)
        if found is None:
            found = self._variants[key] = replace(decision, reason=reason, detail=detail)
        return found

    def read(self, scope: Scope) -> Decision:
        """Where a transaction's reads go: a replica at or past the scope's floor, else
        the primary (per the core's fallback). Never waits for a replica to catch up."""
        decision = self.core._read_decision(scope, wait=False)
        node = decision.node
        assert node is not None
        if decision.primary:
            return decision
        if self._shadow or self._emulate:
            primary = self.write()
            return Decision(primary.node, True, Reason.SHADOW, f"would go to {node}: read")
        # Monotonic reads, as the core's sessions keep them: prefer this replica while it
        # stays eligible, and never read below what it was known to have replayed.
        scope.sticky = node
        health = self.monitor.topology.by_name.get(node)
        replayed = None if health is None else health.replay_lsn
        if replayed is not None and (scope.floor is None or replayed > scope.floor):
            scope.floor = replayed
        return decision

    def bind(self, decision: Decision, readonly: bool) -> Engine:
        """The engine for *decision*, counted in the core's decisions and made the current
        task's (or thread's) ``last_decision``. On the primary, a read-only session (and
        replica emulation) gets connections whose transactions are READ ONLY."""
        node = decision.node
        assert node is not None
        self._decisions[(node, decision.reason._value_)] += 1
        LAST_DECISION.set(decision)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("statement to %s (%s: %s)", node, decision.reason.value, decision.detail)
        if decision.primary:
            if readonly or (self._emulate and decision.reason is Reason.SHADOW):
                return self._read_only_bind(node)
        elif self.pooled:
            return self._read_only_bind(node)
        return self.binds[node]

    def _read_only_bind(self, node: str) -> Engine:
        found = self._read_only_binds.get(node)
        if found is None:
            found = self.binds[node].execution_options(postgresql_readonly=True)
            self._read_only_binds[node] = found
        return found

    # -- after a commit ----------------------------------------------------------------

    def commit_position(self) -> Lsn:
        """The primary's WAL insert position now: past the commit record of any transaction
        committed before. One statement, on a pooled primary connection in autocommit."""
        node = self.write().node
        assert node is not None
        with self.binds[node].connect() as conn:
            if not self.pooled:
                # Behind a transaction pooler, asyncpg's prepare and execute of a statement
                # outside a transaction may meet different server connections: keep one.
                conn.execution_options(isolation_level="AUTOCOMMIT")
            text = conn.exec_driver_sql(POSITION_QUERY).scalar_one()
        return Lsn.parse(text)
