"""Routed ``fetchrow`` by primary key against a raw asyncpg pool on the same replica.

    .venv/bin/python benchmarks/bench_async_router.py [--duration 2.5] [--rounds 5]
        [--concurrency 1,8,32] [--json benchmarks/results/async_router.json] [--quick]

A :class:`router.testing.LocalCluster` (a primary and two streaming replicas) is started; a
table of ``--rows`` rows is created on the primary and replicated. Every subject reads one
row by a random primary key from ``replica1``:

- ``raw``: ``asyncpg.create_pool(replica1)``, asyncpg's defaults (the pool resets every
  connection on release: one extra round trip per call);
- ``raw-noreset``: the same pool with ``reset=`` a no-op coroutine (asyncpg >= 0.30);
- ``routed``: ``router.AsyncRouter`` with the primary and ``replica1`` only, the default
  consistency (``read_your_writes``), so every read is routed to ``replica1``;
- ``routed-eventual``: the same with ``consistency="eventual"``.

Per concurrency level C, each subject gets a pool of K = C connections (``--pool-size N`` fixes
K instead), all subjects are opened together, and then each round runs every subject once,
in an order rotated each round, so that drift of the machine falls on all of them alike. One
run of a subject: C tasks loop ``fetchrow`` for ``--warmup`` seconds (not counted), then for
``--duration`` seconds. Reported per subject and level: ops/s, median over rounds; p50 and p99
latency, each the median over rounds of that round's percentile; this process's CPU time per
call (the client's cost: the servers are other processes), median over rounds; and routed/raw
ratios, both of the medians and per round (paired, same round).

A last section times the router's own work on one call, without I/O: classification (cached),
the read decision, the telemetry span, and a whole routed call against a stub pool whose
connection answers at once, beside the same stub driven directly; and an acquire/release round
of the asyncpg pool under the router, as ``NodePool`` does it (an acquire timeout, no reset),
with asyncpg's ``acquire(timeout=...)`` and without a timeout (as ``pool.fetchrow`` does). The
stub and the private attributes it swaps are the benchmark's own; the router is not changed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import asyncpg
from _report import Level, Run, check_routing, summary, table

import router
from router.testing import LocalCluster

QUERY = "SELECT id, payload FROM bench_items WHERE id = $1"
SUBJECTS = ("raw", "raw-noreset", "routed", "routed-eventual")

Fetchrow = Callable[..., Awaitable[Any]]


async def _no_reset(conn: asyncpg.Connection) -> None:
    """asyncpg's ``reset`` hook that does nothing: the connection goes back as it is."""


@dataclass
class Subject:
    name: str
    fetchrow: Fetchrow
    close: Callable[[], Awaitable[None]]
    router: router.AsyncRouter | None = None


async def _open(name: str, primary: str, replica: str, k: int) -> Subject:
    if name in ("raw", "raw-noreset"):
        extra: dict[str, Any] = {"reset": _no_reset} if name == "raw-noreset" else {}
        pool = await asyncpg.create_pool(replica, min_size=k, max_size=k, **extra)
        return Subject(name, pool.fetchrow, pool.close)
    consistency: Literal["eventual", "read_your_writes"] = (
        "eventual" if name == "routed-eventual" else "read_your_writes"
    )
    config = router.RouterConfig(
        primary=router.NodeConfig(dsn=primary, name="primary"),
        replicas=[router.NodeConfig(dsn=replica, name="replica1")],
        consistency=consistency,
        pool=router.PoolConfig(min_size=k, max_size=k),
    )
    r = await router.AsyncRouter(config).open()
    return Subject(name, r.fetchrow, r.close, router=r)


async def _worker(fetchrow: Fetchrow, ids: list[int], start: int, until: float) -> list[float]:
    clock = time.perf_counter
    n = len(ids)
    i = start
    latencies: list[float] = []
    append = latencies.append
    while True:
        began = clock()
        if began >= until:
            return latencies
        await fetchrow(QUERY, ids[i % n])
        append(clock() - began)
        i += 1


async def _measure(
    subject: Subject, concurrency: int, ids: list[int], warmup: float, duration: float
) -> Run:
    offsets = [random.randrange(len(ids)) for _ in range(concurrency)]
    if warmup > 0:
        until = time.perf_counter() + warmup
        await asyncio.gather(*(_worker(subject.fetchrow, ids, o, until) for o in offsets))
    gc.collect()
    cpu = time.process_time()
    began = time.perf_counter()
    until = began + duration
    done = await asyncio.gather(*(_worker(subject.fetchrow, ids, o, until) for o in offsets))
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu
    return Run.of([x for worker in done for x in worker], seconds, cpu)


async def _level(
    args: argparse.Namespace, primary: str, replica: str, concurrency: int, ids: list[int]
) -> Level:
    k = args.pool_size or concurrency
    level = Level(concurrency, k, {name: [] for name in args.subjects})
    subjects = [await _open(name, primary, replica, k) for name in args.subjects]
    try:
        for subject in subjects:
            row = await subject.fetchrow(QUERY, ids[0])
            if row is None or row["id"] != ids[0]:
                raise SystemExit(f"{subject.name}: wrong answer {row!r}")
        for rnd in range(args.rounds):
            shift = rnd % len(subjects)
            for subject in subjects[shift:] + subjects[:shift]:
                run = await _measure(subject, concurrency, ids, args.warmup, args.duration)
                level.runs[subject.name].append(run)
                print(
                    f"  c={concurrency:<3} round {rnd + 1}/{args.rounds} {subject.name:<16}"
                    f" {run.ops_per_s:>8.0f} ops/s  p50 {run.p50_us:>6.0f} µs"
                    f"  p99 {run.p99_us:>6.0f} µs  cpu/call {run.cpu_us:>5.1f} µs",
                    flush=True,
                )
        for subject in subjects:
            if subject.router is not None:
                check_routing(subject.name, subject.router, "replica1")
    finally:
        for subject in subjects:
            await subject.close()
    return level


# -- the router's own CPU per call ------------------------------------------------------


class _StubConn:
    """A connection that answers at once: what is left is the caller's own work."""

    async def fetchrow(self, query: str, *args: Any, **kw: Any) -> Any:
        return None

    def is_closed(self) -> bool:
        return False

    def is_in_transaction(self) -> bool:
        return False


class _StubPool:
    """Stands in for asyncpg's pool under the router's ``NodePool`` of one node (kept: compiled
    with mypyc, ``tools/build_mypyc.py``, the executor accepts nothing but a ``NodePool``)."""

    def __init__(self) -> None:
        self._conn = _StubConn()

    async def acquire(self) -> _StubConn:
        return self._conn

    async def release(self, conn: _StubConn) -> None:
        return None


async def _per_call_us(fn: Callable[[], Awaitable[Any]], n: int, repeat: int) -> float:
    """The mean µs of ``await fn()`` in the best of *repeat* batches (noise only adds)."""
    samples = []
    for _ in range(repeat):
        began = time.perf_counter_ns()
        for _ in range(n):
            await fn()
        samples.append((time.perf_counter_ns() - began) / n / 1000)
    return min(samples)


def _per_call_sync_us(fn: Callable[[], Any], n: int, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter_ns()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter_ns() - began) / n / 1000)
    return min(samples)


async def _hot_path(primary: str, replica: str, n: int, repeat: int) -> dict[str, float]:
    config = router.RouterConfig(
        primary=router.NodeConfig(dsn=primary, name="primary"),
        replicas=[router.NodeConfig(dsn=replica, name="replica1")],
        pool=router.PoolConfig(min_size=1, max_size=1),
    )
    out: dict[str, float] = {}
    async with router.AsyncRouter(config) as r:
        scope = r._scope
        addr = r._addresses["replica1"]
        out["classify (cached)"] = _per_call_sync_us(lambda: r.engine.classify(QUERY), n, repeat)
        out["read decision"] = _per_call_sync_us(lambda: r.engine.read_decision(scope), n, repeat)
        decision = r.engine.read_decision(scope)

        def span() -> None:
            r._telemetry.start(
                "fetchrow",
                addr,
                primary=False,
                reason=decision.reason.value,
                detail=decision.detail,
                route="read",
                sql=QUERY,
            ).end()

        out["telemetry span (no SDK)"] = _per_call_sync_us(span, n, repeat)

        # The asyncpg pool under the router, acquired and released as NodePool does it (an
        # acquire timeout, no reset), and as pool.fetchrow does (no timeout): no I/O either way.
        node_pool = r._pools["replica1"]

        async def node_pool_round() -> None:
            await node_pool.release(await node_pool.acquire())

        raw_pool = node_pool._pool
        assert raw_pool is not None

        async def asyncpg_round() -> None:
            async with raw_pool.acquire():
                pass

        timeout = node_pool._settings.acquire_timeout

        async def asyncpg_timeout_round() -> None:
            async with raw_pool.acquire(timeout=timeout):
                pass

        out["NodePool acquire+release"] = await _per_call_us(node_pool_round, n, repeat)
        out[f"asyncpg acquire(timeout={timeout:g})+release"] = await _per_call_us(
            asyncpg_timeout_round, n, repeat
        )
        out["asyncpg acquire()+release, no timeout"] = await _per_call_us(asyncpg_round, n, repeat)

        # The whole routed call with the I/O taken away: a stub pool in place of replica1's
        # asyncpg pool (so the router's overhead includes its NodePool).
        stub = _StubPool()
        node_pool._pool = stub
        try:

            async def direct() -> None:
                conn = await stub.acquire()
                try:
                    await conn.fetchrow(QUERY, 1)
                finally:
                    await stub.release(conn)

            out["stub pool, driven directly"] = await _per_call_us(direct, n, repeat)
            out["routed fetchrow on stub pool"] = await _per_call_us(
                lambda: r.fetchrow(QUERY, 1), n, repeat
            )
        finally:
            node_pool._pool = raw_pool
    out["router overhead per call"] = (
        out["routed fetchrow on stub pool"] - out["stub pool, driven directly"]
    )
    return out


# -- report ------------------------------------------------------------------------------


def _hot_table(hot: dict[str, float]) -> str:
    lines = ["| per call, no I/O | µs |", "|---|---:|"]
    lines += [f"| {name:<41} | {us:>6.2f} |" for name, us in hot.items()]
    return "\n".join(lines)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=2.5, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated task counts")
    p.add_argument("--pool-size", type=int, default=0, help="K for every level (0: K = C)")
    p.add_argument("--subjects", default=",".join(SUBJECTS))
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--quick", action="store_true", help="~30 s: 0.8 s runs, 2 rounds")
    args = p.parse_args()
    args.hot_calls = 20_000
    if args.quick:
        args.duration, args.warmup, args.rounds, args.hot_calls = 0.8, 0.2, 2, 5_000
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.subjects = [s.strip() for s in args.subjects.split(",")]
    unknown = set(args.subjects) - set(SUBJECTS)
    if unknown:
        p.error(f"unknown subjects {sorted(unknown)}; choose from {', '.join(SUBJECTS)}")
    if any(c < 1 for c in args.concurrency) or args.rounds < 1 or args.duration <= 0:
        p.error("concurrency, rounds and duration must be positive")
    return args


async def _main(args: argparse.Namespace, cluster: LocalCluster) -> dict[str, Any]:
    primary, replica = cluster.primary.dsn, cluster.replicas[0].dsn
    ids = random.Random(1).choices(range(1, args.rows + 1), k=100_000)
    summaries = []
    for concurrency in args.concurrency:
        level = await _level(args, primary, replica, concurrency, ids)
        summaries.append(summary(level))
    hot = await _hot_path(primary, replica, n=args.hot_calls, repeat=7)
    return {"levels": summaries, "hot_path_us": {k: round(v, 3) for k, v in hot.items()}}


def main() -> None:
    args = _parse()
    started = time.perf_counter()
    load_before = os.getloadavg()
    with LocalCluster(replicas=2) as cluster:
        server_version = asyncio.run(_setup(cluster.primary.dsn, args.rows))
        cluster.wait_caught_up()
        results = asyncio.run(_main(args, cluster))
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    print()
    print(table(results["levels"]))
    print()
    print(_hot_table(results["hot_path_us"]))
    loads = " -> ".join("/".join(f"{x:.1f}" for x in la) for la in (load_before, load_after))
    print(f"\nwall time {elapsed:.0f} s; load average (1/5/15 min) {loads}")
    if args.json is not None:
        doc = {
            "benchmark": "bench_async_router",
            "query": QUERY,
            "settings": {
                "duration": args.duration,
                "warmup": args.warmup,
                "rounds": args.rounds,
                "concurrency": args.concurrency,
                "pool_size": args.pool_size or "= concurrency",
                "rows": args.rows,
                "subjects": args.subjects,
            },
            "machine": {
                "python": platform.python_version(),
                "asyncpg": asyncpg.__version__,
                "router": router.__version__,
                "postgresql": server_version,
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(),
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in load_after],
            },
            "wall_seconds": round(elapsed, 1),
            **results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")


async def _setup(dsn: str, rows: int) -> str:
    """Create and fill the table on the primary; return the server's version."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS bench_items;"
            " CREATE TABLE bench_items (id int PRIMARY KEY, payload text NOT NULL)"
        )
        await conn.execute(
            "INSERT INTO bench_items SELECT g, md5(g::text) FROM generate_series(1, $1) g", rows
        )
        await conn.execute("ANALYZE bench_items")
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
