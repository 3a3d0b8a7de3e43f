"""RouterConfig, NodeConfig, PoolConfig, RetryConfig: defaults, views and validation tables."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from router.config import (
    Consistency,
    Fallback,
    NodeConfig,
    PolicyName,
    PoolConfig,
    PoolerMode,
    RetryConfig,
    RouterConfig,
)
from router.errors import ConfigurationError, RouterError

PRIMARY = "postgresql://app@db-primary:5432/shop"
REPLICA_1 = "postgresql://app@db-replica-1:5432/shop"
REPLICA_2 = "host=db-replica-2 port=5433 dbname=shop user=app"
DSN = PRIMARY


def config(**changes: Any) -> RouterConfig:
    kwargs: dict[str, Any] = {"primary": PRIMARY, "replicas": [REPLICA_1, REPLICA_2]}
    return RouterConfig(**(kwargs | changes))


# --- defaults and normalisation --------------------------------------------------------------


def test_defaults() -> None:
    c = config()
    assert c.policy is PolicyName.ROUND_ROBIN
    assert c.consistency is Consistency.READ_YOUR_WRITES
    assert c.ryw_wait == 0.0
    assert c.max_lag_bytes == 16 * 1024 * 1024
    assert c.max_lag_seconds == 5.0
    assert c.readmit_fraction == 0.5
    assert c.readmit_hold == 2.0
    assert c.fallback is Fallback.PRIMARY
    assert c.primary_read_weight == 0.0
    assert c.monitor_interval == 0.5
    assert c.monitor_timeout == 1.0
    assert c.failures_to_down == 2
    assert 0 < c.probe_backoff_initial <= c.probe_backoff_max
    assert c.pool == PoolConfig()
    assert c.retry == RetryConfig()
    assert c.pooler_mode is PoolerMode.SESSION
    assert c.statement_cache_size == 100
    assert c.prepare_threshold == 5
    assert c.application_name == "router"
    assert c.replica_read_only is True
    assert c.read_functions == ()
    assert c.write_functions == ()
    assert c.classifier_cache_size > 0
    assert (c.shadow, c.emulate_replicas, c.record_sql) == (False, False, False)


def test_pool_and_retry_defaults() -> None:
    pool = PoolConfig()
    assert (pool.min_size, pool.max_size, pool.max_queries) == (1, 10, None)
    assert pool.acquire_timeout > 0
    assert pool.connect_timeout > 0
    assert pool.max_lifetime is not None
    assert pool.max_idle is not None
    retry = RetryConfig()
    assert retry.attempts == 3
    assert 0 <= retry.backoff_initial <= retry.backoff_max
    assert retry.jitter >= 0


def test_strings_become_nodes_and_sequences_tuples() -> None:
    c = config(read_functions=["audit.log_read"], write_functions=("bump",))
    assert isinstance(c.primary, NodeConfig)
    assert isinstance(c.replicas, tuple)
    assert all(isinstance(node, NodeConfig) for node in c.replicas)
    assert c.nodes == ()
    assert c.read_functions == ("audit.log_read",)
    assert c.write_functions == ("bump",)
    assert c.primary_node is c.primary
    assert c.replica_nodes == c.replicas
    assert [n.name for n in c.all_nodes] == [
        "db-primary:5432",
        "db-replica-1:5432",
        "db-replica-2:5433",
    ]
    assert not c.discover_roles


def test_option_sets_accept_strings_and_members() -> None:
    c = config(
        policy="least-outstanding",
        consistency="bounded",
        fallback="error",
        pooler_mode=PoolerMode.TRANSACTION,
    )
    assert c.policy is PolicyName.LEAST_OUTSTANDING
    assert c.consistency is Consistency.BOUNDED
    assert c.consistency == "bounded"  # type: ignore[comparison-overlap]
    assert c.fallback is Fallback.ERROR
    assert c.pooler_mode is PoolerMode.TRANSACTION
    # Case and -/_ are forgiven: one set of names uses "-", the other "_".
    assert config(policy="ROUND_ROBIN").policy is PolicyName.ROUND_ROBIN
    assert config(consistency="read-your-writes").consistency is Consistency.READ_YOUR_WRITES


def test_option_sets_match_the_core() -> None:
    import router.core

    # The same enum, so the core's ``is Consistency.X`` checks hold for configured values.
    assert Consistency is router.core.Consistency
    assert [name.value for name in PolicyName] == list(router.core.POLICY_NAMES)
    for name in PolicyName:
        assert router.core.policy_from_name(name) is not None


def test_zero_lag_budgets_mean_fully_caught_up() -> None:
    c = config(max_lag_bytes=0, max_lag_seconds=0)
    assert (c.max_lag_bytes, c.max_lag_seconds) == (0, 0.0)


def test_ints_where_floats_are_wanted_become_floats() -> None:
    c = config(ryw_wait=1, max_lag_seconds=2, monitor_interval=1)
    assert isinstance(c.ryw_wait, float)
    assert isinstance(c.max_lag_seconds, float)
    assert isinstance(c.monitor_interval, float)
    assert isinstance(PoolConfig(acquire_timeout=3).acquire_timeout, float)
    assert isinstance(RetryConfig(backoff_max=2).backoff_max, float)
    assert isinstance(NodeConfig(dsn=PRIMARY, weight=2).weight, float)


class _Policy:
    def choose(self, candidates: list[str]) -> str:
        return candidates[0]


def _choose_first(candidates: list[str]) -> str:
    return candidates[0]


@pytest.mark.parametrize("policy", [_Policy(), _choose_first])
def test_policy_objects_and_callables_are_kept(policy: Any) -> None:
    assert config(policy=policy).policy is policy


def test_transaction_pooler_turns_named_prepared_statements_off() -> None:
    c = config(statement_cache_size=50, prepare_threshold=3)
    assert (c.effective_statement_cache_size, c.effective_prepare_threshold) == (50, 3)
    c = c.replace(pooler_mode="transaction")
    assert (c.effective_statement_cache_size, c.effective_prepare_threshold) == (0, None)
    assert (c.statement_cache_size, c.prepare_threshold) == (50, 3)


def test_none_is_accepted_where_documented() -> None:
    c = config(max_lag_bytes=None, prepare_threshold=None)
    assert c.max_lag_bytes is None
    assert c.prepare_threshold is None
    assert config(max_lag_seconds=None, consistency="bounded").max_lag_bytes is not None
    pool = PoolConfig(max_lifetime=None, max_idle=None, max_queries=None)
    assert (pool.max_lifetime, pool.max_idle, pool.max_queries) == (None, None, None)


def test_frozen_slotted_keyword_only() -> None:
    c = config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.policy = "random"  # type: ignore[misc]
    with pytest.raises(ConfigurationError, match="keyword arguments only"):
        RouterConfig(PRIMARY)  # type: ignore[call-arg]
    assert not hasattr(c, "__dict__")
    assert not hasattr(NodeConfig(dsn=PRIMARY), "__dict__")


def test_replace_revalidates() -> None:
    c = config()
    d = c.replace(policy="random", pool=PoolConfig(max_size=2, min_size=0))
    assert d.policy is PolicyName.RANDOM
    assert d.pool.max_size == 2
    assert c.policy is PolicyName.ROUND_ROBIN
    with pytest.raises(ConfigurationError) as info:
        c.replace(monitor_timeout=-1)
    assert info.value.field == "monitor_timeout"
    assert c.replace() == c
    assert PoolConfig().replace(max_size=5).max_size == 5
    assert RetryConfig().replace(attempts=1).attempts == 1


def test_configs_compare_and_hash_by_value() -> None:
    assert config() == config()
    assert hash(config()) == hash(config())
    assert config() != config(policy="random")


# --- NodeConfig --------------------------------------------------------------------------------


def test_node_parsed_views() -> None:
    node = NodeConfig(dsn="postgresql://app:pw@db.example.com:6432/shop?sslmode=require")
    assert node.host == "db.example.com"
    assert node.hosts == ("db.example.com",)
    assert node.port == 6432
    assert node.dbname == "shop"
    assert node.user == "app"
    assert node.name == "db.example.com:6432"
    assert node.weight == 1.0
    assert node.address == ("db.example.com", 6432)


@pytest.mark.parametrize(
    ("dsn", "name", "host", "port", "user"),
    [
        ("postgresql://h/db", "h:5432", "h", 5432, None),
        ("postgres://u@h:1/db", "h:1", "h", 1, "u"),
        ("postgresql://[::1]:5433/db", "[::1]:5433", "::1", 5433, None),
        (
            "host=/var/run/postgresql dbname=db",
            "/var/run/postgresql:5432",
            "/var/run/postgresql",
            5432,
            None,
        ),
        ("hostaddr=10.0.0.7 port=6000 dbname=db user=x", "10.0.0.7:6000", "10.0.0.7", 6000, "x"),
        ("  postgresql://h/db\n", "h:5432", "h", 5432, None),
    ],
)
def test_node_forms(dsn: str, name: str, host: str, port: int, user: str | None) -> None:
    node = NodeConfig(dsn=dsn)
    assert (node.name, node.host, node.port, node.user, node.dbname) == (
        name,
        host,
        port,
        user,
        "db",
    )
    assert node.dsn == dsn.strip()


def test_node_name_weight_password() -> None:
    node = NodeConfig(dsn="postgresql://app@h/db", name="east-1", weight=0, password="pw")
    assert node.name == "east-1"
    assert node.weight == 0.0
    assert "password=pw" in node.connect_dsn
    assert NodeConfig(dsn=PRIMARY).connect_dsn == PRIMARY


def test_node_replace_keeps_a_given_name_and_rederives_a_default_one() -> None:
    node = NodeConfig(dsn="postgresql://h1/db")
    assert node.replace(dsn="postgresql://h2/db").name == "h2:5432"
    named = NodeConfig(dsn="postgresql://h1/db", name="main")
    assert named.replace(dsn="postgresql://h2/db").name == "main"
    assert node.replace(weight=3).weight == 3.0


# --- validation tables: every field, a wrong type and a wrong value ---------------------------

NAN = math.nan
INF = math.inf

ROUTER_CASES: list[tuple[str, Any, str]] = [
    ("policy", "rr", "policy"),
    ("policy", 5, "policy"),
    ("policy", None, "policy"),
    ("consistency", "linearizable", "consistency"),
    ("consistency", 1, "consistency"),
    ("ryw_wait", "1", "ryw_wait"),
    ("ryw_wait", -0.5, "ryw_wait"),
    ("ryw_wait", NAN, "ryw_wait"),
    ("ryw_wait", True, "ryw_wait"),
    ("max_lag_bytes", 1.5, "max_lag_bytes"),
    ("max_lag_bytes", "16MB", "max_lag_bytes"),
    ("max_lag_bytes", -1, "max_lag_bytes"),
    ("max_lag_bytes", True, "max_lag_bytes"),
    ("max_lag_seconds", "5", "max_lag_seconds"),
    ("max_lag_seconds", -0.1, "max_lag_seconds"),
    ("max_lag_seconds", INF, "max_lag_seconds"),
    ("readmit_fraction", "0.5", "readmit_fraction"),
    ("readmit_fraction", 0, "readmit_fraction"),
    ("readmit_fraction", 1.01, "readmit_fraction"),
    ("readmit_hold", None, "readmit_hold"),
    ("readmit_hold", -1, "readmit_hold"),
    ("fallback", "replica", "fallback"),
    ("fallback", None, "fallback"),
    ("primary_read_weight", "1", "primary_read_weight"),
    ("primary_read_weight", -0.1, "primary_read_weight"),
    ("monitor_interval", "0.5", "monitor_interval"),
    ("monitor_interval", 0, "monitor_interval"),
    ("monitor_interval", 3600, "monitor_interval"),
    ("monitor_timeout", None, "monitor_timeout"),
    ("monitor_timeout", 0, "monitor_timeout"),
    ("monitor_timeout", 61, "monitor_timeout"),
    ("failures_to_down", 2.0, "failures_to_down"),
    ("failures_to_down", True, "failures_to_down"),
    ("failures_to_down", 0, "failures_to_down"),
    ("probe_backoff_initial", "1", "probe_backoff_initial"),
    ("probe_backoff_initial", 0, "probe_backoff_initial"),
    ("probe_backoff_max", None, "probe_backoff_max"),
    ("probe_backoff_max", 0.1, "probe_backoff_max"),  # below probe_backoff_initial
    ("patroni_urls", 5, "patroni_urls"),
    ("patroni_urls", "ftp://h:8008", "patroni_urls[0]"),
    ("patroni_urls", ["http://:8008"], "patroni_urls[0]"),
    ("patroni_urls", ["http://h:99999"], "patroni_urls[0]"),
    ("patroni_urls", ["http://u:pw@h:8008"], "patroni_urls[0]"),
    ("patroni_urls", [b"http://h:8008"], "patroni_urls[0]"),
    ("pool", {"max_size": 3}, "pool"),
    ("pool", None, "pool"),
    ("retry", 3, "retry"),
    ("retry", PoolConfig(), "retry"),
    ("pooler_mode", "statement", "pooler_mode"),
    ("pooler_mode", True, "pooler_mode"),
    ("read_timeout", 0, "read_timeout"),
    ("read_timeout", "2", "read_timeout"),
    ("read_timeout", NAN, "read_timeout"),
    ("statement_cache_size", 1.0, "statement_cache_size"),
    ("statement_cache_size", None, "statement_cache_size"),
    ("statement_cache_size", -1, "statement_cache_size"),
    ("prepare_threshold", "5", "prepare_threshold"),
    ("prepare_threshold", -1, "prepare_threshold"),
    ("application_name", 5, "application_name"),
    ("application_name", "", "application_name"),
    ("application_name", "x" * 64, "application_name"),
    ("application_name", "naïve", "application_name"),
    ("application_name", "a\nb", "application_name"),
    ("replica_read_only", 1, "replica_read_only"),
    ("replica_read_only", "true", "replica_read_only"),
    ("read_functions", "now", "read_functions"),
    ("read_functions", 5, "read_functions"),
    ("read_functions", [1], "read_functions[0]"),
    ("read_functions", ["ok", "a.b.c"], "read_functions[1]"),
    ("write_functions", None, "write_functions"),
    ("write_functions", [""], "write_functions[0]"),
    ("write_functions", [" padded"], "write_functions[0]"),
    ("classifier_cache_size", "big", "classifier_cache_size"),
    ("classifier_cache_size", -1, "classifier_cache_size"),
    ("shadow", None, "shadow"),
    ("shadow", 0, "shadow"),
    ("emulate_replicas", "no", "emulate_replicas"),
    ("record_sql", 1.0, "record_sql"),
]

POOL_CASES: list[tuple[str, Any, str]] = [
    ("min_size", "1", "pool.min_size"),
    ("min_size", -1, "pool.min_size"),
    ("min_size", 11, "pool.min_size"),  # above the default max_size
    ("max_size", 1.5, "pool.max_size"),
    ("max_size", 0, "pool.max_size"),
    ("max_size", True, "pool.max_size"),
    ("acquire_timeout", None, "pool.acquire_timeout"),
    ("acquire_timeout", 0, "pool.acquire_timeout"),
    ("acquire_timeout", "5", "pool.acquire_timeout"),
    ("max_lifetime", "1h", "pool.max_lifetime"),
    ("max_lifetime", 0, "pool.max_lifetime"),
    ("max_idle", NAN, "pool.max_idle"),
    ("max_idle", -1, "pool.max_idle"),
    ("max_queries", 1.5, "pool.max_queries"),
    ("max_queries", 0, "pool.max_queries"),
    ("connect_timeout", None, "pool.connect_timeout"),
    ("connect_timeout", -2, "pool.connect_timeout"),
    ("command_timeout", 0, "pool.command_timeout"),
    ("command_timeout", "3", "pool.command_timeout"),
    ("command_timeout", 1e9, "pool.command_timeout"),
]

RETRY_CASES: list[tuple[str, Any, str]] = [
    ("attempts", 2.0, "retry.attempts"),
    ("attempts", True, "retry.attempts"),
    ("attempts", 0, "retry.attempts"),
    ("attempts", 1000, "retry.attempts"),
    ("backoff_initial", "0.1", "retry.backoff_initial"),
    ("backoff_initial", -1, "retry.backoff_initial"),
    ("backoff_max", None, "retry.backoff_max"),
    ("backoff_max", 0.01, "retry.backoff_max"),  # below backoff_initial
    ("jitter", "0", "retry.jitter"),
    ("jitter", -0.1, "retry.jitter"),
]

NODE_CASES: list[tuple[str, Any, str]] = [
    ("dsn", 5, "dsn"),
    ("dsn", b"postgresql://h/db", "dsn"),
    ("dsn", "", "dsn"),
    ("dsn", "postgresql://h", "dsn"),  # no database
    ("dsn", "postgresql:///db", "dsn"),  # no host
    ("dsn", "postgresql://h:0/db", "dsn"),
    ("dsn", "postgresql://h:http/db", "dsn"),
    ("dsn", "host=h1,h2 dbname=db", "dsn"),
    ("dsn", "postgresql://h1,h2/db", "dsn"),
    ("dsn", "not a dsn", "dsn"),
    ("dsn", "host=h dbname=db frobnicate=1", "dsn"),
    ("dsn", "postgresql://h/db?router_policy=random", "dsn"),
    ("dsn", "postgresql://h/d\0b", "dsn"),
    ("name", 5, "name"),
    ("name", "  ", "name"),
    ("name", "a\tb", "name"),
    ("name", "n" * 200, "name"),
    ("weight", "1", "weight"),
    ("weight", -1, "weight"),
    ("weight", INF, "weight"),
    ("weight", False, "weight"),
    ("password", 1234, "password"),
    ("password", "pw", "password"),  # also in the DSN below
]


def _covers(cases: list[tuple[str, Any, str]], cls: type[Any], skip: set[str]) -> None:
    names = {spec.name for spec in dataclasses.fields(cls) if spec.init} - skip
    assert names <= {case[0] for case in cases}, names - {case[0] for case in cases}


def test_the_tables_cover_every_field() -> None:
    _covers(ROUTER_CASES, RouterConfig, {"primary", "replicas", "nodes"})
    _covers(POOL_CASES, PoolConfig, set())
    _covers(RETRY_CASES, RetryConfig, set())
    _covers(NODE_CASES, NodeConfig, set())


def _raises(field: str, make: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        make()
    assert info.value.field == field, str(info.value)
    assert isinstance(info.value, RouterError)
    assert info.value.problem
    assert str(info.value).startswith(f"{field}: ")
    return info.value


@pytest.mark.parametrize(("name", "value", "field"), ROUTER_CASES)
def test_router_field_errors(name: str, value: Any, field: str) -> None:
    error = _raises(field, lambda: config(**{name: value}))
    simple = isinstance(value, str | int | float) and not isinstance(value, bool)
    if simple and 0 < len(str(value)) < 40:
        # What was given is in the message.
        shown = {repr(value), str(value), f"{value:g}" if not isinstance(value, str) else ""}
        assert any(text and text in error.problem for text in shown), error.problem


@pytest.mark.parametrize(("name", "value", "field"), POOL_CASES)
def test_pool_field_errors(name: str, value: Any, field: str) -> None:
    _raises(field, lambda: PoolConfig(**{name: value}))


@pytest.mark.parametrize(("name", "value", "field"), RETRY_CASES)
def test_retry_field_errors(name: str, value: Any, field: str) -> None:
    _raises(field, lambda: RetryConfig(**{name: value}))


@pytest.mark.parametrize(("name", "value", "field"), NODE_CASES)
def test_node_field_errors(name: str, value: Any, field: str) -> None:
    kwargs: dict[str, Any] = {"dsn": "postgresql://u:other@h/db"}
    kwargs[name] = value
    _raises(field, lambda: NodeConfig(**kwargs))


def test_min_size_may_equal_max_size_or_be_zero() -> None:
    assert PoolConfig(min_size=5, max_size=5).min_size == 5
    assert PoolConfig(min_size=0).min_size == 0


def test_bounded_needs_a_lag_budget() -> None:
    error = _raises(
        "consistency",
        lambda: config(consistency="bounded", max_lag_bytes=None, max_lag_seconds=None),
    )
    assert "max_lag_bytes" in error.problem
    # Other levels may go without one.
    assert config(max_lag_bytes=None, max_lag_seconds=None).max_lag_bytes is None


def test_a_function_cannot_be_both_read_and_write() -> None:
    error = _raises(
        "write_functions", lambda: config(read_functions=["f", "g"], write_functions=["g"])
    )
    assert "'g'" in error.problem


def test_duplicate_function_names_collapse() -> None:
    assert config(read_functions=["f", "f", "s.g"]).read_functions == ("f", "s.g")


# --- node lists ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "primary"),
        ({"replicas": [REPLICA_1]}, "primary"),
        ({"primary": 5}, "primary"),
        ({"primary": b"postgresql://h/db"}, "primary"),
        ({"primary": "postgresql://h"}, "primary"),
        ({"primary": PRIMARY, "replicas": REPLICA_1}, "replicas"),
        ({"primary": PRIMARY, "replicas": None}, "replicas"),
        ({"primary": PRIMARY, "replicas": [5]}, "replicas[0]"),
        ({"primary": PRIMARY, "replicas": [REPLICA_1, "postgresql://x:99999/shop"]}, "replicas[1]"),
        ({"primary": PRIMARY, "nodes": [REPLICA_1]}, "nodes"),
        ({"replicas": [REPLICA_1], "nodes": [PRIMARY]}, "nodes"),
        ({"nodes": "postgresql://h/db"}, "nodes"),
        ({"nodes": [PRIMARY, "postgresql://h:x/shop"]}, "nodes[1]"),
        # The same server twice, by address (host case does not matter) ...
        ({"primary": PRIMARY, "replicas": ["postgresql://DB-PRIMARY/shop"]}, "replicas[0]"),
        ({"primary": PRIMARY, "replicas": [REPLICA_1, REPLICA_1]}, "replicas[1]"),
        ({"nodes": [PRIMARY, PRIMARY]}, "nodes[1]"),
        # ... or by name.
        (
            {
                "primary": NodeConfig(dsn=PRIMARY, name="a"),
                "replicas": [NodeConfig(dsn=REPLICA_1, name="a")],
            },
            "replicas[0]",
        ),
        # Replicas serve the primary's databases.
        ({"primary": PRIMARY, "replicas": ["postgresql://db-replica-1/other"]}, "replicas[0]"),
    ],
)
def test_node_list_errors(kwargs: dict[str, Any], field: str) -> None:
    _raises(field, lambda: RouterConfig(**kwargs))


def test_node_errors_inside_a_list_name_the_inner_field() -> None:
    error = _raises("replicas[0]", lambda: config(replicas=["postgresql://h/"]))
    assert "database" in error.problem


def test_nodes_list_for_discovered_roles() -> None:
    c = RouterConfig(nodes=[PRIMARY, NodeConfig(dsn=REPLICA_1, weight=2)])
    assert c.discover_roles
    assert c.primary is None
    assert c.primary_node is None
    assert c.replicas == ()
    assert [n.weight for n in c.all_nodes] == [1.0, 2.0]


def test_primary_alone_is_enough() -> None:
    c = RouterConfig(primary=PRIMARY)
    assert c.all_nodes == (NodeConfig(dsn=PRIMARY),)


@pytest.mark.parametrize(
    ("make", "field", "words"),
    # Each call is deliberately wrong (mypy refuses them too): what does an untyped caller get?
    [
        (lambda: RouterConfig(primry=NodeConfig(dsn=DSN)), "primry", "did you mean 'primary'"),  # type: ignore[call-arg]
        (lambda: PoolConfig(max_sise=3), "max_sise", "did you mean 'max_size'"),  # type: ignore[call-arg]
        (lambda: RetryConfig(tries=3), "tries", "RetryConfig has no such field"),  # type: ignore[call-arg]
        (lambda: NodeConfig(DSN), "NodeConfig", "keyword arguments only"),  # type: ignore[call-arg]
    ],
)
def test_a_field_that_does_not_exist_is_named(make: Any, field: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make()
    assert caught.value.field == field
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("connect_timeout=abc", "connect_timeout='abc' is not a whole number"),
        ("sslmode=bogus", "sslmode='bogus' is not one of"),
        ("target_session_attrs=primray", "target_session_attrs='primray' is not one of"),
        ("keepalives=yes", "keepalives='yes' is not one of 0, 1"),
        ("keepalives_idle=1.5", "keepalives_idle='1.5' is not a whole number"),
    ],
)
def test_a_libpq_option_libpq_would_refuse_at_connect_time_is_refused_now(
    option: str, words: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        NodeConfig(dsn=f"{DSN}?{option}")
    assert caught.value.field == "dsn"
    assert words in str(caught.value)
    if not option.startswith("target_session_attrs"):  # from_url drops it: roles are found
        with pytest.raises(ConfigurationError, match="is not"):
            RouterConfig.from_url(f"postgresql://app@db1,db2/app?{option}")


def test_good_libpq_options_pass() -> None:
    node = NodeConfig(dsn=f"{DSN}?connect_timeout=5&sslmode=verify-full&keepalives=1")
    assert "connect_timeout" in node.dsn
