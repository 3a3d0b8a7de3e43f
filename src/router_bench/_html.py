"""The HTML report of a ``router bench`` result: one self-contained file.

Charts are embedded as ``data:image/png;base64`` URIs; the styles are inline; there is no script
and no reference to anything outside the file, so it opens offline, from a mail attachment or a
CI artefact alike. Every piece of text from the result is escaped.
"""

from __future__ import annotations

import base64
import html
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from router_bench._plots import plot_caption
from router_bench._schema import BenchResult
from router_bench._table import (
    BASELINE,
    CELL_COLUMNS,
    SWEEP_COLUMNS,
    cell_row,
    cell_tables,
    error_groups,
    subject_order,
    sweep_rows,
    sweep_title,
)

__all__ = ["REPORT_NAME", "render_html", "write_html"]

REPORT_NAME: Final = "report.html"

_CSS: Final = """
body { font-family: system-ui, "DejaVu Sans", sans-serif; color: #1a1a1a; background: #fff;
       margin: 0; line-height: 1.4; }
main { max-width: 1140px; margin: 0 auto; padding: 16px 20px 48px; }
h1 { font-size: 1.6em; margin: 0.4em 0 0.2em; }
h2 { font-size: 1.25em; margin: 1.6em 0 0.5em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.3em; }
p.meta { color: #555; margin: 0.2em 0; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 0.9em; background: #f4f4f4;
       padding: 1px 4px; overflow-wrap: anywhere; }
figure { margin: 1em 0 2em; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 0.9em; margin-top: 0.3em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.3em 0 1em; }
th, td { padding: 2px 8px; border-bottom: 1px solid #e4e4e4; text-align: right;
         white-space: nowrap; }
th { background: #f4f4f4; font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
table.kv th { text-align: left; }
table.kv td { text-align: left; white-space: normal; }
tr.baseline td { background: #fafafa; color: #333; }
tr.knee td { background: #fff1d6; font-weight: 600; }
td.wrap { white-space: normal; text-align: left; }
table caption { text-align: left; font-weight: 600; padding: 2px 0; }
table.text th, table.text td { text-align: left; }
span.where { color: #555; font-size: 0.9em; }
ul.notes li { margin: 0.2em 0; }
""".strip()


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None when *data* is no PNG."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _kv_table(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _table(
    columns: Sequence[str], rows: Sequence[tuple[Sequence[str], str]], caption: str = ""
) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        (f'<tr class="{_e(cls)}">' if cls else "<tr>")
        + "".join(f"<td>{_e(v)}</td>" for v in values)
        + "</tr>"
        for values, cls in rows
    )
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _environment(result: BenchResult) -> str:
    env = result["environment"]
    rows: list[tuple[str, object]] = [
        ("cluster", "a local cluster the bench started" if env["embedded"] else "given cluster"),
        *((f"node {n['name']}", f"{n['role']}, {n['address']}") for n in env["nodes"]),
        ("PostgreSQL", env["postgres"]),
        ("pgpool-II", env["pgpool"] or "not used"),
        ("router", env["router"]),
        ("Python", env["python"]),
        ("platform", env["platform"]),
        ("CPUs", env["cpus"]),
    ]
    return _kv_table(rows)


def _settings(result: BenchResult) -> str:
    st = result["settings"]
    rows: list[tuple[str, object]] = [
        ("command", result["command"]),
        ("quick", "yes" if st["quick"] else "no"),
        ("rounds", st["rounds"]),
        ("duration", f"{st['duration']:g} s per round (warmup {st['warmup']:g} s)"),
        ("concurrency", ", ".join(map(str, st["concurrency"]))),
        (
            "pool size",
            "one connection per worker" if st["pool_size"] is None else st["pool_size"],
        ),
        ("rows", f"{st['rows']:,}"),
        ("workloads", ", ".join(st["workloads"])),
        ("scenarios", ", ".join(st["scenarios"])),
        ("with pgpool", "yes" if st["with_pgpool"] else "no"),
    ]
    return _kv_table(rows)


def _subjects(result: BenchResult) -> str:
    head = "".join(f"<th>{c}</th>" for c in ("subject", "kind", "api", "policy", "consistency"))
    body = "".join(
        ('<tr class="baseline">' if s["kind"] == "baseline" else "<tr>")
        + "".join(
            f"<td>{_e(v or '')}</td>"
            for v in (s["name"], s["kind"], s["api"], s["policy"], s["consistency"])
        )
        + f'<td class="wrap">{_e(s["description"])}</td></tr>'
        for s in result["subjects"]
    )
    return (
        f'<table class="text"><thead><tr>{head}<th>description</th></tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _results(result: BenchResult) -> str:
    parts: list[str] = []
    subjects = {s["name"]: s for s in result["subjects"]}
    scenario = None
    for group in cell_tables(result):
        if group.scenario != scenario:
            scenario = group.scenario
            parts.append(f"<h3>scenario {_e(scenario)}</h3>")
        rows = []
        for cell in group.cells:
            subject = subjects.get(cell["subject"])
            baseline = cell["subject"] == BASELINE or (
                subject is not None and subject["kind"] == "baseline"
            )
            rows.append((cell_row(result, cell), "baseline" if baseline else ""))
        parts.append(_table(CELL_COLUMNS, rows, caption=group.title))
    return "\n".join(parts)


def _sweep(result: BenchResult) -> str:
    sweep = result["pool_sweep"]
    if sweep is None or not sweep["points"]:
        return ""
    rows = [
        (values, "knee" if knee else "")
        for values, knee in sweep_rows(sweep, subject_order(result))
    ]
    return f"<h2>Pool sweep</h2><p>{_e(sweep_title(sweep))}</p>" + _table(
        tuple(c or "knee" for c in SWEEP_COLUMNS), rows
    )


def _errors(result: BenchResult) -> str:
    groups = error_groups(result)
    if not groups:
        return ""
    items = "".join(
        f"<li><code>{_e(sample)}</code> in {len(where)} cell(s): "
        f'<span class="where">{_e("; ".join(where))}</span></li>'
        for sample, where in groups
    )
    return f"<h2>Errors</h2><ul>{items}</ul>"


def _figure(caption: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    size = _png_size(png)
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}"{dims}>'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def render_html(result: BenchResult, plots: Sequence[tuple[str, bytes]]) -> str:
    """The report as one HTML document; *plots* are (caption, PNG bytes) in display order."""
    quick = " (quick run)" if result["settings"]["quick"] else ""
    header = (
        f'<p class="meta">from {_e(result["started_at"])} to {_e(result["finished_at"])}'
        f"{quick}: {len(result['subjects'])} subjects, {len(result['cells'])} cells</p>"
    )
    notes = (
        '<h2>Notes</h2><ul class="notes">'
        + "".join(f"<li>{_e(note)}</li>" for note in result["notes"])
        + "</ul>"
        if result["notes"]
        else ""
    )
    figures = (
        "<h2>Charts</h2>" + "".join(_figure(caption, png) for caption, png in plots)
        if plots
        else "<h2>Charts</h2><p>No chart: the result has no data to draw.</p>"
    )
    body = "\n".join(
        [
            "<h1>router bench</h1>",
            header,
            "<h2>Environment</h2>",
            _environment(result),
            "<h2>Settings</h2>",
            _settings(result),
            notes,
            figures,
            "<h2>Results</h2>",
            "<p>Medians over the rounds for rates and latency percentiles, totals for counts. "
            "<em>vs raw-asyncpg</em> is ops/s over raw asyncpg's in the same table; "
            "<em>offload %</em> is the share of reads served by replicas.</p>",
            _results(result),
            _sweep(result),
            _errors(result),
            "<h2>Subjects</h2>",
            _subjects(result),
        ]
    )
    title = f"router bench — {result['started_at']}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def write_html(result: BenchResult, outdir: Path, plots: Sequence[Path]) -> Path:
    """Write ``report.html`` into *outdir* (created if missing), embedding the PNGs at *plots*
    in that order; return its path."""
    outdir.mkdir(parents=True, exist_ok=True)
    embedded = [(plot_caption(path), path.read_bytes()) for path in plots]
    path = outdir / REPORT_NAME
    path.write_text(render_html(result, embedded), encoding="utf-8")
    return path
