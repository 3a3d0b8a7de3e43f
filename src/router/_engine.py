"""The routing engine: the one owner of routing *semantics*, for every front door.

Flavour-neutral and without I/O (no driver, no asyncio, no sockets): the async and sync
routers, their sessions and the SQLAlchemy layer ask it where a statement goes and tell it
what happened; they do the I/O (pools, the monitor's checks, retries, driver calls).

Asking:

- :meth:`RoutingEngine.classify` -- what a SQL text is (cached, checked for what cannot be sent);
- :meth:`RoutingEngine.write_decision` -- the primary, or :class:`PrimaryUnavailable` /
  :class:`TopologyError`;
- :meth:`RoutingEngine.read_decision` -- where a read of a :class:`~router._scope.Scope` goes:
  a replica at or past its floor (possibly with ``wait_for``: confirm or wait there first),
  else the primary (``fallback``), else :class:`NoReplicaAvailable`;
- :meth:`RoutingEngine.needs_settling` / :meth:`RoutingEngine.settled` -- a read that would
  move a session to another node waits for the primary's position (monotonic reads);
- :meth:`RoutingEngine.unconfirmed_floor` -- the primary, when the scope's floor may name WAL
  lost in a failover (read the position there after the statement: :meth:`settle_floor`);
- :meth:`RoutingEngine.shadowed` -- shadow mode / replica emulation's redirect of a replica
  decision to the primary;
- :meth:`RoutingEngine.new_scope`, :meth:`RoutingEngine.token` -- sessions and their tokens.

Telling:

- :meth:`RoutingEngine.record` -- a decision is carried out (counted, ``last_decision``);
- :meth:`RoutingEngine.committed` / :meth:`RoutingEngine.position_lost` -- a commit's position
  was read (the scope's floor rises) or could not be;
- :meth:`RoutingEngine.read_served` -- a read of a session ran on a node (monotonic reads);
- :meth:`RoutingEngine.replayed` -- a replica was seen at a replay position (a wait or a
  confirmation); :meth:`RoutingEngine.asked` -- one that missed a wait was asked again;
  :meth:`RoutingEngine.missed` -- it did not reach the floor in time: the read-your-writes
  fallback decision;
- :meth:`RoutingEngine.settle_floor` -- the primary's position after a read with an unconfirmed
  floor;
- :meth:`RoutingEngine.node_failed` -- a node failed like this (the monitor judges it);
- :meth:`RoutingEngine.topology_changed` -- the monitor saw a new topology (failovers).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from random import Random
from typing import Any, NamedTuple, Protocol

from router._context import attach as attach_shared_floor
from router._introspect import last_errors
from router._scope import LAST_DECISION, POSITION_LOST, Scope
from router._stats import NodeStats
from router.config import Fallback, PoolerMode, RouterConfig
from router.core import (
    Classification,
    Classifier,
    Consistency,
    Decision,
    Eligibility,
    FailureKind,
    Hint,
    Lsn,
    Policy,
    Position,
    Reason,
    Role,
    Topology,
    WaitMisses,
    as_policy,
    decode_token,
    eligible,
    encode_token,
    policy_from_name,
)
from router.core._route import choose_read, choose_write, plain_read, read_of
from router.errors import InvalidQuery, NoReplicaAvailable, PrimaryUnavailable, TopologyError

__all__ = ["RoutingEngine", "TopologySource"]

logger = logging.getLogger("router")

_NOTHING: frozenset[str] = frozenset()
_LOST = "the position of an earlier commit could not be read"


class TopologySource(Protocol):
    """What the engine needs of a monitor (either flavour's ``Monitor``): its latest topology,
    and the facts the front doors learn while serving (a replay position, a failure)."""

    @property
    def topology(self) -> Topology: ...

    def learn_replay(self, name: str, lsn: Lsn) -> None: ...

    def report_failure(self, name: str, kind: FailureKind, detail: str = "") -> None: ...

    def request_rediscovery(self, suspect: str | None = None) -> None: ...


class _ReadPlan(NamedTuple):
    """The everyday read, precomputed for one topology value and consistency level (see
    :meth:`RoutingEngine.read_decision`): valid while the monitor's topology *is* that value,
    as :func:`eligible`'s own memo is (it lives on the topology value)."""

    topology: Topology | None
    consistency: Consistency | None
    #: ``eligible(topology, consistency)``'s replicas (no floor), in configuration order.
    replicas: tuple[str, ...]
    #: Their stats: the candidates handed to the policy.
    candidates: list[NodeStats]
    #: The lowest replay position among them (``None``: one never reported any): a floor at
    #: or below it leaves the same replicas eligible (:func:`eligible` answers the same).
    lowest: Lsn | None
    #: The everyday decision of each (``core.plain_read``: one value per node).
    reads: dict[str, Decision]


_NO_PLAN = _ReadPlan(None, None, (), [], None, {})


def _policy(config: RouterConfig) -> Policy:
    if isinstance(config.policy, str):
        return policy_from_name(config.policy)
    return as_policy(config.policy)


class RoutingEngine:
    """Routing decisions of one router (and of the session factories built over it).

    *monitor*: where topologies come from; *stats*: each node's pool counters (the policies
    read them); *classifier*: the router's own unless given (then the catalog is the
    caller's to load). Thread-safe as far as the decisions go (the counters are
    best-effort, as before).
    """

    def __init__(
        self,
        config: RouterConfig,
        monitor: TopologySource,
        stats: Mapping[str, NodeStats],
        *,
        classifier: Classifier | None = None,
        rng: Random | None = None,
    ) -> None:
        self.config = config
        #: Whether the catalog is the router's to load (it made the classifier).
        self.own_classifier = classifier is None
        self.classifier = classifier or Classifier(
            read_functions=config.read_functions,
            write_functions=config.write_functions,
            cache_size=config.classifier_cache_size,
        )
        #: Where topologies come from (the router's monitor).
        self.monitor = monitor
        self._monitor = monitor
        self._stats = stats
        self._policy = _policy(config)
        self._rng = rng or Random()
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
        self._primary_weight = config.primary_read_weight
        # Behind a transaction pooler statements that leave session state are refused (and
        # the pools set nothing for a session: config.pool_settings()).
        self.pooled = config.pooler_mode is PoolerMode.TRANSACTION
        self._shadow = config.shadow
        self._emulate = config.emulate_replicas
        #: Whether :meth:`shadowed` may redirect a decision (shadow mode, replica emulation):
        #: when not, the front doors carry decisions out as they are without asking it.
        self.redirects = bool(config.shadow or config.emulate_replicas)
        #: Statements carried out, by (node, reason) (``stats()["decisions"]``).
        #: A plain dict, not a Counter: Counter's ``__delitem__`` makes every ``+=`` on it a
        #: Python-level ``__setitem__`` call (~1k instructions per statement compiled).
        self.decisions: dict[tuple[str, str], int] = {}
        #: The cluster's ``system_identifier`` (tokens name it); ``None`` until known.
        self.system_id: int | None = None
        self._last_primary: str | None = None
        #: (lower, upper) bound of the latest failover's switch point (see topology_changed).
        self._fork: tuple[Lsn | None, Lsn | None] = (None, None)
        # The common read's candidates (each eligible replica's stats), kept for the
        # eligibility value they were made from: see _quick_read.
        self._candidates: tuple[Eligibility | None, list[NodeStats]] = (None, [])
        # The everyday read precomputed for the latest topology value and a consistency
        # level (one value, replaced whole: a thread never sees a mix): see read_decision.
        self._plan = _NO_PLAN

    # -- state -------------------------------------------------------------------------

    @property
    def topology(self) -> Topology:
        """The monitor's latest topology."""
        return self._monitor.topology

    def role_of(self, node: str) -> Role:
        """The role the monitor last saw *node* in."""
        health = self._monitor.topology.by_name.get(node)
        return Role.UNKNOWN if health is None else health.role

    @property
    def scope(self) -> Scope:
        """The router's own scope: the parent of every session's, the scope of statements
        sent outside any session."""
        return self._scope

    def identify(self, system_ids: Mapping[str, int]) -> int | None:
        """The cluster's identity from each node's ``system_identifier`` (the primary's when
        they differ: logged), or ``None`` when none is known."""
        distinct = set(system_ids.values())
        if len(distinct) > 1:
            logger.error("nodes belong to different clusters (system_identifier): %s", system_ids)
        primary = self._monitor.topology.primary
        if primary is not None and primary in system_ids:
            return system_ids[primary]
        return next(iter(distinct), None)

    def topology_changed(self, old: Topology, new: Topology) -> None:
        """The monitor saw *new* after *old*: a new primary starts a new epoch of floors."""
        if new.primary is not None and new.primary != self._last_primary:
            if self._last_primary is not None:
                # Another node leads now: floors from before may name WAL it never had. The
                # WAL it shares with the old primary ends between what it had replayed when
                # last seen as a replica and its first position as the primary.
                self._scope.epoch += 1
                self._fork = (old.node(new.primary).replay_lsn, new.primary_lsn)
            self._last_primary = new.primary

    # -- scopes and tokens -------------------------------------------------------------

    def new_scope(self, consistency: str | None = None, after: str | None = None) -> Scope:
        """A session's scope: its consistency, and the floor of the *after* token."""
        level = Consistency(consistency) if consistency is not None else None
        start = None if after is None else decode_token(after, system_id=self.system_id)
        scope = self._scope.session(level, None if start is None else start.lsn)
        if start is not None and start.uncertain and scope.wants_position:
            # Its holder committed at a position it could not read: the first read learns
            # the primary's position, which covers that commit (Scope.lose_position).
            scope.lost = max(scope.lost, 1)
        attach_shared_floor(scope, self)  # a web request's or job's floor (router.web)
        return scope

    def token(self, scope: Scope | None = None) -> str | None:
        """The latest commit position *scope* (default: the router's) has seen, as a token
        for ``session(after=...)``; ``None`` before any write or while the cluster is not
        known."""
        if scope is None:
            scope = self._scope
        lost = scope.lost > 0
        if (scope.floor is None and not lost) or self.system_id is None:
            return None
        # While a commit's position is lost the floor is behind it (or there is none: the
        # first write's position was the one lost): the token says so.
        floor = Lsn(0) if scope.floor is None else scope.floor
        return encode_token(Position(self.system_id, floor, uncertain=lost))

    # -- deciding ----------------------------------------------------------------------

    def classify(self, query: str) -> Classification:
        """What *query* is; :class:`TypeError` / :class:`InvalidQuery` for what cannot be sent."""
        if type(query) is not str:
            raise TypeError(f"the SQL text must be a str; got a {type(query).__name__}")
        if "\0" in query:
            # libpq would send the text up to the NUL and drop the rest without a word.
            raise InvalidQuery(
                f"the SQL text contains a NUL character at position {query.index(chr(0))};"
                " PostgreSQL cannot receive it (nothing was sent)"
            )
        return self.classifier.classify(query)

    def learn_refusal(self, query: str, why: str) -> None:
        """A replica refused *query* as a standby: it goes to the primary from now on."""
        self.classifier.learn_refusal(query, why)

    @staticmethod
    def to_primary(classification: Classification) -> bool:
        """Whether a statement classified *classification* goes to the primary: a WRITE, or
        a ``/* router:primary */`` hint (a read that must see the primary)."""
        return classification.route == "write" or classification.hint is Hint.PRIMARY

    def write_decision(self) -> Decision:
        """The primary, or :class:`PrimaryUnavailable` (:class:`TopologyError` in a split
        brain) saying why there is none."""
        topology = self._monitor.topology
        decision = choose_write(topology)
        if decision.node is None:
            if topology.split_brain:
                raise TopologyError(f"writes refused: {decision.detail}")
            raise PrimaryUnavailable(f"writes refused: {decision.detail}{last_errors(topology)}")
        return decision

    def decide_write(self, classification: Classification) -> Decision:
        """Where a statement classified *classification* goes to be written: the primary
        (reason ``hint`` for a ``/* router:primary */`` hint)."""
        decision = self.write_decision()
        if classification.hint is Hint.PRIMARY:
            decision = replace(decision, reason=Reason.HINT, detail="router:primary hint")
        return decision

    def primary_for(self, reason: Reason, detail: str) -> Decision:
        """The primary, for *reason* (a read only it can serve, a pinned session, ...)."""
        return replace(self.write_decision(), reason=reason, detail=detail)

    def read_decision(
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
                return replace(self.write_decision(), reason=Reason.CONSISTENCY, detail=_LOST)
            raise PrimaryUnavailable(
                f"reads refused: {_LOST}, and no primary is reachable to read it"
                + last_errors(topology)
            )
        if not exclude and not retry:
            # The everyday read, in this frame: the plan made by _quick_read for this very
            # topology value and level, a floor every planned replica has passed (eligible()
            # would answer the same value), and what _quick_read would then do.
            plan = self._plan
            floor = scope.floor
            if (
                plan.topology is topology
                and plan.consistency is scope.consistency
                and (floor is None or (plan.lowest is not None and floor <= plan.lowest))
            ):
                sticky = scope.sticky
                if sticky is not None and scope.parent is not None and sticky in plan.reads:
                    return plan.reads[sticky]  # a session's replica while it stays eligible
                choice = self._policy(plan.candidates, self._rng)
                # (eligible() never lists the primary: a candidate's decision is plain_read's.)
                if choice is not None:
                    found = plan.reads.get(choice.name)
                    if found is not None:
                        return found
                picked = read_of(topology.primary, choice)
                quick = picked if picked.node is not None else None  # see _quick_read
            else:
                quick = self._quick_read(topology, scope)
            if quick is not None:
                return quick
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

    def _quick_read(self, topology: Topology, scope: Scope) -> Decision | None:
        """The everyday read, decided as the general path below would decide it, without its
        machinery (keyword arguments, exclusion sets, per-call lists): some replica is
        eligible at the scope's floor, none is excluded, no ``primary_read_weight``; ``None``
        otherwise (then the general path decides). Which replicas are eligible is
        :func:`eligible`'s answer, memoized per topology value there: any cause that makes a
        replica ineligible (health, role, lag, floor, whatever comes) is decided there, never
        here. What is kept here is only the list of candidates handed to the policy, valid
        for the eligibility value it was made from (a new topology, or a floor that not every
        replica has passed, gives another value: the list is made again)."""
        consistency = scope.consistency
        if consistency is Consistency.STRONG or self._primary_weight > 0:
            return None
        plan = self._plan
        if plan.topology is not topology or plan.consistency is not consistency:
            # The plan for this topology value and level (read_decision serves the next reads
            # from it): eligible()'s memoized answer without a floor. None without a replica
            # (a policy is never asked to choose among none: the general path decides).
            base = eligible(topology, consistency)
            replicas = base.replicas
            if not replicas:
                return None
            plan = self._plan = _ReadPlan(
                topology,
                consistency,
                replicas,
                [self._stats[n] for n in replicas],
                base.min_replay,
                {n: plain_read(n) for n in replicas},
            )
        found = eligible(topology, consistency, floor=scope.read_floor)
        replicas = found.replicas
        if not replicas:
            return None
        sticky = scope.sticky
        if sticky is not None and scope.parent is not None and sticky in replicas:
            return plain_read(sticky)  # a session's replica while it stays eligible
        if replicas is plan.replicas:
            candidates = plan.candidates
        else:
            kept = self._candidates
            if kept[0] is not found:
                # One step (a tuple) so that a thread never sees a list of another value.
                kept = self._candidates = (found, [self._stats[n] for n in replicas])
            candidates = kept[1]
        decision = read_of(topology.primary, self._policy(candidates, self._rng))
        # No primary and a policy that declined: the general path says why (it asks the
        # policy again; the one built-in policy that declines, primary-only, is stateless).
        return decision if decision.node is not None else None

    def needs_settling(self, scope: Scope, decision: Decision) -> bool:
        """Whether *decision* would move a session's reads to another node than its last
        (monotonic reads: see :class:`Scope`): then read the primary's position first and
        decide again with :meth:`settled`."""
        return scope.unsettled(decision.node, decision.primary)

    def settled(
        self, scope: Scope, position: Lsn, exclude: Iterable[str] = (), *, retry: bool = False
    ) -> Decision:
        """The primary was at *position* after the session's last read: its floor rises past
        that read, and its read is decided again (as :meth:`read_decision`)."""
        scope.settle_reads(position)
        return self.read_decision(scope, exclude, retry=retry)

    def unconfirmed_floor(self, scope: Scope) -> Decision | None:
        """The primary, when *scope*'s floor may name WAL lost in a failover (raised before
        the primary moved, or imported, and not confirmed since): the position read there
        after the statement settles the floor (:meth:`settle_floor`)."""
        if scope.floor is None or scope.root.epoch == 0:
            # Nothing to confirm (the everyday read outside a session); or the primary never
            # moved in this router's life, and a floor past its sampled position is most
            # often a commit made a moment ago elsewhere (a token from another process): the
            # read is decided as any other, on a replica that has replayed it, or on the
            # primary, whose position read after the read settles the floor.
            return None
        topology = self._monitor.topology
        if (
            topology.primary is None
            or scope.consistency is not Consistency.READ_YOUR_WRITES
            or not scope.unverified(topology.primary_lsn, self._fork[0])
        ):
            return None
        primary = choose_write(topology)
        return replace(primary, reason=Reason.CONSISTENCY, detail="floor unconfirmed")

    def unverified(self, scope: Scope) -> bool:
        """Whether *scope*'s floor is not known to exist on the current primary's timeline
        (a read on the primary then reads its position after: :meth:`settle_floor`)."""
        return scope.unverified(self._monitor.topology.primary_lsn, self._fork[0])

    def shadowed(self, decision: Decision, *, read: bool = False) -> tuple[Decision, bool]:
        """*decision* as carried out, and whether on the primary in a READ ONLY transaction.
        Shadow mode: say where it would have gone, send it to the primary. Replica
        emulation: run it on the primary inside a READ ONLY transaction, so a write that would
        have been misrouted fails loudly in development; every *read* (the caller says it is
        one), also one the primary serves anyway (no replica configured or eligible, a
        read-your-writes floor no replica has): a development database is often a primary
        alone, and a misclassified write must fail there too."""
        if decision.reason is Reason.SHADOW or not (self._shadow or self._emulate):
            return decision, False
        if decision.primary:
            if not (self._emulate and read):
                return decision, False
            detail = f"emulated replica ({decision.reason.value}: {decision.detail})"
            return Decision(decision.node, True, Reason.SHADOW, detail), True
        primary = self.write_decision().node
        would = f"would go to {decision.node}: {decision.detail}"
        return Decision(primary, True, Reason.SHADOW, would), self._emulate

    # -- being told --------------------------------------------------------------------

    def record(self, decision: Decision) -> None:
        """*decision* is carried out: counted by node and reason, and made the current
        task's (or thread's) ``last_decision``."""
        key = (decision.node or "", decision.reason._value_)
        self.decisions[key] = self.decisions.get(key, 0) + 1
        # Setting a context variable copies the context's mapping; the everyday decision is
        # one value per node (core.plain_read), usually the one already set.
        if LAST_DECISION.get() is not decision:
            LAST_DECISION.set(decision)

    def count(self, node: str, reason: Reason) -> None:
        """A connection was taken on *node* for *reason* (a transaction, a pinned session):
        counted; its statements set ``last_decision`` as they run."""
        key = (node, reason._value_)
        self.decisions[key] = self.decisions.get(key, 0) + 1

    def committed(self, scope: Scope, position: Lsn) -> None:
        """A commit of *scope* is at *position* (the primary's, read just after): its floor,
        its parents' and its shared floor's rise past it."""
        scope.advance(position)

    def position_lost(self, scope: Scope) -> None:
        """A commit of *scope*'s position could not be read: its reads go to the primary
        until a later position read covers it."""
        scope.lose_position()

    def read_served(self, scope: Scope, decision: Decision) -> None:
        """A read of the session *scope* ran as *decision* says (see :meth:`Scope.read_on`)."""
        node = decision.node
        assert node is not None
        if decision.primary:
            scope.read_on(node, replica=False)
            return
        health = self._monitor.topology.by_name.get(node)
        scope.read_on(node, None if health is None else health.replay_lsn, replica=True)

    def missed(self, node: str, decision: Decision) -> Decision:
        """The read-your-writes fallback: a read waited on (or confirmed on) *node* as
        *decision* says goes to the primary after all, since *node* had not replayed its
        ``wait_for``."""
        return replace(
            self.write_decision(), reason=Reason.CONSISTENCY, detail=self._missed(node, decision)
        )

    def _missed(self, node: str, decision: Decision) -> str:
        """Why a read waited on (or confirmed on) *node* went to the primary after all."""
        target = decision.wait_for
        if decision.ask:
            return f"{node} was asked again after a missed wait and had not replayed {target}"
        if self._ryw_wait > 0:
            return f"{node} did not replay {target} within ryw_wait"
        return f"{node} had not replayed {target} (asked it)"

    def replayed(self, node: str, replayed: Lsn, target: Lsn, *, final: bool) -> bool:
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

    def asked(self, node: str, replayed: Lsn, target: Lsn) -> bool:
        """*node*, which missed a wait just now, was asked again (a decision with ``ask``) and
        first answered *replayed*: whether to wait for it now (it caught up with what it
        missed, see :class:`WaitMisses`). Otherwise it is asked less often from now on, and
        the read goes to the primary (:meth:`missed`)."""
        if replayed >= target or self._wait_misses.recovered(node, replayed):
            return True
        self._monitor.learn_replay(node, replayed)
        self._wait_misses.missed(node, target)  # asked less often from now on
        return False

    def settle_floor(self, scope: Scope, node: str, position: Lsn) -> None:
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
        key = (node, POSITION_LOST)
        self.decisions[key] = self.decisions.get(key, 0) + 1
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

    def node_failed(self, node: str, kind: FailureKind, detail: str = "") -> None:
        """*node* failed like *kind* while serving: the monitor judges it (and may hold it
        off until it answers again)."""
        self._monitor.report_failure(node, kind, detail)


def _prefer(name: str) -> Policy:
    def choose(candidates: Sequence[Any], rng: Random, /) -> Any:
        for candidate in candidates:
            if candidate.name == name:
                return candidate
        return None

    return choose
