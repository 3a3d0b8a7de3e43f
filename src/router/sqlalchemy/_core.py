"""What the SQLAlchemy integration uses of a router core (``AsyncRouter`` or ``Router``).

Both cores have the same internals (the sync one is generated from the async one); the
session routing needs only their no-I/O decisions and shared state, so one protocol covers
both flavours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Protocol

from router._scope import Scope
from router.config import RouterConfig
from router.core import Classification, Classifier, FailureKind, Lsn, Role, Topology
from router.core._route import Decision

__all__ = ["Core", "MonitorLike", "role_in"]


class MonitorLike(Protocol):
    @property
    def topology(self) -> Topology: ...

    def report_failure(self, name: str, kind: FailureKind, detail: str = "") -> None: ...

    def request_rediscovery(self, suspect: str | None = None) -> None: ...


class Core(Protocol):
    """The router core's no-I/O routing surface."""

    @property
    def config(self) -> RouterConfig: ...

    @property
    def _monitor(self) -> MonitorLike: ...

    @property
    def _scope(self) -> Scope: ...

    @property
    def _own_classifier(self) -> bool: ...

    @property
    def _classifier(self) -> Classifier: ...

    @property
    def _decisions(self) -> Counter[tuple[str, str]]: ...

    @property
    def _system_id(self) -> int | None: ...

    def _classify(self, query: str) -> Classification: ...

    def _write_decision(self) -> Decision: ...

    def _read_decision(
        self,
        scope: Scope,
        exclude: Iterable[str] = (),
        *,
        retry: bool = False,
        wait: bool = True,
    ) -> Decision: ...

    def _read_on(self, scope: Scope, decision: Decision) -> None: ...

    def _replayed(self, node: str, replayed: Lsn, target: Lsn, *, final: bool) -> bool: ...

    def _new_scope(self, consistency: str | None = None, after: str | None = None) -> Scope: ...

    def _token(self, scope: Scope) -> str | None: ...

    def stats(self) -> dict[str, Any]: ...


def role_in(core: Core, node: str) -> Role:
    """The role *core*'s monitor last saw *node* in."""
    health = core._monitor.topology.by_name.get(node)
    return Role.UNKNOWN if health is None else health.role
