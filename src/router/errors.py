"""The router's own errors.

Database errors (asyncpg, psycopg, SQLAlchemy) pass through unchanged; these
are for conditions the router itself detects::

    RouterError
     +-- ConfigurationError      a bad setting; the message names the field
     +-- InvalidToken            a read-your-writes token we did not make, or damaged
     |    +-- ForeignToken       a token of another cluster (system_identifier)
     +-- PrimaryUnavailable      no reachable primary: writes fail fast, reads carry on
     +-- TopologyError           two nodes claim to be primary: writes are refused
     +-- NoReplicaAvailable      no eligible replica and fallback="error"
     +-- ReadOnlyViolation       a WRITE inside a read-only transaction or session; not sent
     +-- SessionStateError       a session-state statement (SET, LISTEN, temp table, ...)
     |                           outside a session, where a pooled connection would lose it,
     |                           or anywhere behind a transaction pooler
     +-- PoolTimeout             no connection of a node's pool became free in time
     +-- InvalidQuery            SQL text no server can be sent (a NUL character); not sent

Database errors (asyncpg's, psycopg's, SQLAlchemy's) are never wrapped: code that catches
them keeps working.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "ForeignToken",
    "InvalidQuery",
    "InvalidToken",
    "NoReplicaAvailable",
    "PoolTimeout",
    "PrimaryUnavailable",
    "ReadOnlyViolation",
    "RouterError",
    "SessionStateError",
    "TopologyError",
]


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


class PrimaryUnavailable(RouterError):
    """No primary is reachable now. Raised before anything is sent; reads carry on."""


class TopologyError(RouterError):
    """The nodes disagree about who is primary (split brain): writes are refused."""


class NoReplicaAvailable(RouterError):
    """No replica may serve this read now and the router is configured not to fall back.

    ``reason`` says why each replica was left out.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ReadOnlyViolation(RouterError):
    """A statement that writes, sent in a read-only transaction or session. Nothing was sent."""


class SessionStateError(RouterError):
    """A statement that changes session state (``SET``, ``LISTEN``, a temp table, ...) was
    sent outside a session: on a pooled connection its effect would be lost or leak to
    another caller. Use ``router.session()``, or ``SET LOCAL`` inside a transaction.

    With ``pooler_mode="transaction"`` it is raised for such a statement anywhere, sessions
    and transactions included: the pooler hands the server connection to other clients
    between transactions, so the state would leak to them and be lost to this session."""


class PoolTimeout(RouterError, TimeoutError):
    """No connection of *node*'s pool became free within the acquire timeout."""

    def __init__(self, node: str, timeout: float) -> None:
        self.node = node
        self.timeout = timeout
        super().__init__(f"no connection to {node} became free within {timeout:g} s")


class InvalidQuery(RouterError, ValueError):
    """SQL text that cannot be sent as it is: it contains a NUL character, which PostgreSQL's
    protocol cannot carry (libpq would silently cut the statement there, asyncpg gets a bare
    protocol error). Raised before anything is sent."""
