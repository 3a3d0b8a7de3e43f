"""An HA manager's view of the cluster (Patroni's ``GET /cluster``), and how it meets SQL.

Roles stay discovered from the database (design §5): the view only takes a write target
*away*, and only to settle a split brain. When two nodes say they are not in recovery and
Patroni names one of them leader, the other is not written to (a former leader that was never
fenced, or one being demoted); without the view that is a split brain and every write is
refused. A node Patroni calls leader but that is in recovery is not written to, because its
own answer is the last word; a node that alone says it is primary is written to whatever the
view says (a member's view can trail the DCS by a loop). Members map to the configured nodes
by address (``host``, ``port``); a member that matches no node, or a node that matches no
member, is left to SQL discovery alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router.core._lsn import Lsn

__all__ = ["HaMember", "HaView", "parse_cluster"]

#: Patroni's roles that lead (a standby cluster's leader follows another cluster: not ours).
_LEADER_ROLES = frozenset({"leader", "master", "primary"})


@dataclass(frozen=True, slots=True)
class HaMember:
    """One member as Patroni reports it (``None``: not reported)."""

    name: str  # the router's node name
    member: str  # Patroni's member name
    role: str
    state: str
    timeline: int | None = None
    lag_bytes: int | None = None
    replay_lsn: Lsn | None = None

    @property
    def leads(self) -> bool:
        return self.role in _LEADER_ROLES


@dataclass(frozen=True, slots=True)
class HaView:
    """Patroni's view at one moment: members by router node name, the leader's node name
    (``None``: no leader, or one that is not a configured node), and members that match no
    configured node (``unmatched``, their Patroni names)."""

    members: Mapping[str, HaMember] = field(default_factory=dict)
    leader: str | None = None
    leader_member: str | None = None
    unmatched: tuple[str, ...] = ()
    source: str = ""

    def vetoes(self, name: str) -> str | None:
        """Why *name* must not be written to although it says it is not in recovery (a
        short reason), or ``None``."""
        member = self.members.get(name)
        if member is None or self.leader_member is None:
            return None
        if member.leads:
            return None
        return f"Patroni names {self.leader_member} leader, {member.member} is {member.role}"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _lsn(value: Any) -> Lsn | None:
    if not isinstance(value, str):
        return None
    try:
        return Lsn.parse(value)
    except ValueError:
        return None


def parse_cluster(
    body: Any, addresses: Mapping[tuple[str, int], str], source: str = ""
) -> HaView | None:
    """The :class:`HaView` of a ``GET /cluster`` body; ``None`` when it is not one.

    *addresses* maps each configured node's ``(host, port)`` to its name.
    """
    if not isinstance(body, dict) or not isinstance(body.get("members"), list):
        return None
    members: dict[str, HaMember] = {}
    unmatched: list[str] = []
    leader: str | None = None
    leader_member: str | None = None
    for entry in body["members"]:
        if not isinstance(entry, dict):
            return None
        name = str(entry.get("name", ""))
        role = str(entry.get("role", ""))
        host, port = entry.get("host"), _int(entry.get("port"))
        node = addresses.get((str(host), port)) if port is not None else None
        if role in _LEADER_ROLES:
            leader_member = name
            leader = node
        if node is None:
            unmatched.append(name)
            continue
        lag = entry.get("lag")
        members[node] = HaMember(
            name=node,
            member=name,
            role=role,
            state=str(entry.get("state", "")),
            timeline=_int(entry.get("timeline")),
            lag_bytes=_int(lag),
            replay_lsn=_lsn(entry.get("replay_lsn")),
        )
    return HaView(members, leader, leader_member, tuple(unmatched), source)
