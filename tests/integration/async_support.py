"""Helpers for async integration tests: poll with a deadline, a bounded read load, direct
queries on one node (outside the router), work started now and awaited later, and the
driver's exceptions under neutral names. ``sync_support.py`` has the same names for the
generated sync tests."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from time import monotonic
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, overload

import asyncpg
import psycopg
import pytest

from router import AsyncRouter

__all__ = [
    "CONNECTION_FAILURES",
    "DRIVER_ERRORS",
    "LOST_IN_FLIGHT",
    "MARKS",
    "ODD_STATEMENT_ERRORS",
    "WHO_ANSWERS",
    "DatabaseError",
    "Pending",
    "ReadLoad",
    "ReadOnlySqlError",
    "SyntaxSqlError",
    "UndefinedTableError",
    "backends",
    "blocking",
    "execute_on",
    "gather",
    "monotonic",
    "node_value",
    "sleep",
    "start",
    "wait_for",
    "within",
]

T = TypeVar("T")

MARKS = [pytest.mark.asyncio]
DatabaseError = asyncpg.PostgresError
ReadOnlySqlError = asyncpg.ReadOnlySQLTransactionError
SyntaxSqlError = asyncpg.PostgresSyntaxError
UndefinedTableError = asyncpg.UndefinedTableError
#: A deliberately odd statement meets the server's verdict or the driver's own: asyncpg
#: cannot encode a lone surrogate, and fails on an empty query.
ODD_STATEMENT_ERRORS = (asyncpg.PostgresError, UnicodeEncodeError, AttributeError)
#: What a caller may see from a write sent before the router knows its node is gone: the
#: driver's own connection errors, passed through unchanged.
CONNECTION_FAILURES = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
#: What asyncpg raises for a statement whose server died under it (which one depends on how
#: far the statement got): any of them, but nothing from the router itself.
DRIVER_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
#: A statement in flight when its server is killed: the connection is gone mid-operation.
LOST_IN_FLIGHT = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    ConnectionError,
)


async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def gather(thunks: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the thunks concurrently; their results in order."""
    return list(await asyncio.gather(*(thunk() for thunk in thunks)))


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """*fn(*args)*, a blocking call (the cluster's faults), on a thread: the loop runs on."""
    return await asyncio.to_thread(fn, *args)


async def within(seconds: float, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """*fn(*args)*, or :class:`TimeoutError` after *seconds*."""
    return await asyncio.wait_for(fn(*args), seconds)


class Pending(Generic[T]):
    """Work started by :func:`start`, running until its :meth:`result` is awaited."""

    def __init__(self, task: asyncio.Task[T]) -> None:
        self._task = task

    async def result(self, timeout: float | None = None) -> T:
        """Its value (or exception); :class:`TimeoutError` if not done within *timeout* s."""
        return await asyncio.wait_for(self._task, timeout)


def start(fn: Callable[..., Awaitable[T]], *args: Any) -> Pending[T]:
    """Start *fn(*args)* now, in the background (a task)."""
    return Pending(asyncio.create_task(_awaited(fn(*args))))


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def execute_on(dsn: str, *statements: str) -> None:
    """Run *statements* on the server of *dsn* (set-up, outside any router)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


#: A read that says which server answered it.
WHO_ANSWERS = "SELECT inet_server_port()"


@overload
async def wait_for(
    condition: Callable[[], Awaitable[T]],
    timeout: float = ...,
    what: str = ...,
    *,
    interval: float = ...,
) -> T: ...


@overload
async def wait_for(
    condition: Callable[[], T],
    timeout: float = ...,
    what: str = ...,
    *,
    interval: float = ...,
) -> T: ...


async def wait_for(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "condition",
    *,
    interval: float = 0.005,
) -> Any:
    """The first truthy value of *condition()* (awaited if it returns an awaitable), polled
    every *interval* s; fail the test after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def node_value(dsn: str, query: str) -> Any:
    """The first value of *query* (literal SQL: the flavours' placeholders differ) on the
    server of *dsn*, over a connection of its own (not the router's)."""
    return await _fetchval(dsn, query)


async def _fetchval(dsn: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval(query, *args, timeout=5)
    finally:
        await conn.close()


async def backends(dsn: str, application_name: str) -> int:
    """Server processes of *application_name* (and its monitor) on the server of *dsn*."""
    count: int = await _fetchval(
        dsn,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name IN ($1, $1 || ' monitor')",
        application_name,
    )
    return count


class ReadLoad:
    """*tasks* concurrent loops of reads outside any transaction through *router*, until the
    ``async with`` block ends. Each read asks which server answered; answers are counted per
    :attr:`phase` (set it as the scenario moves on) and per server port. A read that raises,
    or takes longer than *call_timeout* s, is a failure."""

    def __init__(
        self,
        router: AsyncRouter,
        *,
        tasks: int = 8,
        pause: float = 0.001,
        call_timeout: float = 5.0,
    ) -> None:
        self.router = router
        self.phase = "start"
        self.reads: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self.failures: list[tuple[str, BaseException]] = []
        self._count = tasks
        self._pause = pause
        self._call_timeout = call_timeout
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"read-load-{i}") for i in range(self._count)
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            phase = self.phase
            try:
                port = await asyncio.wait_for(
                    self.router.fetchval(WHO_ANSWERS), timeout=self._call_timeout
                )
            except Exception as exc:  # every failure is what the test counts
                self.failures.append((phase, exc))
            else:
                self.reads[phase][port] += 1
            await asyncio.sleep(self._pause)

    def total(self, phase: str) -> int:
        return sum(self.reads[phase].values())

    def describe_failures(self) -> str:
        return "; ".join(f"[{phase}] {type(exc).__name__}: {exc}" for phase, exc in self.failures)
