"""A realistic synthetic ``BenchResult`` for the report tests (no database, deterministic).

Numbers follow what this 2-core box measures (design §10): raw asyncpg ~7k ops/s at
concurrency 8, the async router a little below it, the sync router and pgpool lower, SQLAlchemy
far lower; under replica delay the naive split and ``eventual`` read stale rows, the
read-your-writes router does not and sends its read-backs to the primary instead.
"""

from __future__ import annotations

import math
import random
import statistics
from statistics import NormalDist
from typing import Final

from router_bench._schema import (
    SCHEMA_VERSION,
    WORKLOADS,
    Api,
    BenchResult,
    Cell,
    PoolPoint,
    PoolSweep,
    Round,
    ScenarioName,
    Subject,
    WorkloadName,
)

__all__ = ["BASELINES", "rename_subject", "sample_result"]

BASELINES: Final = ("raw-asyncpg", "naive-split", "pgpool")

_API_SPEED: Final[dict[Api, float]] = {"async": 0.93, "sync": 0.66, "sqlalchemy": 0.19}
_BASELINE_SPEED: Final = {"raw-asyncpg": 1.0, "naive-split": 1.04, "pgpool": 0.52}
_READ_SHARE: Final[dict[WorkloadName, float]] = {
    "mixed": 0.85,
    "read-only": 1.0,
    "write-heavy": 0.3,
    "ryw": 0.5,
}
_WORKLOAD_SPEED: Final[dict[WorkloadName, float]] = {
    "mixed": 1.0,
    "read-only": 1.35,
    "write-heavy": 0.55,
    "ryw": 0.7,
}
_SCENARIO_SPEED: Final[dict[ScenarioName, float]] = {
    "no-lag": 1.0,
    "delay-0.2s": 0.97,
    "delay-1s": 0.95,
    "replica-killed": 0.8,
    "replay-paused": 0.9,
}
_FEW_ROUTERS: Final[tuple[tuple[Api, str, str], ...]] = (
    ("async", "round-robin", "read_your_writes"),
    ("async", "round-robin", "eventual"),
    ("async", "least-outstanding", "read_your_writes"),
    ("async", "latency", "bounded"),
    ("async", "primary-only", "strong"),
    ("sync", "round-robin", "read_your_writes"),
    ("sync", "least-outstanding", "eventual"),
    ("sqlalchemy", "round-robin", "read_your_writes"),
)
_POLICIES: Final = ("primary-only", "round-robin", "random", "least-outstanding", "latency")
_CONSISTENCIES: Final = ("strong", "read_your_writes", "bounded", "eventual")


def _subjects(many: bool) -> list[Subject]:
    out: list[Subject] = [
        Subject(
            name="raw-asyncpg",
            kind="baseline",
            api=None,
            policy=None,
            consistency=None,
            description="asyncpg pool on the primary only: the bare driver",
        ),
        Subject(
            name="naive-split",
            kind="baseline",
            api=None,
            policy=None,
            consistency=None,
            description="two asyncpg pools, SELECT by first keyword to the replica, no lag check",
        ),
        Subject(
            name="pgpool",
            kind="baseline",
            api=None,
            policy=None,
            consistency=None,
            description="asyncpg through pgpool-II 4.3 in streaming-replication mode",
        ),
    ]
    combos: list[tuple[Api, str, str]] = (
        [(a, p, c) for a in _API_SPEED for p in _POLICIES for c in _CONSISTENCIES]
        if many
        else list(_FEW_ROUTERS)
    )
    for api, policy, consistency in combos:
        out.append(
            Subject(
                name=f"{api}/{policy}/{consistency}",
                kind="router",
                api=api,
                policy=policy,
                consistency=consistency,
                description=f"{api} router, {policy} policy, {consistency} consistency",
            )
        )
    return out


def _offload_and_stale(
    subject: Subject, scenario: ScenarioName, workload: WorkloadName
) -> tuple[float, float]:
    """(share of reads served by replicas, share of reads that were stale)."""
    lagging = scenario in ("delay-0.2s", "delay-1s", "replay-paused")
    if subject["name"] == "raw-asyncpg":
        return 0.0, 0.0
    if subject["name"] == "naive-split":
        stale = 0.0
        if workload == "ryw":
            stale = {"delay-0.2s": 0.35, "delay-1s": 0.8}.get(scenario, 0.0)
        return (0.5 if scenario == "replica-killed" else 0.98), stale
    if subject["name"] == "pgpool":
        stale = 0.1 if workload == "ryw" and lagging else 0.0
        return (0.6 if lagging else 0.9), stale
    consistency = subject["consistency"]
    if consistency == "strong" or subject["policy"] == "primary-only":
        return 0.0, 0.0
    if consistency == "eventual":
        stale = 0.0
        if workload == "ryw":
            stale = {"delay-0.2s": 0.3, "delay-1s": 0.75}.get(scenario, 0.01)
        return 0.97, stale
    if consistency == "bounded":
        return (0.35 if lagging else 0.95), (0.04 if workload == "ryw" and lagging else 0.0)
    # read_your_writes: read-backs of one's own write wait for the replica or go to the primary.
    if workload == "ryw":
        return {"no-lag": 0.6, "delay-0.2s": 0.22, "delay-1s": 0.04}.get(scenario, 0.3), 0.0
    return (0.7 if lagging else 0.96), 0.0


def _cdf(p50: float, p99: float) -> list[tuple[float, float]]:
    sigma = math.log(p99 / p50) / NormalDist().inv_cdf(0.99)
    points: list[tuple[float, float]] = []
    for i in range(1, 101):
        q = min(i / 100, 0.9995)
        ms = p50 * math.exp(sigma * NormalDist().inv_cdf(q))
        points.append((round(ms, 4), i / 100))
    return points


def _cell(
    rng: random.Random,
    subject: Subject,
    scenario: ScenarioName,
    workload: WorkloadName,
    concurrency: int,
    *,
    duration: float,
    rounds: int,
) -> Cell:
    name = subject["name"]
    speed = _BASELINE_SPEED.get(name) or _API_SPEED[subject["api"] or "async"]
    if subject["policy"] == "primary-only" and workload == "read-only":
        speed *= 0.9
    # Concurrency: one client is latency-bound; two cores saturate by ~8; 32 adds queueing.
    scale = {1: 0.28, 8: 1.0, 32: 1.04}.get(concurrency, 1.0)
    base = 7000.0 * speed * scale * _WORKLOAD_SPEED[workload] * _SCENARIO_SPEED[scenario]
    offload, stale_share = _offload_and_stale(subject, scenario, workload)
    # Reads kept on the primary by design (strong, primary-only, baselines) are no fallbacks.
    fallback_share = 0.0
    if subject["kind"] == "router" and offload > 0:
        fallback_share = 1.0 if subject["consistency"] in ("read_your_writes", "bounded") else 0.3
    round_list: list[Round] = []
    for _ in range(rounds):
        ops_per_s = base * rng.uniform(0.96, 1.04)
        ops = round(ops_per_s * duration)
        reads = round(ops * _READ_SHARE[workload])
        p50 = 1000.0 * concurrency / ops_per_s * rng.uniform(0.9, 1.0)
        round_list.append(
            Round(
                seconds=duration,
                ops=ops,
                ops_per_s=round(ops_per_s, 1),
                reads=reads,
                writes=ops - reads,
                replica_reads=round(reads * offload),
                stale_reads=round(reads * stale_share * 0.5),
                fallbacks=round(reads * (1 - offload) * fallback_share),
                errors=(rng.randint(0, 3) if scenario == "replica-killed" else 0),
                p50_ms=round(p50, 3),
                p95_ms=round(p50 * 2.4, 3),
                p99_ms=round(p50 * 4.1, 3),
            )
        )
    reads = sum(r["reads"] for r in round_list)
    replica_reads = sum(r["replica_reads"] for r in round_list)
    errors = sum(r["errors"] for r in round_list)
    p50 = statistics.median(r["p50_ms"] for r in round_list)
    p99 = statistics.median(r["p99_ms"] for r in round_list)
    return Cell(
        scenario=scenario,
        workload=workload,
        subject=name,
        concurrency=concurrency,
        pool_size=concurrency,
        rounds=round_list,
        ops_per_s=statistics.median(r["ops_per_s"] for r in round_list),
        p50_ms=p50,
        p95_ms=statistics.median(r["p95_ms"] for r in round_list),
        p99_ms=p99,
        reads=reads,
        writes=sum(r["writes"] for r in round_list),
        replica_reads=replica_reads,
        offload=(replica_reads / reads) if reads else None,
        stale_reads=sum(r["stale_reads"] for r in round_list),
        fallbacks=sum(r["fallbacks"] for r in round_list),
        errors=errors,
        error_samples=(
            ["ConnectionDoesNotExistError: connection was closed in the middle of operation"]
            if errors
            else []
        ),
        latency_cdf=_cdf(p50, p99),
    )


def _pool_sweep(subject: str) -> PoolSweep:
    points: list[PoolPoint] = []
    best = 6600.0
    for size, share, wait in ((1, 0.31, 2.9), (2, 0.58, 1.1), (4, 0.86, 0.32), (8, 0.97, 0.05)):
        points.append(
            PoolPoint(
                subject=subject,
                pool_size=size,
                concurrency=32,
                ops_per_s=round(best * share, 1),
                p99_ms=round(32_000 / (best * share) * 4, 3),
                acquire_wait_ms_per_op=wait,
            )
        )
    points.append(
        PoolPoint(
            subject=subject,
            pool_size=16,
            concurrency=32,
            ops_per_s=best,
            p99_ms=19.4,
            acquire_wait_ms_per_op=0.01,
        )
    )
    return PoolSweep(workload="mixed", points=points, knee=8)


def sample_result(*, many: bool = False, quick: bool = False) -> BenchResult:
    """A full run: scenarios no-lag, delay-0.2s, delay-1s and replica-killed, all four workloads,
    concurrency 1/8/32 for ``mixed``/``no-lag`` (8 elsewhere), and a pool sweep.

    ``many``: 63 subjects (3 baselines + every api, policy and consistency) instead of 11.
    ``quick``: one scenario (no-lag), concurrency 8 only, one round, no pool sweep, no pgpool.
    """
    rng = random.Random(20240611)
    subjects = _subjects(many)
    if quick:
        subjects = [s for s in subjects if s["name"] != "pgpool"]
    scenarios: list[ScenarioName] = (
        ["no-lag"] if quick else ["no-lag", "delay-0.2s", "delay-1s", "replica-killed"]
    )
    levels = [8] if quick else [1, 8, 32]
    duration, rounds = (2.0, 1) if quick else (10.0, 3)
    cells: list[Cell] = []
    for scenario in scenarios:
        for workload in WORKLOADS:
            concurrencies = levels if (scenario, workload) == ("no-lag", "mixed") else [8]
            for concurrency in concurrencies:
                cells.extend(
                    _cell(
                        rng,
                        s,
                        scenario,
                        workload,
                        concurrency,
                        duration=duration,
                        rounds=rounds,
                    )
                    for s in subjects
                )
    by_key = {(c["scenario"], c["workload"], c["concurrency"], c["subject"]): c for c in cells}
    for cell in cells:
        raw = by_key[(cell["scenario"], cell["workload"], cell["concurrency"], "raw-asyncpg")]
        cell["vs_baseline"] = cell["ops_per_s"] / raw["ops_per_s"]
    notes = [
        "replay-paused skipped: --scenarios did not ask for it",
        "faults (replica-killed) ran on the embedded cluster: the killed replica was restarted "
        "after the scenario",
    ]
    if quick:
        notes = ["quick run: one round of 2 s per subject, no fault scenarios", "no pgpool"]
    return BenchResult(
        schema=SCHEMA_VERSION,
        command="router bench" + (" --quick" if quick else " --pool-sizes 1,2,4,8,16"),
        started_at="2024-06-11T09:30:00+00:00",
        finished_at="2024-06-11T10:12:41+00:00",
        environment={
            "embedded": True,
            "nodes": [
                {"name": "primary", "role": "primary", "address": "127.0.0.1:54001"},
                {"name": "replica1", "role": "replica", "address": "127.0.0.1:54002"},
                {"name": "replica2", "role": "replica", "address": "127.0.0.1:54003"},
            ],
            "postgres": "15.7 (Debian 15.7-0+deb12u1)",
            "python": "3.11.2",
            "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
            "cpus": 2,
            "router": "0.1.0",
            "pgpool": None if quick else "4.3.5 (tamahomeboshi)",
        },
        settings={
            "quick": quick,
            "duration": duration,
            "warmup": 0.5 if quick else 2.0,
            "rounds": rounds,
            "concurrency": levels,
            "rows": 10_000,
            "workloads": list(WORKLOADS),
            "scenarios": scenarios,
            "pool_size": None,
            "with_pgpool": not quick,
        },
        subjects=subjects,
        cells=cells,
        pool_sweep=None if quick else _pool_sweep("async/round-robin/read_your_writes"),
        notes=notes,
    )


def rename_subject(result: BenchResult, old: str, new: str) -> None:
    """Rename a subject everywhere it is referenced (in place)."""
    for subject in result["subjects"]:
        if subject["name"] == old:
            subject["name"] = new
    for cell in result["cells"]:
        if cell["subject"] == old:
            cell["subject"] = new
    if result["pool_sweep"] is not None:
        for point in result["pool_sweep"]["points"]:
            if point["subject"] == old:
                point["subject"] = new
