"""Markdown tables of a ``router bench --plan prepared`` result (its ``bench.json``).

    .venv/bin/python benchmarks/summarize_prepared.py benchmarks/results/prepared/bench.json

One table per (workload, concurrency): every subject's ops/s, its ratio to its own driver's
bare pool with the statement cache on (``raw-asyncpg`` for asyncpg subjects, ``raw-psycopg``
for psycopg ones) and to its API's router in the default configuration, all measured in the
same cell of the same run; client CPU per operation and the median latency.
"""

from __future__ import annotations

import sys
from pathlib import Path

from router_bench._output import read_result
from router_bench._schema import Cell


def _driver(subject: str) -> str:
    name = subject.rsplit(":", 1)[-1]  # pgbouncer-<mode>:<api>/...
    return "psycopg" if name.startswith(("sync/", "raw-psycopg")) else "asyncpg"


def _ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.2f}" if reference else "-"


def main(path: str) -> None:
    result = read_result(Path(path))
    cells: dict[tuple[str, int], dict[str, Cell]] = {}
    for entry in result["cells"]:
        cells.setdefault((entry["workload"], entry["concurrency"]), {})[entry["subject"]] = entry
    order = [s["name"] for s in result["subjects"]]
    print(f"`{result['command']}` ({result['started_at']} to {result['finished_at']})\n")
    for (workload, concurrency), by_name in sorted(cells.items()):
        raw = {d: by_name.get(f"raw-{d}") for d in ("asyncpg", "psycopg")}
        router = {
            "asyncpg": by_name.get("async/round-robin/read_your_writes"),
            "psycopg": by_name.get("sync/round-robin/read_your_writes"),
        }
        print(f"**{workload}, c={concurrency}**\n")
        print("| subject | ops/s | vs raw (cache on) | vs router default | CPU µs/op | p50 ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for name in order:
            cell = by_name.get(name)
            if cell is None:
                continue
            driver = _driver(name)
            base = raw[driver]
            default = router[driver] if not name.startswith("raw-") else None
            cpu = cell.get("cpu_us_per_op")
            errors = f" ({cell['errors']} errors)" if cell["errors"] else ""
            print(
                f"| `{name}`{errors} | {cell['ops_per_s']:,.0f} "
                f"| {_ratio(cell['ops_per_s'], base['ops_per_s'] if base else None)} "
                f"| {_ratio(cell['ops_per_s'], default['ops_per_s'] if default else None)} "
                f"| {'-' if cpu is None else f'{cpu:,.0f}'} | {cell['p50_ms']:.2f} |"
            )
        print()


if __name__ == "__main__":
    main(sys.argv[1])
