"""The PNG charts of a ``router bench`` result (matplotlib's Agg canvas, no display, no pyplot).

Each chart is drawn only when the result holds its data; none is ever written empty:

- ``throughput-vs-concurrency.png``: ops/s against concurrency for the ``mixed`` workload in the
  ``no-lag`` scenario, one line per subject, a panel per API, the baselines in every panel.
  A run with one concurrency level only (``--quick``) gets ``throughput-by-subject.png`` instead:
  one horizontal bar per subject.
- ``latency-cdf-<workload>.png``: per workload, in ``no-lag`` at its highest concurrency, the
  latency CDF of every subject (log x), a panel per API.
- ``offload-vs-stale.png``: for ``ryw`` under ``delay-0.2s`` / ``delay-1s`` (at the highest
  concurrency run there), the share of reads served by replicas against the stale reads, one
  numbered marker per subject, the numbers keyed in the legend.
- ``pool-sweep.png``: throughput and pool acquire wait against pool size, the knee marked.

Many subjects (~60) stay legible: colour says the consistency level (baselines have their own
colours), line style and marker say the policy, panels split the APIs, and legends sit outside
the axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from router_bench._schema import WORKLOADS, BenchResult, Cell, PoolSweep, Subject
from router_bench._table import subject_order

__all__ = [
    "BASELINE_COLOURS",
    "CONSISTENCY_COLOURS",
    "plot_caption",
    "write_plots",
]

DPI: Final = 100
WIDTH_IN: Final = 11.0  # 1100 px: fits the report's column at natural size

CONSISTENCY_COLOURS: Final[dict[str, str]] = {
    "strong": "#1f77b4",  # blue
    "read_your_writes": "#2ca02c",  # green
    "read_your_writes + ryw_wait": "#005a1e",  # dark green
    "bounded": "#ff7f0e",  # orange
    "eventual": "#9467bd",  # purple
}
BASELINE_COLOURS: Final[dict[str, str]] = {
    "raw-asyncpg": "#000000",
    "naive-split": "#7f7f7f",
    "pgpool": "#d62728",  # red
}
_OTHER_COLOURS: Final = ("#8c564b", "#e377c2", "#bcbd22", "#17becf")
_UNKNOWN_CONSISTENCY: Final = "#17becf"


def _colour_key(subject: Subject) -> str:
    """The consistency a colour stands for (a subject waiting on replicas for its own writes
    has a shade of its own)."""
    consistency = subject["consistency"] or ""
    return f"{consistency} + ryw_wait" if subject.get("ryw_wait") else consistency


# (marker, dash pattern) per policy; a pattern is matplotlib's (offset, on-off sequence).
_Dashes = tuple[float, tuple[float, ...]]
_POLICY_STYLES: Final[dict[str, tuple[str, _Dashes]]] = {
    "primary-only": ("s", (0, (1, 1.5))),
    "round-robin": ("o", (0, ())),
    "random": ("^", (0, (5, 2))),
    "least-outstanding": ("D", (0, (6, 2, 1, 2))),
    "latency": ("v", (0, (2, 1, 2, 1, 6, 1))),
}
_UNKNOWN_POLICY: Final[tuple[str, _Dashes]] = ("x", (0, ()))
_API_MARKERS: Final[dict[str, str]] = {"async": "o", "sync": "s", "sqlalchemy": "^"}
_BASELINE_MARKER: Final = "*"

_CAPTIONS: Final[dict[str, str]] = {
    "throughput-vs-concurrency": (
        "Throughput against concurrency: workload mixed, scenario no-lag "
        "(a panel per API; the baselines in every panel)"
    ),
    "throughput-by-subject": (
        "Throughput per subject: workload mixed, scenario no-lag (one concurrency level only)"
    ),
    "offload-vs-stale": (
        "Offload against stale reads under replica delay: workload ryw (numbers key the subjects)"
    ),
    "pool-sweep": "Pool sweep: throughput and acquire wait against pool size, the knee marked",
}


def plot_caption(path: Path) -> str:
    """A one-line caption for a chart written by :func:`write_plots`, from its file name."""
    stem = path.stem
    if stem.startswith("latency-cdf-"):
        workload = stem.removeprefix("latency-cdf-")
        return (
            f"Latency CDF: workload {workload}, scenario no-lag, highest concurrency "
            "(a panel per API; log scale)"
        )
    return _CAPTIONS.get(stem, stem)


# -- styling -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Style:
    colour: str
    marker: str
    dashes: _Dashes
    width: float


def _styles(result: BenchResult) -> dict[str, _Style]:
    subjects = {s["name"]: s for s in result["subjects"]}
    styles: dict[str, _Style] = {}
    others = 0
    for name in subject_order(result):
        subject = subjects.get(name)
        if subject is None or subject["kind"] == "baseline":
            colour = BASELINE_COLOURS.get(name)
            if colour is None:
                colour = _OTHER_COLOURS[others % len(_OTHER_COLOURS)]
                others += 1
            styles[name] = _Style(colour, _BASELINE_MARKER, (0, ()), 2.4)
        else:
            marker, dashes = _POLICY_STYLES.get(subject["policy"] or "", _UNKNOWN_POLICY)
            colour = CONSISTENCY_COLOURS.get(_colour_key(subject), _UNKNOWN_CONSISTENCY)
            styles[name] = _Style(colour, marker, dashes, 1.5)
    return styles


def _is_baseline(subjects: dict[str, Subject], name: str) -> bool:
    subject = subjects.get(name)
    return subject is None or subject["kind"] == "baseline"


def _panels(result: BenchResult, names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(title, subject names) per API among *names*; baselines join every panel."""
    subjects = {s["name"]: s for s in result["subjects"]}
    baselines = [n for n in names if _is_baseline(subjects, n)]
    apis: dict[str, list[str]] = {}
    for name in names:
        if not _is_baseline(subjects, name):
            apis.setdefault(subjects[name]["api"] or "router", []).append(name)
    if not apis:
        return [("baselines", baselines)]
    return [(f"{api} API", [*baselines, *members]) for api, members in apis.items()]


def _legend(fig: Figure, result: BenchResult, names: Sequence[str]) -> None:
    """A key below the panels: colours for consistency, styles for policy, then the baselines."""
    subjects = {s["name"]: s for s in result["subjects"]}
    styles = _styles(result)
    handles: list[Line2D] = []
    consistencies = {_colour_key(subjects[n]) for n in names if not _is_baseline(subjects, n)}
    policies = {subjects[n]["policy"] for n in names if not _is_baseline(subjects, n)}
    for consistency, colour in CONSISTENCY_COLOURS.items():
        if consistency in consistencies:
            handles.append(Line2D([], [], color=colour, linewidth=3, label=consistency))
    for policy, (marker, dashes) in _POLICY_STYLES.items():
        if policy in policies:
            handles.append(
                Line2D([], [], color="0.35", marker=marker, linestyle=dashes, label=policy)
            )
    handles.extend(
        Line2D(
            [],
            [],
            color=styles[n].colour,
            marker=_BASELINE_MARKER,
            markersize=9,
            linewidth=2.4,
            label=n,
        )
        for n in names
        if _is_baseline(subjects, n)
    )
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(6, max(1, len(handles))),
        title="colour: consistency · line and marker: policy · stars: baselines",
        fontsize="small",
        title_fontsize="small",
        frameon=False,
    )


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


# -- charts --------------------------------------------------------------------------------------


def _mixed_no_lag(result: BenchResult) -> list[Cell]:
    return [
        c
        for c in result["cells"]
        if c["workload"] == "mixed" and c["scenario"] == "no-lag" and _finite(c["ops_per_s"])
    ]


def _throughput_lines(result: BenchResult, cells: list[Cell]) -> Figure:
    levels = sorted({c["concurrency"] for c in cells})
    names = [n for n in subject_order(result) if any(c["subject"] == n for c in cells)]
    panels = _panels(result, names)
    styles = _styles(result)
    fig = _figure(WIDTH_IN, 4.6)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (title, members) in zip(axes, panels, strict=True):
        for name in members:
            points = sorted(
                (c["concurrency"], c["ops_per_s"]) for c in cells if c["subject"] == name
            )
            style = styles[name]
            ax.plot(
                [x for x, _ in points],
                [y for _, y in points],
                color=style.colour,
                marker=style.marker,
                linestyle=style.dashes,
                linewidth=style.width,
                markersize=5,
                label=name,
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(level) for level in levels])
        ax.minorticks_off()
        ax.set_title(title)
        ax.set_xlabel("concurrency (clients)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ops/s")
    _legend(fig, result, names)
    return fig


def _throughput_bars(result: BenchResult, cells: list[Cell]) -> Figure:
    level = cells[0]["concurrency"]
    by_name = {c["subject"]: c for c in cells}
    names = [n for n in subject_order(result) if n in by_name]
    styles = _styles(result)
    fig = _figure(WIDTH_IN, 1.4 + 0.24 * len(names))
    ax = fig.subplots()
    values = [by_name[n]["ops_per_s"] for n in names]
    positions = list(range(len(names)))
    ax.barh(positions, values, color=[styles[n].colour for n in names], height=0.7)
    ax.set_yticks(positions, names, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel(f"ops/s (workload mixed, scenario no-lag, concurrency {level})")
    ax.grid(axis="x", alpha=0.3)
    for pos, value in zip(positions, values, strict=True):
        ax.annotate(
            f"{value:,.0f}",
            (value, pos),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize="x-small",
        )
    ax.margins(x=0.12)
    return fig


def _throughput(result: BenchResult) -> tuple[str, Figure] | None:
    cells = _mixed_no_lag(result)
    if not cells:
        return None
    levels = {c["concurrency"] for c in cells}
    if len(levels) >= 2:
        return "throughput-vs-concurrency", _throughput_lines(result, cells)
    return "throughput-by-subject", _throughput_bars(result, cells)


def _latency_cdfs(result: BenchResult) -> list[tuple[str, Figure]]:
    styles = _styles(result)
    out: list[tuple[str, Figure]] = []
    workloads = [w for w in WORKLOADS if any(c["workload"] == w for c in result["cells"])]
    for workload in workloads:
        here = [
            c
            for c in result["cells"]
            if c["workload"] == workload and c["scenario"] == "no-lag" and c["latency_cdf"]
        ]
        if not here:
            continue
        top = max(c["concurrency"] for c in here)
        curves = {
            c["subject"]: [(ms, q) for ms, q in c["latency_cdf"] if _finite(ms) and ms > 0]
            for c in here
            if c["concurrency"] == top
        }
        curves = {name: points for name, points in curves.items() if points}
        if not curves:
            continue
        names = [n for n in subject_order(result) if n in curves]
        panels = _panels(result, names)
        fig = _figure(WIDTH_IN, 4.6)
        axes = fig.subplots(1, len(panels), sharey=True, sharex=True, squeeze=False)[0]
        for ax, (title, members) in zip(axes, panels, strict=True):
            for name in members:
                style = styles[name]
                ax.plot(
                    [ms for ms, _ in curves[name]],
                    [q for _, q in curves[name]],
                    color=style.colour,
                    linestyle=style.dashes,
                    linewidth=style.width,
                    label=name,
                )
            ax.set_xscale("log")
            ax.set_ylim(0, 1.0)
            ax.set_title(title)
            ax.set_xlabel("latency (ms, log scale)")
            ax.grid(alpha=0.3, which="both")
        axes[0].set_ylabel("fraction of operations at or below")
        fig.suptitle(f"latency CDF · workload {workload} · no-lag · concurrency {top}")
        _legend(fig, result, names)
        out.append((f"latency-cdf-{workload}", fig))
    return out


def _number_label(numbers: Sequence[int]) -> str:
    """``1,4-8,12``: runs compressed, wrapped every few items so that a label stays narrow."""
    items: list[str] = []
    ordered = sorted(numbers)
    start = prev = ordered[0]
    for n in [*ordered[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        items.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    lines = [",".join(items[i : i + 4]) for i in range(0, len(items), 4)]
    return "\n".join(lines)


def _merge_labels(
    points: Sequence[tuple[float, float, float, int]], x_span: float, y_span: float
) -> list[tuple[float, float, str]]:
    """Merge the labels of points that would overlap: *points* are (x, y on a linear scale for
    the distance test, y in data units, number); points within 6 % of both spans share one
    label, drawn at the first point. Returns (x, y in data units, text)."""
    merged: list[tuple[float, float, float, list[int]]] = []
    for x, y_key, y, number in points:
        for mx, my_key, _my, numbers in merged:
            if abs(mx - x) <= 0.06 * x_span and abs(my_key - y_key) <= 0.06 * y_span:
                numbers.append(number)
                break
        else:
            merged.append((x, y_key, y, [number]))
    return [(x, y, _number_label(numbers)) for x, _y_key, y, numbers in merged]


def _offload_vs_stale(result: BenchResult) -> Figure | None:
    scenarios = [
        s
        for s in ("delay-0.2s", "delay-1s")
        if any(c["scenario"] == s and c["workload"] == "ryw" for c in result["cells"])
    ]
    if not scenarios:
        return None
    subjects = {s["name"]: s for s in result["subjects"]}
    order = subject_order(result)
    styles = _styles(result)
    per_scenario: list[tuple[str, int, list[Cell]]] = []
    for scenario in scenarios:
        here = [c for c in result["cells"] if c["scenario"] == scenario and c["workload"] == "ryw"]
        top = max(c["concurrency"] for c in here)
        cells = [c for c in here if c["concurrency"] == top and c["offload"] is not None]
        if cells:
            per_scenario.append((scenario, top, cells))
    if not per_scenario:
        return None
    names = [n for n in order if any(c["subject"] == n for _, _, cs in per_scenario for c in cs)]
    number = {name: i + 1 for i, name in enumerate(names)}
    key_rows = math.ceil(len(names) / 3)
    fig = _figure(WIDTH_IN, 4.4 + 0.2 * key_rows)
    axes = fig.subplots(1, len(per_scenario), sharey=True, squeeze=False)[0]
    stale_max = max(c["stale_reads"] for _, _, cs in per_scenario for c in cs)
    for ax, (scenario, top, cells) in zip(axes, per_scenario, strict=True):
        labelled: list[tuple[float, float, int]] = []
        for cell in sorted(cells, key=lambda c: number[c["subject"]]):
            name = cell["subject"]
            x = 100.0 * (cell["offload"] or 0.0)
            y = float(cell["stale_reads"])
            subject = subjects.get(name)
            marker = (
                _BASELINE_MARKER
                if _is_baseline(subjects, name) or subject is None
                else _API_MARKERS.get(subject["api"] or "", "o")
            )
            ax.scatter(
                [x],
                [y],
                color=styles[name].colour,
                marker=marker,
                s=90 if marker == _BASELINE_MARKER else 45,
                edgecolors="white",
                linewidths=0.5,
                zorder=3,
            )
            labelled.append((x, y, number[name]))
        if stale_max > 0:
            # symlog: zero stays visible beside counts in the thousands.
            ax.set_yscale("symlog", linthresh=1)
            ax.set_ylim(-0.3, stale_max * 3)
            y_span = math.log10(stale_max * 3) + 1
            keyed = [(x, math.log10(y + 1), y, label) for x, y, label in labelled]
        else:
            ax.set_ylim(-0.5, 1)
            ax.set_yticks([0, 1])
            y_span = 1.5
            keyed = [(x, y, y, label) for x, y, label in labelled]
        for x, y, text in _merge_labels(keyed, 100.0, y_span):
            ax.annotate(
                text,
                (x, y),
                xytext=(5, 4),
                textcoords="offset points",
                fontsize="x-small",
                color="0.15",
                va="bottom",
            )
        ax.set_xlim(-4, 108)
        ax.set_title(f"{scenario} · ryw · concurrency {top}")
        ax.set_xlabel("reads served by replicas (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("stale reads (count)")
    handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            color=styles[n].colour,
            marker=(
                _BASELINE_MARKER
                if _is_baseline(subjects, n)
                else _API_MARKERS.get(subjects[n]["api"] or "", "o")
            ),
            markersize=8,
            label=f"{number[n]}  {n}",
        )
        for n in names
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=3,
        fontsize="x-small",
        title="colour: consistency · marker: API (○ async, □ sync, △ sqlalchemy, ★ baseline)",
        title_fontsize="small",
        frameon=False,
    )
    return fig


def _pool_sweep(result: BenchResult, sweep: PoolSweep) -> Figure | None:
    points = [p for p in sweep["points"] if _finite(p["ops_per_s"])]
    if not points:
        return None
    styles = _styles(result)
    names = list(dict.fromkeys(p["subject"] for p in points))
    sizes = sorted({p["pool_size"] for p in points})
    fig = _figure(WIDTH_IN, 4.4)
    ax_ops, ax_wait = fig.subplots(1, 2, sharex=True)
    for name in names:
        mine = sorted((p for p in points if p["subject"] == name), key=lambda p: p["pool_size"])
        colour = styles[name].colour if name in styles else "#1f77b4"
        xs = [p["pool_size"] for p in mine]
        ax_ops.plot(xs, [p["ops_per_s"] for p in mine], marker="o", color=colour, label=name)
        ax_wait.plot(xs, [p["acquire_wait_ms_per_op"] for p in mine], marker="o", color=colour)
    concurrency = sorted({p["concurrency"] for p in points})
    axes: tuple[Axes, Axes] = (ax_ops, ax_wait)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel(
            "pool size (connections per node), concurrency " + "/".join(str(c) for c in concurrency)
        )
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if sweep["knee"] is not None:
            ax.axvline(sweep["knee"], color="#d62728", linestyle="--", linewidth=1.5)
            ax.annotate(
                f"knee: {sweep['knee']}",
                (sweep["knee"], 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(4, -14),
                textcoords="offset points",
                color="#d62728",
                fontsize="small",
            )
    ax_ops.set_ylabel("ops/s")
    ax_ops.set_title(f"throughput · workload {sweep['workload']}")
    ax_wait.set_ylabel("pool acquire wait (ms per operation)")
    ax_wait.set_title("acquire wait")
    fig.legend(loc="outside lower center", ncols=min(4, len(names)), frameon=False)
    return fig


def _figures(result: BenchResult) -> list[tuple[str, Figure]]:
    figures: list[tuple[str, Figure]] = []
    throughput = _throughput(result)
    if throughput is not None:
        figures.append(throughput)
    figures.extend(_latency_cdfs(result))
    offload = _offload_vs_stale(result)
    if offload is not None:
        figures.append(("offload-vs-stale", offload))
    sweep = result["pool_sweep"]
    if sweep is not None:
        figure = _pool_sweep(result, sweep)
        if figure is not None:
            figures.append(("pool-sweep", figure))
    return figures


def write_plots(result: BenchResult, outdir: Path) -> list[Path]:
    """Write the charts the result has data for into *outdir* (created if missing); return
    their paths in report order. Uses the Agg canvas directly: no pyplot, no display."""
    outdir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for stem, fig in _figures(result):
        path = outdir / f"{stem}.png"
        fig.savefig(path, dpi=DPI, metadata={"Software": None})
        paths.append(path)
    return paths
