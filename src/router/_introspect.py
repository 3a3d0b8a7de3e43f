"""What the router can tell about itself: where a statement would go, and per-node state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from router._scope import Scope, needs_session
from router._stats import NodeStats
from router.config import redact
from router.core import (
    Cause,
    Classification,
    Consistency,
    Decision,
    HaView,
    Role,
    Topology,
    eligible,
)
from router.errors import NoReplicaAvailable, PrimaryUnavailable, TopologyError

__all__ = ["Explanation", "describe", "explain", "last_errors", "stats"]


class _Routing(Protocol):
    """What :func:`explain` asks of a routing engine (``router._engine.RoutingEngine``)."""

    @property
    def scope(self) -> Scope: ...
    @property
    def topology(self) -> Topology: ...
    def classify(self, query: str) -> Classification: ...
    def to_primary(self, classification: Classification) -> bool: ...
    def write_decision(self) -> Decision: ...
    def read_decision(self, scope: Scope) -> Decision: ...


class _Pool(Protocol):
    stats: NodeStats

    def usage(self) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class Explanation:
    """Where a statement would go now, and why (``Router.explain``)."""

    sql: str
    classification: Classification
    node: str | None
    role: str | None
    reason: str
    detail: str
    eligible: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...]


def explain(engine: _Routing, sql: str) -> Explanation:
    cls = engine.classify(sql)
    scope = engine.scope
    found = eligible(engine.topology, scope.consistency, floor=scope.read_floor)
    excluded = tuple((e.name, e.reason) for e in found.excluded)
    if needs_session(cls):
        detail = f"{cls.reason}: only inside a session"
        return Explanation(sql, cls, None, None, "session-state", detail, (), ())
    try:
        if engine.to_primary(cls):
            decision = engine.write_decision()
        else:
            decision = engine.read_decision(scope)
    except (PrimaryUnavailable, TopologyError, NoReplicaAvailable) as exc:
        return Explanation(
            sql, cls, None, None, type(exc).__name__, str(exc), found.replicas, excluded
        )
    return Explanation(
        sql,
        cls,
        decision.node,
        "primary" if decision.primary else "replica",
        decision.reason.value,
        f"{cls.reason}; {decision.detail}",
        found.replicas,
        excluded,
    )


def stats(
    topology: Topology,
    pools: Mapping[str, _Pool],
    decisions: Mapping[tuple[str, str], int],
    rounds: int,
) -> dict[str, Any]:
    nodes = {}
    # A standby on another history passes the lag gate (admitted) and serves no read: its
    # reason says the latter, as router status does.
    off = {
        e.name: e.reason
        for e in eligible(topology, Consistency.EVENTUAL).excluded
        if e.cause is Cause.TIMELINE
    }
    for health in topology.nodes:
        pool = pools[health.name]
        s = pool.stats
        nodes[health.name] = {
            "role": health.role.value,
            "health": health.health.value,
            "admitted": health.admitted,
            "reason": f"serves no read: {off[health.name]}"
            if health.name in off
            else health.reason,
            "last_error": redact(health.last_error) if not health.up else "",
            "lag_bytes": health.lag_bytes,
            "lag_seconds": health.lag_seconds,
            "replay_lsn": None if health.replay_lsn is None else str(health.replay_lsn),
            "timeline": health.timeline,
            "off_timeline": health.name in off,
            "pool": pool.usage(),
            "acquired": s.acquired,
            "acquire_wait_seconds": round(s.acquire_wait, 6),
            "outstanding": s.outstanding,
            "reads": s.reads,
            "writes": s.writes,
            "errors": s.errors,
            "latency_ewma_seconds": s.ewma_latency,
            "patroni": _member(topology.ha, health.name),
        }
    by_node: dict[str, dict[str, int]] = {}
    for (node, reason), count in decisions.items():
        by_node.setdefault(node, {})[reason] = count
    return {
        "primary": topology.primary,
        "split_brain": topology.split_brain,
        "monitor_rounds": rounds,
        "nodes": nodes,
        "decisions": by_node,
        "patroni": _view(topology.ha),
    }


def _member(view: HaView | None, name: str) -> dict[str, Any] | None:
    """What Patroni said of node *name* in the monitor's last round (``None``: no view, or
    no member at that address)."""
    member = None if view is None else view.members.get(name)
    if member is None:
        return None
    return {
        "member": member.member,
        "role": member.role,
        "state": member.state,
        "timeline": member.timeline,
        "lag_bytes": member.lag_bytes,
    }


def _view(view: HaView | None) -> dict[str, Any] | None:
    """Patroni's view as a whole: where it was read, its leader, and the members no
    configured node matches (``None`` without ``patroni_urls`` or while no URL answers)."""
    if view is None:
        return None
    return {"source": view.source, "leader": view.leader_member, "unmatched": list(view.unmatched)}


def describe(topology: Topology) -> str:
    """One line for logs: each node's role and health."""
    parts = [
        f"{n.name}={n.role.value}/{n.health.value}"
        + (" (not admitted)" if n.role is Role.REPLICA and not n.admitted else "")
        for n in topology.nodes
    ]
    return ", ".join(parts) + (" SPLIT BRAIN" if topology.split_brain else "")


def last_errors(topology: Topology) -> str:
    """`` (last errors: node: error; ...)`` for the nodes that are not up and failed a check,
    or nothing: so that "no primary is reachable" says why (a wrong password, a host that
    does not resolve, a refused connection). Driver and server messages never hold the
    password, and are redacted all the same."""
    parts = [
        f"{n.name}: {redact(n.last_error)}" for n in topology.nodes if n.last_error and not n.up
    ]
    return f" (last errors: {'; '.join(parts)})" if parts else ""
