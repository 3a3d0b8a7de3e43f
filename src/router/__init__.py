"""router: read/write splitting for PostgreSQL streaming replicas."""

from __future__ import annotations

from router._async._router import AsyncRouter
from router._async._session import AsyncSession, AsyncTransaction
from router._catalog_load import load_catalog, load_catalog_async
from router._engine import RoutingEngine
from router._introspect import Explanation
from router._sync._router import Router
from router._sync._session import Session, Transaction
from router._version import __version__
from router.config import (
    Consistency,
    Fallback,
    NodeConfig,
    PolicyName,
    PoolConfig,
    PoolerMode,
    RetryConfig,
    RouterConfig,
    redact,
)
from router.core import (
    CATALOG_QUERY,
    Classification,
    Classifier,
    Decision,
    Effect,
    FunctionCatalog,
    Hint,
    Reason,
    Route,
    classify,
    default_classifier,
    normalize_placeholders,
)
from router.errors import (
    ConfigurationError,
    ForeignToken,
    InvalidQuery,
    InvalidToken,
    NoReplicaAvailable,
    PoolTimeout,
    PrimaryUnavailable,
    ReadOnlyViolation,
    RouterError,
    SessionStateError,
    TopologyError,
)

__all__ = [
    "CATALOG_QUERY",
    "AsyncRouter",
    "AsyncSession",
    "AsyncTransaction",
    "Classification",
    "Classifier",
    "ConfigurationError",
    "Consistency",
    "Decision",
    "Effect",
    "Explanation",
    "Fallback",
    "ForeignToken",
    "FunctionCatalog",
    "Hint",
    "InvalidQuery",
    "InvalidToken",
    "NoReplicaAvailable",
    "NodeConfig",
    "PolicyName",
    "PoolConfig",
    "PoolerMode",
    "PoolTimeout",
    "PrimaryUnavailable",
    "ReadOnlyViolation",
    "Reason",
    "RetryConfig",
    "Route",
    "Router",
    "RouterConfig",
    "RouterError",
    "RoutingEngine",
    "Session",
    "SessionStateError",
    "TopologyError",
    "Transaction",
    "__version__",
    "classify",
    "default_classifier",
    "load_catalog",
    "load_catalog_async",
    "normalize_placeholders",
    "redact",
]
