"""What the router benchmarks share: a run's figures, their summary per level against the
``raw`` baseline (medians over rounds, and paired per-round ratios), and the Markdown table."""

from __future__ import annotations

import gc
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

Fetchrow = Callable[[int], Any]

BASELINE = "raw"


@dataclass
class Run:
    ops: int
    seconds: float
    cpu_seconds: float
    p50_us: float
    p99_us: float

    @classmethod
    def of(cls, latencies: list[float], seconds: float, cpu: float) -> Run:
        """A run of these per-call latencies (s, any order), *seconds* long, *cpu* s of CPU."""
        latencies = sorted(latencies)
        return cls(
            ops=len(latencies),
            seconds=seconds,
            cpu_seconds=cpu,
            p50_us=percentile(latencies, 0.50) * 1e6,
            p99_us=percentile(latencies, 0.99) * 1e6,
        )

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds

    @property
    def cpu_us(self) -> float:
        """This process's CPU time per call (the client's cost; the servers are elsewhere)."""
        return self.cpu_seconds / self.ops * 1e6


@dataclass
class Level:
    concurrency: int
    pool_size: int
    runs: dict[str, list[Run]] = field(default_factory=dict)


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(level: Level) -> dict[str, Any]:
    subjects: dict[str, Any] = {}
    base = level.runs.get(BASELINE)
    for name, runs in level.runs.items():
        ops = statistics.median(run.ops_per_s for run in runs)
        entry: dict[str, Any] = {
            "ops_per_s": round(ops, 1),
            "p50_us": round(statistics.median(run.p50_us for run in runs), 1),
            "p99_us": round(statistics.median(run.p99_us for run in runs), 1),
            "cpu_us_per_call": round(statistics.median(run.cpu_us for run in runs), 1),
            "rounds": [
                {
                    "ops": run.ops,
                    "seconds": round(run.seconds, 4),
                    "ops_per_s": round(run.ops_per_s, 1),
                    "p50_us": round(run.p50_us, 1),
                    "p99_us": round(run.p99_us, 1),
                    "cpu_us_per_call": round(run.cpu_us, 1),
                }
                for run in runs
            ],
        }
        if base and name != BASELINE:
            paired = [a.ops_per_s / b.ops_per_s for a, b in zip(runs, base, strict=True)]
            entry["vs_raw"] = round(ops / statistics.median(b.ops_per_s for b in base), 3)
            entry["vs_raw_paired"] = {
                "median": round(statistics.median(paired), 3),
                "min": round(min(paired), 3),
                "max": round(max(paired), 3),
            }
        subjects[name] = entry
    return {"concurrency": level.concurrency, "pool_size": level.pool_size, "subjects": subjects}


def table(summaries: list[dict[str, Any]]) -> str:
    lines = [
        "| C  | K  | subject          |   ops/s | p50 µs | p99 µs | CPU µs/call | vs raw "
        "| paired (min-max)  |",
        "|---:|---:|------------------|--------:|-------:|-------:|------------:|-------:"
        "|-------------------|",
    ]
    for s in summaries:
        for name, e in s["subjects"].items():
            ratio = f"{e['vs_raw']:.2f}x" if "vs_raw" in e else "1.00x"
            if "vs_raw_paired" in e:
                p = e["vs_raw_paired"]
                paired = f"{p['median']:.2f}x ({p['min']:.2f}-{p['max']:.2f})"
            else:
                paired = "—"
            lines.append(
                f"| {s['concurrency']:<2} | {s['pool_size']:<2} | {name:<16} "
                f"| {e['ops_per_s']:>7.0f} | {e['p50_us']:>6.0f} | {e['p99_us']:>6.0f} "
                f"| {e['cpu_us_per_call']:>11.1f} | {ratio:>6} | {paired:<17} |"
            )
    return "\n".join(lines)


def check_routing(name: str, router: Any, replica: str) -> None:
    """Every routed read must have been served by the replica, for the classifier's reason."""
    stats = router.stats()
    decisions = stats["decisions"]
    if set(decisions) != {replica} or set(decisions[replica]) != {"classifier"}:
        raise SystemExit(f"{name}: reads not all routed to {replica}: {decisions}")
    if any(node["errors"] for node in stats["nodes"].values()):
        raise SystemExit(f"{name}: errors during the run: {stats['nodes']}")


def _worker(fetchrow: Fetchrow, ids: list[int], start: int, until: float, out: list[Any]) -> None:
    clock = time.perf_counter
    n = len(ids)
    i = start
    latencies: list[float] = []
    append = latencies.append
    while True:
        began = clock()
        if began >= until:
            break
        fetchrow(ids[i % n])
        append(clock() - began)
        i += 1
    out.append(latencies)


def _threads(fetchrow: Fetchrow, concurrency: int, ids: list[int], until: float) -> list[Any]:
    out: list[Any] = []
    threads = [
        threading.Thread(
            target=_worker,
            args=(fetchrow, ids, random.randrange(len(ids)), until, out),
        )
        for _ in range(concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def measure_threads(
    fetchrow: Fetchrow, concurrency: int, ids: list[int], warmup: float, duration: float
) -> Run:
    """*concurrency* threads calling *fetchrow* on *ids* in turn for *duration* s (after
    *warmup* s): ops, wall and process CPU seconds, latency percentiles."""
    if warmup > 0:
        _threads(fetchrow, concurrency, ids, time.perf_counter() + warmup)
    gc.collect()
    cpu = time.process_time()
    began = time.perf_counter()
    done = _threads(fetchrow, concurrency, ids, began + duration)
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu
    return Run.of([x for worker in done for x in worker], seconds, cpu)


def measure_rounds(
    level: Level, subjects: list[Any], ids: list[int], args: Any, label: str = ""
) -> None:
    """``args.rounds`` rounds of :func:`measure_threads` over *subjects* (each with ``name``
    and ``fetchrow``) at ``level.concurrency``, the order rotated each round so that no
    subject always runs first; each run added to ``level.runs`` and printed."""
    concurrency = level.concurrency
    for rnd in range(args.rounds):
        shift = rnd % len(subjects)
        for subject in subjects[shift:] + subjects[:shift]:
            run = measure_threads(subject.fetchrow, concurrency, ids, args.warmup, args.duration)
            level.runs[subject.name].append(run)
            print(
                f"  {label}c={concurrency:<3} round {rnd + 1}/{args.rounds} {subject.name:<16}"
                f" {run.ops_per_s:>8.0f} ops/s  p50 {run.p50_us:>6.0f} µs"
                f"  p99 {run.p99_us:>6.0f} µs  cpu/call {run.cpu_us:>5.1f} µs",
                flush=True,
            )


# -- callgrind and stubs, for the instruction counts ---------------------------------------


def callgrind_dumps(script: str, args: list[str]) -> list[int]:
    """Run ``python script *args`` under callgrind, counting only inside
    ``functools.reduce`` (the measured part: each reduce is one dump), and return each dump's
    instruction total, in order."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=functools_reduce",
            "--dump-after=functools_reduce",
            f"--callgrind-out-file={out}",
            sys.executable,
            script,
            *args,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"callgrind child failed:\n{done.stderr[-3000:]}")
        dumps = []
        for path in Path(tmp).glob("cg.out.*"):
            suffix = path.name.rsplit(".", 1)[1]
            if not suffix.isdigit():
                continue
            total = 0
            for line in path.read_text().splitlines():
                if line.startswith(("totals:", "summary:")):
                    total = int(line.split()[1])
                    break
            dumps.append((int(suffix), total))
        return [total for _, total in sorted(dumps)]


def stub_router(flavour: str = "async", **options: Any) -> Any:
    """An ``AsyncRouter`` (or, *flavour* ``"sync"``, a ``Router``) over two made-up nodes
    (``primary``, ``replica1``, never connected to; *options* for the ``RouterConfig``) with
    the topology a monitor round would give it: the replica far past the primary and within
    any lag gate. Its pools are the caller's to replace."""
    import router  # noqa: PLC0415
    from router.core import GateParams, Lsn, NodeStatus, Topology, tick  # noqa: PLC0415

    config = router.RouterConfig(
        primary=router.NodeConfig(dsn="postgresql://app@p.invalid/app", name="primary"),
        replicas=[router.NodeConfig(dsn="postgresql://app@r.invalid/app", name="replica1")],
        **options,
    )
    r = router.AsyncRouter(config) if flavour == "async" else router.Router(config)
    seen = {
        "primary": NodeStatus(in_recovery=False, wal_lsn=Lsn(100)),
        "replica1": NodeStatus(in_recovery=True, replay_lsn=Lsn(2**40)),
    }
    gate = GateParams(max_lag_bytes=10**15, max_lag_seconds=None)
    r._monitor.topology = tick(Topology.initial(["primary", "replica1"]), seen, 0.0, gate)
    if hasattr(r, "engine"):
        r.engine.system_id = 7
    else:  # before the routing engine (issue 13): measuring an older checkout
        cast(Any, r)._system_id = 7
    return r
