"""What the generated code needs from its concurrency model: asyncio here, threads in the
sync twin (``router/_sync/_runtime.py``). Same names, same behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

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

Lock = asyncio.Lock
Event = asyncio.Event


# Stateless, so one serves every `with` (none is made per call on the hot path).
_NO_GUARD: contextlib.nullcontext[None] = contextlib.nullcontext()


def guard() -> contextlib.nullcontext[None]:
    """A guard for a read-modify-write of shared state: one event loop needs none."""
    return _NO_GUARD


async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def finish(step: Callable[[], Any], failed: BaseException | None) -> None:
    """What ``finally: await step()`` does at the end of a ``try`` whose block ended with
    *failed* (``None``: it did not): *step* run, then *failed* raised again; an exception of
    *step*'s own goes up instead, with *failed* as its context. Called after that block, not
    in a ``finally``: mypyc mis-compiles an ``await`` in a ``finally`` or ``except`` block
    of a coroutine (``router/core/_chain.py``), and the generated code has one shape both
    ways."""
    try:
        await step()
    except BaseException as late:
        if failed is not None:
            raised_in(late, failed)
        raise
    if failed is not None:
        reraise(failed)


async def blocking(fn: Callable[..., Any], *args: Any) -> Any:
    """*fn(*args)* off the event loop, in a worker thread."""
    return await asyncio.to_thread(fn, *args)


async def gather(
    thunks: Sequence[Callable[[], Awaitable[Any]]],
    *,
    timeout: float,
    stragglers: set[Any] | None = None,
) -> list[Any]:
    """Run every thunk concurrently; a result not ready within *timeout* s comes back as a
    :class:`TimeoutError` instance. Unfinished work is cancelled, or, given *stragglers*,
    left running and added to it (for :func:`settle` to end)."""
    tasks = [asyncio.ensure_future(thunk()) for thunk in thunks]
    if not tasks:
        return []
    try:
        done, pending = await asyncio.wait(tasks, timeout=timeout)
    except BaseException:
        # This wait was cancelled (a monitor closing mid-round): its work must not run on
        # untracked, on connections the closing is about to terminate.
        for task in tasks:
            task.cancel()
        raise
    for task in pending:
        if stragglers is None:
            task.cancel()
        else:
            stragglers.add(task)
            task.add_done_callback(stragglers.discard)
    late = TimeoutError(f"not done within {timeout:g} s")
    return [task.result() if task in done else late for task in tasks]


async def settle(stragglers: set[Any]) -> None:
    """End the work :func:`gather` left running."""
    tasks = list(stragglers)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Background:
    """Fire-and-forget work (e.g. syncing pools after a topology change), stopped on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, Any]], name: str) -> None:
        task = asyncio.get_running_loop().create_task(fn(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Loop:
    """Runs *fn* every *interval* s, or at once when woken, until stopped. An exception in
    one run is logged and the loop goes on."""

    def __init__(self, fn: Callable[[], Awaitable[Any]], interval: float, name: str) -> None:
        self._fn = fn
        self._interval = interval
        self._name = name
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise

    async def _run(self) -> None:
        while True:
            # Cleared before the run, not after: a wake that comes during a run (a failure
            # reported meanwhile) asks for another one at once.
            self._wake.clear()
            try:
                await self._fn()
            except Exception:
                # A bug in one run must not end the loop for good: say so and go on.
                logger.exception("%s failed", self._name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
