"""``Topology``: every node's health at once, and who the primary is.

Roles are discovered, not trusted (design §5): the primary is the one up node whose last check
said ``pg_is_in_recovery() = false``. Two such nodes is a split brain (writes must be refused
with ``TopologyError``); none means writes fail fast with ``PrimaryUnavailable`` while replicas
keep serving reads.

A shell keeps the current ``Topology`` in one attribute and swaps it whole. The monitor calls
:func:`tick` once per round of checks; request paths call :meth:`Topology.report_failure` (a
pooled connection that broke or could not be opened) and :meth:`Topology.request_rediscovery`
(SQLSTATE 25006 from the node believed primary). Each is a read-modify-write of that
attribute: free of races in an event loop as long as nothing is awaited in between; a threaded
shell holds a lock around it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

from router.core._ha import HaView
from router.core._health import GateParams, mark_failed, observe, report_failure
from router.core._lsn import Lsn
from router.core._nodes import (
    FailureKind,
    NodeHealth,
    NodeStatus,
    Observation,
    Role,
    WalHistory,
)

__all__ = ["Topology", "tick"]

_NO_HISTORY: Final = WalHistory()


@dataclass(frozen=True, slots=True)
class Topology:
    """The health of every node, in configuration order, and what follows from it.

    ``wal``: the primary's recent WAL positions (see :class:`WalHistory`). ``rediscover_at``:
    when a rediscovery was asked for (``None``: not asked); the monitor should run a round of
    checks at once while it is set, and :func:`tick` clears it. Derived on construction:
    ``primary`` (the name, or ``None`` unless exactly one node qualifies), ``split_brain``,
    ``replicas`` (up nodes last seen in recovery, config order). ``memo``: a cache for views
    derived from this value (eligibility per level); a new value starts with an empty one.
    """

    nodes: tuple[NodeHealth, ...]
    wal: WalHistory = _NO_HISTORY
    rediscover_at: float | None = None
    suspect: str | None = None
    #: The HA manager's view taken with the latest round of checks (``None``: not configured,
    #: or not reachable then: SQL discovery alone).
    ha: HaView | None = field(default=None, compare=False)
    primary: str | None = field(init=False, default=None)
    split_brain: bool = field(init=False, default=False)
    replicas: tuple[NodeHealth, ...] = field(init=False, default=(), repr=False)
    by_name: Mapping[str, NodeHealth] = field(
        init=False, default_factory=dict, repr=False, compare=False
    )
    memo: dict[object, Any] = field(init=False, default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {node.name: node for node in self.nodes}
        if len(by_name) != len(self.nodes):
            raise ValueError("node names must be unique")
        # A node whose latest check failed (but is not down yet) still counts as the primary
        # when nothing better exists, but does not make a split brain: during a failover the
        # old primary fails its checks while the promoted one already answers.
        fresh = [n.name for n in self.nodes if n.role is Role.PRIMARY and n.up and not n.failures]
        stale = [n.name for n in self.nodes if n.role is Role.PRIMARY and n.up and n.failures]
        claimants = fresh or stale
        setattr_ = object.__setattr__
        setattr_(self, "by_name", MappingProxyType(by_name))
        setattr_(self, "split_brain", len(claimants) > 1)
        setattr_(self, "primary", claimants[0] if len(claimants) == 1 else None)
        replicas = tuple(n for n in self.nodes if n.role is Role.REPLICA and n.up)
        setattr_(self, "replicas", replicas)

    @classmethod
    def initial(cls, names: Iterable[str]) -> Topology:
        """Every node unchecked: down, role unknown, due for a probe now."""
        return cls(tuple(NodeHealth(name=name) for name in names))

    @property
    def primary_available(self) -> bool:
        """Whether writes have somewhere to go: exactly one up primary and no split brain."""
        return self.primary is not None

    @property
    def rediscover(self) -> bool:
        return self.rediscover_at is not None

    @property
    def primary_timeline(self) -> int | None:
        """The timeline the primary writes (``None``: no primary, or not reported)."""
        if self.primary is None:
            return None
        return self.by_name[self.primary].timeline

    def off_timeline(self, node: NodeHealth) -> bool:
        """Whether standby *node* may be replaying a history the primary does not share, so
        that its replay position says nothing about which commits it has: it was seen
        replaying past the primary's position (``ahead_of``: needs nothing but positions), it
        streams an older timeline than the primary's (its own answer first, else
        Patroni's), or it is a former primary of an older timeline that streams nothing yet
        (after a crash it replays its own WAL, which may run past the point where the new
        primary's timeline forked, before it finds it must be rewound). The last needs a way
        to see what it streams (``pg_read_all_stats``, or Patroni's view): without one, only
        the first rule and the lag gate guard against it."""
        if node.ahead_of is not None:
            return True
        current = self.primary_timeline
        if current is None:
            return False
        timeline = node.timeline
        ha = self.ha
        if timeline is None and ha is not None:
            member = ha.members.get(node.name)
            if member is not None:
                timeline = member.timeline
        if timeline is not None:
            return timeline < current
        led = node.led_timeline
        return led is not None and led < current and (node.sees_receiver or ha is not None)

    @property
    def primary_lsn(self) -> Lsn | None:
        """The primary's latest sampled WAL position, if the primary is the one sampled."""
        if self.primary is None or self.wal.node != self.primary:
            return None
        return self.wal.latest

    def node(self, name: str) -> NodeHealth:
        """The named node's health; ``KeyError`` for a name not in the topology."""
        return self.by_name[name]

    def due(self, now: float) -> tuple[str, ...]:
        """Names of the nodes to check in a round starting at ``now`` (down nodes on backoff
        are left out)."""
        return tuple(n.name for n in self.nodes if n.should_probe(now))

    def replace(self, *healths: NodeHealth) -> Topology:
        """A copy with these nodes' health replaced (matched by name; ``KeyError`` if unknown)."""
        new = {h.name: h for h in healths}
        unknown = new.keys() - self.by_name.keys()
        if unknown:
            raise KeyError(sorted(unknown)[0])
        nodes = tuple(new.get(n.name, n) for n in self.nodes)
        return Topology(nodes, self.wal, self.rediscover_at, self.suspect, self.ha)

    def mark_failed(
        self, name: str, kind: FailureKind, now: float, params: GateParams, detail: str = ""
    ) -> Topology:
        """A copy after a failed check of *name* made outside :func:`tick`."""
        return self.replace(mark_failed(self.node(name), kind, now, params, detail))

    def report_failure(
        self, name: str, kind: FailureKind, now: float, params: GateParams, detail: str = ""
    ) -> Topology:
        """A copy after a failure a shell saw on a pooled connection of *name* (see
        :func:`~router.core._health.report_failure`: a broken connection makes an up node
        suspect, and nothing changes a down one); ``self`` when nothing changed. When the node
        is up afterwards, the monitor should check it at once: that check decides."""
        node = self.node(name)
        health = report_failure(node, kind, now, params, detail)
        return self if health is node else self.replace(health)

    def request_rediscovery(self, now: float, suspect: str | None = None) -> Topology:
        """A copy asking the monitor to check every node at once.

        ``suspect``: the node that answered 25006 (``read_only_sql_transaction``) while believed
        primary. Its role becomes unknown right away, so no further write is sent there; a
        round of checks that started before ``now`` will not restore it.
        """
        topology = self
        if suspect is not None:
            node = self.node(suspect)
            if node.role is Role.PRIMARY:
                suspected = replace(
                    node, role=Role.UNKNOWN, reason="suspected demoted: read-only (25006)"
                )
                topology = self.replace(suspected)
        at = now if self.rediscover_at is None else min(self.rediscover_at, now)
        return Topology(topology.nodes, topology.wal, at, suspect or self.suspect, self.ha)


def tick(
    topology: Topology,
    observations: Mapping[str, Observation],
    now: float,
    params: GateParams,
    ha: HaView | None = None,
) -> Topology:
    """The topology after a round of checks that started at ``now``.

    ``observations`` maps node names to what their check saw; nodes without one (not due)
    keep their health. The primary's WAL position comes from the one node that reports it is not
    in recovery (none or several: unknown, so no replica's lag becomes known this round). Apply
    it to the *current* topology, not the one the round started from, so that failures reported
    meanwhile are kept. Clears a rediscovery asked for at or before ``now``; an observation of the
    suspect taken before it became suspect is ignored. ``KeyError`` for an unknown name.

    ``ha``: an HA manager's view taken in the same round (:class:`~router.core._ha.HaView`).
    When several nodes say they are not in recovery and the view names one of them leader,
    the others are not taken as the primary (role unknown, the reason says why): a split
    brain Patroni has already decided. The view never makes a primary of a node in recovery,
    and never overrules a node that alone says it is primary (a member's view of the DCS can
    be a loop behind: a just-promoted leader must not be refused writes for it).
    """
    for name in observations:
        topology.node(name)
    stale_request = topology.rediscover_at is not None and topology.rediscover_at > now
    ignored = topology.suspect if stale_request else None
    claimants = {
        name
        for name, obs in observations.items()
        if isinstance(obs, NodeStatus) and not obs.in_recovery and name != ignored
    }
    # Patroni only breaks a tie between nodes that both say they are primary.
    tie = ha is not None and ha.leader in claimants and len(claimants) > 1
    ha_rule = ha if tie else None
    primaries = [
        (name, obs.wal_lsn)
        for name, obs in observations.items()
        if isinstance(obs, NodeStatus)
        and name in claimants
        and (ha_rule is None or ha_rule.vetoes(name) is None)
    ]
    primary_lsn: Lsn | None = None
    wal = topology.wal
    if len(primaries) == 1:
        name, primary_lsn = primaries[0]
        if primary_lsn is not None:
            wal = wal.record(name, primary_lsn, now)
    history = wal if primary_lsn is not None else None
    nodes = []
    for node in topology.nodes:
        obs = observations.get(node.name)
        if obs is None or node.name == ignored:
            nodes.append(node)
        else:
            health = observe(node, obs, primary_lsn, now, params, history=history)
            health = _another_history(node, health, primary_lsn, now)
            veto = ha_rule.vetoes(node.name) if ha_rule is not None else None
            if veto is not None and health.role is Role.PRIMARY:
                health = replace(health, role=Role.UNKNOWN, reason=f"not written to: {veto}")
            nodes.append(health)
    nodes = _rejoined(nodes)
    if stale_request:
        return Topology(tuple(nodes), wal, topology.rediscover_at, topology.suspect, ha)
    return Topology(tuple(nodes), wal, ha=ha)


def _another_history(
    before: NodeHealth, after: NodeHealth, primary_lsn: Lsn | None, now: float
) -> NodeHealth:
    """*after*, marked when its replay position of an earlier round is above the primary's
    position of this one. On one history a standby replays only what its primary has
    written, so it never passes a later position of the primary: it replays WAL the primary
    does not have (a former primary's own WAL past a fork; a standby of a lost primary that
    received more than the promoted one). Needs no privilege and no timeline. The mark stays
    until its replay position goes back (rewound, rebuilt) or it streams the primary's
    timeline (:func:`_rejoined`)."""
    if after.role is not Role.REPLICA:
        return after if after.ahead_of is None else replace(after, ahead_of=None)
    ahead = before.ahead_of
    replay, earlier = after.replay_lsn, before.replay_lsn
    if ahead is not None and replay is not None and earlier is not None and replay < earlier:
        ahead = None
    if (
        ahead is None
        and primary_lsn is not None
        and earlier is not None
        and before.role is Role.REPLICA
        and before.checked_at is not None
        and before.checked_at < now
        and earlier > primary_lsn
    ):
        ahead = primary_lsn
    return after if ahead == after.ahead_of else replace(after, ahead_of=ahead)


def _rejoined(nodes: list[NodeHealth]) -> list[NodeHealth]:
    """*nodes*, a former primary forgetting the timeline it led once it streams the primary's
    (it was rewound, or never diverged): a later pause in its streaming is no divergence."""
    primaries = [n.timeline for n in nodes if n.role is Role.PRIMARY and n.up]
    if len(primaries) != 1 or primaries[0] is None:
        return nodes
    current = primaries[0]
    return [
        replace(n, led_timeline=None, ahead_of=None)
        if n.role is Role.REPLICA
        and (n.led_timeline is not None or n.ahead_of is not None)
        and n.timeline == current
        else n
        for n in nodes
    ]
