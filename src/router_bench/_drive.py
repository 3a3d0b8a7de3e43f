"""One timed run of one subject: *concurrency* workers loop over the workload's operations
for the warmup (not counted), then for the timed window.

An operation counts when it *started* inside the window; the window's length is measured to
the end of the last one. Latency is per statement (a ``ryw`` pair is two), including taking
and giving back the unit (for SQLAlchemy, the session). A failed operation counts as one error
and nothing else. Async subjects run as tasks on the event loop; sync ones on threads of their
own (not asyncio's default executor, which has too few), while the loop stays free for the
scenario's fault switches.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter, process_time
from typing import Any, Final

from router_bench._errors import BenchError, describe_error
from router_bench._measure import MAX_ERROR_SAMPLES, RawRound
from router_bench._schema import WorkloadName
from router_bench._subjects import Client
from router_bench._target import Ident
from router_bench._workloads import Op, OpPicker, worker_rng

__all__ = ["During", "RunSpec", "measure"]

#: How long after the window a worker may still be busy before it is given up on.
STRAGGLER_SECONDS: Final = 10.0
#: How long a cancelled worker may take to wind down (before and after the client's abort).
CANCEL_GRACE: Final = 5.0

During = Callable[[float, float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RunSpec:
    workload: WorkloadName
    concurrency: int
    rows: int
    warmup: float
    duration: float
    seed: int
    cell: int
    round_index: int


class _Recorder:
    """One worker's measurements (only operations started at or after ``t0`` count)."""

    __slots__ = (
        "errors",
        "last_end",
        "latencies",
        "reads",
        "replica_reads",
        "replicas",
        "samples",
        "secrets",
        "stale",
        "t0",
        "writes",
    )

    def __init__(self, t0: float, replicas: Mapping[Ident, bool], secrets: Sequence[str]) -> None:
        self.t0 = t0
        self.replicas = replicas
        self.secrets = secrets
        self.latencies: list[float] = []
        self.reads = self.writes = self.replica_reads = self.stale = self.errors = 0
        self.samples: list[str] = []
        self.last_end = t0

    def read(self, start: float, end: float, ident: Ident | None) -> None:
        self.latencies.append(end - start)
        self.reads += 1
        if self.replicas.get(ident, False):  # type: ignore[arg-type]
            self.replica_reads += 1
        self.last_end = end

    def write(self, start: float, end: float) -> None:
        self.latencies.append(end - start)
        self.writes += 1
        self.last_end = end

    def ryw(
        self, start: float, mid: float, end: float, wrote: int, read: tuple[int, Ident]
    ) -> None:
        self.write(start, mid)
        self.read(mid, end, read[1])
        if read[0] < wrote:
            self.stale += 1

    def error(self, exc: BaseException, end: float) -> None:
        self.errors += 1
        self.last_end = end
        if len(self.samples) < MAX_ERROR_SAMPLES:
            line = describe_error(exc, self.secrets)
            if line not in self.samples:
                self.samples.append(line)


async def _async_worker(
    client: Client, pick: OpPicker, rec: _Recorder, t_end: float, stop: threading.Event
) -> None:
    t0 = rec.t0
    while not stop.is_set():
        start = perf_counter()
        if start >= t_end:
            return
        op, key = pick()
        unit = client.unit()
        try:
            if op is Op.POINT:
                ident: Ident | None = (await unit.point(key))[1]
            elif op is Op.LIST:
                ident = await unit.list(key)
            else:
                wrote = await unit.write(key)
                mid = perf_counter()
                if op is Op.RYW:
                    read = await unit.point(key)
            await unit.close()
        except Exception as exc:
            if start >= t0:
                rec.error(exc, perf_counter())
            await _close_quietly(unit)
            continue
        if start >= t0:
            end = perf_counter()
            if op is Op.WRITE:
                rec.write(start, end)
            elif op is Op.RYW:
                rec.ryw(start, mid, end, wrote, read)
            else:
                rec.read(start, end, ident)


def _sync_worker(
    client: Client, pick: OpPicker, rec: _Recorder, t_end: float, stop: threading.Event
) -> None:
    t0 = rec.t0
    while not stop.is_set():
        start = perf_counter()
        if start >= t_end:
            return
        op, key = pick()
        unit = client.unit()
        try:
            if op is Op.POINT:
                ident: Ident | None = unit.point(key)[1]
            elif op is Op.LIST:
                ident = unit.list(key)
            else:
                wrote = unit.write(key)
                mid = perf_counter()
                if op is Op.RYW:
                    read = unit.point(key)
            unit.close()
        except Exception as exc:
            if start >= t0:
                rec.error(exc, perf_counter())
            _close_quietly_sync(unit)
            continue
        if start >= t0:
            end = perf_counter()
            if op is Op.WRITE:
                rec.write(start, end)
            elif op is Op.RYW:
                rec.ryw(start, mid, end, wrote, read)
            else:
                rec.read(start, end, ident)


async def _close_quietly(unit: Any) -> None:
    # The operation's error is the one reported; a unit that cannot close after it adds
    # nothing.
    with contextlib.suppress(Exception):
        await unit.close()


def _close_quietly_sync(unit: Any) -> None:
    with contextlib.suppress(Exception):
        unit.close()


async def _in_tasks(
    client: Client, pickers: list[OpPicker], recs: list[_Recorder], t_end: float, limit: float
) -> list[int]:
    """Run the workers as tasks; the indexes of those still busy at *limit* (cancelled)."""
    stop = threading.Event()
    tasks = [
        asyncio.create_task(_async_worker(client, p, r, t_end, stop), name=f"bench-worker-{i}")
        for i, (p, r) in enumerate(zip(pickers, recs, strict=True))
    ]
    try:
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, limit - perf_counter()))
    finally:
        stop.set()
        await _wind_down(client, tasks)
    for task in tasks:
        if task not in pending and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return [i for i, task in enumerate(tasks) if task in pending]


async def _wind_down(client: Client, tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the workers still running and wait for them, a bounded time: a cancelled
    asyncpg query waits for the server's acknowledgement without end, so when some are still
    stuck the client's connections are closed under them."""
    busy = {task for task in tasks if not task.done()}
    for task in busy:
        task.cancel()
    if busy:
        _, busy = await asyncio.wait(busy, timeout=CANCEL_GRACE)
    if busy:
        client.abort()
        _, busy = await asyncio.wait(busy, timeout=CANCEL_GRACE)
    if busy:
        names = ", ".join(sorted(task.get_name() for task in busy))
        raise BenchError(f"{client.spec.name}: workers {names} did not stop, even aborted")


async def _in_threads(
    client: Client, pickers: list[OpPicker], recs: list[_Recorder], t_end: float, limit: float
) -> list[int]:
    """Run the workers on threads; the indexes of those still busy at *limit* (left to
    finish on their own: a thread cannot be cancelled)."""
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    done: list[asyncio.Future[None]] = [loop.create_future() for _ in pickers]

    def settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
        if not future.done():
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)

    def run(index: int) -> None:
        failure: BaseException | None = None
        try:
            _sync_worker(client, pickers[index], recs[index], t_end, stop)
        except BaseException as exc:
            failure = exc
        # RuntimeError: the loop is gone (interrupted), nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, done[index], failure)

    threads = [
        threading.Thread(target=run, args=(i,), name=f"bench-worker-{i}", daemon=True)
        for i in range(len(pickers))
    ]
    for thread in threads:
        thread.start()
    try:
        _, pending = await asyncio.wait(done, timeout=max(0.0, limit - perf_counter()))
    finally:
        stop.set()
    for future in done:
        if future not in pending and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    return [i for i, future in enumerate(done) if future in pending]


async def measure(
    client: Client,
    spec: RunSpec,
    replicas: Mapping[Ident, bool],
    secrets: Sequence[str] = (),
    during: During | None = None,
) -> RawRound:
    """Run *client* (open) for ``spec.warmup + spec.duration`` seconds. *during(t0,
    duration)* is started when the window opens (a scenario's fault switches) and awaited
    after the workers end. ``fallbacks`` and ``acquire_wait`` are the client's counters'
    change over the window; ``cpu_seconds`` the process's CPU time from the window's opening
    to the end of the last operation (the client's cost: every thread of this process)."""
    start = perf_counter()
    t0 = start + spec.warmup
    t_end = t0 + spec.duration
    c = spec.concurrency
    recs = [_Recorder(t0, replicas, secrets) for _ in range(c)]
    pickers = [
        OpPicker(
            spec.workload,
            worker_rng(spec.seed, spec.cell, spec.round_index, w),
            worker=w,
            workers=c,
            rows=spec.rows,
        )
        for w in range(c)
    ]
    before: list[tuple[int, float]] = []
    cpu_before: list[float] = []

    async def window() -> None:
        await asyncio.sleep(max(0.0, t0 - perf_counter()))
        cpu_before.append(process_time())
        before.append(client.counters())
        if during is not None:
            await during(t0, spec.duration)

    timer = asyncio.create_task(window(), name="bench-window")
    drive = _in_threads if client.threaded else _in_tasks
    try:
        stuck = await drive(client, pickers, recs, t_end, t_end + STRAGGLER_SECONDS)
        cpu_after = process_time()
        after = client.counters()
        await timer
    finally:
        if not timer.done():
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)
    for index in stuck:
        recs[index].error(
            TimeoutError(
                f"an operation was still running {STRAGGLER_SECONDS:g} s after the window"
            ),
            t_end + STRAGGLER_SECONDS,
        )
    raw = RawRound(seconds=max(t_end, *(r.last_end for r in recs)) - t0)
    for rec in recs:
        raw.latencies += rec.latencies
        raw.reads += rec.reads
        raw.writes += rec.writes
        raw.replica_reads += rec.replica_reads
        raw.stale_reads += rec.stale
        raw.errors += rec.errors
        for line in rec.samples:
            if len(raw.error_samples) < MAX_ERROR_SAMPLES and line not in raw.error_samples:
                raw.error_samples.append(line)
    first = before[0] if before else after
    raw.fallbacks = after[0] - first[0]
    raw.acquire_wait = after[1] - first[1]
    if cpu_before:
        raw.cpu_seconds = cpu_after - cpu_before[0]
    return raw
