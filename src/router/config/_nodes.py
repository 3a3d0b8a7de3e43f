"""``NodeConfig`` (one server), ``PoolConfig`` and ``RetryConfig``: frozen, validated values."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Final, Self

from psycopg.conninfo import make_conninfo

from router.config._dsn import MASK, ParsedDSN, parse_node_dsn, redact
from router.config._values import Checked, check_float, check_int, show
from router.errors import ConfigurationError

__all__ = [
    "DEFAULT_ACQUIRE_TIMEOUT",
    "DEFAULT_COMMAND_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_IDLE",
    "DEFAULT_MAX_LIFETIME",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_MIN_SIZE",
    "DEFAULT_RETRY_ATTEMPTS",
    "DEFAULT_WEIGHT",
    "NodeConfig",
    "PoolConfig",
    "RetryConfig",
]

DEFAULT_WEIGHT: Final = 1.0
MAX_NAME_LENGTH: Final = 128

DEFAULT_MIN_SIZE: Final = 1
# PostgreSQL's own ceiling on connections (MAX_BACKENDS). asyncpg builds every slot of a pool
# when it opens it: a mistyped billion would exhaust memory instead of failing.
MAX_POOL_SIZE: Final = 262_143
DEFAULT_MAX_SIZE: Final = 10
DEFAULT_ACQUIRE_TIMEOUT: Final = 5.0
DEFAULT_MAX_LIFETIME: Final = 3600.0
DEFAULT_MAX_IDLE: Final = 600.0
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
# The router's own statements (BEGIN, COMMIT, ROLLBACK, the commit position, resets) answer in
# milliseconds on a live link. Long enough for a slow disk's COMMIT; short enough that a
# transaction committing into a dead link fails within an application's usual budget.
DEFAULT_COMMAND_TIMEOUT: Final = 3.0
# The kernel's TCP_USER_TIMEOUT (the sync pool's) is an int of milliseconds.
MAX_COMMAND_TIMEOUT: Final = 2_000_000.0

DEFAULT_RETRY_ATTEMPTS: Final = 3
DEFAULT_BACKOFF_INITIAL: Final = 0.05
DEFAULT_BACKOFF_MAX: Final = 1.0
DEFAULT_JITTER: Final = 0.05
MAX_RETRY_ATTEMPTS: Final = 100


def _default_name(parsed: ParsedDSN) -> str:
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{host}:{parsed.port}"


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeConfig(Checked):
    """One PostgreSQL server.

    ``dsn``
        A libpq URL (``postgresql://user:pw@host:5432/db?sslmode=require``) or key=value conninfo
        naming exactly one host, and a database (libpq's default of the user name is refused: it
        hides mistakes). Surrounding whitespace is dropped.
    ``name``
        Unique label in stats, logs and telemetry; empty (the default) means ``host:port``
        (``[v6addr]:port``).
    ``weight``
        Relative share of reads under the ``random`` policy (>= 0; 0 drains the node).
    ``password``
        The password, when kept out of the DSN (e.g. from a secret store); it may not also be in
        the DSN. Masked in every ``repr``.

    Parsed views: :attr:`host`, :attr:`hosts`, :attr:`port`, :attr:`dbname`, :attr:`user`.
    Drivers connect with :attr:`connect_dsn`; logs show :attr:`redacted_dsn`.
    """

    dsn: str
    """A libpq URL or key=value conninfo naming one host and a database."""
    name: str = ""
    """Label in stats, logs and telemetry; empty means ``host:port``."""
    weight: float = DEFAULT_WEIGHT
    """Relative share of reads under the ``random`` policy (>= 0; 0 drains the node)."""
    password: str | None = None
    """The password, when kept out of the DSN; masked in every ``repr``."""
    _parsed: ParsedDSN = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        given: object = self.dsn
        if not isinstance(given, str):
            # Only the type: a DSN of the wrong type (bytes, say) still holds the password.
            kind = type(given).__name__
            raise ConfigurationError("dsn", f"must be a connection string; got a {kind}")
        dsn = given.strip()
        parsed = parse_node_dsn(dsn, "dsn")
        password: object = self.password
        if password is not None:
            if not isinstance(password, str):
                kind = type(password).__name__
                raise ConfigurationError("password", f"must be a string or None; got a {kind}")
            if parsed.has_password:
                raise ConfigurationError(
                    "password", "is also given in the DSN; give it in one place only"
                )
        name = self.name
        if isinstance(name, str) and not name:
            name = _default_name(parsed)
        elif not isinstance(name, str) or not name.strip() or not name.isprintable():
            raise ConfigurationError(
                "name", f"must be a non-empty printable string; got {show(name)}"
            )
        elif len(name) > MAX_NAME_LENGTH:
            raise ConfigurationError(
                "name", f"must be at most {MAX_NAME_LENGTH} characters; got {len(name)}"
            )
        weight = check_float("weight", self.weight)
        object.__setattr__(self, "dsn", dsn)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "_parsed", parsed)

    @property
    def host(self) -> str:
        """Host name, address or Unix socket directory (``hostaddr`` when no ``host``)."""
        return self._parsed.host

    @property
    def hosts(self) -> tuple[str, ...]:
        """``(host,)``: a node is one server; multi-host URLs go to ``RouterConfig.from_url``."""
        return (self._parsed.host,)

    @property
    def port(self) -> int:
        return self._parsed.port

    @property
    def dbname(self) -> str:
        return self._parsed.dbname

    @property
    def user(self) -> str | None:
        """The user named in the DSN, or ``None`` (libpq then uses the OS user)."""
        return self._parsed.user

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``: two nodes with the same address are the same server."""
        return (self._parsed.host.lower(), self._parsed.port)

    @property
    def redacted_dsn(self) -> str:
        """The DSN with its password masked: the only form fit for logs and errors."""
        return redact(self.dsn)

    @property
    def connect_dsn(self) -> str:
        """The connection string to hand to a driver, with :attr:`password` merged in."""
        if self.password is None:
            return self.dsn
        return make_conninfo(self.dsn, password=self.password)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, validated again; a derived name follows the DSN."""
        if "dsn" in changes and "name" not in changes and self.name == _default_name(self._parsed):
            changes["name"] = ""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        password = None if self.password is None else MASK
        return (
            f"NodeConfig(dsn={self.redacted_dsn!r}, name={self.name!r}, "
            f"weight={self.weight!r}, password={password!r})"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class PoolConfig(Checked):
    """Connection pool limits, one pool per node. Times are in seconds.

    ``min_size`` (>= 0) connections are kept open, at most ``max_size`` (>= 1); a caller waits
    at most ``acquire_timeout`` for one. Connections are closed after ``max_lifetime`` (None:
    never), ``max_idle`` unused (None: never) or ``max_queries`` statements (None: no limit).
    ``connect_timeout`` bounds opening one.

    ``command_timeout`` (None: never) bounds each statement the router sends on its own on a
    pooled connection: ``BEGIN``, ``COMMIT``, ``ROLLBACK``, the commit position it reads after
    a write, the replay position it polls for ``ryw_wait``, the reset and ``SET`` of a pooled
    connection. One that runs out raises :class:`TimeoutError` and its connection is closed
    (the server rolls back whatever was open); after a ``COMMIT`` or a write, the outcome is
    then unknown, as for any write past its timeout. The application's own statements keep
    their own ``timeout=`` (asyncpg), none by default. Raise it, or set None, where a COMMIT
    may wait for long by design: synchronous replication whose standby can be away, large
    deferred constraint checks. psycopg cannot time out a statement from the client: the sync
    router's pooled connections get ``tcp_user_timeout`` and keepalives from it instead (unless
    their DSN sets them), which end a statement on a link that stops acknowledging, not one the
    server is slow to answer.
    """

    min_size: int = DEFAULT_MIN_SIZE
    """Connections kept open per node (>= 0)."""
    max_size: int = DEFAULT_MAX_SIZE
    """Most connections per node (>= 1): the number to multiply by app instances and nodes
    against each server's ``max_connections``."""
    acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT
    """Seconds a caller waits for a free connection before
    :class:`~router.errors.PoolTimeout`."""
    max_lifetime: float | None = DEFAULT_MAX_LIFETIME
    """Seconds after which a connection is closed and replaced (``None``: never)."""
    max_idle: float | None = DEFAULT_MAX_IDLE
    """Seconds an unused connection above ``min_size`` is kept (``None``: forever)."""
    max_queries: int | None = None
    """Statements after which a connection is replaced (``None``: no limit)."""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    """Seconds opening one connection may take."""
    command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT
    """Seconds each statement the router sends on its own may take (``BEGIN``, ``COMMIT``,
    ``ROLLBACK``, the commit position, resets); ``None``: never. Not the application's own
    statements."""

    def __post_init__(self) -> None:
        min_size = check_int("pool.min_size", self.min_size, minimum=0)
        max_size = check_int("pool.max_size", self.max_size, minimum=1, maximum=MAX_POOL_SIZE)
        if min_size > max_size:
            raise ConfigurationError(
                "pool.min_size", f"must be <= max_size ({max_size}); got {min_size}"
            )
        optional = {"max_lifetime", "max_idle", "command_timeout"}
        positive = {"acquire_timeout", "connect_timeout", *optional}
        for name in sorted(positive):
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            maximum = MAX_COMMAND_TIMEOUT if name == "command_timeout" else None
            checked = check_float(f"pool.{name}", value, exclusive=True, maximum=maximum)
            object.__setattr__(self, name, checked)
        if self.max_queries is not None:
            check_int("pool.max_queries", self.max_queries, minimum=1)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, validated again."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryConfig(Checked):
    """Retries of reads outside a transaction (design §6), for tenacity.

    ``attempts`` is the total number of tries (1: no retry). Waits grow exponentially from
    ``backoff_initial`` up to ``backoff_max`` seconds, plus up to ``jitter`` seconds at random.
    """

    attempts: int = DEFAULT_RETRY_ATTEMPTS
    """Total tries of a read whose connection failed before any row came back (1: no retry)."""
    backoff_initial: float = DEFAULT_BACKOFF_INITIAL
    """Seconds before the first retry; doubles per retry ..."""
    backoff_max: float = DEFAULT_BACKOFF_MAX
    """... up to this many seconds."""
    jitter: float = DEFAULT_JITTER
    """Up to this many seconds added at random to each wait."""

    def __post_init__(self) -> None:
        check_int("retry.attempts", self.attempts, minimum=1, maximum=MAX_RETRY_ATTEMPTS)
        initial = check_float("retry.backoff_initial", self.backoff_initial)
        maximum = check_float("retry.backoff_max", self.backoff_max)
        if maximum < initial:
            raise ConfigurationError(
                "retry.backoff_max", f"must be >= backoff_initial ({initial:g}); got {maximum:g}"
            )
        jitter = check_float("retry.jitter", self.jitter)
        object.__setattr__(self, "backoff_initial", initial)
        object.__setattr__(self, "backoff_max", maximum)
        object.__setattr__(self, "jitter", jitter)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, validated again."""
        return dataclasses.replace(self, **changes)
