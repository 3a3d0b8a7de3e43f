"""RouterConfig.from_url() and .from_env(): parsing, options, errors naming the source."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from router.config import (
    Consistency,
    NodeConfig,
    PolicyName,
    PoolConfig,
    RouterConfig,
)
from router.errors import ConfigurationError

# --- from_url ------------------------------------------------------------------------------------


def test_single_host_url() -> None:
    c = RouterConfig.from_url("postgresql://app:pw@db:5432/shop?sslmode=require")
    assert c.discover_roles
    (node,) = c.nodes
    assert isinstance(node, NodeConfig)
    assert (node.name, node.host, node.port, node.dbname, node.user) == (
        "db:5432",
        "db",
        5432,
        "shop",
        "app",
    )
    params = conninfo_to_dict(node.connect_dsn)
    assert params == {
        "host": "db",
        "port": "5432",
        "user": "app",
        "password": "pw",
        "dbname": "shop",
        "sslmode": "require",
    }


def test_multi_host_url_gives_one_node_per_host() -> None:
    url = (
        "postgresql://app:s%40cret@h1:5432,h2:5433,h3/shop"
        "?target_session_attrs=any&sslmode=verify-full&connect_timeout=3"
    )
    c = RouterConfig.from_url(url)
    assert [(n.host, n.port) for n in c.all_nodes] == [("h1", 5432), ("h2", 5433), ("h3", 5432)]
    assert [n.name for n in c.all_nodes] == ["h1:5432", "h2:5433", "h3:5432"]
    for node in c.all_nodes:
        params = conninfo_to_dict(node.connect_dsn)
        # Same credentials and parameters, one host each; roles are discovered, so the
        # multi-host-only target_session_attrs is gone.
        assert params["password"] == "s@cret"
        assert params["user"] == "app"
        assert params["dbname"] == "shop"
        assert params["sslmode"] == "verify-full"
        assert params["connect_timeout"] == "3"
        assert "target_session_attrs" not in params
        assert "," not in str(params["host"])


@pytest.mark.parametrize(
    ("url", "addresses"),
    [
        ("postgresql://h1,h2/db", [("h1", 5432), ("h2", 5432)]),
        ("postgresql://h1,h2/db?port=6432", [("h1", 6432), ("h2", 6432)]),
        ("postgresql://h1,h2:7/db", [("h1", 5432), ("h2", 7)]),
        ("postgresql:///db?host=h1,h2&port=1,2", [("h1", 1), ("h2", 2)]),
        ("postgres://[::1]:5433,[fe80::2]/db", [("::1", 5433), ("fe80::2", 5432)]),
        ("postgresql:///db?host=/tmp/a,/tmp/b", [("/tmp/a", 5432), ("/tmp/b", 5432)]),
        ("postgresql:///db?hostaddr=10.0.0.1,10.0.0.2", [("10.0.0.1", 5432), ("10.0.0.2", 5432)]),
        ("  postgresql://h1/db  \n", [("h1", 5432)]),
    ],
)
def test_url_host_and_port_pairing(url: str, addresses: list[tuple[str, int]]) -> None:
    assert [(n.host, n.port) for n in RouterConfig.from_url(url).all_nodes] == addresses


def test_ipv6_names_are_bracketed() -> None:
    c = RouterConfig.from_url("postgresql://[::1]:5433,[::2]/db")
    assert [n.name for n in c.all_nodes] == ["[::1]:5433", "[::2]:5432"]


def test_router_options_in_the_url() -> None:
    c = RouterConfig.from_url(
        "postgresql://u@h1,h2/db?router_policy=least-outstanding&sslmode=require"
        "&router_max_lag_seconds=2&router_max_lag_bytes=none&router_pool_max_size=20"
        "&router_retry_attempts=1&router_shadow=yes&router_read_functions=a.f,%20g"
        "&router_application_name=shop%20api&router_consistency=bounded"
    )
    assert c.policy is PolicyName.LEAST_OUTSTANDING
    assert c.max_lag_seconds == 2.0
    assert c.max_lag_bytes is None
    assert c.pool == PoolConfig(max_size=20)
    assert c.retry.attempts == 1
    assert c.shadow is True
    assert c.read_functions == ("a.f", "g")
    assert c.application_name == "shop api"
    assert c.consistency is Consistency.BOUNDED
    for node in c.all_nodes:
        assert "router" not in node.dsn
        assert conninfo_to_dict(node.dsn)["sslmode"] == "require"


def test_keyword_overrides_win_over_url_options() -> None:
    c = RouterConfig.from_url(
        "postgresql://h/db?router_policy=random&router_pool_max_size=3",
        policy="latency",
        pool=PoolConfig(max_size=7),
        ryw_wait=0.2,
    )
    assert c.policy is PolicyName.LATENCY
    assert c.pool.max_size == 7
    assert c.ryw_wait == 0.2


@pytest.mark.parametrize(
    ("url", "field", "words"),
    [
        ("postgresql://u:pw@h/", "url", "database"),
        ("postgresql://u:pw@h1,h2", "url", "database"),
        ("postgresql://u:pw@h:http/db", "url", "port"),
        ("postgresql://u:pw@h:70000/db", "url", "port"),
        ("postgresql://u:pw@h1:1,h2:-2/db", "url", "port"),
        ("postgresql://u:pw@h1,h2/db?port=1,2,3", "url", "ports"),
        ("postgresql:///db", "url", "no host"),
        ("postgresql://u:pw@/db", "url", "no host"),
        ("postgresql://h1,,h3/db", "url", "host #2"),
        ("postgresql://h1,/db", "url", "host #2"),
        ("postgresql://h1,h2/db?hostaddr=1.1.1.1,2.2.2.2,3.3.3.3", "url", "hostaddr"),
        ("postgresql://h1,H1/db", "url", "same server"),
        ("postgresql://h/db?sslmode=require&frobnicate=1", "url", "frobnicate"),
        ("postgresql://h/db?sslmode", "url", "sslmode"),
        ("postgresql://[::1/db", "url", "IPv6"),
        ("postgresql://h/d\0b", "url", "NUL"),
        ("postgresql://h/db%00", "url", "%00"),
        ("postgresql://u:p@h:5432/db?application_name=a@b", "url", "%40"),
        ("http://h/db", "url", "postgresql://"),
        ("host=h dbname=db", "url", "postgresql://"),
        ("", "url", "postgresql://"),
        ("postgresql://h/db?router_polcy=random", "url: router_polcy", "did you mean policy"),
        ("postgresql://h/db?router_=1", "url: router_", "not a router option"),
        ("postgresql://h/db?router_nodes=x", "url: router_nodes", "not a router option"),
        ("postgresql://h/db?router_pool=x", "url: router_pool", "not a router option"),
        ("postgresql://h/db?router_policy=fastest", "url: router_policy", "'fastest'"),
        ("postgresql://h/db?router_policy", "url: router_policy", "value"),
        (
            "postgresql://h/db?router_policy=random&router_policy=latency",
            "url: router_policy",
            "more than once",
        ),
        ("postgresql://h/db?router_max_lag_seconds=soon", "url: router_max_lag_seconds", "number"),
        ("postgresql://h/db?router_max_lag_seconds=-1", "url: router_max_lag_seconds", ">"),
        ("postgresql://h/db?router_max_lag_bytes=1.5", "url: router_max_lag_bytes", "integer"),
        ("postgresql://h/db?router_shadow=maybe", "url: router_shadow", "true/false"),
        ("postgresql://h/db?router_ryw_wait=", "url: router_ryw_wait", "empty"),
        ("postgresql://h/db?router_policy=%FF", "url: router_policy", "UTF-8"),
        ("postgresql://h/db?router_pool_min_size=50", "url: router_pool_min_size", "max_size"),
        ("postgresql://h/db?router_retry_attempts=0", "url: router_retry_attempts", ">= 1"),
        (
            "postgresql://h/db?router_write_functions=now&router_read_functions=now",
            "url: router_write_functions",
            "now",
        ),
        (
            "postgresql://h/db?router_consistency=bounded&router_max_lag_bytes=none"
            "&router_max_lag_seconds=none",
            "url: router_consistency",
            "bounded",
        ),
    ],
)
def test_bad_urls(url: str, field: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RouterConfig.from_url(url)
    assert info.value.field == field, str(info.value)
    assert words in info.value.problem


@pytest.mark.parametrize("url", [None, 5, b"postgresql://h/db", ["postgresql://h/db"]])
def test_url_of_the_wrong_type(url: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        RouterConfig.from_url(url)
    assert info.value.field == "url"


@pytest.mark.parametrize("name", ["nodes", "primary", "replicas"])
def test_url_nodes_cannot_be_overridden(name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RouterConfig.from_url("postgresql://h/db", **{name: ["postgresql://x/db"]})
    assert info.value.field == name


def test_errors_of_overrides_keep_their_field_name() -> None:
    with pytest.raises(ConfigurationError) as info:
        RouterConfig.from_url("postgresql://h/db?router_policy=random", policy="nope")
    assert info.value.field == "policy"
    with pytest.raises(ConfigurationError) as info:
        RouterConfig.from_url("postgresql://h/db", no_such_field=1)
    assert info.value.field == "no_such_field"


def test_unknown_query_parameters_that_are_not_router_options_go_to_libpq() -> None:
    # ROUTER_ (upper case) is not our prefix: libpq refuses it, naming it.
    with pytest.raises(ConfigurationError) as info:
        RouterConfig.from_url("postgresql://h/db?ROUTER_policy=random")
    assert info.value.field == "url"
    assert "ROUTER_policy" in info.value.problem


# --- from_env ------------------------------------------------------------------------------------


def test_env_multi_host_url_and_options() -> None:
    c = RouterConfig.from_env(
        {
            "ROUTER_URL": "postgresql://app@h1,h2:5433/shop?router_policy=random",
            "ROUTER_PASSWORD": "pw",
            "ROUTER_CONSISTENCY": "eventual",
            "ROUTER_MAX_LAG_BYTES": "1048576",
            "ROUTER_MAX_LAG_SECONDS": "None",
            "ROUTER_RYW_WAIT": "0.25",
            "ROUTER_SHADOW": "On",
            "ROUTER_REPLICA_READ_ONLY": "0",
            "ROUTER_RECORD_SQL": " yes ",
            "ROUTER_EMULATE_REPLICAS": "FALSE",
            "ROUTER_POOL_MIN_SIZE": "2",
            "ROUTER_POOL_MAX_SIZE": "4",
            "ROUTER_POOL_MAX_LIFETIME": "none",
            "ROUTER_RETRY_ATTEMPTS": "5",
            "ROUTER_WRITE_FUNCTIONS": "bump, audit.touch,",
            "ROUTER_PREPARE_THRESHOLD": "null",
            "PATH": "/usr/bin",
            "PGHOST": "ignored",
        }
    )
    assert [n.name for n in c.all_nodes] == ["h1:5432", "h2:5433"]
    assert all(n.password == "pw" for n in c.all_nodes)
    assert c.policy is PolicyName.RANDOM
    assert c.consistency is Consistency.EVENTUAL
    assert c.max_lag_bytes == 1048576
    assert c.max_lag_seconds is None
    assert c.ryw_wait == 0.25
    assert (c.shadow, c.replica_read_only, c.record_sql, c.emulate_replicas) == (
        True,
        False,
        True,
        False,
    )
    assert c.pool == PoolConfig(min_size=2, max_size=4, max_lifetime=None)
    assert c.retry.attempts == 5
    assert c.write_functions == ("bump", "audit.touch")
    assert c.prepare_threshold is None


def test_env_variables_win_over_url_options() -> None:
    c = RouterConfig.from_env(
        {"ROUTER_URL": "postgresql://h/db?router_policy=random", "ROUTER_POLICY": "latency"}
    )
    assert c.policy is PolicyName.LATENCY


def test_env_primary_and_replicas() -> None:
    c = RouterConfig.from_env(
        {
            "ROUTER_PRIMARY_URL": "postgresql://app@p/shop",
            "ROUTER_REPLICA_URLS": (
                " postgresql://app@r1/shop,postgresql://app@r2:5433/shop?sslmode=require ,"
                " host=r3 dbname=shop application_name=a,b"
            ),
        }
    )
    assert not c.discover_roles
    assert c.primary_node is not None
    assert c.primary_node.name == "p:5432"
    assert [n.name for n in c.replica_nodes] == ["r1:5432", "r2:5433", "r3:5432"]
    assert conninfo_to_dict(c.replica_nodes[2].dsn)["application_name"] == "a,b"


def test_env_primary_without_replicas() -> None:
    for env in (
        {"ROUTER_PRIMARY_URL": "postgresql://p/db"},
        {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_REPLICA_URLS": " "},
    ):
        c = RouterConfig.from_env(env)
        assert c.replicas == ()


def test_env_custom_prefix() -> None:
    c = RouterConfig.from_env(
        {"APP_DB_URL": "postgresql://h/db", "APP_DB_POLICY": "primary-only", "ROUTER_X": "1"},
        prefix="APP_DB_",
    )
    assert c.policy is PolicyName.PRIMARY_ONLY


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("ROUTER_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ROUTER_URL", "postgresql://envhost/db")
    monkeypatch.setenv("ROUTER_FALLBACK", "error")
    c = RouterConfig.from_env()
    assert c.all_nodes[0].host == "envhost"
    assert c.fallback == "error"


@pytest.mark.parametrize(
    ("env", "field", "words"),
    [
        ({}, "ROUTER_URL", "not set"),
        ({"ROUTER_REPLICA_URLS": "postgresql://r/db"}, "ROUTER_PRIMARY_URL", "not set"),
        (
            {"ROUTER_URL": "postgresql://h/db", "ROUTER_PRIMARY_URL": "postgresql://p/db"},
            "ROUTER_URL",
            "not both",
        ),
        (
            {"ROUTER_URL": "postgresql://h/db", "ROUTER_POLCY": "random"},
            "ROUTER_POLCY",
            "ROUTER_POLICY",
        ),
        (
            {"ROUTER_URL": "postgresql://h/db", "ROUTER_ZZZ": "1", "ROUTER_POOL_MAXSIZE": "1"},
            "ROUTER_POOL_MAXSIZE",
            "ROUTER_ZZZ",
        ),
        ({"ROUTER_URL": "postgresql://h/db", "ROUTER_NODES": "x"}, "ROUTER_NODES", "unknown"),
        ({"ROUTER_URL": "postgresql://h/"}, "ROUTER_URL", "database"),
        ({"ROUTER_URL": "host=h dbname=db"}, "ROUTER_URL", "postgresql://"),
        ({"ROUTER_URL": "postgresql://h/db?router_policy=x"}, "ROUTER_URL: router_policy", "'x'"),
        ({"ROUTER_URL": "postgresql://h1,h1/db"}, "ROUTER_URL", "same server"),
        ({"ROUTER_PRIMARY_URL": "postgresql://p/"}, "ROUTER_PRIMARY_URL", "database"),
        (
            {
                "ROUTER_PRIMARY_URL": "postgresql://p/db",
                "ROUTER_REPLICA_URLS": "postgresql://r1/db,postgresql://r2:x/db",
            },
            "ROUTER_REPLICA_URLS",
            "entry #2",
        ),
        (
            {
                "ROUTER_PRIMARY_URL": "postgresql://p/db",
                "ROUTER_REPLICA_URLS": "postgresql://r1/other",
            },
            "ROUTER_REPLICA_URLS",
            "database",
        ),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_REPLICA_URLS": "postgresql://p/db"},
            "ROUTER_REPLICA_URLS",
            "same server",
        ),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://u:x@p/db", "ROUTER_PASSWORD": "y"},
            "ROUTER_PRIMARY_URL",
            "password",
        ),
        ({"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_SHADOW": "2"}, "ROUTER_SHADOW", "'2'"),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_SHADOW": ""},
            "ROUTER_SHADOW",
            "empty",
        ),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_SHADOW": "none"},
            "ROUTER_SHADOW",
            "'none'",
        ),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_FAILURES_TO_DOWN": "2.5"},
            "ROUTER_FAILURES_TO_DOWN",
            "integer",
        ),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_FAILURES_TO_DOWN": "0"},
            "ROUTER_FAILURES_TO_DOWN",
            ">= 1",
        ),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_RYW_WAIT": "nan"},
            "ROUTER_RYW_WAIT",
            "finite",
        ),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_RYW_WAIT": "1s"},
            "ROUTER_RYW_WAIT",
            "number",
        ),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_MONITOR_TIMEOUT": "none"},
            "ROUTER_MONITOR_TIMEOUT",
            "number",
        ),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_POOL_MIN_SIZE": "30"},
            "ROUTER_POOL_MIN_SIZE",
            "max_size",
        ),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_RETRY_BACKOFF_MAX": "0"},
            "ROUTER_RETRY_BACKOFF_MAX",
            "backoff_initial",
        ),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_POOLER_MODE": "statement"},
            "ROUTER_POOLER_MODE",
            "'statement'",
        ),
        (
            {"ROUTER_PRIMARY_URL": "postgresql://p/db", "ROUTER_READ_FUNCTIONS": "a.b.c"},
            "ROUTER_READ_FUNCTIONS",
            "a.b.c",
        ),
        (
            {
                "ROUTER_PRIMARY_URL": "postgresql://p/db",
                "ROUTER_CONSISTENCY": "bounded",
                "ROUTER_MAX_LAG_BYTES": "none",
                "ROUTER_MAX_LAG_SECONDS": "none",
            },
            "ROUTER_CONSISTENCY",
            "bounded",
        ),
    ],
)
def test_env_errors_name_the_variable(env: dict[str, str], field: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RouterConfig.from_env(env)
    assert info.value.field == field, str(info.value)
    assert words in info.value.problem


def test_from_env_leaves_the_librarys_other_variables_alone() -> None:
    """``ROUTER_PATRONI`` (router.testing) and ``ROUTER_RELIABILITY_REPORT`` (the fault
    suites) share the prefix but configure no router: set beside ``ROUTER_URL`` they are not
    refused as typos (a typo still is)."""
    env = {
        "ROUTER_URL": "postgresql://h/db",
        "ROUTER_PATRONI": "/opt/patroni/bin/patroni",
        "ROUTER_RELIABILITY_REPORT": "/tmp/report.json",
    }
    config = RouterConfig.from_env(env)
    assert [n.host for n in config.all_nodes] == ["h"]
    with pytest.raises(ConfigurationError) as caught:
        RouterConfig.from_env({**env, "ROUTER_PATRONY": "x"})
    assert caught.value.field == "ROUTER_PATRONY"


def test_an_empty_url_says_it_is_empty() -> None:
    """``export ROUTER_URL=$(router cluster url)`` with no cluster up exports ``""``."""
    with pytest.raises(ConfigurationError) as caught:
        RouterConfig.from_env({"ROUTER_URL": "  "})
    assert caught.value.field == "ROUTER_URL"
    assert "is empty" in caught.value.problem


def test_the_drivers_statement_caches_by_url_and_environment() -> None:
    """What ``router bench --plan prepared`` compares is a user's to set without code."""
    url = "postgresql://h/db?router_statement_cache_size=0&router_prepare_threshold=none"
    c = RouterConfig.from_url(url)
    assert (c.statement_cache_size, c.prepare_threshold) == (0, None)
    assert (c.pool_settings().statement_cache_size, c.pool_settings().prepare_threshold) == (
        0,
        None,
    )
    env = {
        "ROUTER_URL": "postgresql://h/db",
        "ROUTER_STATEMENT_CACHE_SIZE": "250",
        "ROUTER_PREPARE_THRESHOLD": "0",
    }
    c = RouterConfig.from_env(env)
    assert (c.statement_cache_size, c.prepare_threshold) == (250, 0)
    for option, value in (("statement_cache_size", "-1"), ("prepare_threshold", "often")):
        with pytest.raises(ConfigurationError) as info:
            RouterConfig.from_url(f"postgresql://h/db?router_{option}={value}")
        assert info.value.field == f"url: router_{option}"


def test_kubernetes_service_links_of_a_service_named_router_are_not_configuration() -> None:
    # Kubernetes gives every pod these for a Service called "router": from_env() refused
    # them as unknown variables, so an app in that namespace could not start.
    env = {
        "ROUTER_URL": "postgresql://h1,h2/db",
        "ROUTER_SERVICE_HOST": "10.0.0.7",
        "ROUTER_SERVICE_PORT": "5432",
        "ROUTER_SERVICE_PORT_POSTGRES": "5432",
        "ROUTER_PORT": "tcp://10.0.0.7:5432",
        "ROUTER_PORT_5432_TCP": "tcp://10.0.0.7:5432",
        "ROUTER_PORT_5432_TCP_ADDR": "10.0.0.7",
        "ROUTER_PORT_5432_TCP_PORT": "5432",
        "ROUTER_PORT_5432_TCP_PROTO": "tcp",
    }
    config = RouterConfig.from_env(env)
    assert [n.host for n in config.all_nodes] == ["h1", "h2"]
    # A typo that merely looks alike is still one.
    with pytest.raises(ConfigurationError, match="ROUTER_PORTS"):
        RouterConfig.from_env({**env, "ROUTER_PORTS": "1"})
