"""``router.config`` as a package: the names it always exported, and the values the router's
parts are built from (health gate parameters, pool settings), derived by the config itself."""

from __future__ import annotations

import dataclasses

import pytest

import router.config
from router._stats import PoolSettings
from router.config import PoolConfig, PoolerMode, RouterConfig
from router.core import GateParams

PRIMARY = "postgresql://app:secret@db0:5432/app"

#: What ``router.config`` exported before it became a package (its ``__all__``, its defaults,
#: the policy protocol and the ``Literal`` aliases of the option sets).
NAMES = [
    "Consistency",
    "Fallback",
    "NodeConfig",
    "PolicyName",
    "PoolConfig",
    "PoolerMode",
    "RetryConfig",
    "RouterConfig",
    "redact",
    "DEFAULT_APPLICATION_NAME",
    "DEFAULT_CLASSIFIER_CACHE_SIZE",
    "DEFAULT_CONSISTENCY",
    "DEFAULT_FAILURES_TO_DOWN",
    "DEFAULT_MAX_LAG_BYTES",
    "DEFAULT_MAX_LAG_SECONDS",
    "DEFAULT_MONITOR_INTERVAL",
    "DEFAULT_MONITOR_TIMEOUT",
    "DEFAULT_POLICY",
    "DEFAULT_PREPARE_THRESHOLD",
    "DEFAULT_PROBE_BACKOFF_INITIAL",
    "DEFAULT_PROBE_BACKOFF_MAX",
    "DEFAULT_READMIT_FRACTION",
    "DEFAULT_READMIT_HOLD",
    "DEFAULT_STATEMENT_CACHE_SIZE",
    "ENV_PREFIX",
    "MAX_APPLICATION_NAME",
    "MAX_MONITOR_SECONDS",
    "PolicyOption",
    "SupportsChoose",
    "ConsistencyLiteral",
    "FallbackLiteral",
    "PolicyLiteral",
    "PoolerModeLiteral",
]


@pytest.mark.parametrize("name", NAMES)
def test_the_package_keeps_every_name(name: str) -> None:
    assert hasattr(router.config, name)


def test_all_is_unchanged() -> None:
    assert sorted(router.config.__all__) == sorted(NAMES[:9])


def test_gate_params_carry_every_gate_setting() -> None:
    config = RouterConfig(
        primary=PRIMARY,
        max_lag_bytes=1234,
        max_lag_seconds=None,
        readmit_fraction=0.25,
        readmit_hold=7.0,
        failures_to_down=4,
        probe_backoff_initial=0.3,
        probe_backoff_max=9.0,
    )
    assert config.gate_params() == GateParams(
        max_lag_bytes=1234,
        max_lag_seconds=None,
        readmit_fraction=0.25,
        readmit_hold=7.0,
        failures_to_down=4,
        probe_backoff_initial=0.3,
        probe_backoff_max=9.0,
    )
    # Every parameter of the gate comes from the config: none is left at its own default.
    assert {f.name for f in dataclasses.fields(GateParams)} <= {
        f.name for f in dataclasses.fields(RouterConfig)
    }


def test_pool_settings_carry_the_pool_and_connection_settings() -> None:
    pool = PoolConfig(
        min_size=2,
        max_size=7,
        acquire_timeout=1.5,
        connect_timeout=2.5,
        max_lifetime=100.0,
        max_idle=50.0,
        max_queries=1000,
        command_timeout=4.0,
    )
    config = RouterConfig(
        primary=PRIMARY,
        pool=pool,
        statement_cache_size=33,
        prepare_threshold=3,
        application_name="shop",
        replica_read_only=False,
    )
    assert config.pool_settings() == PoolSettings(
        min_size=2,
        max_size=7,
        acquire_timeout=1.5,
        connect_timeout=2.5,
        max_lifetime=100.0,
        max_idle=50.0,
        max_queries=1000,
        statement_cache_size=33,
        prepare_threshold=3,
        application_name="shop",
        replica_read_only=False,
        command_timeout=4.0,
    )


def test_pool_settings_behind_a_transaction_pooler_prepare_nothing() -> None:
    config = RouterConfig(
        primary=PRIMARY,
        pooler_mode=PoolerMode.TRANSACTION,
        statement_cache_size=33,
        prepare_threshold=3,
    )
    settings = config.pool_settings()
    assert settings.statement_cache_size == 0
    assert settings.prepare_threshold is None
