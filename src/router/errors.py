"""The router's own errors.

Database errors (asyncpg, psycopg, SQLAlchemy) pass through unchanged; these
are for conditions the router itself detects::

    RouterError
     +-- ConfigurationError      a bad setting; the message names the field
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "RouterError"]


class RouterError(Exception):
    """Root of every error the router raises itself."""


class ConfigurationError(RouterError, ValueError):
    """A configuration value is missing, of the wrong type or out of range.

    ``field`` names the offending setting.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")
