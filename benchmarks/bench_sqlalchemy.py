"""Routed SQLAlchemy ORM sessions against plain sessions on an engine to the primary.

    .venv/bin/python benchmarks/bench_sqlalchemy.py [--duration 0.6] [--rounds 21]
        [--flavours sync,async] [--json benchmarks/results/sqlalchemy.json] [--quick]

A :class:`router.testing.LocalCluster` (a primary and two streaming replicas) is started; a table
of ``--rows`` rows is created on the primary and replicated. Two operations, each the way a web
request would do it (a new session per operation, closed after it):

- ``get``: ``session.get(Item, id)`` for a random primary key;
- ``range``: ``session.scalars(select(Item).where(Item.id.between(a, a + 9))
  .order_by(Item.id)).all()``, ten rows.

Subjects, per flavour, each with a pool of ``--pool-size`` connections per node:

- ``plain``: ``sqlalchemy.orm.sessionmaker(create_engine(primary))`` (or the async pair):
  every statement on the primary. The baseline.
- ``plain-replica``: the same on an engine to ``replica1``: what the server side of a
  replica costs, without any routing.
- ``routed-1r``: ``router.sqlalchemy.sessionmaker(config)`` (or ``async_sessionmaker``) over
  the primary and ``replica1`` only, the default consistency (``read_your_writes``): every
  read goes to ``replica1`` (as in ``bench_async_router.py``), so the difference to
  ``plain-replica`` is the router's own cost.
- ``routed-2r``: the same over the primary and both replicas, round-robin: what a default
  configuration does.

The script checks from the routers' decisions that every routed read went to the replicas.

One run of a subject: one thread (sync) or one task (async) loops the operation for
``--warmup`` seconds (not counted), then for ``--duration`` seconds. Per operation and flavour,
the subjects run interleaved for ``--rounds`` rounds, in an order rotated each round and
reversed every other round, so drift of the machine falls on all of them alike. Many short
rounds suit a shared, noisy machine: the paired ratios (each subject against ``plain`` in the
same round) are the robust figure. Reported per subject: ops/s (median over rounds), p50 and
p99 latency (medians of the per-round values), this process's CPU time per operation (the
client's cost; the servers are other processes), the ratio to ``plain``, of the medians and
paired per round, and the CPU time per operation over ``plain``'s in the same round (median).
The goal is routed >= 0.97x plain.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy
from _report import Run
from sqlalchemy import URL, String, create_engine, make_url, select
from sqlalchemy.ext.asyncio import async_sessionmaker as plain_async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm import sessionmaker as plain_sessionmaker

import router
import router.sqlalchemy
from router.testing import LocalCluster, router_config

OPERATIONS = ("get", "range")
SUBJECTS = ("plain", "plain-replica", "routed-1r", "routed-2r")
FLAVOURS = ("sync", "async")


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    payload: Mapped[str] = mapped_column(String(64))


@dataclass
class Case:
    flavour: str
    operation: str
    runs: dict[str, list[Run]] = field(default_factory=dict)


# -- the operations ------------------------------------------------------------------------


def _sync_operation(factory: Any, operation: str, rows: int) -> Callable[[int], Any]:
    if operation == "get":

        def get(i: int) -> Any:
            with factory() as session:
                return session.get(Item, i % rows + 1)

        return get

    def range_(i: int) -> Any:
        a = i % (rows - 10) + 1
        with factory() as session:
            return session.scalars(
                select(Item).where(Item.id.between(a, a + 9)).order_by(Item.id)
            ).all()

    return range_


def _async_operation(factory: Any, operation: str, rows: int) -> Callable[[int], Awaitable[Any]]:
    if operation == "get":

        async def get(i: int) -> Any:
            async with factory() as session:
                return await session.get(Item, i % rows + 1)

        return get

    async def range_(i: int) -> Any:
        a = i % (rows - 10) + 1
        async with factory() as session:
            result = await session.scalars(
                select(Item).where(Item.id.between(a, a + 9)).order_by(Item.id)
            )
            return result.all()

    return range_


def _measure_sync(fn: Callable[[int], Any], ids: list[int], warmup: float, duration: float) -> Run:
    clock = time.perf_counter
    n = len(ids)
    i = random.randrange(n)
    until = clock() + warmup
    while clock() < until:
        fn(ids[i % n])
        i += 1
    gc.collect()
    latencies: list[float] = []
    append = latencies.append
    cpu = time.process_time()
    began = clock()
    until = began + duration
    while True:
        start = clock()
        if start >= until:
            break
        fn(ids[i % n])
        append(clock() - start)
        i += 1
    return Run.of(latencies, clock() - began, time.process_time() - cpu)


async def _measure_async(
    fn: Callable[[int], Awaitable[Any]], ids: list[int], warmup: float, duration: float
) -> Run:
    clock = time.perf_counter
    n = len(ids)
    i = random.randrange(n)
    until = clock() + warmup
    while clock() < until:
        await fn(ids[i % n])
        i += 1
    gc.collect()
    latencies: list[float] = []
    append = latencies.append
    cpu = time.process_time()
    began = clock()
    until = began + duration
    while True:
        start = clock()
        if start >= until:
            break
        await fn(ids[i % n])
        append(clock() - start)
        i += 1
    return Run.of(latencies, clock() - began, time.process_time() - cpu)


# -- the subjects --------------------------------------------------------------------------


def _routed_config(cluster: LocalCluster, replicas: int, k: int) -> router.RouterConfig:
    pool = router.PoolConfig(min_size=1, max_size=k)
    config = router_config(cluster, pool=pool)
    return config.replace(replicas=config.replica_nodes[:replicas])


def _plain_url(dsn: str, driver: str) -> URL:
    return make_url(dsn).set(drivername=f"postgresql+{driver}")


def _check_routing(name: str, core: Any, replicas: set[str]) -> None:
    """Every routed read must have gone to one of *replicas*, for the classifier's reason."""
    decisions = core.stats()["decisions"]
    if set(decisions) != replicas:
        raise SystemExit(f"{name}: reads not routed to {sorted(replicas)}: {decisions}")
    if any(set(by_reason) != {"classifier"} for by_reason in decisions.values()):
        raise SystemExit(f"{name}: unexpected decisions: {decisions}")


def _order(rnd: int) -> list[str]:
    """The subjects of round *rnd*, rotated and reversed every other round."""
    shift = rnd % len(SUBJECTS)
    order = list(SUBJECTS[shift:] + SUBJECTS[:shift])
    return order if rnd % 2 == 0 else order[::-1]


def _sync_cases(args: argparse.Namespace, cluster: LocalCluster, ids: list[int]) -> list[Case]:
    k = args.pool_size
    plain = create_engine(_plain_url(cluster.primary.dsn, "psycopg"), pool_size=k)
    plain_replica = create_engine(_plain_url(cluster.replicas[0].dsn, "psycopg"), pool_size=k)
    routed_1 = router.sqlalchemy.sessionmaker(_routed_config(cluster, 1, k))
    routed_2 = router.sqlalchemy.sessionmaker(_routed_config(cluster, 2, k))
    factories = {
        "plain": plain_sessionmaker(plain),
        "plain-replica": plain_sessionmaker(plain_replica),
        "routed-1r": routed_1,
        "routed-2r": routed_2,
    }
    cases = []
    try:
        for operation in args.operations:
            case = Case("sync", operation, {name: [] for name in SUBJECTS})
            fns = {n: _sync_operation(f, operation, args.rows) for n, f in factories.items()}
            for name, fn in fns.items():
                if not fn(ids[0]):
                    raise SystemExit(f"sync {name} {operation}: no answer")
            for rnd in range(args.rounds):
                for name in _order(rnd):
                    run = _measure_sync(fns[name], ids, args.warmup, args.duration)
                    case.runs[name].append(run)
                    _progress(case, rnd, args.rounds, name, run)
            cases.append(case)
        _check_routing("sync routed-1r", routed_1.router, {"replica1"})
        _check_routing("sync routed-2r", routed_2.router, {"replica1", "replica2"})
    finally:
        routed_1.close()
        routed_2.close()
        plain.dispose()
        plain_replica.dispose()
    return cases


async def _async_cases(
    args: argparse.Namespace, cluster: LocalCluster, ids: list[int]
) -> list[Case]:
    k = args.pool_size
    plain = create_async_engine(_plain_url(cluster.primary.dsn, "asyncpg"), pool_size=k)
    plain_replica = create_async_engine(_plain_url(cluster.replicas[0].dsn, "asyncpg"), pool_size=k)
    routed_1 = router.sqlalchemy.async_sessionmaker(_routed_config(cluster, 1, k))
    routed_2 = router.sqlalchemy.async_sessionmaker(_routed_config(cluster, 2, k))
    factories = {
        "plain": plain_async_sessionmaker(plain),
        "plain-replica": plain_async_sessionmaker(plain_replica),
        "routed-1r": routed_1,
        "routed-2r": routed_2,
    }
    cases = []
    try:
        for operation in args.operations:
            case = Case("async", operation, {name: [] for name in SUBJECTS})
            fns = {n: _async_operation(f, operation, args.rows) for n, f in factories.items()}
            for name, fn in fns.items():
                if not await fn(ids[0]):
                    raise SystemExit(f"async {name} {operation}: no answer")
            for rnd in range(args.rounds):
                for name in _order(rnd):
                    run = await _measure_async(fns[name], ids, args.warmup, args.duration)
                    case.runs[name].append(run)
                    _progress(case, rnd, args.rounds, name, run)
            cases.append(case)
        _check_routing("async routed-1r", routed_1.router, {"replica1"})
        _check_routing("async routed-2r", routed_2.router, {"replica1", "replica2"})
    finally:
        await routed_1.aclose()
        await routed_2.aclose()
        await plain.dispose()
        await plain_replica.dispose()
    return cases


# -- the router's own cost ------------------------------------------------------------------


def _own_cost(
    args: argparse.Namespace, cluster: LocalCluster, ids: list[int]
) -> list[dict[str, Any]]:
    """Routed sessions against plain sessions on the *same* replica engine (the routed
    factory's own), in alternating batches of ``--batch`` operations: the same server, the
    same pool and connections, so the difference is the routing alone (CPU per operation
    is the steady figure; wall time includes the servers)."""
    results = []
    if "sync" in args.flavours:
        routed = router.sqlalchemy.sessionmaker(_routed_config(cluster, 1, args.pool_size))
        try:
            same = plain_sessionmaker(routed.engines["replica1"])
            for operation in args.operations:
                fns = {
                    "plain": _sync_operation(same, operation, args.rows),
                    "routed": _sync_operation(routed, operation, args.rows),
                }
                times: dict[str, list[tuple[float, float]]] = {"plain": [], "routed": []}
                for fn in fns.values():
                    for i in range(args.batch):
                        fn(ids[i])
                for rnd in range(args.batches):
                    for name in ("plain", "routed") if rnd % 2 == 0 else ("routed", "plain"):
                        fn, n = fns[name], args.batch
                        cpu, began = time.process_time(), time.perf_counter()
                        for i in range(n):
                            fn(ids[(rnd * n + i) % len(ids)])
                        times[name].append(
                            ((time.process_time() - cpu) / n, (time.perf_counter() - began) / n)
                        )
                results.append(_own_summary("sync", operation, times))
        finally:
            routed.close()
    if "async" in args.flavours:
        results += asyncio.run(_own_cost_async(args, cluster, ids))
    return results


async def _own_cost_async(
    args: argparse.Namespace, cluster: LocalCluster, ids: list[int]
) -> list[dict[str, Any]]:
    routed = router.sqlalchemy.async_sessionmaker(_routed_config(cluster, 1, args.pool_size))
    results = []
    try:
        same = plain_async_sessionmaker(routed.engines["replica1"])
        for operation in args.operations:
            fns = {
                "plain": _async_operation(same, operation, args.rows),
                "routed": _async_operation(routed, operation, args.rows),
            }
            times: dict[str, list[tuple[float, float]]] = {"plain": [], "routed": []}
            for fn in fns.values():
                for i in range(args.batch):
                    await fn(ids[i])
            for rnd in range(args.batches):
                for name in ("plain", "routed") if rnd % 2 == 0 else ("routed", "plain"):
                    fn, n = fns[name], args.batch
                    cpu, began = time.process_time(), time.perf_counter()
                    for i in range(n):
                        await fn(ids[(rnd * n + i) % len(ids)])
                    times[name].append(
                        ((time.process_time() - cpu) / n, (time.perf_counter() - began) / n)
                    )
            results.append(_own_summary("async", operation, times))
    finally:
        await routed.aclose()
    return results


def _own_summary(
    flavour: str, operation: str, times: dict[str, list[tuple[float, float]]]
) -> dict[str, Any]:
    cpu = {name: statistics.median(t[0] for t in runs) * 1e6 for name, runs in times.items()}
    wall = {name: statistics.median(t[1] for t in runs) * 1e6 for name, runs in times.items()}
    return {
        "flavour": flavour,
        "operation": operation,
        "cpu_us_per_op": {k: round(v, 1) for k, v in cpu.items()},
        "wall_us_per_op": {k: round(v, 1) for k, v in wall.items()},
        "routing_cpu_us": round(cpu["routed"] - cpu["plain"], 1),
        "ops_ratio": round(wall["plain"] / wall["routed"], 3),
    }


def _own_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| flavour | op    | plain CPU µs/op | routed CPU µs/op | routing µs/op | ops ratio |",
        "|---------|-------|----------------:|-----------------:|--------------:|----------:|",
    ]
    for r in rows:
        cpu = r["cpu_us_per_op"]
        lines.append(
            f"| {r['flavour']:<7} | {r['operation']:<5} | {cpu['plain']:>15.1f} "
            f"| {cpu['routed']:>16.1f} | {r['routing_cpu_us']:>+13.1f} | {r['ops_ratio']:>8.3f}x |"
        )
    return "\n".join(lines)


def _progress(case: Case, rnd: int, rounds: int, name: str, run: Run) -> None:
    print(
        f"  {case.flavour:<5} {case.operation:<5} round {rnd + 1}/{rounds} {name:<13}"
        f" {run.ops_per_s:>7.0f} ops/s  p50 {run.p50_us:>6.0f} µs  p99 {run.p99_us:>6.0f} µs"
        f"  cpu/op {run.cpu_us:>6.1f} µs",
        flush=True,
    )


# -- report --------------------------------------------------------------------------------


def _summary(case: Case) -> dict[str, Any]:
    subjects: dict[str, Any] = {}
    base = case.runs["plain"]
    for name, runs in case.runs.items():
        entry: dict[str, Any] = {
            "ops_per_s": round(statistics.median(r.ops_per_s for r in runs), 1),
            "p50_us": round(statistics.median(r.p50_us for r in runs), 1),
            "p99_us": round(statistics.median(r.p99_us for r in runs), 1),
            "cpu_us_per_op": round(statistics.median(r.cpu_us for r in runs), 1),
            "rounds": [
                {
                    "ops": r.ops,
                    "seconds": round(r.seconds, 4),
                    "ops_per_s": round(r.ops_per_s, 1),
                    "p50_us": round(r.p50_us, 1),
                    "p99_us": round(r.p99_us, 1),
                    "cpu_us_per_op": round(r.cpu_us, 1),
                }
                for r in runs
            ],
        }
        if name != "plain":
            paired = [a.ops_per_s / b.ops_per_s for a, b in zip(runs, base, strict=True)]
            entry["vs_plain"] = round(
                entry["ops_per_s"] / statistics.median(b.ops_per_s for b in base), 3
            )
            entry["vs_plain_paired"] = {
                "median": round(statistics.median(paired), 3),
                "min": round(min(paired), 3),
                "max": round(max(paired), 3),
            }
            extra_cpu = [a.cpu_us - b.cpu_us for a, b in zip(runs, base, strict=True)]
            entry["cpu_us_over_plain_paired"] = round(statistics.median(extra_cpu), 1)
        subjects[name] = entry
    return {"flavour": case.flavour, "operation": case.operation, "subjects": subjects}


def _table(summaries: list[dict[str, Any]]) -> str:
    lines = [
        "| flavour | op    | subject       |  ops/s | p50 µs | p99 µs | CPU µs/op | vs plain "
        "| paired (min-max)      | CPU Δ µs |",
        "|---------|-------|---------------|-------:|-------:|-------:|----------:|---------:"
        "|-----------------------|---------:|",
    ]
    for s in summaries:
        for name, e in s["subjects"].items():
            ratio = f"{e['vs_plain']:.3f}x" if "vs_plain" in e else "1.000x"
            paired = "—"
            delta = f"{e['cpu_us_over_plain_paired']:+.1f}" if name != "plain" else "—"
            if "vs_plain_paired" in e:
                p = e["vs_plain_paired"]
                paired = f"{p['median']:.3f}x ({p['min']:.2f}-{p['max']:.2f})"
            lines.append(
                f"| {s['flavour']:<7} | {s['operation']:<5} | {name:<13} "
                f"| {e['ops_per_s']:>6.0f} | {e['p50_us']:>6.0f} | {e['p99_us']:>6.0f} "
                f"| {e['cpu_us_per_op']:>9.1f} | {ratio:>8} | {paired:<21} | {delta:>8} |"
            )
    return "\n".join(lines)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--duration", type=float, default=0.6, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=0.2, help="unmeasured seconds before each")
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--pool-size", type=int, default=4, help="connections per node")
    p.add_argument("--operations", default=",".join(OPERATIONS))
    p.add_argument("--flavours", default=",".join(FLAVOURS))
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=300, help="operations per own-cost batch")
    p.add_argument("--batches", type=int, default=40, help="own-cost batches (0: skip)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--quick", action="store_true", help="0.3 s runs, 3 rounds (~30 s)")
    args = p.parse_args()
    if args.quick:
        args.duration, args.warmup, args.rounds, args.batches = 0.3, 0.1, 3, 6
    args.operations = [s.strip() for s in args.operations.split(",")]
    args.flavours = [s.strip() for s in args.flavours.split(",")]
    if set(args.operations) - set(OPERATIONS) or set(args.flavours) - set(FLAVOURS):
        p.error(f"operations: {', '.join(OPERATIONS)}; flavours: {', '.join(FLAVOURS)}")
    if args.rounds < 1 or args.duration <= 0 or args.rows < 20:
        p.error("rounds and duration must be positive, rows at least 20")
    return args


def _setup(dsn: str, rows: int) -> str:
    """Create and fill the table on the primary; return the server's version."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_items")
        conn.execute("CREATE TABLE bench_items (id int PRIMARY KEY, payload varchar(64) NOT NULL)")
        conn.execute(
            "INSERT INTO bench_items SELECT g, md5(g::text) FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("ANALYZE bench_items")
        row = conn.execute("SHOW server_version").fetchone()
        assert row is not None
        return str(row[0])


def main() -> None:
    args = _parse()
    started = time.perf_counter()
    load_before = os.getloadavg()
    ids = random.Random(1).choices(range(1, args.rows + 1), k=100_000)
    cases: list[Case] = []
    with LocalCluster(replicas=2) as cluster:
        server_version = _setup(cluster.primary.dsn, args.rows)
        cluster.wait_caught_up()
        if "sync" in args.flavours:
            cases += _sync_cases(args, cluster, ids)
        if "async" in args.flavours:
            cases += asyncio.run(_async_cases(args, cluster, ids))
        own = _own_cost(args, cluster, ids) if args.batches else []
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    summaries = [_summary(case) for case in cases]
    print()
    print(_table(summaries))
    if own:
        print()
        print("The router's own cost: routed vs plain sessions on the same replica engine")
        print(_own_table(own))
    loads = " -> ".join("/".join(f"{x:.1f}" for x in la) for la in (load_before, load_after))
    print(f"\nwall time {elapsed:.0f} s; load average (1/5/15 min) {loads}")
    if args.json is not None:
        doc = {
            "benchmark": "bench_sqlalchemy",
            "settings": {
                "duration": args.duration,
                "warmup": args.warmup,
                "rounds": args.rounds,
                "pool_size": args.pool_size,
                "rows": args.rows,
                "operations": args.operations,
                "flavours": args.flavours,
                "batch": args.batch,
                "batches": args.batches,
            },
            "machine": {
                "python": platform.python_version(),
                "sqlalchemy": sqlalchemy.__version__,
                "router": router.__version__,
                "postgresql": server_version,
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in load_after],
            },
            "wall_seconds": round(elapsed, 1),
            "cases": summaries,
            "own_cost": own,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
