"""The fault suite's TCP proxy (``_proxy.py``): each switch does to a link what it says.

Most tests run against a tiny echo server (no database); the last one drives asyncpg to a node
of the fault cluster through the proxy. Where a test asserts that nothing arrives, it waits a
bounded time for it (a short window is the only way to observe an absence).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from router.testing import LocalCluster
from tests.faults._proxy import Mode, Proxy

pytestmark = [pytest.mark.faults, pytest.mark.asyncio]

#: How long a test waits to see that nothing arrives.
QUIET = 0.3


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest_asyncio.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest_asyncio.fixture
async def proxy(echo_port: int) -> AsyncIterator[Proxy]:
    async with Proxy("127.0.0.1", echo_port, name="echo") as p:
        yield p


async def _connect(proxy: Proxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", proxy.port), 2)


async def _roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, timeout: float = 2
) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), timeout)


async def test_pass_through_forwards_both_ways(proxy: Proxy) -> None:
    reader, writer = await _connect(proxy)
    try:
        assert await _roundtrip(reader, writer, b"hello") == b"hello"
        big = bytes(range(256)) * 1024  # more than one chunk
        assert await _roundtrip(reader, writer, big) == big
    finally:
        writer.close()
    assert proxy.mode is Mode.PASS
    assert proxy.counters.accepted == proxy.counters.forwarded == 1
    assert proxy.counters.bytes_up == proxy.counters.bytes_down == 5 + len(big)


async def test_cut_resets_open_links_and_new_ones_until_healed(proxy: Proxy) -> None:
    reader, writer = await _connect(proxy)
    assert await _roundtrip(reader, writer, b"before") == b"before"
    proxy.cut()
    with pytest.raises(ConnectionResetError):
        await _roundtrip(reader, writer, b"after the cut")
    writer.close()
    # A new connection is accepted by the kernel, then reset before a byte comes back.
    reader, writer = await _connect(proxy)
    with pytest.raises((ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError)):
        await _roundtrip(reader, writer, b"refused")
    writer.close()
    assert proxy.counters.reset == 2
    assert proxy.counters.forwarded == 1
    proxy.heal()
    reader, writer = await _connect(proxy)
    try:
        assert await _roundtrip(reader, writer, b"healed") == b"healed"
    finally:
        writer.close()


async def test_blackhole_stalls_open_and_new_links_and_heal_delivers_what_was_held(
    proxy: Proxy,
) -> None:
    old_reader, old_writer = await _connect(proxy)
    assert await _roundtrip(old_reader, old_writer, b"before") == b"before"
    proxy.blackhole()
    with pytest.raises(TimeoutError):
        await _roundtrip(old_reader, old_writer, b"stalled", timeout=QUIET)
    # A new connection: the handshake completes (the kernel accepts it), nothing comes back.
    new_reader, new_writer = await _connect(proxy)
    with pytest.raises(TimeoutError):
        await _roundtrip(new_reader, new_writer, b"held", timeout=QUIET)
    assert proxy.counters.held == 1
    assert proxy.counters.forwarded == 1
    assert proxy.links == 2
    proxy.heal()
    try:
        # What was sent during the blackhole arrives now, in order.
        assert await asyncio.wait_for(old_reader.readexactly(7), 2) == b"stalled"
        assert await asyncio.wait_for(new_reader.readexactly(4), 2) == b"held"
        assert await _roundtrip(old_reader, old_writer, b"after") == b"after"
    finally:
        old_writer.close()
        new_writer.close()
    assert proxy.counters.forwarded == 2


async def test_slow_adds_latency_each_way_but_does_not_cap_throughput(proxy: Proxy) -> None:
    reader, writer = await _connect(proxy)
    try:
        assert await _roundtrip(reader, writer, b"warm") == b"warm"
        proxy.slow(0.2)
        began = time.monotonic()
        assert await _roundtrip(reader, writer, b"slow") == b"slow"
        took = time.monotonic() - began
        assert took >= 0.4, f"one round trip took {took:.3f} s through a 0.2 s-per-way link"
        # 20 chunks sent at once arrive in order about one round trip later, not 20 of them.
        began = time.monotonic()
        for i in range(20):
            writer.write(b"%02d" % i)
            await writer.drain()
            await asyncio.sleep(0)
        got = await asyncio.wait_for(reader.readexactly(40), 5)
        took = time.monotonic() - began
        assert got == b"".join(b"%02d" % i for i in range(20))
        assert 0.4 <= took < 2.0, f"20 chunks took {took:.3f} s"
        proxy.heal()
        began = time.monotonic()
        assert await _roundtrip(reader, writer, b"fast") == b"fast"
        assert time.monotonic() - began < 0.2
    finally:
        writer.close()


async def test_close_resets_links_and_stops_listening(echo_port: int) -> None:
    proxy = await Proxy("127.0.0.1", echo_port).start()
    reader, writer = await _connect(proxy)
    assert await _roundtrip(reader, writer, b"x") == b"x"
    proxy.blackhole()  # close() must not wait for held links
    await asyncio.wait_for(proxy.close(), 2)
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await _roundtrip(reader, writer, b"y")
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await _connect(proxy)
    assert proxy.links == 0


async def test_a_node_that_refuses_is_a_reset_for_the_client() -> None:
    # Nothing listens on the target: the proxy's own connect fails, the client is reset.
    probe = await asyncio.start_server(_echo, "127.0.0.1", 0)
    dead_port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with Proxy("127.0.0.1", dead_port) as proxy:
        reader, writer = await _connect(proxy)
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await _roundtrip(reader, writer, b"anyone?")
        writer.close()


@pytest.mark.integration
async def test_asyncpg_through_the_proxy_sees_each_fault(fault_cluster: LocalCluster) -> None:
    node = fault_cluster.primary
    async with Proxy(node.host, node.port, name="primary") as proxy:
        dsn = node.dsn.replace(f":{node.port}/", f":{proxy.port}/")
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            assert await conn.fetchval("SELECT inet_server_port()") == node.port
            proxy.slow(0.1)
            began = time.monotonic()
            assert await conn.fetchval("SELECT 1") == 1
            assert time.monotonic() - began >= 0.2
            proxy.blackhole()
            with pytest.raises(TimeoutError):
                await asyncpg.connect(dsn, timeout=QUIET)  # connect hangs
            with pytest.raises(TimeoutError):
                await conn.fetchval("SELECT 2", timeout=QUIET)  # reads stall
            proxy.cut()
            with pytest.raises((ConnectionError, asyncpg.InterfaceError)):
                await conn.fetchval("SELECT 3")
            with pytest.raises(ConnectionError):
                await asyncpg.connect(dsn, timeout=5)
            proxy.heal()
            again = await asyncpg.connect(dsn, timeout=5)
            assert await again.fetchval("SELECT inet_server_port()") == node.port
            await again.close()
        finally:
            conn.terminate()


async def test_reset_resets_open_links_once_and_new_ones_pass(proxy: Proxy) -> None:
    reader, writer = await _connect(proxy)
    assert await _roundtrip(reader, writer, b"before") == b"before"
    proxy.reset()
    with pytest.raises(ConnectionResetError):
        await _roundtrip(reader, writer, b"after the reset")
    writer.close()
    assert proxy.mode is Mode.PASS
    reader, writer = await _connect(proxy)
    try:
        assert await _roundtrip(reader, writer, b"new") == b"new"
    finally:
        writer.close()
    assert proxy.counters.reset == 1
