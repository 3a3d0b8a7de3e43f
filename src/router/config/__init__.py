"""The router's configuration: frozen, keyword-only, validated at construction.

Build it with :class:`RouterConfig` directly (``primary=`` and ``replicas=``), from a libpq
multi-host URL with :meth:`RouterConfig.from_url` (roles discovered at run time), or from the
environment with :meth:`RouterConfig.from_env` — the only code that reads ``os.environ``. Nothing
here does I/O. A bad value raises :class:`~router.errors.ConfigurationError` whose ``field``
names the setting (``pool.max_size``, ``replicas[1]``, ``url: router_policy``,
``ROUTER_POLICY``); no message, ``repr`` or ``str`` ever contains a password.

The modules, each imported only through this package:

- ``_router_config``: :class:`RouterConfig`, its defaults and the values the router's parts are
  built from (:meth:`RouterConfig.gate_params`, :meth:`RouterConfig.pool_settings`);
- ``_nodes``: :class:`NodeConfig` (one server), :class:`PoolConfig`, :class:`RetryConfig`;
- ``_values``: the option sets (:class:`PolicyName`, :class:`Fallback`, :class:`PoolerMode`)
  and the value checks every class shares;
- ``_sources``: ``from_url`` and ``from_env``, an option table derived from the dataclasses;
- ``_dsn``: connection strings parsed and checked, and :func:`redact`.
"""

from __future__ import annotations

from router.config._dsn import redact
from router.config._nodes import NodeConfig, PoolConfig, RetryConfig
from router.config._router_config import (
    DEFAULT_APPLICATION_NAME as DEFAULT_APPLICATION_NAME,
)
from router.config._router_config import (
    DEFAULT_CLASSIFIER_CACHE_SIZE as DEFAULT_CLASSIFIER_CACHE_SIZE,
)
from router.config._router_config import (
    DEFAULT_CONSISTENCY as DEFAULT_CONSISTENCY,
)
from router.config._router_config import (
    DEFAULT_FAILURES_TO_DOWN as DEFAULT_FAILURES_TO_DOWN,
)
from router.config._router_config import (
    DEFAULT_MAX_LAG_BYTES as DEFAULT_MAX_LAG_BYTES,
)
from router.config._router_config import (
    DEFAULT_MAX_LAG_SECONDS as DEFAULT_MAX_LAG_SECONDS,
)
from router.config._router_config import (
    DEFAULT_MONITOR_INTERVAL as DEFAULT_MONITOR_INTERVAL,
)
from router.config._router_config import (
    DEFAULT_MONITOR_TIMEOUT as DEFAULT_MONITOR_TIMEOUT,
)
from router.config._router_config import (
    DEFAULT_POLICY as DEFAULT_POLICY,
)
from router.config._router_config import (
    DEFAULT_POOLED_READ_TIMEOUT as DEFAULT_POOLED_READ_TIMEOUT,
)
from router.config._router_config import (
    DEFAULT_PREPARE_THRESHOLD as DEFAULT_PREPARE_THRESHOLD,
)
from router.config._router_config import (
    DEFAULT_PROBE_BACKOFF_INITIAL as DEFAULT_PROBE_BACKOFF_INITIAL,
)
from router.config._router_config import (
    DEFAULT_PROBE_BACKOFF_MAX as DEFAULT_PROBE_BACKOFF_MAX,
)
from router.config._router_config import (
    DEFAULT_READMIT_FRACTION as DEFAULT_READMIT_FRACTION,
)
from router.config._router_config import (
    DEFAULT_READMIT_HOLD as DEFAULT_READMIT_HOLD,
)
from router.config._router_config import (
    DEFAULT_STATEMENT_CACHE_SIZE as DEFAULT_STATEMENT_CACHE_SIZE,
)
from router.config._router_config import (
    ENV_PREFIX as ENV_PREFIX,
)
from router.config._router_config import (
    MAX_APPLICATION_NAME as MAX_APPLICATION_NAME,
)
from router.config._router_config import (
    MAX_MONITOR_SECONDS as MAX_MONITOR_SECONDS,
)
from router.config._router_config import (
    PolicyOption as PolicyOption,
)
from router.config._router_config import (
    RouterConfig,
)
from router.config._router_config import (
    SupportsChoose as SupportsChoose,
)
from router.config._values import (
    Consistency,
    Fallback,
    PolicyName,
    PoolerMode,
)
from router.config._values import (
    ConsistencyLiteral as ConsistencyLiteral,
)
from router.config._values import (
    FallbackLiteral as FallbackLiteral,
)
from router.config._values import (
    PolicyLiteral as PolicyLiteral,
)
from router.config._values import (
    PoolerModeLiteral as PoolerModeLiteral,
)

# The public names, as before the modules became a package. The defaults, the protocol and the
# Literal aliases (imported `as` themselves above) stay importable from here as they were.
__all__ = [
    "Consistency",
    "Fallback",
    "NodeConfig",
    "PolicyName",
    "PoolConfig",
    "PoolerMode",
    "RetryConfig",
    "RouterConfig",
    "redact",
]
