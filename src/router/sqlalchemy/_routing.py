"""The routing state one session factory shares between its sessions (either flavour).

It holds the router core's routing engine (:class:`router._engine.RoutingEngine`, which makes
every decision), a sync :class:`~sqlalchemy.Engine` per node (for the async factory, each
``AsyncEngine``'s ``sync_engine``: the sessions' ``get_bind`` runs inside SQLAlchemy's
greenlet, where the sync facade works), and asks the engine the decisions the sessions need,
without I/O. Two things here do I/O, both on the sync facade and so in either
flavour: opening the core on first use (through the factory's *open_core*), and reading the
primary's WAL position after a commit.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from functools import partial
from typing import Final

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import ClauseElement

from router._engine import RoutingEngine
from router._scope import POSITION_QUERY, REPLAY_QUERY, Scope
from router._stats import State
from router.config import PoolerMode
from router.core import (
    CATALOG_QUERY,
    RELATIONS_QUERY,
    Classification,
    Consistency,
    Decision,
    FunctionCatalog,
    Lsn,
    Reason,
    Role,
    Topology,
    decode_token,
)
from router.errors import RouterError
from router.sqlalchemy._statements import StatementText, classify_statement

__all__ = ["Routing"]

logger = logging.getLogger("router.sqlalchemy")

_CLOSED: Final = "the session factory is closed"


class Routing:
    """Decisions and binds for the sessions of one factory. Thread-safe (sync sessions of
    one factory may run in many threads)."""

    def __init__(
        self,
        engine: RoutingEngine,
        binds: Mapping[str, Engine],
        *,
        open_core: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.binds = dict(binds)
        self._open_core = open_core
        first = next(iter(self.binds.values()))
        config = engine.config
        self._texts = StatementText(first.dialect, config.classifier_cache_size, engine.classifier)
        #: Where a statement may run (see :func:`classify_statement`).
        self.classify: Callable[[ClauseElement], Classification] = partial(
            classify_statement, self._texts, engine.classify
        )
        #: Counts a decision in the core's and makes it the current task's (or thread's)
        #: ``last_decision`` (the sessions' ``get_bind`` calls it with each engine it hands
        #: out).
        self.record = engine.record
        self.monitor = engine.monitor
        #: A new session's consistency and parent scope, unless it asks otherwise.
        self.consistency = Consistency(str(config.consistency))
        self.root_scope = engine.scope
        #: Replica emulation: the primary stands in for replicas, read-only.
        self.emulate = config.emulate_replicas
        #: Behind a transaction pooler: statements that leave session state are refused, and
        #: replicas' transactions are READ ONLY (their connections cannot start read-only).
        self.pooled = config.pooler_mode is PoolerMode.TRANSACTION
        # The topology the binds were last checked against; None until the core is open.
        self.seen: Topology | None = None
        self._roles: dict[str, Role] = {}
        self._read_only_binds: dict[str, Engine] = {}
        self._variants: dict[tuple[str, str], Decision] = {}
        self._lock = threading.Lock()
        self.state = State.NEW
        # What refresh() says once closed.
        self._closed: str = _CLOSED

    # -- lifecycle ---------------------------------------------------------------------

    def after_fork(self, refuse: str | None = None) -> None:
        """In the child of a fork: the lock another thread may have held is not held; with
        *refuse*, the factory cannot serve here (the async one) and says so at the next
        statement (``seen`` unset makes every session call :meth:`refresh`)."""
        self._lock = threading.Lock()
        if refuse is not None:
            self._closed = refuse
            self.close()

    def refresh(self) -> None:
        """Open the core on first use, and follow role changes. Sessions call it when the
        core's topology is not :attr:`seen` (an identity check on every ``get_bind``)."""
        if self.state is State.CLOSED:
            raise RuntimeError(self._closed)
        if self.state is State.NEW:
            self._open_core()
            self.state = State.OPEN
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
            # each is opened again as it is next checked out (_engines._follow_roles).
            logger.warning(
                "%s is now %s (was %s): its connections are replaced", name, after, before
            )

    def close(self) -> None:
        self.state = State.CLOSED
        self.seen = None

    def role_of(self, node: str) -> Role:
        return self.engine.role_of(node)

    # -- scopes and tokens -------------------------------------------------------------

    def new_scope(self, consistency: str | None, after: str | None) -> tuple[Scope, bool]:
        """A session's scope, and whether its token still needs checking against the
        cluster (it can only be once the core is open and knows the cluster)."""
        scope = self.engine.new_scope(consistency, after)
        return scope, after is not None and self.engine.system_id is None

    def check_token(self, after: str) -> None:
        """Raise :class:`~router.errors.ForeignToken` for a token of another cluster."""
        decode_token(after, system_id=self.engine.system_id)

    def token(self, scope: Scope, after: str | None) -> str | None:
        token = self.engine.token(scope)
        return after if token is None and scope.floor is not None else token

    # -- decisions ---------------------------------------------------------------------

    def write(self) -> Decision:
        """The primary (raises :class:`PrimaryUnavailable` / :class:`TopologyError`)."""
        return self.engine.write_decision()

    def variant(self, decision: Decision, reason: Reason, detail: str) -> Decision:
        """*decision*'s node with another reason; made once per node and *detail* (each
        detail the sessions use goes with one reason)."""
        assert decision.node is not None
        key = (decision.node, detail)
        found = self._variants.get(key)
        if found is None:
            found = replace(decision, reason=reason, detail=detail, wait_for=None, ask=False)
            self._variants[key] = found
        return found

    def read(self, scope: Scope, decision: Decision | None = None) -> Decision:
        """Where a transaction's reads go: a replica at or past the scope's floor, else
        the primary (per the core's fallback). A replica the monitor has not yet seen at the
        floor has its replay position confirmed with one query (no wait: ``ryw_wait`` is not
        used here). Before a read moves to another node than the session's last, its floor
        rises past that read (the rules are :class:`~router._scope.Scope`'s). *decision*: the
        engine's read decision for *scope*, already made (``RoutedSession.get_bind`` serves
        the everyday read, a replica with nothing to confirm or settle, in its own frame: what
        these steps come to then)."""
        engine = self.engine
        decision = self._decide_read(scope, decision)
        if decision.primary and engine.unverified(scope):
            # No replica has the floor, and it is not known to exist on the primary's
            # timeline (imported, or raised before a failover): it may name WAL lost in a
            # failover, which no replica will ever have. The primary's position now settles
            # it (reset, counted and logged when lost), as the raw routers do after their
            # read there; a floor reset is decided again.
            node = decision.node
            assert node is not None
            floor = scope.floor
            lsn = self._position_or_none()
            if lsn is not None:
                engine.settle_floor(scope, node, lsn)
                if scope.floor != floor:
                    decision = self._decide_read(scope)
        if engine.redirects:
            decision, _ = engine.shadowed(decision, read=True)  # shadow mode / emulation
        if not decision.primary:
            engine.read_served(scope, decision)
        return decision

    def _decide_read(self, scope: Scope, decision: Decision | None = None) -> Decision:
        """*decision* (default: the engine's read decision now), settled and confirmed."""
        engine = self.engine
        if decision is None:
            decision = engine.read_decision(scope)
        if engine.needs_settling(scope, decision):
            lsn = self._position_or_none()
            if lsn is not None:
                decision = engine.settled(scope, lsn)
        if decision.wait_for is not None:
            decision = self._confirm(decision, decision.wait_for)
        return decision

    def _confirm(self, decision: Decision, target: Lsn) -> Decision:
        """*decision*'s replica if it has replayed *target* (asked there, once), else the
        primary."""
        node = decision.node
        assert node is not None
        try:
            with self._own_connection(node) as conn:
                text = conn.exec_driver_sql(REPLAY_QUERY).scalar_one()
            caught_up = self.engine.replayed(node, Lsn.parse(text), target, final=True)
        except (SQLAlchemyError, OSError, ValueError) as exc:
            logger.debug("replay position of %s unknown (%s)", node, type(exc).__name__)
            caught_up = False
        if caught_up:
            return self.variant(decision, Reason.CONSISTENCY, f"{node} replayed the floor")
        return self.variant(self.write(), Reason.CONSISTENCY, f"{node} had not replayed the floor")

    def _position_or_none(self) -> Lsn | None:
        try:
            return self.commit_position()
        except (RouterError, SQLAlchemyError, OSError) as exc:
            logger.warning("could not read the primary's position (%s)", type(exc).__name__)
            return None

    def read_only_bind(self, node: str) -> Engine:
        """*node*'s engine with ``postgresql_readonly``: its transactions are READ ONLY."""
        found = self._read_only_binds.get(node)
        if found is None:
            found = self.binds[node].execution_options(postgresql_readonly=True)
            self._read_only_binds[node] = found
        return found

    # -- after a commit ----------------------------------------------------------------

    def catalog_changed(self) -> None:
        """DDL that changes what the router knows from the catalog committed: reload it from
        the primary (through the driver's own cursor: no placeholder processing). A failure
        is logged and leaves the old catalog: the DDL is done."""
        if not self.engine.own_classifier:
            return
        try:
            node = self.write().node
            assert node is not None
            with self._own_connection(node) as conn:
                cursor = conn.connection.cursor()
                try:
                    cursor.execute(CATALOG_QUERY)
                    catalog = FunctionCatalog.from_rows(cursor.fetchall())
                    cursor.execute(RELATIONS_QUERY)
                    catalog = catalog.with_relations(cursor.fetchall())
                finally:
                    cursor.close()
        except (RouterError, SQLAlchemyError, OSError) as exc:
            logger.warning("could not reload the catalog after DDL (%s)", type(exc).__name__)
            return
        self.engine.classifier.set_catalog(catalog)

    def commit_position(self) -> Lsn:
        """The primary's WAL insert position now: past the commit record of any transaction
        committed before. One statement, on a pooled primary connection in autocommit."""
        node = self.write().node
        assert node is not None
        with self._own_connection(node) as conn:
            text = conn.exec_driver_sql(POSITION_QUERY).scalar_one()
        return Lsn.parse(text)

    @contextlib.contextmanager
    def _own_connection(self, node: str) -> Iterator[Connection]:
        """A connection of *node* for the router's own statements, in autocommit; but in a
        transaction (rolled back) behind a transaction pooler: SQLAlchemy's asyncpg dialect
        prepares a statement and runs it in two round trips, which the pooler may give to
        two server connections outside a transaction ("prepared statement does not
        exist")."""
        with self.binds[node].connect() as conn:
            if not self.pooled:
                conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn
