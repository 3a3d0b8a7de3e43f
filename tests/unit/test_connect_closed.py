"""A server that closes a new connection before answering it: what a PostgreSQL 18 postmaster
does at the end of a fast shutdown (a Patroni switchover's demotion), when it terminates the
"dead-end" children still reading a startup packet (15 let them answer 57P03). The router's
pool must raise the driver's documented connection error, never asyncpg's bare
``ConnectionError("unexpected connection_lost() call")``.

The "server" is a loopback listener that reads the client's first message and closes: the
bytes on the wire are those of the killed child; no database is involved.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from router._async import _driver as driver
from router._async._pool import NodePool
from router._stats import PoolSettings

SETTINGS = PoolSettings(
    min_size=0,
    max_size=2,
    acquire_timeout=2.0,
    connect_timeout=2.0,
    max_lifetime=None,
    max_idle=None,
    max_queries=None,
    statement_cache_size=0,
    prepare_threshold=None,
    application_name="connect-closed",
    replica_read_only=False,
)


async def _read_first_message_and_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    # The SSLRequest or the startup packet: a length, then the rest. Read whole, then close
    # without a byte in answer (an EOF, not a reset, reaches the client).
    (length,) = struct.unpack("!i", await reader.readexactly(4))
    await reader.readexactly(length - 4)
    writer.close()
    await writer.wait_closed()


@pytest_asyncio.fixture
async def closing_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_read_first_message_and_close, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _acquire(dsn: str) -> Exception:
    pool = NodePool("node", dsn, SETTINGS)
    await pool.open(fill=False)
    try:
        try:
            await pool.acquire()
        except Exception as exc:  # what the caller gets is what is tested
            assert pool.usage()["in_use"] == 0
            return exc
        raise AssertionError("a connection was opened")
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_a_close_before_the_ssl_answer_is_a_closed_connection(closing_port: int) -> None:
    error = await _acquire(f"postgresql://app@127.0.0.1:{closing_port}/db?sslmode=prefer")
    assert type(error) is asyncpg.ConnectionDoesNotExistError, repr(error)
    assert "while it was being opened" in str(error)
    # asyncpg's own error is kept as the cause, its message in the text.
    assert type(error.__cause__) is ConnectionError
    assert "connection_lost" in str(error)
    # The router treats it as the failure to connect it is (a read may go elsewhere; a
    # write is not retried, as for any connect failure).
    assert isinstance(error, driver.CONNECT_ERRORS)
    assert driver.lost(error, None)


@pytest.mark.asyncio
async def test_a_close_after_the_startup_packet_is_asyncpgs_own_closed_connection(
    closing_port: int,
) -> None:
    """Without SSL the same event reaches asyncpg a message later, as its documented
    ``ConnectionDoesNotExistError``: the class the SSL case is given, unchanged here."""
    error = await _acquire(f"postgresql://app@127.0.0.1:{closing_port}/db?sslmode=disable")
    assert type(error) is asyncpg.ConnectionDoesNotExistError, repr(error)
    assert "while it was being opened" not in str(error)


@pytest.mark.asyncio
async def test_a_refused_connection_stays_what_it_is() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    error = await _acquire(f"postgresql://app@127.0.0.1:{port}/db?sslmode=prefer")
    assert type(error) is ConnectionRefusedError, repr(error)


def test_only_the_bare_connection_error_is_mapped() -> None:
    for unchanged in (
        ConnectionResetError(104, "reset"),
        ConnectionRefusedError(111, "refused"),
        TimeoutError("given words by someone"),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
    ):
        assert driver.connect_failed(unchanged) is unchanged
    mapped = driver.connect_failed(ConnectionError("unexpected connection_lost() call"))
    assert type(mapped) is asyncpg.ConnectionDoesNotExistError
    # asyncpg's connect timeout says nothing ("TimeoutError: "): it gets words, same type.
    silent = driver.connect_failed(TimeoutError())
    assert type(silent) is TimeoutError
    assert "connect_timeout" in str(silent)


@pytest.mark.asyncio
@pytest.mark.parametrize("sslmode", ["prefer", "disable"])
async def test_the_sqlalchemy_async_engines_raise_the_same_error(
    closing_port: int, sslmode: str
) -> None:
    """The SQLAlchemy async engines open their connections themselves (not through NodePool):
    the same event reaches the application as SQLAlchemy's DBAPIError for asyncpg's
    ConnectionDoesNotExistError, with or without SSL; never a bare ConnectionError (which
    SQLAlchemy does not wrap)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from router.config import NodeConfig, RouterConfig
    from router.core import Role
    from router.sqlalchemy._engines import async_node_engine

    node = NodeConfig(
        dsn=f"postgresql://app@127.0.0.1:{closing_port}/db?sslmode={sslmode}", name="primary"
    )
    engine = async_node_engine(node, RouterConfig(primary=node), lambda _: Role.PRIMARY)
    try:
        with pytest.raises(DBAPIError) as raised:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    orig = raised.value.orig
    assert orig is not None, repr(raised.value)
    assert type(orig.__cause__) is asyncpg.ConnectionDoesNotExistError, repr(raised.value)
