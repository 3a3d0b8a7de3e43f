"""From raw measurements to the result's numbers: percentiles, CDF, summaries, knee. Pure."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from router_bench._schema import Cell, PoolPoint, PoolSweep, Round, ScenarioName, WorkloadName

__all__ = [
    "CDF_FRACTIONS",
    "FALLBACK_REASONS",
    "MAX_ERROR_SAMPLES",
    "RawRound",
    "cell_summary",
    "cpu_us_per_op",
    "fallbacks",
    "knee",
    "latency_cdf",
    "merge_samples",
    "percentile",
    "pool_sweep",
    "to_round",
    "with_baseline",
]

#: The reasons of a read the router sent to the primary for lack of a usable replica
#: (``router.core._route.Reason``): the lag gate, the session's floor, no replica at all.
FALLBACK_REASONS: Final = ("lag-gate", "consistency", "fallback")
MAX_ERROR_SAMPLES: Final = 5
#: Where the CDF is sampled: every percent up to 95 %, then the tail more finely (100 points).
CDF_FRACTIONS: Final = (*(i / 100 for i in range(1, 96)), 0.97, 0.99, 0.995, 0.999, 1.0)
#: A pool size reaching this share of the sweep's best throughput is good enough (the knee).
KNEE_SHARE: Final = 0.95


def percentile(ordered: Sequence[float], q: float) -> float:
    """The *q*-th percentile (0-100) of the sorted values, linearly interpolated between
    closest ranks (numpy's default); ``0.0`` for no values."""
    if not ordered:
        return 0.0
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, not {q!r}")
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_cdf(ordered_ms: Sequence[float]) -> list[tuple[float, float]]:
    """``(ms, fraction of operations <= ms)`` at :data:`CDF_FRACTIONS` of the sorted
    latencies (at most 100 points; none for no values)."""
    if not ordered_ms:
        return []
    n = len(ordered_ms)
    points = []
    for f in CDF_FRACTIONS:
        # The smallest latency with at least a fraction f of the values at or below it.
        index = min(n - 1, max(0, math.ceil(f * n) - 1))
        points.append((round(ordered_ms[index], 4), f))
    return points


def merge_samples(into: list[str], more: Iterable[str], limit: int = MAX_ERROR_SAMPLES) -> None:
    """Add the distinct lines of *more* to *into*, keeping at most *limit* in all."""
    for line in more:
        if len(into) >= limit:
            return
        if line not in into:
            into.append(line)


def fallbacks(decisions: Mapping[str, Mapping[str, int]], primary: str | None) -> int:
    """Reads the router sent to the primary for lack of a usable replica, from
    ``stats()["decisions"]`` (node -> reason -> count)."""
    if primary is None:
        return 0
    on_primary = decisions.get(primary, {})
    return sum(on_primary.get(reason, 0) for reason in FALLBACK_REASONS)


@dataclass(slots=True)
class RawRound:
    """What one timed run measured: latencies in seconds of the operations started in the
    window, counters, and the window's length (until the last of them finished)."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    reads: int = 0
    writes: int = 0
    replica_reads: int = 0
    stale_reads: int = 0
    fallbacks: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    acquire_wait: float = 0.0  # seconds, the router's pools (the sweep)
    #: CPU seconds of the bench process (all its threads) over the window; None: not measured.
    cpu_seconds: float | None = None

    @property
    def ops(self) -> int:
        return len(self.latencies)

    def sorted_ms(self) -> list[float]:
        return sorted(x * 1000.0 for x in self.latencies)


def cpu_us_per_op(raw: RawRound) -> float | None:
    """The process's CPU microseconds per operation of the window; ``None`` when it was not
    measured or no operation counted."""
    if raw.cpu_seconds is None or not raw.ops:
        return None
    return round(raw.cpu_seconds * 1e6 / raw.ops, 2)


def to_round(raw: RawRound) -> Round:
    ordered = raw.sorted_ms()
    seconds = raw.seconds if raw.seconds > 0 else 1.0
    return Round(
        seconds=round(raw.seconds, 4),
        ops=raw.ops,
        ops_per_s=round(raw.ops / seconds, 1),
        reads=raw.reads,
        writes=raw.writes,
        replica_reads=raw.replica_reads,
        stale_reads=raw.stale_reads,
        fallbacks=raw.fallbacks,
        errors=raw.errors,
        p50_ms=round(percentile(ordered, 50), 4),
        p95_ms=round(percentile(ordered, 95), 4),
        p99_ms=round(percentile(ordered, 99), 4),
        cpu_us_per_op=cpu_us_per_op(raw),
    )


def _median(values: Iterable[float]) -> float:
    found = list(values)
    return round(statistics.median(found), 4) if found else 0.0


def cell_summary(
    *,
    scenario: ScenarioName,
    workload: WorkloadName,
    subject: str,
    concurrency: int,
    pool_size: int,
    raws: Sequence[RawRound],
) -> Cell:
    """One subject's cell: its rounds, medians over them for rates and percentiles, totals
    for counts, and the latency CDF of every operation of every round."""
    rounds = [to_round(r) for r in raws]
    reads = sum(r["reads"] for r in rounds)
    replica_reads = sum(r["replica_reads"] for r in rounds)
    samples: list[str] = []
    for raw in raws:
        merge_samples(samples, raw.error_samples)
    pooled = sorted(x * 1000.0 for raw in raws for x in raw.latencies)
    cpu = [v for r in rounds if (v := r.get("cpu_us_per_op")) is not None]
    return Cell(
        scenario=scenario,
        workload=workload,
        subject=subject,
        concurrency=concurrency,
        pool_size=pool_size,
        rounds=rounds,
        ops_per_s=_median(r["ops_per_s"] for r in rounds),
        p50_ms=_median(r["p50_ms"] for r in rounds),
        p95_ms=_median(r["p95_ms"] for r in rounds),
        p99_ms=_median(r["p99_ms"] for r in rounds),
        reads=reads,
        writes=sum(r["writes"] for r in rounds),
        replica_reads=replica_reads,
        offload=round(replica_reads / reads, 4) if reads else None,
        stale_reads=sum(r["stale_reads"] for r in rounds),
        fallbacks=sum(r["fallbacks"] for r in rounds),
        errors=sum(r["errors"] for r in rounds),
        error_samples=samples,
        latency_cdf=latency_cdf(pooled),
        cpu_us_per_op=round(statistics.median(cpu), 2) if cpu else None,
    )


def with_baseline(cells: list[Cell], baseline: str) -> None:
    """Set ``vs_baseline`` on every cell: its ops/s over the *baseline* subject's in the same
    (scenario, workload, concurrency); ``None`` where there is no such cell or it did 0."""
    reference = {
        (c["scenario"], c["workload"], c["concurrency"]): c["ops_per_s"]
        for c in cells
        if c["subject"] == baseline
    }
    for cell in cells:
        ref = reference.get((cell["scenario"], cell["workload"], cell["concurrency"]))
        cell["vs_baseline"] = round(cell["ops_per_s"] / ref, 4) if ref else None


def knee(points: Sequence[tuple[int, float]]) -> int | None:
    """The smallest pool size whose throughput reaches :data:`KNEE_SHARE` of the best;
    ``None`` without points or when nothing got through."""
    if not points:
        return None
    best = max(ops for _, ops in points)
    if best <= 0:
        return None
    return min(size for size, ops in points if ops >= KNEE_SHARE * best)


def pool_sweep(
    subject: str,
    workload: WorkloadName,
    concurrency: int,
    by_size: Mapping[int, Sequence[RawRound]],
) -> PoolSweep:
    """The sweep's points (medians over rounds; acquire wait per operation over all of
    them) and its knee."""
    points: list[PoolPoint] = []
    for size in sorted(by_size):
        raws = by_size[size]
        rounds = [to_round(r) for r in raws]
        ops = sum(r.ops for r in raws)
        wait = sum(r.acquire_wait for r in raws)
        points.append(
            PoolPoint(
                subject=subject,
                pool_size=size,
                concurrency=concurrency,
                ops_per_s=_median(r["ops_per_s"] for r in rounds),
                p99_ms=_median(r["p99_ms"] for r in rounds),
                acquire_wait_ms_per_op=round(wait * 1000.0 / ops, 4) if ops else 0.0,
            )
        )
    found = knee([(p["pool_size"], p["ops_per_s"]) for p in points])
    return PoolSweep(workload=workload, points=points, knee=found)
