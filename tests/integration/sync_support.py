"""Helpers for the generated sync integration tests: the names of ``async_support.py``, over
threads and psycopg."""

from __future__ import annotations

import contextvars
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from time import monotonic
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import psycopg
import psycopg.errors
import pytest

from router import Router
from tests.integration.async_support import WHO_ANSWERS, execute_on

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

MARKS: list[pytest.MarkDecorator] = []
DatabaseError = psycopg.Error
ReadOnlySqlError = psycopg.errors.ReadOnlySqlTransaction
SyntaxSqlError = psycopg.errors.SyntaxError
UndefinedTableError = psycopg.errors.UndefinedTable
#: A deliberately odd statement meets the server's verdict or the driver's own (a lone
#: surrogate cannot be encoded).
ODD_STATEMENT_ERRORS = (psycopg.Error, UnicodeEncodeError)
#: What a caller may see from a write sent before the router knows its node is gone: the
#: driver's own connection errors, passed through unchanged.
CONNECTION_FAILURES = (OSError, psycopg.OperationalError)
#: What psycopg raises for a statement whose server died under it: any of its errors, but
#: nothing from the router itself.
DRIVER_ERRORS = (OSError, psycopg.Error)


class _LostConnectionMeta(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return type(instance) is psycopg.OperationalError and instance.sqlstate is None


class _LostConnection(metaclass=_LostConnectionMeta):
    """psycopg has no class of its own for a connection lost mid-statement: it raises
    ``OperationalError`` itself, without a SQLSTATE (its subclasses, ``QueryCanceled`` and
    the like, are the server's verdict on a statement, which this is not)."""


#: A statement in flight when its server is killed: the connection is gone mid-operation.
LOST_IN_FLIGHT = (
    _LostConnection,
    psycopg.errors.AdminShutdown,
    psycopg.errors.CrashShutdown,
    ConnectionError,
)

sleep = time.sleep


def gather(thunks: Sequence[Callable[[], T]]) -> list[T]:
    """Run the thunks on threads of their own; their results in order."""
    with ThreadPoolExecutor(max_workers=max(1, len(thunks))) as pool:
        futures = [pool.submit(thunk) for thunk in thunks]
        return [future.result() for future in futures]


def blocking(fn: Callable[..., T], *args: Any) -> T:
    """*fn(*args)*: the async twin moves it off the event loop; here it is just a call."""
    return fn(*args)


class Pending(Generic[T]):
    """Work started by :func:`start`, running on a thread of its own until its
    :meth:`result` is taken."""

    def __init__(self, future: Future[T]) -> None:
        self._future = future

    def result(self, timeout: float | None = None) -> T:
        """Its value (or exception); :class:`TimeoutError` if not done within *timeout* s
        (the thread runs on: a thread cannot be cancelled)."""
        return self._future.result(timeout)


def start(fn: Callable[..., T], *args: Any) -> Pending[T]:
    """Start *fn(*args)* now, on a daemon thread (in a copy of the caller's context, as a
    task would be)."""
    future: Future[T] = Future()
    context = contextvars.copy_context()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(context.run(fn, *args))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(
        target=run, name=f"test-{getattr(fn, '__name__', 'work')}", daemon=True
    ).start()
    return Pending(future)


def within(seconds: float, fn: Callable[..., T], *args: Any) -> T:
    """*fn(*args)*, or :class:`TimeoutError` after *seconds* (the call runs on a thread)."""
    return start(fn, *args).result(seconds)


def wait_for(
    condition: Callable[[], T],
    timeout: float = 10.0,
    what: str = "condition",
    *,
    interval: float = 0.005,
) -> T:
    """The first truthy value of *condition()*, polled every *interval* s; fail the test
    after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def node_value(dsn: str, query: str) -> Any:
    """The first value of *query* (literal SQL: the flavours' placeholders differ) on the
    server of *dsn*, over a connection of its own (not the router's)."""
    return _fetchval(dsn, query)


def _fetchval(dsn: str, query: str, *params: Any) -> Any:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SET statement_timeout = 5000")
        row = conn.execute(query, params or None).fetchone()
    return None if row is None else row[0]


def backends(dsn: str, application_name: str) -> int:
    """Server processes of *application_name* (and its monitor) on the server of *dsn*."""
    count: int = _fetchval(
        dsn,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name IN (%s, %s || ' monitor')",
        application_name,
        application_name,
    )
    return count


class ReadLoad:
    """*tasks* threads looping over reads outside any transaction through *router*, until
    the ``with`` block ends. Each read asks which server answered; answers are counted per
    :attr:`phase` (set it as the scenario moves on) and per server port. A read that raises,
    or takes longer than *call_timeout* s, is a failure."""

    def __init__(
        self,
        router: Router,
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
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Self:
        self._threads = [
            threading.Thread(target=self._loop, name=f"read-load-{i}", daemon=True)
            for i in range(self._count)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._call_timeout + 1)
            if thread.is_alive():
                with self._lock:
                    self.failures.append(
                        (self.phase, TimeoutError(f"{thread.name}: a read still running"))
                    )

    def _loop(self) -> None:
        while not self._stop.is_set():
            phase = self.phase
            began = time.monotonic()
            try:
                port = self.router.fetchval(WHO_ANSWERS)
            except Exception as exc:  # every failure is what the test counts
                with self._lock:
                    self.failures.append((phase, exc))
            else:
                took = time.monotonic() - began
                with self._lock:
                    if took > self._call_timeout:
                        self.failures.append((phase, TimeoutError(f"a read took {took:.3f} s")))
                    else:
                        self.reads[phase][port] += 1
            time.sleep(self._pause)

    def total(self, phase: str) -> int:
        with self._lock:
            return sum(self.reads[phase].values())

    def describe_failures(self) -> str:
        with self._lock:
            failures = list(self.failures)
        return "; ".join(f"[{phase}] {type(exc).__name__}: {exc}" for phase, exc in failures)
