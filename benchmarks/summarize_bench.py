"""The headline figures of a ``router bench`` result, as Markdown for RESULTS.md.

    .venv/bin/python benchmarks/summarize_bench.py benchmarks/results/bench/bench.json

Prints, from the JSON alone: routed vs raw asyncpg and vs pgpool-II (no lag, mixed workload,
every concurrency), offload share and fallbacks per subject (no lag), stale reads and offload
per consistency level under replay delay (``ryw`` workload), what the fault scenarios cost,
and the pool-size sweep.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from router_bench._output import read_result
from router_bench._schema import BenchResult, Cell

FOCUS = (
    "async/round-robin/read_your_writes",
    "async/round-robin/bounded",
    "async/round-robin/eventual",
    "async/least-outstanding/read_your_writes",
    "sync/round-robin/read_your_writes",
    "sqlalchemy/round-robin/read_your_writes",
    "naive-split",
    "pgpool",
    "raw-asyncpg",
)


def _cells(result: BenchResult, scenario: str, workload: str) -> list[Cell]:
    return [c for c in result["cells"] if c["scenario"] == scenario and c["workload"] == workload]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "—"


def throughput(result: BenchResult) -> Iterable[str]:
    cells = _cells(result, "no-lag", "mixed")
    levels = sorted({c["concurrency"] for c in cells})
    by = {(c["subject"], c["concurrency"]): c for c in cells}
    head = " | ".join(f"c={n} ops/s · vs raw · vs pgpool" for n in levels)
    yield f"| subject | {head} |"
    yield "|---|" + "---|" * len(levels)
    for subject in FOCUS:
        parts = []
        for n in levels:
            cell, raw, pgpool = (
                by.get((subject, n)),
                by.get(("raw-asyncpg", n)),
                by.get(("pgpool", n)),
            )
            if cell is None:
                parts.append("—")
                continue
            ops = cell["ops_per_s"]
            vs_raw = _ratio(ops, raw["ops_per_s"]) if raw else "—"
            vs_pgpool = _ratio(ops, pgpool["ops_per_s"]) if pgpool else "—"
            parts.append(f"{ops:,.0f} · {vs_raw} · {vs_pgpool}")
        yield f"| `{subject}` | " + " | ".join(parts) + " |"


def async_spread(result: BenchResult) -> Iterable[str]:
    """Routed async subjects vs raw asyncpg, no lag, per workload: median and range."""
    yield "| workload (no lag, c=8) | async router subjects vs raw asyncpg: median (min-max) |"
    yield "|---|---|"
    for workload in ("mixed", "read-only", "write-heavy", "ryw"):
        cells = [c for c in _cells(result, "no-lag", workload) if c["concurrency"] == 8]
        raw = next((c for c in cells if c["subject"] == "raw-asyncpg"), None)
        if raw is None:
            continue
        ratios = [
            c["ops_per_s"] / raw["ops_per_s"] for c in cells if c["subject"].startswith("async/")
        ]
        if ratios:
            yield (
                f"| {workload} | {statistics.median(ratios):.2f}x "
                f"({min(ratios):.2f}-{max(ratios):.2f}x) |"
            )


def under_lag(result: BenchResult) -> Iterable[str]:
    """Stale reads and offload per consistency level (async subjects, summed over policies)
    and per baseline, in the ``ryw`` workload, per scenario."""
    scenarios = list(result["settings"]["scenarios"])
    yield "| scenario (ryw) | subject | reads | offload | stale reads | fallbacks | errors |"
    yield "|---|---|---:|---:|---:|---:|---:|"
    for scenario in scenarios:
        groups: dict[str, list[Cell]] = defaultdict(list)
        for c in _cells(result, scenario, "ryw"):
            name = c["subject"]
            if name.endswith("+wait"):  # a ryw_wait subject: one of a kind, on its own line
                groups[name].append(c)
            elif name.startswith("async/") and not name.startswith("async/primary-only/"):
                groups["async, " + name.rsplit("/", 1)[1]].append(c)
            elif not name.startswith(("async/", "sync/", "sqlalchemy/")):
                groups[name].append(c)
        for key, cells in sorted(groups.items()):
            label = key
            if key.startswith("async, "):
                policies = {c["subject"].split("/")[1] for c in cells}
                label += f" ({len(policies)} {'policy' if len(policies) == 1 else 'policies'})"
            reads = sum(c["reads"] for c in cells)
            offload = sum(c["replica_reads"] for c in cells) / reads if reads else None
            stale = sum(c["stale_reads"] for c in cells)
            fallbacks = sum(c["fallbacks"] for c in cells)
            errors = sum(c["errors"] for c in cells)
            yield (
                f"| {scenario} | {label} | {reads:,} | {_pct(offload)} | {stale:,} "
                f"| {fallbacks:,} | {errors:,} |"
            )


def offload(result: BenchResult) -> Iterable[str]:
    yield "| subject (no lag, c=8) | mixed: offload, fallbacks | ryw: offload, stale, fallbacks |"
    yield "|---|---|---|"
    mixed = {c["subject"]: c for c in _cells(result, "no-lag", "mixed") if c["concurrency"] == 8}
    ryw = {c["subject"]: c for c in _cells(result, "no-lag", "ryw")}
    for subject in FOCUS:
        m, r = mixed.get(subject), ryw.get(subject)
        left = f"{_pct(m['offload'])} · {m['fallbacks']:,}" if m else "—"
        right = f"{_pct(r['offload'])} · {r['stale_reads']:,} · {r['fallbacks']:,}" if r else "—"
        yield f"| `{subject}` | {left} | {right} |"


def sweep(result: BenchResult) -> Iterable[str]:
    data = result["pool_sweep"]
    if data is None:
        return
    yield f"Pool sweep ({data['workload']}, knee at {data['knee']}):"
    yield ""
    yield "| pool size | concurrency | ops/s | p99 ms | acquire wait ms/op |"
    yield "|---:|---:|---:|---:|---:|"
    for p in data["points"]:
        yield (
            f"| {p['pool_size']} | {p['concurrency']} | {p['ops_per_s']:,.0f} "
            f"| {p['p99_ms']:.2f} | {p['acquire_wait_ms_per_op']:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path)
    result = read_result(parser.parse_args().json)
    for section in (throughput, async_spread, offload, under_lag, sweep):
        for line in section(result):
            print(line)
        print()


if __name__ == "__main__":
    main()
