"""The terminal table of a ``router bench`` result, and the views the HTML report shares with it.

Pure functions of a :class:`~router_bench._schema.BenchResult`: one table per
(scenario, workload, concurrency) with a row per subject, then the pool sweep with its knee
marked, then the errors seen and the notes. Subject names, notes and error samples are printed
as plain text, never interpreted as rich markup.
"""

from __future__ import annotations

import io
import math
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from router_bench._schema import SCENARIOS, WORKLOADS, BenchResult, Cell, PoolSweep

__all__ = [
    "BASELINE",
    "CELL_COLUMNS",
    "KNEE_MARK",
    "SWEEP_COLUMNS",
    "TIMES",
    "CellTable",
    "baseline_ratio",
    "cell_row",
    "cell_tables",
    "error_groups",
    "fmt_count",
    "fmt_cpu",
    "fmt_ms",
    "fmt_offload",
    "fmt_rate",
    "fmt_ratio",
    "render_table",
    "subject_order",
    "summary_lines",
    "sweep_rows",
    "sweep_title",
]

BASELINE: Final = "raw-asyncpg"
"""The subject every other one is compared with (``vs raw-asyncpg``)."""

KNEE_MARK: Final = "◀ knee"
DASH: Final = "—"
TIMES: Final = "\u00d7"  # the multiplication sign (a literal one trips ruff RUF001)

CELL_COLUMNS: Final = (
    "subject",
    "ops/s",
    "vs raw-asyncpg",
    "CPU \u00b5s/op",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "offload %",
    "stale reads",
    "fallbacks",
    "errors",
)
SWEEP_COLUMNS: Final = (
    "subject",
    "pool size",
    "concurrency",
    "ops/s",
    "p99 ms",
    "acquire wait ms/op",
    "",
)
# Terminal headers break after the first word so that numeric columns stay narrow.
_SHORT_HEADERS: Final = {
    "vs raw-asyncpg": "vs\nraw-asyncpg",
    "CPU \u00b5s/op": "CPU\n\u00b5s/op",
    "p50 ms": "p50\nms",
    "p95 ms": "p95\nms",
    "p99 ms": "p99\nms",
    "offload %": "offload\n%",
    "stale reads": "stale\nreads",
    "pool size": "pool\nsize",
    "acquire wait ms/op": "acquire wait\nms/op",
}
_ERROR_PLACES: Final = 4


# -- formatting (None, NaN and infinities print as a dash) -------------------------------------


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value


def fmt_rate(value: float | None) -> str:
    v = _finite(value)
    return DASH if v is None else f"{v:,.0f}"


def fmt_ratio(value: float | None) -> str:
    v = _finite(value)
    return DASH if v is None else f"{v:.2f}{TIMES}"


def fmt_ms(value: float | None) -> str:
    v = _finite(value)
    if v is None:
        return DASH
    if abs(v) < 10:
        return f"{v:.2f}"
    if abs(v) < 1000:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def fmt_offload(value: float | None) -> str:
    v = _finite(value)
    return DASH if v is None else f"{v * 100:.1f}"


def fmt_cpu(value: float | None) -> str:
    """Client CPU microseconds per operation (absent in results of older benches)."""
    v = _finite(value)
    return DASH if v is None else f"{v:,.0f}"


def fmt_count(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


# -- views ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CellTable:
    """The cells of one (scenario, workload, concurrency), in subject order."""

    scenario: str
    workload: str
    concurrency: int
    cells: tuple[Cell, ...]

    @property
    def title(self) -> str:
        pools = sorted({c["pool_size"] for c in self.cells})
        pool = f"pool {pools[0]}" if len(pools) == 1 else "pools " + "/".join(map(str, pools))
        return f"{self.scenario} · {self.workload} · concurrency {self.concurrency} · {pool}"


def _order(values: Iterable[str], known: Sequence[str]) -> list[str]:
    """*values* deduplicated, those in *known* first in its order, then the rest as they came."""
    seen = list(dict.fromkeys(values))
    rank = {name: i for i, name in enumerate(known)}
    return sorted(seen, key=lambda v: (rank.get(v, len(rank)), seen.index(v)))


def subject_order(result: BenchResult) -> list[str]:
    """Subject names: the result's own order, then any named only by a cell."""
    declared = [s["name"] for s in result["subjects"]]
    return _order([*declared, *(c["subject"] for c in result["cells"])], declared)


def cell_tables(result: BenchResult) -> list[CellTable]:
    """Group the cells by (scenario, workload, concurrency): scenarios and workloads in their
    canonical order, concurrency ascending, subjects in the result's order."""
    cells = result["cells"]
    subjects = {name: i for i, name in enumerate(subject_order(result))}
    scenarios = _order((c["scenario"] for c in cells), SCENARIOS)
    workloads = _order((c["workload"] for c in cells), WORKLOADS)
    tables: list[CellTable] = []
    for scenario in scenarios:
        for workload in workloads:
            here = [c for c in cells if c["scenario"] == scenario and c["workload"] == workload]
            for concurrency in sorted({c["concurrency"] for c in here}):
                group = sorted(
                    (c for c in here if c["concurrency"] == concurrency),
                    key=lambda c: subjects[c["subject"]],
                )
                tables.append(CellTable(scenario, workload, concurrency, tuple(group)))
    return tables


def baseline_ratio(result: BenchResult, cell: Cell) -> float | None:
    """``vs_baseline`` when the runner set it, else ops/s over the raw-asyncpg cell's (same
    scenario, workload and concurrency); None without a usable baseline."""
    if "vs_baseline" in cell:
        return cell["vs_baseline"]
    for other in result["cells"]:
        if (
            other["subject"] == BASELINE
            and other["scenario"] == cell["scenario"]
            and other["workload"] == cell["workload"]
            and other["concurrency"] == cell["concurrency"]
        ):
            base = _finite(other["ops_per_s"])
            own = _finite(cell["ops_per_s"])
            if base is None or own is None or base <= 0:
                return None
            return own / base
    return None


def cell_row(result: BenchResult, cell: Cell) -> tuple[str, ...]:
    """One table row, formatted, in :data:`CELL_COLUMNS` order."""
    return (
        cell["subject"],
        fmt_rate(cell["ops_per_s"]),
        fmt_ratio(baseline_ratio(result, cell)),
        fmt_cpu(cell.get("cpu_us_per_op")),
        fmt_ms(cell["p50_ms"]),
        fmt_ms(cell["p95_ms"]),
        fmt_ms(cell["p99_ms"]),
        fmt_offload(cell["offload"]),
        fmt_count(cell["stale_reads"]),
        fmt_count(cell["fallbacks"]),
        fmt_count(cell["errors"]),
    )


def sweep_title(sweep: PoolSweep) -> str:
    knee = sweep["knee"]
    where = f"pool {knee}" if knee is not None else "none found"
    return (
        f"pool sweep · {sweep['workload']} · knee: {where} "
        "(the smallest pool reaching 95 % of the best throughput)"
    )


def sweep_rows(sweep: PoolSweep, subjects: Sequence[str]) -> list[tuple[tuple[str, ...], bool]]:
    """Rows in :data:`SWEEP_COLUMNS` order, by subject then pool size; True marks the knee."""
    rank = {name: i for i, name in enumerate(subjects)}
    points = sorted(
        sweep["points"], key=lambda p: (rank.get(p["subject"], len(rank)), p["pool_size"])
    )
    rows: list[tuple[tuple[str, ...], bool]] = []
    for p in points:
        knee = p["pool_size"] == sweep["knee"]
        rows.append(
            (
                (
                    p["subject"],
                    str(p["pool_size"]),
                    str(p["concurrency"]),
                    fmt_rate(p["ops_per_s"]),
                    fmt_ms(p["p99_ms"]),
                    fmt_ms(p["acquire_wait_ms_per_op"]),
                    KNEE_MARK if knee else "",
                ),
                knee,
            )
        )
    return rows


def error_groups(result: BenchResult) -> list[tuple[str, list[str]]]:
    """Each distinct error sample, with the cells it was seen in (table order)."""
    groups: dict[str, list[str]] = {}
    for table in cell_tables(result):
        for cell in table.cells:
            where = (
                f"{table.scenario} · {table.workload} · concurrency {table.concurrency} · "
                f"{cell['subject']} ({fmt_count(cell['errors'])} errors)"
            )
            for sample in cell["error_samples"]:
                groups.setdefault(sample, []).append(where)
    return list(groups.items())


def summary_lines(result: BenchResult) -> list[str]:
    """What ran, where and for how long: a few lines for a header."""
    env, st = result["environment"], result["settings"]
    nodes = ", ".join(f"{n['name']} ({n['role']}, {n['address']})" for n in env["nodes"])
    cluster = "a local cluster the bench started" if env["embedded"] else "given cluster"
    pool = "one connection per worker" if st["pool_size"] is None else f"pool {st['pool_size']}"
    pgpool = f", pgpool-II {env['pgpool']}" if env["pgpool"] else ""
    return [
        f"router bench {result['started_at']} → {result['finished_at']}"
        + (" (quick)" if st["quick"] else ""),
        f"{cluster}: {nodes}",
        f"PostgreSQL {env['postgres']}, router {env['router']}, Python {env['python']}{pgpool}, "
        f"{env['cpus']} CPUs, {env['platform']}",
        f"{st['rounds']} round(s) of {st['duration']:g} s per subject after {st['warmup']:g} s "
        f"warmup, {st['rows']:,} rows, concurrency {', '.join(map(str, st['concurrency']))}, "
        f"{pool}",
    ]


# -- terminal ------------------------------------------------------------------------------------


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(
        title=Text(title),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
    )
    for i, name in enumerate(columns):
        header = Text(_SHORT_HEADERS.get(name, name))
        if i == 0:
            table.add_column(header, overflow="fold")
        else:
            table.add_column(header, justify="right", no_wrap=True)
    return table


def render_table(result: BenchResult, *, width: int | None = None) -> str:
    """The result as plain terminal text (no colour codes): a header, one table per
    (scenario, workload) and concurrency, the pool sweep with its knee marked, the errors seen,
    then the notes. *width* defaults to the terminal's (at least 80 columns)."""
    if width is None:
        width = max(80, shutil.get_terminal_size((120, 24)).columns)
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        color_system=None,
        force_terminal=False,
        no_color=True,
        highlight=False,
        emoji=False,
        markup=False,
    )
    for line in summary_lines(result):
        console.print(Text(line))
    for group in cell_tables(result):
        table = _table(group.title, CELL_COLUMNS)
        for cell in group.cells:
            table.add_row(*(Text(v) for v in cell_row(result, cell)))
        console.print()
        console.print(table)
    sweep = result["pool_sweep"]
    if sweep is not None and sweep["points"]:
        table = _table(sweep_title(sweep), SWEEP_COLUMNS)
        for values, _knee in sweep_rows(sweep, subject_order(result)):
            table.add_row(*(Text(v) for v in values))
        console.print()
        console.print(table)
    errors = error_groups(result)
    if errors:
        console.print()
        console.print(Text("Errors:"))
        for sample, where in errors:
            shown = "; ".join(where[:_ERROR_PLACES])
            more = f"; and {len(where) - _ERROR_PLACES} more" if len(where) > _ERROR_PLACES else ""
            console.print(Text(f"  - {sample}"))
            console.print(Text(f"    in {len(where)} cell(s): {shown}{more}"))
    if result["notes"]:
        console.print()
        console.print(Text("Notes:"))
        for note in result["notes"]:
            console.print(Text(f"  - {note}"))
    return out.getvalue()
