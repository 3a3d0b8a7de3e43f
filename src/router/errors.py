"""The router's own errors.

Database errors (asyncpg, psycopg, SQLAlchemy) pass through unchanged; these
are for conditions the router itself detects::

    RouterError
     +-- ConfigurationError      a bad setting; the message names the field
     +-- InvalidToken            a read-your-writes token we did not make, or damaged
          +-- ForeignToken       a token of another cluster (system_identifier)
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "ForeignToken", "InvalidToken", "RouterError"]


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


class InvalidToken(RouterError, ValueError):
    """A read-your-writes token that this version did not make, or that was damaged.

    ``token`` holds at most the first 64 characters of what was given (a token is not secret,
    but an arbitrary string from a client should not be echoed whole into logs).
    """

    def __init__(self, problem: str, token: object = None) -> None:
        self.problem = problem
        self.token = token[:64] if isinstance(token, str) else None
        super().__init__(f"invalid read-your-writes token: {problem}")


class ForeignToken(InvalidToken):
    """A well-formed token, or a position, of another cluster (another ``system_identifier``)."""

    def __init__(self, expected: int, found: int, token: object = None) -> None:
        self.expected = expected
        self.found = found
        super().__init__(
            f"it belongs to cluster {found}, this router serves cluster {expected}", token
        )
