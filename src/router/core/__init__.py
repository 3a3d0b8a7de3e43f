"""The pure core: decisions without I/O, asyncio, drivers or clocks.

So far: statement classification (:func:`classify`, :class:`Classifier`).
"""

from __future__ import annotations

from router.core._catalog import CATALOG_QUERY, FunctionCatalog, Volatility
from router.core._classify import Classifier, classify, default_classifier
from router.core._placeholders import normalize_placeholders
from router.core._types import UNPARSEABLE, Classification, Effect, Hint, Route

__all__ = [
    "CATALOG_QUERY",
    "UNPARSEABLE",
    "Classification",
    "Classifier",
    "Effect",
    "FunctionCatalog",
    "Hint",
    "Route",
    "Volatility",
    "classify",
    "default_classifier",
    "normalize_placeholders",
]
