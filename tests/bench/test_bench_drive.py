"""One timed run, driven against stub clients (no database): what counts, stale reads, errors,
counters over the window, and workers that hang."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from typing import Any

import pytest

from router_bench import _drive
from router_bench._drive import RunSpec, measure
from router_bench._plan import SubjectSpec
from router_bench._target import Ident

REPLICA: Ident = ("127.0.0.1", 5433)
PRIMARY: Ident = ("127.0.0.1", 5432)
IDENTS = {REPLICA: True, PRIMARY: False}


def _spec(workload: str, concurrency: int = 3, duration: float = 0.2) -> RunSpec:
    return RunSpec(workload, concurrency, 1000, 0.05, duration, 7, 0, 0)  # type: ignore[arg-type]


class _Unit:
    """Reads answer from the replica; every other read-back is one version behind."""

    def __init__(self, client: _Client) -> None:
        self.client = client

    async def point(self, key: int) -> tuple[int, Ident]:
        await asyncio.sleep(0)  # a round trip: other tasks run meanwhile
        behind = next(self.client.turn) % 2
        return self.client.versions.get(key, 0) - behind, REPLICA

    async def list(self, category: int) -> Ident | None:
        await asyncio.sleep(0)
        return PRIMARY

    async def write(self, key: int) -> int:
        await asyncio.sleep(0)
        if self.client.fail_writes:
            raise OSError(f"write failed; password {self.client.secret}")
        version = self.client.versions[key] = self.client.versions.get(key, 0) + 1
        return version

    async def close(self) -> None:
        self.client.closed_units += 1


class _Client:
    threaded = False

    def __init__(self, *, fail_writes: bool = False) -> None:
        self.spec = SubjectSpec("stub", "baseline")
        self.versions: dict[int, int] = {}
        self.turn = itertools.count()
        self.fail_writes = fail_writes
        self.secret = "hunter2"
        self.closed_units = 0
        self.fallback_count = 0

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def unit(self) -> Any:
        self.fallback_count += 1  # a counter that moves while the run goes on
        return _Unit(self)

    def counters(self) -> tuple[int, float]:
        return self.fallback_count, self.fallback_count / 1000

    def abort(self) -> None:
        pass


def test_ryw_counts_both_statements_and_the_stale_read_backs() -> None:
    client = _Client()
    raw = asyncio.run(measure(client, _spec("ryw"), IDENTS))
    assert raw.ops > 0
    assert raw.reads == raw.writes
    assert raw.ops == raw.reads + raw.writes
    assert raw.replica_reads == raw.reads
    # Every other read-back is behind: about half are stale (the warmup's are not counted).
    assert 0.3 * raw.reads < raw.stale_reads < 0.7 * raw.reads
    assert raw.errors == 0
    assert raw.seconds >= 0.2
    # Counters move by one per unit: the change over the window, not since the start.
    assert 0 < raw.fallbacks < client.fallback_count
    assert raw.acquire_wait == pytest.approx(raw.fallbacks / 1000)


def test_mixed_counts_list_reads_by_the_node_that_answered() -> None:
    raw = asyncio.run(measure(_Client(), _spec("mixed"), IDENTS))
    assert raw.reads > raw.writes > 0
    assert 0 < raw.replica_reads < raw.reads  # list queries answered by PRIMARY
    assert raw.stale_reads == 0


def test_failed_operations_are_errors_with_masked_samples() -> None:
    client = _Client(fail_writes=True)
    raw = asyncio.run(measure(client, _spec("write-heavy"), IDENTS, secrets=["hunter2"]))
    assert raw.errors > 0
    assert raw.writes == 0
    assert raw.reads > 0
    assert raw.error_samples == ["OSError: write failed; password ***"]


class _SyncUnit:
    def __init__(self, client: _ThreadedClient) -> None:
        self.client = client

    def point(self, key: int) -> tuple[int, Ident]:
        # A round trip, as a driver's: the thread lets go of the GIL while it waits, so that
        # every worker gets to run (pure-Python loops starved some of them on a loaded box).
        time.sleep(0.0001)
        return 1, REPLICA

    def list(self, category: int) -> Ident | None:
        return REPLICA

    def write(self, key: int) -> int:
        return 1

    def close(self) -> None:
        with self.client.lock:
            self.client.threads.add(threading.get_ident())


class _ThreadedClient(_Client):
    threaded = True

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.threads: set[int] = set()

    def unit(self) -> Any:
        return _SyncUnit(self)


def test_sync_clients_run_on_threads_of_their_own() -> None:
    client = _ThreadedClient()
    raw = asyncio.run(measure(client, _spec("read-only", concurrency=9), IDENTS))
    assert raw.ops > 0
    assert raw.replica_reads == raw.reads == raw.ops
    # Nine workers on nine threads, more than asyncio's default executor would give.
    assert len(client.threads) == 9
    assert threading.get_ident() not in client.threads


class _HangingUnit(_Unit):
    async def point(self, key: int) -> tuple[int, Ident]:
        # Like asyncpg waiting for a server to acknowledge a cancelled query: cancellation
        # alone does not end it, closing the connection does.
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await self.client.aborted.wait()  # type: ignore[attr-defined]
            raise
        raise AssertionError("unreachable")


class _HangingClient(_Client):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = asyncio.Event()

    def unit(self) -> Any:
        return _HangingUnit(self)

    def abort(self) -> None:
        self.aborted.set()


def test_hung_workers_are_given_up_on_and_the_client_aborted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_drive, "STRAGGLER_SECONDS", 0.2)
    monkeypatch.setattr(_drive, "CANCEL_GRACE", 0.2)

    async def run() -> tuple[_HangingClient, Any]:
        client = _HangingClient()
        return client, await measure(client, _spec("read-only", concurrency=2), IDENTS)

    client, raw = asyncio.run(run())
    assert client.aborted.is_set()
    assert raw.errors == 2  # one per stuck worker
    assert raw.error_samples == [
        "TimeoutError: an operation was still running 0.2 s after the window"
    ]
    assert raw.ops == 0


def test_the_fault_hook_runs_when_the_window_opens() -> None:
    seen: list[tuple[float, float]] = []

    async def during(t0: float, duration: float) -> None:
        seen.append((t0, duration))

    raw = asyncio.run(measure(_Client(), _spec("read-only"), IDENTS, during=during))
    assert raw.ops > 0
    assert len(seen) == 1
    assert seen[0][1] == 0.2


def test_the_processs_cpu_over_the_window_is_measured() -> None:
    """CPU per operation: the process's CPU time over the window, every thread's (a busy
    stub burns some on each statement), not the warmup's."""

    class _Busy(_Unit):
        async def point(self, key: int) -> tuple[int, Ident]:
            sum(range(2000))  # CPU work of the client's own
            return await super().point(key)

    class _BusyClient(_Client):
        def unit(self) -> Any:
            return _Busy(self)

    raw = asyncio.run(measure(_BusyClient(), _spec("read-only"), IDENTS))
    assert raw.cpu_seconds is not None
    # At most the window's wall time on every core; some of it for sure.
    assert 0 < raw.cpu_seconds <= raw.seconds * (os.cpu_count() or 1) + 0.05
