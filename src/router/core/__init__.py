"""The pure core: decisions without I/O, asyncio, drivers or clocks.

- classification: :func:`classify`, :class:`Classifier`, :class:`FunctionCatalog`;
- WAL positions and read-your-writes tokens: :class:`Lsn`, :class:`Position`, :func:`encode_token`;
- node health and the lag gate: :func:`observe`, :func:`tick`, :class:`Topology`;
- which replicas may serve a read: :func:`eligible`;
- which of them does: the policies;
- where a statement went and why: :class:`Decision`, :class:`Reason`.
"""

from __future__ import annotations

from router.core._catalog import CATALOG_QUERY, RELATIONS_QUERY, FunctionCatalog, Volatility
from router.core._classify import Classifier, classify, default_classifier
from router.core._eligibility import Cause, Consistency, Eligibility, Exclusion, Staleness, eligible
from router.core._ha import HaMember, HaView, parse_cluster
from router.core._health import GateParams, mark_failed, observe
from router.core._lsn import Lsn
from router.core._nodes import (
    CheckFailure,
    FailureKind,
    Health,
    NodeHealth,
    NodeStatus,
    Observation,
    Role,
    WalHistory,
)
from router.core._placeholders import normalize_placeholders
from router.core._policies import (
    POLICY_NAMES,
    Candidate,
    Ewma,
    LatencyPolicy,
    LeastOutstandingPolicy,
    Policy,
    RandomPolicy,
    RoundRobinPolicy,
    as_policy,
    policy_from_name,
    primary_only,
)
from router.core._refusals import refused_by_standby
from router.core._route import Decision, Reason
from router.core._token import TOKEN_PREFIX, Position
from router.core._token import decode as decode_token
from router.core._token import encode as encode_token
from router.core._topology import Topology, tick
from router.core._types import UNPARSEABLE, Classification, Effect, Hint, Route
from router.core._waits import WaitMisses

__all__ = [
    "CATALOG_QUERY",
    "RELATIONS_QUERY",
    "POLICY_NAMES",
    "TOKEN_PREFIX",
    "UNPARSEABLE",
    "Candidate",
    "Cause",
    "CheckFailure",
    "Classification",
    "Classifier",
    "Consistency",
    "Decision",
    "Effect",
    "Eligibility",
    "Ewma",
    "Exclusion",
    "FailureKind",
    "FunctionCatalog",
    "GateParams",
    "HaMember",
    "HaView",
    "Health",
    "Hint",
    "LatencyPolicy",
    "LeastOutstandingPolicy",
    "Lsn",
    "NodeHealth",
    "NodeStatus",
    "Observation",
    "Policy",
    "Position",
    "Reason",
    "RandomPolicy",
    "Role",
    "RoundRobinPolicy",
    "Route",
    "Staleness",
    "Topology",
    "Volatility",
    "WaitMisses",
    "WalHistory",
    "as_policy",
    "classify",
    "decode_token",
    "default_classifier",
    "eligible",
    "encode_token",
    "mark_failed",
    "normalize_placeholders",
    "observe",
    "parse_cluster",
    "policy_from_name",
    "primary_only",
    "refused_by_standby",
    "tick",
]
