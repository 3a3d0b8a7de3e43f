"""The drivers' reconnect records of the router's pools go to DEBUG (``router._pool_logs``)."""

from __future__ import annotations

import logging

import pytest

from router._pool_logs import quiet_reconnects


def test_psycopg_pool_reconnect_records_of_router_pools_move_to_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_reconnects("psycopg.pool", "router-unit-node")
    pool_logger = logging.getLogger("psycopg.pool")
    pool_logger.warning("error connecting in %r: %s", "router-unit-node", "connection refused")
    pool_logger.warning("error connecting in %r: %s", "someone-elses-pool", "connection refused")
    seen = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert seen == [
        (
            "router.pool",
            logging.DEBUG,
            "psycopg.pool: error connecting in 'router-unit-node': connection refused",
        ),
        (
            "psycopg.pool",
            logging.WARNING,
            "error connecting in 'someone-elses-pool': connection refused",
        ),
    ]


def test_asyncpg_floor_records_move_to_debug_with_their_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_reconnects("asyncpg.pool")
    logging.getLogger("asyncpg.pool").warning(
        "Failed to restore the pool connection floor; retrying",
        exc_info=ConnectionRefusedError("refused"),
    )
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("router.pool", logging.DEBUG)
    assert record.exc_info is not None


def test_a_broken_connection_the_router_gives_back_is_not_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The router found it broken and said so (or retried): psycopg_pool's WARNING on its
    # return was printed to stderr even with logging not configured.
    class Ours:
        router_pool_connection = True

    class Theirs:
        pass

    caplog.set_level(logging.DEBUG)
    quiet_reconnects("psycopg.pool", "router-unit-node")
    pool_logger = logging.getLogger("psycopg.pool")
    pool_logger.warning("discarding closed connection: %s", Ours())
    pool_logger.warning("discarding closed connection: %s", Theirs())
    levels = [(r.name, r.levelno) for r in caplog.records]
    assert levels == [("router.pool", logging.DEBUG), ("psycopg.pool", logging.WARNING)]
