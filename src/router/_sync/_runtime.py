"""Threads where the async flavour has asyncio (``router/_async/_runtime.py``): same names,
same behaviour."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from router import _fork
from router.core import raised_in, reraise

__all__ = [
    "Background",
    "Event",
    "Lock",
    "Loop",
    "blocking",
    "finish",
    "gather",
    "guard",
    "settle",
    "sleep",
]

logger = logging.getLogger("router")

Lock = threading.Lock
Event = threading.Event
sleep = time.sleep

_GUARD = threading.Lock()


def finish(step: Callable[[], Any], failed: BaseException | None) -> None:
    """What ``finally: step()`` does at the end of a ``try`` whose block ended with
    *failed* (``None``: it did not): *step* run, then *failed* raised again; an exception of
    *step*'s own goes up instead, with *failed* as its context. Called after that block, not
    in a ``finally``: mypyc mis-compiles an ``await`` in a ``finally`` or ``except`` block
    of a coroutine (``router/core/_chain.py``), and the generated code has one shape both
    ways."""
    try:
        step()
    except BaseException as late:
        if failed is not None:
            raised_in(late, failed)
        raise
    if failed is not None:
        reraise(failed)


def blocking(fn: Callable[..., Any], *args: Any) -> Any:
    """*fn(*args)*: the calling thread may block."""
    return fn(*args)


def guard() -> threading.Lock:
    """A guard for a read-modify-write of state that threads share (one for the process:
    what it guards takes a few hundred nanoseconds)."""
    return _GUARD


def _new_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=32, thread_name_prefix="router-gather")


_EXECUTOR = _new_executor()


def _after_fork() -> None:
    """In the child of a fork: the guard may have been held by a thread that is not here, and
    the thread pool counts the parent's idle workers (it would wait for them, not start its
    own)."""
    global _GUARD, _EXECUTOR  # noqa: PLW0603 - a new process: new module state
    _GUARD = threading.Lock()
    _EXECUTOR = _new_executor()


_fork.at_fork(_after_fork)


def _submit(thunk: Callable[[], Any]) -> Future[Any]:
    try:
        return _EXECUTOR.submit(thunk)
    except RuntimeError:
        # concurrent.futures refuses new work once the interpreter has begun to exit (its
        # exit hook runs before atexit's): the monitor's last rounds, and an application
        # closing its router in an atexit handler (gunicorn's, Flask's teardown), run on a
        # thread of their own instead of failing.
        future: Future[Any] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(thunk())
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=run, name="router-gather-exit", daemon=True).start()
        return future


def gather(
    thunks: Sequence[Callable[[], Any]],
    *,
    timeout: float,
    stragglers: set[Any] | None = None,
) -> list[Any]:
    """Run every thunk concurrently (on a shared thread pool); a result not ready within
    *timeout* s comes back as a :class:`TimeoutError` instance. A thread cannot be
    cancelled: unfinished work runs on (and must bound itself), in *stragglers* if given."""
    if len(thunks) == 1 and stragglers is None:
        return [thunks[0]()]
    futures = [_submit(thunk) for thunk in thunks]
    deadline = time.monotonic() + timeout
    results: list[Any] = []
    for future in futures:
        try:
            results.append(future.result(timeout=max(0.0, deadline - time.monotonic())))
        except FutureTimeout:
            results.append(TimeoutError(f"not done within {timeout:g} s"))
            if stragglers is not None:
                stragglers.add(future)
                future.add_done_callback(stragglers.discard)
    return results


def settle(stragglers: set[Any]) -> None:
    """Work :func:`gather` left running ends by its own bounds: forget it."""
    for future in list(stragglers):
        future.cancel()  # only if it has not started


#: Every Background, weakly (one per router, whether opened or not).
_BACKGROUNDS: weakref.WeakSet[Background] = weakref.WeakSet()


def _backgrounds_after_fork() -> None:
    for background in list(_BACKGROUNDS):
        background._after_fork()


_fork.at_fork(_backgrounds_after_fork)


class Background:
    """Fire-and-forget work (e.g. syncing pools after a topology change) on daemon threads,
    waited for (briefly) on close."""

    def __init__(self) -> None:
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        _BACKGROUNDS.add(self)

    def _after_fork(self) -> None:
        self._threads = set()
        self._lock = threading.Lock()

    def spawn(self, fn: Callable[[], Any], name: str) -> None:
        def run() -> None:
            try:
                fn()
            except Exception:
                logger.exception("%s failed", name)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def close(self) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=10)


class Loop:
    """Runs *fn* every *interval* s, or at once when woken, until stopped, on a daemon
    thread. An exception in one run is logged and the loop goes on."""

    def __init__(self, fn: Callable[[], Any], interval: float, name: str) -> None:
        self._fn = fn
        self._interval = interval
        self._name = name
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
            _fork.on_fork(self)

    def _after_fork(self) -> None:
        self._thread = None
        self._wake = threading.Event()

    def _resume_after_fork(self) -> None:
        # It ran in the parent (else it would not be registered): it runs in the child too.
        self.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        _fork.forget(self)
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        if thread is not threading.current_thread():
            thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            try:
                self._fn()
            except Exception:
                # A bug in one run must not end the loop for good: say so and go on.
                logger.exception("%s failed", self._name)
            self._wake.wait(timeout=self._interval)
            self._wake.clear()
            if self._stopping:
                return
