"""An in-process TCP proxy between the router and one node, with switches for a bad link.

``Proxy(host, port)`` listens on a free loopback port and forwards every connection to the node.
Its switches act on the links open now and on the ones that come later:

``cut()``
    Every open link is reset (RST to both ends, no goodbye), and every new connection is
    accepted and reset at once: the client sees ``ConnectionResetError``.
``blackhole()``
    Nothing moves: open links stop forwarding (the bytes wait in the kernel's buffers, so
    reads stall and writes pile up), and new connections are accepted but not forwarded
    (the client's start-up packet gets no answer: connect hangs).
``slow(delay)``
    Every chunk, either way, is forwarded *delay* seconds after it arrived (order kept).
``reset()``
    Once: every open link is reset (RST to both ends); new connections pass as before (a
    firewall or NAT that forgot its connections, an admin's ``pg_terminate_backend``).
``heal()``
    Pass-through again. Links held by a blackhole go on where they stopped, as a TCP
    connection does when a partition heals (the bytes were only held, never dropped).

It runs on the event loop of its caller (the router's, in the tests): while the loop is
busy the proxy is too, which is what a real link costs nobody. Counters say what it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Self

__all__ = ["Mode", "Proxy", "ProxyCounters"]

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_LINGER_RST = struct.pack("ii", 1, 0)


class Mode(StrEnum):
    PASS = "pass"
    CUT = "cut"
    BLACKHOLE = "blackhole"
    SLOW = "slow"


@dataclass
class ProxyCounters:
    """What the proxy saw since it started."""

    accepted: int = 0  # client connections accepted
    forwarded: int = 0  # ... of which reached the node
    reset: int = 0  # links reset by cut() (open ones and refused new ones)
    held: int = 0  # new connections held by a blackhole
    bytes_up: int = 0  # client -> node
    bytes_down: int = 0  # node -> client


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close *writer*'s socket with a RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    writer.transport.abort()


class _Link:
    """One client connection and, once forwarded, its connection to the node."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.node: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        _rst(self.client)
        if self.node is not None:
            _rst(self.node)


class Proxy:
    """A TCP proxy from ``127.0.0.1:<port>`` to ``host:target_port``. No I/O until
    :meth:`start` (or ``async with``)."""

    def __init__(self, host: str, target_port: int, *, name: str = "proxy") -> None:
        self.host = host
        self.target_port = target_port
        self.name = name
        self.counters = ProxyCounters()
        self._mode = Mode.PASS
        self._delay = 0.0
        self._open = asyncio.Event()  # set unless blackholed: links may move bytes
        self._open.set()
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._port: int | None = None
        self._closing = False

    def __repr__(self) -> str:
        return (
            f"Proxy({self.name!r}, 127.0.0.1:{self._port} -> {self.host}:{self.target_port},"
            f" {self._mode.value}, links={len(self._links)})"
        )

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the proxy has not been started")
        return self._port

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def links(self) -> int:
        """Client connections open now (forwarded or held)."""
        return len(self._links)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> Self:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
            self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening and reset every link (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._closing = True
        self._open.set()  # held links go on, to find the proxy closing
        links = list(self._links)
        for link in links:
            link.reset()
        # The links end by themselves once reset; cancelling their tasks would only make
        # asyncio's server log the cancellation as an error.
        tasks = {link.task for link in links if link.task is not None}
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5)
            for task in stuck:
                task.cancel()
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- switches ----------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every open link; reset every new connection until :meth:`heal`."""
        self._set(Mode.CUT)
        for link in list(self._links):
            self.counters.reset += 1
            link.reset()

    def reset(self) -> None:
        """Reset every open link once; new connections pass (the mode is unchanged)."""
        logger.info("%s: resetting %d links", self.name, len(self._links))
        for link in list(self._links):
            self.counters.reset += 1
            link.reset()

    def blackhole(self) -> None:
        """Hold every byte of every link, open or new, until :meth:`heal`."""
        self._set(Mode.BLACKHOLE)

    def slow(self, delay: float) -> None:
        """Forward each chunk *delay* seconds after it arrived."""
        if not delay >= 0:
            raise ValueError(f"delay must be >= 0, not {delay!r}")
        self._set(Mode.SLOW)
        self._delay = delay

    def heal(self) -> None:
        """Pass-through again; held links go on."""
        self._set(Mode.PASS)

    def _set(self, mode: Mode) -> None:
        logger.info("%s: %s -> %s", self.name, self._mode.value, mode.value)
        self._mode = mode
        self._delay = 0.0
        if mode is Mode.BLACKHOLE:
            self._open.clear()
        else:
            self._open.set()

    # -- forwarding --------------------------------------------------------------------

    def _cut(self) -> bool:
        return self._closing or self._mode is Mode.CUT

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters.accepted += 1
        if self._mode is Mode.CUT:
            self.counters.reset += 1
            _rst(writer)
            return
        link = _Link(writer)
        link.task = asyncio.current_task()
        self._links.add(link)
        try:
            await self._serve(link, reader)
        except (OSError, asyncio.IncompleteReadError):
            link.reset()
        finally:
            self._links.discard(link)
            if not writer.is_closing():
                writer.close()
            if link.node is not None and not link.node.is_closing():
                link.node.close()

    async def _serve(self, link: _Link, client: asyncio.StreamReader) -> None:
        if not self._open.is_set():
            self.counters.held += 1
            await self._open.wait()
        if self._cut():  # cut while held: cut() reset it already
            return
        node_reader, node_writer = await asyncio.open_connection(self.host, self.target_port)
        link.node = node_writer
        if self._cut():  # cut while connecting
            link.reset()
            return
        self.counters.forwarded += 1
        up: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        down: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        readers = [
            asyncio.create_task(self._read(client, up)),
            asyncio.create_task(self._read(node_reader, down)),
        ]
        senders = [
            asyncio.create_task(self._send(up, node_writer, up=True)),
            asyncio.create_task(self._send(down, link.client, up=False)),
        ]
        try:
            # Either side done (its bytes all passed on) ends the link: a half-open link is of
            # no use to PostgreSQL.
            await asyncio.wait(senders, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*readers, *senders):
                task.cancel()
            await asyncio.gather(*readers, *senders, return_exceptions=True)

    async def _read(
        self, source: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes]]
    ) -> None:
        """Queue what *source* sends, stamped with when it may go on, until EOF. Chunks wait
        in a queue (not by sleeping in line) so a slow link adds latency, not a rate cap."""
        try:
            while True:
                await self._open.wait()
                data = await source.read(_CHUNK)
                if not data:
                    break
                queue.put_nowait((time.monotonic() + self._delay, data))
        except OSError:
            pass
        finally:
            queue.put_nowait((0.0, b""))

    async def _send(
        self, queue: asyncio.Queue[tuple[float, bytes]], sink: asyncio.StreamWriter, *, up: bool
    ) -> None:
        while True:
            due, data = await queue.get()
            if not data:
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            # Bytes read before a blackhole started are held too.
            await self._open.wait()
            sink.write(data)
            await sink.drain()
            if up:
                self.counters.bytes_up += len(data)
            else:
                self.counters.bytes_down += len(data)
