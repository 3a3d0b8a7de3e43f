"""``router bench`` output: the terminal table, bench.json, the charts and the HTML report, all
built from the synthetic result of ``bench_sample`` (no database)."""

from __future__ import annotations

import base64
import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from router_bench._html import render_html
from router_bench._output import dumps_result, read_result, write_outputs
from router_bench._plots import BASELINE_COLOURS, CONSISTENCY_COLOURS, write_plots
from router_bench._schema import BenchResult
from router_bench._table import (
    KNEE_MARK,
    TIMES,
    cell_row,
    cell_tables,
    fmt_ms,
    fmt_offload,
    fmt_rate,
    fmt_ratio,
    render_table,
)
from tests.bench.bench_sample import BASELINES, rename_subject, sample_result

WIDE = 220  # no subject name is folded at this width

FULL_PLOTS = [
    "throughput-vs-concurrency.png",
    "latency-cdf-mixed.png",
    "latency-cdf-read-only.png",
    "latency-cdf-write-heavy.png",
    "latency-cdf-ryw.png",
    "offload-vs-stale.png",
    "pool-sweep.png",
]


@pytest.fixture(scope="module")
def sample() -> BenchResult:
    return sample_result()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[BenchResult, list[Path]]:
    """One full write (charts take seconds): the result, and what write_outputs returned."""
    result = sample_result()
    outdir = tmp_path_factory.mktemp("bench-out") / "nested" / "out"
    return result, write_outputs(result, outdir)


def _rgb(path: Path) -> NDArray[np.uint8]:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _colour_pixels(pixels: NDArray[np.uint8], hex_colour: str, tolerance: int = 12) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    near = np.all(np.abs(pixels.astype(np.int16) - rgb) <= tolerance, axis=-1)
    return int(near.sum())


def _as_json(value: Any) -> Any:
    """What a value looks like after a JSON round trip (tuples are lists)."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(v) for v in value]
    return value


def _section(text: str, title: str) -> list[str]:
    """The lines of the terminal table under *title*, up to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    out: list[str] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        out.append(line)
    return out


# -- terminal table ------------------------------------------------------------------------------


def test_sample_is_what_the_tests_claim(sample: BenchResult) -> None:
    names = [s["name"] for s in sample["subjects"]]
    assert set(BASELINES) <= set(names)
    assert len({c["scenario"] for c in sample["cells"]}) >= 2
    assert {c["workload"] for c in sample["cells"]} == {"mixed", "read-only", "write-heavy", "ryw"}
    mixed = {c["concurrency"] for c in sample["cells"] if c["workload"] == "mixed"}
    assert mixed == {1, 8, 32}
    assert sample["pool_sweep"] is not None


def test_table_has_every_cell_as_a_row(sample: BenchResult) -> None:
    text = render_table(sample, width=WIDE)
    groups = cell_tables(sample)
    # 4 scenarios x 4 workloads, with two more concurrency levels for mixed/no-lag.
    assert len(groups) == 18
    seen = 0
    for group in groups:
        rows = [line.split() for line in _section(text, group.title)]
        for cell in group.cells:
            assert list(cell_row(sample, cell)) in rows, (group.title, cell["subject"])
            seen += 1
    assert seen == len(sample["cells"])
    for subject in sample["subjects"]:
        assert subject["name"] in text


def test_table_rows_show_the_cell_values(sample: BenchResult) -> None:
    cell = next(
        c
        for c in sample["cells"]
        if (c["scenario"], c["workload"], c["concurrency"], c["subject"])
        == ("delay-1s", "ryw", 8, "naive-split")
    )
    row = cell_row(sample, cell)
    assert row[0] == "naive-split"
    assert row[1] == f"{cell['ops_per_s']:,.0f}"
    assert row[3] == "—"  # the sample predates CPU per operation
    assert row[6] == fmt_ms(cell["p99_ms"])
    assert cell["offload"] is not None
    assert row[7] == f"{cell['offload'] * 100:.1f}"
    assert row[8] == f"{cell['stale_reads']:,}"
    assert cell["stale_reads"] > 1000  # the sample's naive split reads stale rows under delay
    assert "," in row[8]
    measured = cell_row(sample, {**cell, "cpu_us_per_op": 1234.5})
    assert measured[3] == "1,234"


def test_number_formats() -> None:
    assert fmt_ratio(0.93491) == f"0.93{TIMES}"
    assert fmt_ratio(1.0) == f"1.00{TIMES}"
    assert fmt_ratio(12.345) == f"12.35{TIMES}"
    assert fmt_ratio(None) == "—"
    assert fmt_ratio(math.nan) == "—"
    assert fmt_rate(7149.4) == "7,149"
    assert fmt_rate(math.inf) == "—"
    assert fmt_ms(0.4912) == "0.49"
    assert fmt_ms(23.34) == "23.3"
    assert fmt_ms(12345.0) == "12,345"
    assert fmt_offload(0.9612) == "96.1"
    assert fmt_offload(None) == "—"


def test_ratio_against_raw_asyncpg(sample: BenchResult) -> None:
    result = copy.deepcopy(sample)
    group = next(g for g in cell_tables(result) if g.title.startswith("no-lag · mixed · conc"))
    raw = next(c for c in group.cells if c["subject"] == "raw-asyncpg")
    pgpool = next(c for c in group.cells if c["subject"] == "pgpool")
    # Without the runner's vs_baseline, the ratio is computed from the raw-asyncpg cell.
    del pgpool["vs_baseline"]
    pgpool["ops_per_s"] = raw["ops_per_s"] * 0.514
    text = render_table(result, width=WIDE)
    rows = {r[0]: r for r in (line.split() for line in _section(text, group.title))}
    assert rows["raw-asyncpg"][2] == f"1.00{TIMES}"
    assert rows["pgpool"][2] == f"0.51{TIMES}"
    # The runner's own value wins, and None prints as a dash.
    pgpool["vs_baseline"] = None
    text = render_table(result, width=WIDE)
    rows = {r[0]: r for r in (line.split() for line in _section(text, group.title))}
    assert rows["pgpool"][2] == "—"


def test_ratio_without_a_baseline_cell_is_a_dash(sample: BenchResult) -> None:
    result = copy.deepcopy(sample)
    result["cells"] = [c for c in result["cells"] if c["subject"] != "raw-asyncpg"]
    for cell in result["cells"]:
        del cell["vs_baseline"]
    text = render_table(result, width=WIDE)
    group = cell_tables(result)[0]
    names = {c["subject"] for c in group.cells}
    rows = [r for r in (line.split() for line in _section(text, group.title)) if r[0] in names]
    assert len(rows) == len(group.cells)
    assert all(row[2] == "—" for row in rows)


def test_pool_sweep_marks_the_knee(sample: BenchResult) -> None:
    text = render_table(sample, width=WIDE)
    assert "knee: pool 8" in text
    marked = [line for line in text.splitlines() if KNEE_MARK in line]
    assert len(marked) == 1
    tokens = marked[0].split()
    assert tokens[:3] == ["async/round-robin/read_your_writes", "8", "32"]
    # Every sweep point is a row.
    assert sum(1 for line in text.splitlines() if line.startswith("async/round-robin/read_")) > 5

    result = copy.deepcopy(sample)
    assert result["pool_sweep"] is not None
    result["pool_sweep"]["knee"] = None
    text = render_table(result, width=WIDE)
    assert KNEE_MARK not in text
    assert "knee: none found" in text


def test_notes_errors_and_header(sample: BenchResult) -> None:
    text = render_table(sample, width=WIDE)
    for note in sample["notes"]:
        assert f"- {note}" in text
    assert "ConnectionDoesNotExistError: connection was closed" in text
    errors = sum(1 for c in sample["cells"] if c["errors"])
    assert f"in {errors} cell(s)" in text
    assert "PostgreSQL 15.7" in text
    assert "127.0.0.1:54002" in text
    assert "\x1b[" not in text  # plain text: no colour codes


def test_names_are_not_rich_markup(sample: BenchResult) -> None:
    result = copy.deepcopy(sample)
    rename_subject(result, "pgpool", "[bold red]pgpool[/bold red]")
    result["notes"].append("[link=file:///etc]click[/link]")
    text = render_table(result, width=WIDE)
    assert "[bold red]pgpool[/bold red]" in text
    assert "[link=file:///etc]click[/link]" in text


def test_narrow_terminal_folds_but_keeps_every_row(sample: BenchResult) -> None:
    text = render_table(sample, width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    group = cell_tables(sample)[0]
    rows = _section(text, group.title)
    assert sum(1 for line in rows if line.split()[-1].isdigit()) == len(group.cells)


# -- files ----------------------------------------------------------------------------------------


def test_write_outputs_paths(written: tuple[BenchResult, list[Path]]) -> None:
    _result, paths = written
    assert paths[0].name == "bench.json"
    assert paths[-1].name == "report.html"
    assert [p.name for p in paths[1:-1]] == FULL_PLOTS
    assert all(p.is_file() for p in paths)
    assert len({p.parent for p in paths}) == 1
    assert sorted(p.name for p in paths[0].parent.iterdir()) == sorted(p.name for p in paths)


def test_json_is_the_result(written: tuple[BenchResult, list[Path]]) -> None:
    result, paths = written
    text = paths[0].read_text(encoding="utf-8")

    def no_constants(name: str) -> None:
        raise AssertionError(f"not strict JSON: {name}")

    assert json.loads(text, parse_constant=no_constants) == _as_json(result)
    assert read_result(paths[0]) == result  # CDF points come back as tuples
    # Readable: a latency CDF is one line, not four hundred.
    assert len(text.splitlines()) < 100 * len(result["cells"])


def test_json_holds_non_finite_numbers_as_null(sample: BenchResult) -> None:
    result = copy.deepcopy(sample)
    result["cells"][0]["ops_per_s"] = math.nan
    result["cells"][0]["p99_ms"] = math.inf
    data = json.loads(dumps_result(result))
    assert data["cells"][0]["ops_per_s"] is None
    assert data["cells"][0]["p99_ms"] is None
    assert data["cells"][1] == _as_json(result["cells"][1])
    row = render_table(result, width=WIDE)
    assert "—" in row


def test_read_result_rejects_another_schema(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"schema": 999}), encoding="utf-8")
    with pytest.raises(ValueError, match="schema 1"):
        read_result(path)
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match="not a router bench result"):
        read_result(path)


def test_plots_are_real_images(written: tuple[BenchResult, list[Path]]) -> None:
    _result, paths = written
    for path in paths[1:-1]:
        pixels = _rgb(path)
        height, width, _ = pixels.shape
        assert width == 1100, path.name
        assert 300 <= height <= 2000, path.name
        packed = pixels.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
        assert len(np.unique(packed)) > 50, path.name  # drawn, not one flat colour
        ink = np.any(pixels < 200, axis=-1).mean()
        assert 0.01 < ink < 0.6, (path.name, ink)


def test_plots_use_the_series_colours(written: tuple[BenchResult, list[Path]]) -> None:
    _result, paths = written
    by_name = {p.name: _rgb(p) for p in paths[1:-1]}
    throughput = by_name["throughput-vs-concurrency.png"]
    for colour in (
        CONSISTENCY_COLOURS["read_your_writes"],
        CONSISTENCY_COLOURS["eventual"],
        BASELINE_COLOURS["pgpool"],
        BASELINE_COLOURS["naive-split"],
    ):
        assert _colour_pixels(throughput, colour) > 300, colour
    # The knee line is red; the sweep's only subject is a read_your_writes one (green).
    sweep = by_name["pool-sweep.png"]
    assert _colour_pixels(sweep, "#d62728") > 200
    assert _colour_pixels(sweep, CONSISTENCY_COLOURS["read_your_writes"]) > 300


def test_html_embeds_exactly_the_plots(written: tuple[BenchResult, list[Path]]) -> None:
    result, paths = written
    text = paths[-1].read_text(encoding="utf-8")
    sources = re.findall(r'<img\b[^>]*\bsrc="([^"]*)"', text)
    plots = paths[1:-1]
    assert len(sources) == len(plots)
    prefix = "data:image/png;base64,"
    for source, plot in zip(sources, plots, strict=True):
        assert source.startswith(prefix)
        assert base64.b64decode(source[len(prefix) :], validate=True) == plot.read_bytes()
    lowered = text.lower()
    for outside in ("http://", "https://", "<script", "<link", "url(", "@import", "<iframe"):
        assert outside not in lowered, outside
    for subject in result["subjects"]:
        assert subject["name"] in text
    for group in cell_tables(result):
        assert group.title in text
    assert text.count('<tr class="knee">') == 1
    for note in result["notes"]:
        assert note in text
    assert "127.0.0.1:54001" in text


def test_html_escapes_names_and_notes(sample: BenchResult) -> None:
    result = copy.deepcopy(sample)
    evil = '<script>alert("bench")</script>'
    rename_subject(result, "pgpool", evil)
    result["notes"].append("<img src=x onerror=alert(1)> & friends")
    result["command"] = 'router bench --label "<b>x</b>"'
    result["cells"][0]["error_samples"] = ["ValueError: <svg onload=alert(2)>"]
    result["cells"][0]["errors"] = 1
    text = render_html(result, [])
    assert "<script" not in text.lower()
    assert "<img" not in text
    assert "<svg" not in text
    assert "<b>" not in text
    assert "&lt;script&gt;alert(&quot;bench&quot;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; friends" in text
    assert "ValueError: &lt;svg onload=alert(2)&gt;" in text
    assert text.count(evil) == 0
    # And the terminal prints the name as it is.
    assert evil in render_table(result, width=WIDE)


# -- what a short or empty run draws -------------------------------------------------------------


def test_quick_run_draws_bars_and_skips_what_it_lacks(tmp_path: Path) -> None:
    result = sample_result(quick=True)
    paths = write_plots(result, tmp_path)
    assert [p.name for p in paths] == [
        "throughput-by-subject.png",
        "latency-cdf-mixed.png",
        "latency-cdf-read-only.png",
        "latency-cdf-write-heavy.png",
        "latency-cdf-ryw.png",
    ]
    assert sorted(tmp_path.iterdir()) == sorted(paths)
    bars = _rgb(paths[0])
    # One bar per subject, in its colour: raw asyncpg black, the naive split grey.
    assert _colour_pixels(bars, BASELINE_COLOURS["naive-split"], tolerance=2) > 2000
    assert _colour_pixels(bars, CONSISTENCY_COLOURS["read_your_writes"], tolerance=2) > 2000
    assert bars.shape[0] >= 300


def test_nothing_to_draw_writes_no_image(sample: BenchResult, tmp_path: Path) -> None:
    result = copy.deepcopy(sample)
    result["cells"] = []
    result["pool_sweep"] = None
    assert write_plots(result, tmp_path) == []
    assert list(tmp_path.iterdir()) == []
    paths = write_outputs(result, tmp_path)
    assert [p.name for p in paths] == ["bench.json", "report.html"]
    assert "No chart" in paths[1].read_text(encoding="utf-8")
    assert "Notes:" in render_table(result, width=WIDE)


def test_cells_without_cdf_or_lag_scenarios_skip_those_charts(
    sample: BenchResult, tmp_path: Path
) -> None:
    result = copy.deepcopy(sample)
    result["cells"] = [c for c in result["cells"] if c["scenario"] == "no-lag"]
    for cell in result["cells"]:
        if cell["workload"] != "ryw":
            cell["latency_cdf"] = []
    paths = write_plots(result, tmp_path)
    assert [p.name for p in paths] == [
        "throughput-vs-concurrency.png",
        "latency-cdf-ryw.png",
        "pool-sweep.png",
    ]


def test_many_subjects_stay_bounded(tmp_path: Path) -> None:
    result = sample_result(many=True)
    assert len(result["subjects"]) == 63
    paths = write_outputs(result, tmp_path)
    for path in paths[1:-1]:
        height, width, _ = _rgb(path).shape
        assert width == 1100
        assert height <= 1000, path.name
    text = paths[-1].read_text(encoding="utf-8")
    assert all(s["name"] in text for s in result["subjects"])
