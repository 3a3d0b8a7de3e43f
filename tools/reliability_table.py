"""Build the tables of ``docs/reliability.md`` from the fault suite's figures.

``tests/faults/test_load_faults.py`` appends one JSON line per scenario it runs to the file
named by ``ROUTER_RELIABILITY_REPORT``. This script turns such a file into markdown::

    python tools/reliability_table.py REPORT.jsonl                 # print the tables
    python tools/reliability_table.py REPORT.jsonl --write docs/reliability.md
    python tools/reliability_table.py --run --write docs/reliability.md   # run, then write

``--run`` runs the load scenarios first (``pytest tests/faults/test_load_faults.py``) with the
report in a temporary file. ``--write`` replaces what stands between the
``<!-- reliability-table:start -->`` and ``<!-- reliability-table:end -->`` markers of the file.
When a scenario appears more than once, its last record counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "read_report", "render"]

START = "<!-- reliability-table:start -->"
END = "<!-- reliability-table:end -->"
ROOT = Path(__file__).resolve().parent.parent


def read_report(path: Path) -> list[dict[str, Any]]:
    """The records of *path*, one per scenario (the last one), in order of first appearance."""
    records: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            records[record["scenario"]] = record
    return list(records.values())


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _errors(errors: dict[str, int]) -> str:
    if not errors:
        return "none"
    return ", ".join(f"{kind} x {n}" for kind, n in sorted(errors.items(), key=lambda e: -e[1]))


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render(records: list[dict[str, Any]]) -> str:
    """Two markdown tables (load and errors; recovery and invariants) and a line saying
    where and when the figures were taken."""
    load = _table(
        [
            "Scenario",
            "Fault",
            "Ops (ops/s)",
            "Acked writes",
            "Reads on replicas",
            "Errors seen by the app",
            "Reads failed outside tx",
            "Retries",
            "Fallbacks",
            "RYW reads sent to primary",
        ],
        (
            [
                f"`{r['scenario']}`",
                r["what"],
                f"{r['ops']} ({_num(r['ops_per_s'])})",
                _num(r["acknowledged_writes"]),
                f"{round(100 * r['replica_read_share'])} %" if r["replica_read_share"] else "-",
                _errors(r["errors"]),
                _num(r["read_errors_outside_tx"]),
                _num(r["retries"]),
                _num(r["fallbacks"]),
                _num(r["ryw_on_primary"]),
            ]
            for r in records
        ),
    )
    recovery = _table(
        [
            "Scenario",
            "Marked down (s)",
            "Re-admitted (s)",
            "Write outage (s)",
            "First refusal (s)",
            "Slowest refusal (s)",
            "First write after undo (s)",
            "Reads during fault p99 / max (s)",
            "Stale reads",
            "Lost writes",
            "Hung calls",
        ],
        (
            [
                f"`{r['scenario']}`",
                _num(r["mark_down_s"]),
                _num(r["readmit_s"]),
                _num(r["write_outage_s"]),
                _num(r["first_refusal_s"]),
                _num(r["refusal_max_s"], 3),
                _num(r["first_write_after_heal_s"]),
                f"{_num(r['fault_read_p99_s'])} / {_num(r['fault_read_max_s'])}",
                _num(r["stale"]),
                _num(r["lost"]),
                _num(r["hung"]),
            ]
            for r in records
        ),
    )
    loads = [x for r in records for x in r.get("loadavg", [])]
    cores = {r.get("cores") for r in records}
    when = records[-1].get("date", "?") if records else "?"
    machine = (
        f"Measured {when} on a {'/'.join(str(c) for c in sorted(cores, key=str))}-core machine;"
        f" 1-minute load average {min(loads, default=0):.1f}-{max(loads, default=0):.1f}"
        " during the runs."
    )
    return "\n".join([*load, "", *recovery, "", machine])


def _replace_between_markers(doc: Path, text: str) -> None:
    content = doc.read_text()
    try:
        head, rest = content.split(START, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        raise SystemExit(f"{doc}: no {START} ... {END} markers") from None
    doc.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def _run_suite(report: Path, pytest_args: Sequence[str]) -> int:
    env = {**os.environ, "ROUTER_RELIABILITY_REPORT": str(report)}
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "tests/faults/test_load_faults.py",
        "-m",
        "faults",
        "-q",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    ]
    return subprocess.run(argv, cwd=ROOT, env=env, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", nargs="?", type=Path, help="the JSON-lines report")
    parser.add_argument("--run", action="store_true", help="run the load scenarios first")
    parser.add_argument("--write", type=Path, help="replace the table in this markdown file")
    parser.add_argument("pytest_args", nargs="*", help="after --: more arguments for pytest")
    args = parser.parse_args(argv)
    if args.run:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "reliability.jsonl"
            code = _run_suite(report, args.pytest_args)
            if not report.exists():
                print("the suite wrote no figures", file=sys.stderr)
                return code or 1
            records = read_report(report)
            if args.report is not None:
                args.report.write_text(report.read_text())
    elif args.report is None:
        parser.error("give a report file, or --run")
    else:
        code = 0
        records = read_report(args.report)
    text = render(records)
    if args.write is not None:
        _replace_between_markers(args.write, text)
        print(f"{args.write}: table of {len(records)} scenarios written")
    else:
        print(text)
    if code:
        print(f"(the suite exited with {code}: see its output)", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
