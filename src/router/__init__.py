"""router: read/write splitting for PostgreSQL streaming replicas."""

from __future__ import annotations

from router._catalog import load_catalog, load_catalog_async
from router.core import (
    CATALOG_QUERY,
    Classification,
    Classifier,
    Effect,
    FunctionCatalog,
    Hint,
    Route,
    classify,
    default_classifier,
    normalize_placeholders,
)
from router.errors import ConfigurationError, RouterError

__version__ = "0.1.0"

__all__ = [
    "CATALOG_QUERY",
    "Classification",
    "Classifier",
    "ConfigurationError",
    "Effect",
    "FunctionCatalog",
    "Hint",
    "Route",
    "RouterError",
    "__version__",
    "classify",
    "default_classifier",
    "load_catalog",
    "load_catalog_async",
    "normalize_placeholders",
]
