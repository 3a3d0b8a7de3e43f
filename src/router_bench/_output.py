"""Everything ``router bench`` writes to its output directory: ``bench.json``, the charts, and
the self-contained ``report.html``; and reading ``bench.json`` back.

The JSON file is the result itself (the terminal table, charts and report can all be rebuilt
from it). It is strict JSON: a non-finite float (NaN, ±inf) is written as ``null``, which the
renderers print as a dash.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Final, cast

from router_bench._html import write_html
from router_bench._plots import write_plots
from router_bench._schema import SCHEMA_VERSION, BenchResult

__all__ = ["JSON_NAME", "dumps_result", "read_result", "write_outputs"]

JSON_NAME: Final = "bench.json"

# Indented JSON puts every number of a latency CDF on a line of its own (100 points: 400
# lines per cell). These fold a list of numbers, and each latency CDF, onto one line. A JSON
# string never holds a raw newline, so a match (which spans newlines) is only ever structural
# whitespace, and folding it cannot change a value.
_NUMBER: Final = r"(?:-?[0-9][0-9.eE+\-]*|null)"
_NUMBER_LIST: Final = re.compile(rf"\[\n\s*{_NUMBER}(?:,\n\s*{_NUMBER})*\n\s*\]")
_CDF: Final = re.compile(r'"latency_cdf": \[\n.*?\n\s*\]', re.DOTALL)
_BREAK: Final = re.compile(r"\n\s*")


def _strict(value: Any) -> Any:
    """*value* with non-finite floats as None and tuples as lists (what JSON can hold)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def dumps_result(result: BenchResult) -> str:
    """The result as strict, indented JSON text (keys in the schema's order)."""
    text = json.dumps(_strict(result), indent=2, ensure_ascii=False, allow_nan=False)
    text = _NUMBER_LIST.sub(lambda m: _fold(m.group(0)), text)
    text = _CDF.sub(lambda m: _fold(m.group(0)), text)
    return text + "\n"


def _fold(text: str) -> str:
    return _BREAK.sub(" ", text).replace("[ ", "[").replace(" ]", "]")


def read_result(path: Path) -> BenchResult:
    """Read a ``bench.json`` back: latency CDF points become tuples again.

    Raises ``ValueError`` when the file is not a result of this schema version.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{path}: not a router bench result of schema {SCHEMA_VERSION} (found {found!r})"
        )
    for cell in data.get("cells", []):
        cell["latency_cdf"] = [(ms, q) for ms, q in cell.get("latency_cdf", [])]
    return cast(BenchResult, data)


def write_outputs(result: BenchResult, outdir: Path) -> list[Path]:
    """Write ``bench.json``, the charts (PNG) and ``report.html`` into *outdir* (created if
    missing). Returns their paths: the JSON file, the charts in report order, the report."""
    outdir.mkdir(parents=True, exist_ok=True)
    json_path = outdir / JSON_NAME
    json_path.write_text(dumps_result(result), encoding="utf-8")
    plots = write_plots(result, outdir)
    report = write_html(result, outdir, plots)
    return [json_path, *plots, report]
