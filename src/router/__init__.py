"""router: read/write splitting for PostgreSQL streaming replicas."""

from __future__ import annotations

from router.errors import ConfigurationError, RouterError

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "RouterError",
    "__version__",
]
