"""Percentiles, CDF, summaries, fallbacks and the pool-sweep knee (no database)."""

from __future__ import annotations

import random
import statistics

import pytest

from router_bench._errors import describe_error, scrub
from router_bench._measure import (
    CDF_FRACTIONS,
    RawRound,
    cell_summary,
    fallbacks,
    knee,
    latency_cdf,
    merge_samples,
    percentile,
    pool_sweep,
    to_round,
    with_baseline,
)


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 25) == pytest.approx(1.75)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0
    rng = random.Random(3)
    sample = sorted(rng.expovariate(1.0) for _ in range(1001))
    assert percentile(sample, 50) == statistics.median(sample)
    with pytest.raises(ValueError, match="q must be within"):
        percentile(values, 101)


def test_cdf_has_at_most_100_points_rising_to_the_maximum() -> None:
    assert len(CDF_FRACTIONS) == 100
    values = sorted(float(i) for i in range(1, 1001))
    cdf = latency_cdf(values)
    assert len(cdf) == 100
    assert cdf[-1] == (1000.0, 1.0)
    assert cdf[0] == (10.0, 0.01)  # 10 of the 1000 values are <= 10
    assert [f for _, f in cdf] == sorted(f for _, f in cdf)
    assert [ms for ms, _ in cdf] == sorted(ms for ms, _ in cdf)
    for ms, fraction in cdf:
        assert sum(v <= ms for v in values) / len(values) >= fraction
    assert latency_cdf([]) == []
    assert latency_cdf([5.0]) == [(5.0, f) for f in CDF_FRACTIONS]


def _raw(latencies_ms: list[float], **counts: int) -> RawRound:
    raw = RawRound(seconds=2.0, latencies=[x / 1000 for x in latencies_ms])
    for name, value in counts.items():
        setattr(raw, name, value)
    return raw


def test_a_round_from_raw_measurements() -> None:
    raw = _raw([1.0, 2.0, 3.0, 4.0], reads=3, writes=1, replica_reads=2, errors=1)
    r = to_round(raw)
    assert r["ops"] == 4
    assert r["ops_per_s"] == 2.0
    assert r["p50_ms"] == 2.5
    assert (r["reads"], r["writes"], r["replica_reads"], r["errors"]) == (3, 1, 2, 1)
    empty = to_round(RawRound(seconds=1.0, errors=7))
    assert (empty["ops"], empty["ops_per_s"], empty["p99_ms"], empty["errors"]) == (0, 0.0, 0.0, 7)


def test_cell_summary_medians_rates_and_totals_counts() -> None:
    raws = [
        _raw([1.0] * 10, reads=8, writes=2, replica_reads=6, stale_reads=1, fallbacks=2),
        _raw([2.0] * 30, reads=20, writes=10, replica_reads=10),
        _raw([3.0] * 20, reads=20, writes=0, replica_reads=0, errors=3),
    ]
    raws[2].error_samples = ["OSError: a", "OSError: b"]
    raws[1].error_samples = ["OSError: a"]
    cell = cell_summary(
        scenario="no-lag",
        workload="mixed",
        subject="x",
        concurrency=8,
        pool_size=4,
        raws=raws,
    )
    assert cell["ops_per_s"] == 10.0  # median of 5, 15, 10
    assert cell["p50_ms"] == 2.0
    assert (cell["reads"], cell["writes"], cell["replica_reads"]) == (48, 12, 16)
    assert cell["offload"] == round(16 / 48, 4)
    assert (cell["stale_reads"], cell["fallbacks"], cell["errors"]) == (1, 2, 3)
    assert cell["error_samples"] == ["OSError: a", "OSError: b"]
    assert len(cell["rounds"]) == 3
    assert cell["latency_cdf"][-1] == (3.0, 1.0)
    assert (cell["concurrency"], cell["pool_size"]) == (8, 4)
    no_reads = cell_summary(
        scenario="no-lag", workload="mixed", subject="x", concurrency=1, pool_size=1, raws=[]
    )
    assert no_reads["offload"] is None
    assert no_reads["latency_cdf"] == []


def test_vs_baseline_is_per_scenario_workload_and_concurrency() -> None:
    def cell(subject: str, concurrency: int, ops: float) -> dict[str, object]:
        return {
            "scenario": "no-lag",
            "workload": "mixed",
            "subject": subject,
            "concurrency": concurrency,
            "ops_per_s": ops,
        }

    cells = [
        cell("raw-asyncpg", 8, 100.0),
        cell("a", 8, 150.0),
        cell("raw-asyncpg", 1, 0.0),
        cell("a", 1, 10.0),
        cell("a", 32, 5.0),
    ]
    with_baseline(cells, "raw-asyncpg")  # type: ignore[arg-type]
    assert [c["vs_baseline"] for c in cells] == [1.0, 1.5, None, None, None]


def test_fallbacks_count_only_reads_the_primary_served_for_want_of_a_replica() -> None:
    decisions = {
        "primary": {"classifier": 50, "consistency": 7, "lag-gate": 2, "fallback": 1, "retry": 4},
        "replica1": {"classifier": 90, "consistency": 3},
    }
    assert fallbacks(decisions, "primary") == 10
    assert fallbacks(decisions, None) == 0
    assert fallbacks({}, "primary") == 0


def test_knee_is_the_smallest_size_within_95_percent_of_the_best() -> None:
    assert knee([(2, 500.0), (4, 900.0), (8, 980.0), (16, 1000.0)]) == 8
    assert knee([(2, 1000.0), (4, 990.0)]) == 2
    assert knee([(16, 1000.0), (2, 960.0)]) == 2
    assert knee([]) is None
    assert knee([(2, 0.0), (4, 0.0)]) is None


def test_pool_sweep_points_and_acquire_wait_per_operation() -> None:
    small = _raw([1.0] * 100)
    small.acquire_wait = 0.05  # 50 ms over 100 operations
    big = _raw([1.0] * 200)
    sweep = pool_sweep("s", "mixed", 32, {4: [big], 2: [small]})
    assert [p["pool_size"] for p in sweep["points"]] == [2, 4]
    assert sweep["points"][0]["acquire_wait_ms_per_op"] == 0.5
    assert sweep["points"][1]["acquire_wait_ms_per_op"] == 0.0
    assert sweep["points"][1]["ops_per_s"] == 100.0
    assert sweep["knee"] == 4
    assert all(p["concurrency"] == 32 and p["subject"] == "s" for p in sweep["points"])


def test_merge_samples_keeps_five_distinct() -> None:
    into = ["a"]
    merge_samples(into, ["a", "b", "c", "b", "d", "e", "f"])
    assert into == ["a", "b", "c", "d", "e"]


def test_error_lines_never_hold_a_secret() -> None:
    exc = OSError("could not connect to postgresql://app:s3cr3t@db:5432/x\n  retrying")
    line = describe_error(exc, ["s3cr3t", None, ""])
    assert line == "OSError: could not connect to postgresql://app:***@db:5432/x retrying"
    assert scrub("nothing here", ["s3cr3t"]) == "nothing here"
    assert describe_error(TimeoutError()) == "TimeoutError"
    long = describe_error(ValueError("x" * 500))
    assert len(long) <= len("ValueError: ") + 200


def test_cpu_per_operation_per_round_and_its_median_per_cell() -> None:
    raws = [_raw([1.0] * 10, reads=10), _raw([1.0] * 20, reads=20), _raw([1.0] * 5, reads=5)]
    raws[0].cpu_seconds = 0.001  # 100 us per op
    raws[1].cpu_seconds = 0.006  # 300 us
    raws[2].cpu_seconds = 0.001  # 200 us
    assert [to_round(r)["cpu_us_per_op"] for r in raws] == [100.0, 300.0, 200.0]
    cell = cell_summary(
        scenario="no-lag", workload="read-only", subject="s", concurrency=1, pool_size=1, raws=raws
    )
    assert cell["cpu_us_per_op"] == 200.0
    # Not measured, or nothing done: no figure rather than a made-up one.
    assert to_round(_raw([1.0], reads=1))["cpu_us_per_op"] is None
    assert to_round(RawRound(seconds=1.0, cpu_seconds=0.5))["cpu_us_per_op"] is None
    none = cell_summary(
        scenario="no-lag",
        workload="read-only",
        subject="s",
        concurrency=1,
        pool_size=1,
        raws=[RawRound(seconds=1.0, errors=1)],
    )
    assert none["cpu_us_per_op"] is None
