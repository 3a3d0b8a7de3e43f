"""``RouterConfig``: the router's whole configuration, one frozen value (the package's
docstring says how it is built and validated)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, Self, TypeAlias
from urllib.parse import urlsplit

from router._stats import PoolSettings
from router.config._nodes import MAX_COMMAND_TIMEOUT, NodeConfig, PoolConfig, RetryConfig
from router.config._patroni import DEFAULT_TIMEOUT as DEFAULT_PATRONI_TIMEOUT
from router.config._sources import config_from_env, config_from_patroni, config_from_url
from router.config._values import (
    Checked,
    Consistency,
    ConsistencyLiteral,
    Fallback,
    FallbackLiteral,
    PolicyLiteral,
    PolicyName,
    PoolerMode,
    PoolerModeLiteral,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_names,
    check_str,
    show,
)
from router.core import GateParams
from router.errors import ConfigurationError

__all__ = ["PolicyOption", "RouterConfig", "SupportsChoose"]

DEFAULT_POLICY: Final = PolicyName.ROUND_ROBIN
DEFAULT_CONSISTENCY: Final = Consistency.READ_YOUR_WRITES
DEFAULT_MAX_LAG_BYTES: Final = 16 * 1024 * 1024
DEFAULT_MAX_LAG_SECONDS: Final = 5.0
DEFAULT_READMIT_FRACTION: Final = 0.5
DEFAULT_READMIT_HOLD: Final = 2.0
DEFAULT_MONITOR_INTERVAL: Final = 0.5
DEFAULT_MONITOR_TIMEOUT: Final = 1.0
# A check slower than this, or a view of lag older than this, is useless for gating.
MAX_MONITOR_SECONDS: Final = 60.0
DEFAULT_FAILURES_TO_DOWN: Final = 2
DEFAULT_PROBE_BACKOFF_INITIAL: Final = 0.5
DEFAULT_PROBE_BACKOFF_MAX: Final = 5.0
DEFAULT_STATEMENT_CACHE_SIZE: Final = 100
DEFAULT_PREPARE_THRESHOLD: Final = 5
DEFAULT_APPLICATION_NAME: Final = "router"
# PostgreSQL keeps NAMEDATALEN - 1 bytes of application_name and truncates the rest silently.
MAX_APPLICATION_NAME: Final = 63
DEFAULT_CLASSIFIER_CACHE_SIZE: Final = 4096
# read_timeout="auto" behind a transaction pooler: far above an OLTP read, far below
# PgBouncer's query_wait_timeout (120 s), for which a queued read would otherwise wait.
DEFAULT_POOLED_READ_TIMEOUT: Final = 30.0
ENV_PREFIX: Final = "ROUTER_"


class SupportsChoose(Protocol):
    """A policy object (defined with the router): anything with a ``choose`` method."""

    @property
    def choose(self) -> Callable[..., object]: ...


PolicyOption: TypeAlias = PolicyName | PolicyLiteral | SupportsChoose | Callable[..., object]


def _policy(value: object) -> PolicyOption:
    if isinstance(value, str):
        return check_choice("policy", value, PolicyName)
    if callable(value) or callable(getattr(value, "choose", None)):
        return value  # type: ignore[return-value]
    names = ", ".join(repr(name.value) for name in PolicyName)
    raise ConfigurationError(
        "policy",
        f"must be one of {names}, or a policy (a callable or an object with choose());"
        f" got {show(value)}",
    )


def _node(value: object, where: str) -> NodeConfig:
    if isinstance(value, NodeConfig):
        return value
    if not isinstance(value, str):
        # Only the type: a wrongly typed DSN (bytes, say) still holds the password.
        raise ConfigurationError(
            where, f"must be a NodeConfig or a connection string; got a {type(value).__name__}"
        )
    try:
        return NodeConfig(dsn=value)
    except ConfigurationError as error:
        subject = where if error.field == "dsn" else f"{where}.{error.field}"
        raise ConfigurationError(subject, error.problem) from None


def _node_list(value: object, where: str) -> tuple[NodeConfig, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ConfigurationError(
            where,
            f"must be a list of NodeConfig or connection strings; got a {type(value).__name__}",
        )
    return tuple(_node(item, f"{where}[{index}]") for index, item in enumerate(value))


def _patroni_urls(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, Sequence):
        raise ConfigurationError(
            "patroni_urls", f"must be a list of http(s) URLs; got {show(value)}"
        )
    urls = []
    for index, url in enumerate(value):
        where = f"patroni_urls[{index}]"
        if not isinstance(url, str):
            raise ConfigurationError(where, f"must be a URL string; got a {type(url).__name__}")
        parts = urlsplit(url)
        if "@" in parts.netloc:
            # Never echoed: the part before the @ may be a password.
            raise ConfigurationError(where, "credentials in the URL are not supported")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                where,
                f"must be an http:// or https:// URL with a host (http://db1:8008); got {url!r}",
            )
        try:
            parts.port  # noqa: B018 - raises for a port out of range
        except ValueError:
            raise ConfigurationError(where, f"has an invalid port: {url!r}") from None
        urls.append(url.rstrip("/"))
    return tuple(urls)


@dataclass(frozen=True, kw_only=True, slots=True)
class RouterConfig(Checked):
    """Everything the router needs; see the field comments and design §4, §5, §7.

    Nodes: ``primary=`` (with optional ``replicas=``), or ``nodes=`` whose roles are discovered
    at run time (what :meth:`from_url` builds) — not both. Strings become :class:`NodeConfig`.
    After construction every option-set field holds its ``StrEnum`` member (equal to its
    string), node lists are tuples, and numbers have their declared type.
    """

    primary: NodeConfig | str | None = None
    """The primary: a connection string or a :class:`NodeConfig`. Give it with ``replicas``,
    or give ``nodes`` instead when roles should be discovered."""
    replicas: Sequence[NodeConfig | str] = ()
    """The streaming replicas, with ``primary``: connection strings or :class:`NodeConfig`."""
    nodes: Sequence[NodeConfig | str] = ()
    """Every server, roles discovered at run time (what :meth:`from_url` builds); not with
    ``primary`` / ``replicas``."""

    # Routing (design §4).
    policy: PolicyOption = DEFAULT_POLICY
    """How a read picks among the eligible replicas: ``round-robin``, ``random`` (by node
    weight), ``least-outstanding`` (fewest requests in flight), ``latency`` (power of two
    choices on a moving average of response time), ``primary-only``; or a policy object."""
    consistency: Consistency | ConsistencyLiteral = DEFAULT_CONSISTENCY
    """The default consistency level of reads (per session, transaction and call it can be
    overridden): ``strong`` (primary only), ``read_your_writes`` (replicas that have replayed
    what this scope has seen), ``bounded`` (replicas within the lag budget), ``eventual`` (any
    up replica)."""
    ryw_wait: float = 0.0
    """Seconds a ``read_your_writes`` read may wait on the chosen replica for the scope's
    position before reading from the primary instead; 0 uses only positions the monitor already
    knows. Not waited on: a replica last seen more than ``ryw_wait + monitor_interval`` behind,
    or one that missed a wait less than ``monitor_interval`` ago."""
    max_lag_bytes: int | None = DEFAULT_MAX_LAG_BYTES
    """Lag budget in bytes of WAL (primary position minus replay position): a replica further
    behind is not eligible. ``None``: no byte budget."""
    max_lag_seconds: float | None = DEFAULT_MAX_LAG_SECONDS
    """Lag budget in seconds (0 when the replica has replayed the primary's position, an idle
    primary is no lag): a replica further behind is not eligible. ``None``: no time budget."""
    readmit_fraction: float = DEFAULT_READMIT_FRACTION
    """Hysteresis: a replica dropped by the lag gate comes back once its lags are at or below
    ``budget x readmit_fraction`` (0 < fraction <= 1) ..."""
    readmit_hold: float = DEFAULT_READMIT_HOLD
    """... and have stayed there for this many seconds."""
    fallback: Fallback | FallbackLiteral = Fallback.PRIMARY
    """When no replica is eligible for a read: ``primary`` reads from the primary, ``error``
    raises :class:`~router.errors.NoReplicaAvailable`."""
    primary_read_weight: float = 0.0
    """Weight of the primary among read targets under normal load (replicas weigh 1.0 each by
    default); 0 keeps reads off the primary unless no replica is eligible."""

    # Monitor and health (design §5).
    monitor_interval: float = DEFAULT_MONITOR_INTERVAL
    """Seconds between two checks of every node (role, WAL positions, replay paused)."""
    monitor_timeout: float = DEFAULT_MONITOR_TIMEOUT
    """Seconds a check (connect + query) may take before it counts as failed."""
    failures_to_down: int = DEFAULT_FAILURES_TO_DOWN
    """Consecutive failed checks that mark a node down (a broken connection counts at once)."""
    probe_backoff_initial: float = DEFAULT_PROBE_BACKOFF_INITIAL
    """Seconds before the first probe of a down node; doubles per failed probe ..."""
    probe_backoff_max: float = DEFAULT_PROBE_BACKOFF_MAX
    """... up to this many seconds."""
    patroni_urls: Sequence[str] = ()
    """Patroni REST API base URLs (``http://db1:8008``): each monitor round also reads
    ``GET /cluster`` from the first that answers. SQL discovery still decides roles; Patroni's
    view settles a split brain (the member it names leader keeps the writes), and a down node
    it reports running is probed at once. None answers: SQL discovery alone."""

    # Pools, drivers and connections (design §7).
    pool: PoolConfig = field(default_factory=PoolConfig)
    """Connection pool limits, one pool per node: see :class:`PoolConfig`."""
    retry: RetryConfig = field(default_factory=RetryConfig)
    """Retries of reads outside a transaction: see :class:`RetryConfig`."""
    pooler_mode: PoolerMode | PoolerModeLiteral = PoolerMode.SESSION
    """What sits between the router and the servers: ``session`` (nothing, or a session
    pooler) or ``transaction`` (PgBouncer ``pool_mode=transaction``, RDS Proxy), which turns
    named prepared statements off (asyncpg's statement cache, psycopg's preparing), sends no
    start-up or session-level setting (replicas' transactions are ``BEGIN READ ONLY``), and
    refuses statements that leave session state with ``SessionStateError`` (design §7)."""
    read_timeout: float | Literal["auto"] | None = "auto"
    """Seconds after which a read outside a transaction that names no ``timeout`` of its own
    is given up with ``TimeoutError``: the server is asked to cancel it, and it is never run
    again elsewhere (design §6). Behind a pooler a read may otherwise queue for minutes for a
    server that never comes (PgBouncer's ``query_wait_timeout``, 120 s by default).
    ``"auto"``: 30 s with ``pooler_mode="transaction"``, no deadline otherwise; ``None``: no
    deadline in any mode. Both routers keep it (the sync router has its server cancel the
    statement from a watchdog thread). The SQLAlchemy factories bound every statement on a
    replica with it (their replica transactions are reads only; asyncpg's
    ``command_timeout``, the same watchdog for psycopg), not those on the primary."""
    statement_cache_size: int = DEFAULT_STATEMENT_CACHE_SIZE
    """asyncpg's prepared statement cache per connection (0 turns it off); 0 behind a
    transaction pooler whatever is set."""
    prepare_threshold: int | None = DEFAULT_PREPARE_THRESHOLD
    """psycopg: executions of a query before it is prepared server-side; ``None`` never
    prepares (and is forced behind a transaction pooler)."""
    application_name: str = DEFAULT_APPLICATION_NAME
    """``application_name`` of every connection (``pg_stat_activity``); the monitor's are
    ``<name> monitor``. At most 63 printable ASCII characters."""
    replica_read_only: bool = True
    """Set ``default_transaction_read_only = on`` on replica connections: a second fence
    behind the classifier."""

    # Classifier (design §3).
    read_functions: Sequence[str] = ()
    """Functions (``name`` or ``schema.name``) the classifier treats as reads whatever their
    volatility: a VOLATILE function that does not write."""
    write_functions: Sequence[str] = ()
    """Functions the classifier treats as writes whatever their volatility."""
    classifier_cache_size: int = DEFAULT_CLASSIFIER_CACHE_SIZE
    """Classifications kept per SQL text (a bounded LRU); 0 turns the cache off."""

    # Modes and telemetry (design §8).
    shadow: bool = False
    """Shadow mode: classify and report where each statement would go (``last_decision``,
    spans, metrics) but send everything to the primary: the safe way to switch a live app
    on."""
    emulate_replicas: bool = False
    """Run every read on the primary inside a ``READ ONLY`` transaction (those the router
    sends to replicas, and those the primary serves anyway: no replica configured or
    eligible, read-your-writes): results without replication lag, and a write routed as a
    read fails loudly (SQLSTATE 25006), as on a standby, with a primary alone too."""
    record_sql: bool = False
    """Put the SQL text in spans (``db.query.text``); never the parameters."""

    def __post_init__(self) -> None:
        self._check_nodes()
        put = self._put
        put("policy", _policy(self.policy))
        put("consistency", check_choice("consistency", self.consistency, Consistency))
        put("ryw_wait", check_float("ryw_wait", self.ryw_wait))
        if self.max_lag_bytes is not None:
            check_int("max_lag_bytes", self.max_lag_bytes, minimum=0)
        if self.max_lag_seconds is not None:
            put("max_lag_seconds", check_float("max_lag_seconds", self.max_lag_seconds))
        if (
            self.consistency is Consistency.BOUNDED
            and self.max_lag_bytes is None
            and self.max_lag_seconds is None
        ):
            raise ConfigurationError(
                "consistency", "'bounded' needs max_lag_bytes or max_lag_seconds (both are None)"
            )
        put(
            "readmit_fraction",
            check_float("readmit_fraction", self.readmit_fraction, exclusive=True, maximum=1.0),
        )
        put("readmit_hold", check_float("readmit_hold", self.readmit_hold))
        put("fallback", check_choice("fallback", self.fallback, Fallback))
        put("primary_read_weight", check_float("primary_read_weight", self.primary_read_weight))
        for name in ("monitor_interval", "monitor_timeout"):
            put(
                name,
                check_float(name, getattr(self, name), exclusive=True, maximum=MAX_MONITOR_SECONDS),
            )
        check_int("failures_to_down", self.failures_to_down, minimum=1)
        initial = check_float("probe_backoff_initial", self.probe_backoff_initial, exclusive=True)
        maximum = check_float("probe_backoff_max", self.probe_backoff_max, exclusive=True)
        if maximum < initial:
            raise ConfigurationError(
                "probe_backoff_max",
                f"must be >= probe_backoff_initial ({initial:g}); got {maximum:g}",
            )
        put("probe_backoff_initial", initial)
        put("probe_backoff_max", maximum)
        put("patroni_urls", _patroni_urls(self.patroni_urls))
        for name, kind in (("pool", PoolConfig), ("retry", RetryConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigurationError(
                    name, f"must be a {kind.__name__}; got {show(getattr(self, name))}"
                )
        put("pooler_mode", check_choice("pooler_mode", self.pooler_mode, PoolerMode))
        if isinstance(self.read_timeout, str) and self.read_timeout != "auto":
            raise ConfigurationError(
                "read_timeout",
                f"must be a number of seconds, 'auto' or None; got {show(self.read_timeout)}",
            )
        if self.read_timeout is not None and self.read_timeout != "auto":
            put(
                "read_timeout",
                check_float(
                    "read_timeout", self.read_timeout, exclusive=True, maximum=MAX_COMMAND_TIMEOUT
                ),
            )
        check_int("statement_cache_size", self.statement_cache_size, minimum=0)
        if self.prepare_threshold is not None:
            check_int("prepare_threshold", self.prepare_threshold, minimum=0)
        check_str("application_name", self.application_name, max_length=MAX_APPLICATION_NAME)
        for name in ("replica_read_only", "shadow", "emulate_replicas", "record_sql"):
            check_bool(name, getattr(self, name))
        reads = check_names("read_functions", self.read_functions)
        writes = check_names("write_functions", self.write_functions)
        both = sorted(set(reads) & set(writes))
        if both:
            raise ConfigurationError("write_functions", f"also in read_functions: {both}")
        put("read_functions", reads)
        put("write_functions", writes)
        check_int("classifier_cache_size", self.classifier_cache_size, minimum=0)

    def _put(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def _check_nodes(self) -> None:
        primary = None if self.primary is None else _node(self.primary, "primary")
        replicas = _node_list(self.replicas, "replicas")
        found = _node_list(self.nodes, "nodes")
        if found and (primary is not None or replicas):
            raise ConfigurationError(
                "nodes", "give either nodes= (roles discovered) or primary= and replicas=, not both"
            )
        if not found and primary is None:
            what = "replicas without a primary" if replicas else "no nodes"
            raise ConfigurationError(
                "primary",
                f"{what}: give primary= (and replicas=), nodes=, or use RouterConfig.from_url()",
            )
        labelled = (
            [(f"nodes[{i}]", node) for i, node in enumerate(found)]
            if found
            else [("primary", primary), *((f"replicas[{i}]", n) for i, n in enumerate(replicas))]
        )
        seen_names: dict[str, str] = {}
        seen_addresses: dict[tuple[str, int], str] = {}
        dbname = None
        for label, node in labelled:
            assert node is not None
            other = seen_addresses.get(node.address)
            if other is not None:
                raise ConfigurationError(
                    label, f"is the same server as {other} ({node.name}); list each server once"
                )
            other = seen_names.get(node.name)
            if other is not None:
                raise ConfigurationError(label, f"has the same name {node.name!r} as {other}")
            if dbname is not None and node.dbname != dbname:
                raise ConfigurationError(
                    label,
                    f"connects to database {node.dbname!r}, the others to {dbname!r}; "
                    "replicas serve the primary's databases, so every node needs the same one",
                )
            seen_addresses[node.address] = label
            seen_names[node.name] = label
            dbname = node.dbname
        self._put("primary", primary)
        self._put("replicas", replicas)
        self._put("nodes", found)

    # Typed views of the node fields, which hold only NodeConfig after construction.
    @property
    def primary_node(self) -> NodeConfig | None:
        """The configured primary, or ``None`` when roles are discovered."""
        return self.primary if isinstance(self.primary, NodeConfig) else None

    @property
    def replica_nodes(self) -> tuple[NodeConfig, ...]:
        """The configured replicas (empty when roles are discovered)."""
        return tuple(node for node in self.replicas if isinstance(node, NodeConfig))

    @property
    def all_nodes(self) -> tuple[NodeConfig, ...]:
        """Every configured server: ``nodes``, or the primary followed by the replicas."""
        if self.nodes:
            return tuple(node for node in self.nodes if isinstance(node, NodeConfig))
        primary = self.primary_node
        return self.replica_nodes if primary is None else (primary, *self.replica_nodes)

    @property
    def discover_roles(self) -> bool:
        """True when roles are found at run time (``nodes=``) rather than given."""
        return bool(self.nodes)

    @property
    def effective_statement_cache_size(self) -> int:
        """asyncpg's ``statement_cache_size``: 0 behind a transaction pooler."""
        return 0 if self.pooler_mode is PoolerMode.TRANSACTION else self.statement_cache_size

    @property
    def effective_read_timeout(self) -> float | None:
        """The deadline of reads outside a transaction: ``read_timeout``, with ``"auto"``
        resolved by the pooler mode (:data:`DEFAULT_POOLED_READ_TIMEOUT` behind a transaction
        pooler, none otherwise)."""
        if self.read_timeout == "auto":
            pooled = self.pooler_mode is PoolerMode.TRANSACTION
            return DEFAULT_POOLED_READ_TIMEOUT if pooled else None
        assert not isinstance(self.read_timeout, str)
        return self.read_timeout

    @property
    def effective_prepare_threshold(self) -> int | None:
        """psycopg's ``prepare_threshold``: ``None`` (never) behind a transaction pooler."""
        return None if self.pooler_mode is PoolerMode.TRANSACTION else self.prepare_threshold

    def gate_params(self) -> GateParams:
        """The health gate's parameters (lag limits, readmission, failure counting, probe
        backoff): what the monitor and the node state machine in :mod:`router.core` take."""
        return GateParams(
            max_lag_bytes=self.max_lag_bytes,
            max_lag_seconds=self.max_lag_seconds,
            readmit_fraction=self.readmit_fraction,
            readmit_hold=self.readmit_hold,
            failures_to_down=self.failures_to_down,
            probe_backoff_initial=self.probe_backoff_initial,
            probe_backoff_max=self.probe_backoff_max,
        )

    def pool_settings(self) -> PoolSettings:
        """What every node's pool is opened with, in either flavour: the ``pool`` options, the
        connection settings, and the statement-cache and prepare settings that the pooler mode
        allows (:attr:`effective_statement_cache_size`, :attr:`effective_prepare_threshold`)."""
        return PoolSettings(
            min_size=self.pool.min_size,
            max_size=self.pool.max_size,
            acquire_timeout=self.pool.acquire_timeout,
            connect_timeout=self.pool.connect_timeout,
            max_lifetime=self.pool.max_lifetime,
            max_idle=self.pool.max_idle,
            max_queries=self.pool.max_queries,
            statement_cache_size=self.effective_statement_cache_size,
            prepare_threshold=self.effective_prepare_threshold,
            application_name=self.application_name,
            # Behind a transaction pooler nothing may be set for a session: it would leak to
            # the pooler's other clients and outlive a promotion (a replica's transactions
            # are BEGIN READ ONLY instead).
            replica_read_only=self.replica_read_only
            and self.pooler_mode is not PoolerMode.TRANSACTION,
            command_timeout=self.pool.command_timeout,
        )

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied and validated again (per-call overrides)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_url(cls, url: str, /, **overrides: Any) -> Self:
        """Configuration from a libpq URL: one node per host, roles discovered at run time.

        ``postgresql://user:pw@h1:5432,h2:5433,h3/db?sslmode=require&router_policy=random``
        gives three nodes sharing credentials and parameters (minus ``target_session_attrs``
        and ``load_balance_hosts``, which only make sense across hosts). ``router_<option>``
        parameters set options (``router_max_lag_seconds=2``, ``router_pool_max_size=20``) and
        are removed from the drivers' DSNs. Keyword ``overrides`` are ``RouterConfig`` fields
        and win over the URL's options. Errors name ``url`` or ``url: router_<option>``.
        """
        config: Self = config_from_url(
            cls,
            url,
            where="url",
            password=None,
            extra={},
            name_of=lambda key: f"url: router_{key}",
            overrides=overrides,
        )
        return config

    @classmethod
    def from_patroni(
        cls,
        patroni_urls: str | Sequence[str],
        dsn: str,
        /,
        *,
        timeout: float = DEFAULT_PATRONI_TIMEOUT,
        **overrides: Any,
    ) -> Self:
        """Configuration whose nodes are the members Patroni reports now.

        ``RouterConfig.from_patroni("http://db1:8008,http://db2:8008",
        "postgresql://app:secret@/appdb?sslmode=require")`` reads ``GET /cluster`` from the
        first URL that answers (within ``timeout`` seconds each) and makes one node per member,
        named as Patroni names it, reached with *dsn*'s credentials, database and parameters
        at the member's own host and port. ``patroni_urls`` is set as well, so the monitor
        keeps reading Patroni's view; roles are still discovered from the databases. A member
        that joins later is not used until the configuration is built again: the monitor logs
        a WARNING naming it. *dsn* may carry ``router_<option>`` parameters, as with
        :meth:`from_url`; keyword ``overrides`` are ``RouterConfig`` fields and win. Errors name
        ``patroni_urls`` (none answered, no member), ``dsn`` or ``dsn: router_<option>``.
        """
        urls = _patroni_urls(patroni_urls)
        if not urls:
            raise ConfigurationError("patroni_urls", "must name at least one Patroni REST API")
        config: Self = config_from_patroni(cls, urls, dsn, timeout=timeout, overrides=overrides)
        return config

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, prefix: str = ENV_PREFIX) -> Self:
        """Configuration from environment variables (``os.environ`` unless ``environ`` given).

        Nodes: ``<prefix>URL`` (a libpq URL, possibly multi-host, as :meth:`from_url`), or
        ``<prefix>PRIMARY_URL`` plus ``<prefix>REPLICA_URLS`` (comma-separated); optionally
        ``<prefix>PASSWORD`` for every node. Options: ``<prefix><FIELD>`` (``ROUTER_POLICY``,
        ``ROUTER_POOL_MAX_SIZE``, ``ROUTER_RETRY_ATTEMPTS``); booleans are 1/0, true/false,
        yes/no, on/off; ``none`` clears an optional number; lists are comma-separated. An
        unknown ``<prefix>*`` variable is an error (a typo must not be silently ignored), and
        every error names the variable; ``ROUTER_PATRONI`` and ``ROUTER_RELIABILITY_REPORT``
        (the test harness's) are not configuration and are left alone. Keep an application's
        own variables (a web secret) under a prefix of its own.
        """
        env = os.environ if environ is None else environ
        config: Self = config_from_env(cls, env, prefix)
        return config
