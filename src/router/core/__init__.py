"""The pure core: decisions without I/O, asyncio, drivers or clocks.

- classification: :func:`classify`, :class:`Classifier`, :class:`FunctionCatalog`;
- WAL positions and read-your-writes tokens: :class:`Lsn`, :class:`Position`, :func:`encode_token`;
- node health and the lag gate: :func:`observe`, :func:`tick`, :class:`Topology`;
- which replicas may serve a read: :func:`eligible`;
- which of them does: the policies;
- where a statement went and why: :class:`Decision`, :class:`Reason`.

``__all__`` is what a user needs: classification, positions and tokens, the policies (to
write one), decisions. The other names imported here (the health gate, topologies,
eligibility, the catalog queries, ...) are the library's own: its layers take them from here
rather than from the core's private modules (the ``privates`` import contract), and they may
change without notice.
"""

from __future__ import annotations

# `name as name`: the library's own (see above), re-exported by name, not in __all__.
from router.core._catalog import CATALOG_QUERY as CATALOG_QUERY
from router.core._catalog import RELATIONS_QUERY as RELATIONS_QUERY
from router.core._catalog import FunctionCatalog
from router.core._catalog import Volatility as Volatility
from router.core._chain import caused as caused
from router.core._chain import raised_in as raised_in
from router.core._chain import reraise as reraise
from router.core._classify import Classifier, classify, default_classifier
from router.core._confirm import CONFIRM_WITHIN as CONFIRM_WITHIN
from router.core._confirm import confirm_pauses as confirm_pauses
from router.core._confirm import unconfirmed as unconfirmed
from router.core._eligibility import Cause as Cause
from router.core._eligibility import Consistency
from router.core._eligibility import Eligibility as Eligibility
from router.core._eligibility import Exclusion as Exclusion
from router.core._eligibility import Staleness as Staleness
from router.core._eligibility import eligible as eligible
from router.core._ha import HaMember as HaMember
from router.core._ha import HaView as HaView
from router.core._ha import parse_cluster as parse_cluster
from router.core._health import GateParams as GateParams
from router.core._health import mark_failed as mark_failed
from router.core._health import observe as observe
from router.core._lsn import Lsn
from router.core._nodes import CheckFailure as CheckFailure
from router.core._nodes import FailureKind as FailureKind
from router.core._nodes import Health, Role
from router.core._nodes import NodeHealth as NodeHealth
from router.core._nodes import NodeStatus as NodeStatus
from router.core._nodes import Observation as Observation
from router.core._nodes import WalHistory as WalHistory
from router.core._placeholders import normalize_placeholders as normalize_placeholders
from router.core._policies import (
    POLICY_NAMES,
    Candidate,
    LatencyPolicy,
    LeastOutstandingPolicy,
    Policy,
    RandomPolicy,
    RoundRobinPolicy,
)
from router.core._policies import Ewma as Ewma
from router.core._policies import as_policy as as_policy
from router.core._policies import policy_from_name as policy_from_name
from router.core._policies import primary_only as primary_only
from router.core._refusals import refused_by_standby as refused_by_standby
from router.core._route import Decision, Reason
from router.core._token import TOKEN_PREFIX as TOKEN_PREFIX
from router.core._token import Position
from router.core._token import decode as decode_token
from router.core._token import encode as encode_token
from router.core._topology import Topology as Topology
from router.core._topology import tick as tick
from router.core._types import UNPARSEABLE as UNPARSEABLE
from router.core._types import Classification, Effect, Hint, Route
from router.core._waits import WaitMisses as WaitMisses

__all__ = [
    "POLICY_NAMES",
    "Candidate",
    "Classification",
    "Classifier",
    "Consistency",
    "Decision",
    "Effect",
    "FunctionCatalog",
    "Health",
    "Hint",
    "LatencyPolicy",
    "LeastOutstandingPolicy",
    "Lsn",
    "Policy",
    "Position",
    "RandomPolicy",
    "Reason",
    "Role",
    "RoundRobinPolicy",
    "Route",
    "classify",
    "decode_token",
    "default_classifier",
    "encode_token",
]
