"""What the drivers' pools log about reconnecting, moved to DEBUG.

While a node is down, asyncpg's pool logs a WARNING with a full traceback at every attempt to
restore its connection floor ("Failed to restore the pool connection floor"), and psycopg_pool
one per failed connection attempt ("error connecting in ..."), and one for every broken
connection the router gives back ("discarding closed connection"). The router says what matters
once, when it happens: the monitor logs a node going down and coming back ("topology changed").
So those records of the router's own pools are logged again at DEBUG on ``router.pool`` (the
message and the traceback, for whoever looks), and not at their first level.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

__all__ = ["quiet_reconnects"]

_DETAIL = logging.getLogger("router.pool")
_ASYNCPG: Final = "Failed to restore the pool connection floor"
_PSYCOPG: Final = ("error connecting in %r", "reconnection attempt in pool %r failed")
#: psycopg_pool, for a connection given back broken: the router gives back the connections
#: it found broken itself (and has said so, or retried), marked with this class attribute.
_PSYCOPG_CLOSED: Final = "discarding closed connection: %s"
_MARK: Final = "router_pool_connection"

_lock = threading.Lock()
#: Names of the psycopg_pool pools the router owns (its node names).
_psycopg_pools: set[str] = set()


class _ToDebug(logging.Filter):
    """Drops the driver's reconnect records of the router's pools, logging each at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _ours(record):
            return True
        if _DETAIL.isEnabledFor(logging.DEBUG):
            _DETAIL.debug(
                "%s: %s", record.name, record.getMessage(), exc_info=record.exc_info or None
            )
        return False


def _ours(record: logging.LogRecord) -> bool:
    message = record.msg
    if not isinstance(message, str):
        return False
    if record.name == "asyncpg.pool":
        # The record names no pool: asyncpg's pools are all treated alike.
        return message.startswith(_ASYNCPG)
    if not (isinstance(record.args, tuple) and record.args):
        return False
    if message == _PSYCOPG_CLOSED:
        return bool(getattr(type(record.args[0]), _MARK, False))
    return message.startswith(_PSYCOPG) and record.args[0] in _psycopg_pools


_FILTER: Final = _ToDebug()


def quiet_reconnects(logger_name: str, pool_name: str | None = None) -> None:
    """Move the reconnect records of *logger_name* (``asyncpg.pool``, ``psycopg.pool``) to
    DEBUG; *pool_name*: a psycopg_pool pool of the router's. Idempotent."""
    logger = logging.getLogger(logger_name)
    with _lock:
        if pool_name is not None:
            _psycopg_pools.add(pool_name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
