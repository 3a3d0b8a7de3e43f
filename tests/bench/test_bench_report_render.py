"""The ``router bench`` HTML report as a person sees it: headless Chromium opens report.html
from disk and its screenshot shows the charts, pixel for pixel where the page puts them.

No database; marked ``integration`` because it needs Chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from router_bench._output import write_outputs
from router_bench._plots import BASELINE_COLOURS, CONSISTENCY_COLOURS
from tests.bench.bench_sample import sample_result
from tests.chromium_support import run_chromium

pytestmark = pytest.mark.integration

WIDTH = 1280

# Run once the page has loaded: where each image sits, whether it decoded, the page's size. It
# goes into a copy of the report only; the report itself has no script.
PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    var r = img.getBoundingClientRect();
    return {x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height,
            nw: img.naturalWidth, nh: img.naturalHeight, done: img.complete};
  });
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({images: images, width: document.documentElement.clientWidth,
                                    height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
});
</script>"""


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="router-bench-render-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _probe(chromium: str, profile: Path, report: Path) -> dict[str, Any]:
    probe = report.with_name("probe.html")
    probe.write_text(
        report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
        encoding="utf-8",
    )
    dom = run_chromium(
        chromium, profile, f"--window-size={WIDTH},900", "--dump-dom", probe.as_uri()
    )
    start = dom.index('<pre id="probe">') + len('<pre id="probe">')
    found: dict[str, Any] = json.loads(dom[start : dom.index("</pre>", start)])
    return found


def _rgb(path: Path) -> NDArray[np.int16]:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def _colour_pixels(pixels: NDArray[np.int16], hex_colour: str, tolerance: int = 12) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    return int(np.all(np.abs(pixels - rgb) <= tolerance, axis=-1).sum())


def _ink_match(screen: NDArray[np.int16], x: int, y: int, png: NDArray[np.int16]) -> float:
    """Share of the chart's drawn (non-white) pixels that the screenshot shows, within a small
    tolerance, at (x, y) or one pixel off (the page may place an image at a fractional y)."""
    h, w, _ = png.shape
    ink = np.any(png < 235, axis=-1)
    best = 0.0
    for dy in (0, -1, 1):
        for dx in (0, -1, 1):
            top, left = y + dy, x + dx
            if top < 0 or left < 0 or top + h > screen.shape[0] or left + w > screen.shape[1]:
                continue
            region = screen[top : top + h, left : left + w]
            close = np.all(np.abs(region - png) <= 16, axis=-1)
            best = max(best, float(close[ink].mean()))
            if best > 0.99:
                return best
    return best


def test_screenshot_shows_the_charts(chromium: str, workdir: Path) -> None:
    outdir = workdir / "out"
    paths = write_outputs(sample_result(), outdir)
    report, plots = paths[-1], paths[1:-1]
    assert len(plots) == 7
    profile = workdir / "profile"

    layout = _probe(chromium, profile, report)
    images = layout["images"]
    assert layout["width"] == WIDTH
    assert len(images) == len(plots)
    for image, plot in zip(images, plots, strict=True):
        with Image.open(plot) as png:
            size = png.size
        assert image["done"], plot.name
        assert (image["nw"], image["nh"]) == size, plot.name  # decoded: the browser knows its size
        assert (round(image["w"]), round(image["h"])) == size, plot.name  # shown at natural size
        assert image["x"] >= 0, plot.name
        assert image["x"] + image["w"] <= WIDTH, plot.name

    bottom = max(int(image["y"] + image["h"]) for image in images) + 40
    shot = workdir / "shot.png"
    run_chromium(
        chromium,
        profile,
        f"--window-size={WIDTH},{bottom}",
        f"--screenshot={shot}",
        report.as_uri(),
    )
    screen = _rgb(shot)
    assert screen.shape[:2] == (bottom, WIDTH)

    # Each chart is drawn where the page laid it out, as the PNG holds it.
    for image, plot in zip(images, plots, strict=True):
        match = _ink_match(screen, round(image["x"]), round(image["y"]), _rgb(plot))
        assert match > 0.97, (plot.name, match)

    # And the series colours are there in quantity: consistency levels and baselines.
    charts = screen[int(images[0]["y"]) :]
    for colour in (
        CONSISTENCY_COLOURS["read_your_writes"],
        CONSISTENCY_COLOURS["eventual"],
        CONSISTENCY_COLOURS["bounded"],
        BASELINE_COLOURS["pgpool"],
    ):
        assert _colour_pixels(charts, colour) > 1000, colour
    # Above the charts there is text and tables, but no series colour.
    assert _colour_pixels(screen[: int(images[0]["y"]) - 5], BASELINE_COLOURS["pgpool"]) == 0


def test_blank_page_fails_the_chart_check(chromium: str, workdir: Path) -> None:
    """The comparison above can fail: a page whose images are missing does not match."""
    outdir = workdir / "out"
    paths = write_outputs(sample_result(quick=True), outdir)
    report, plots = paths[-1], paths[1:-1]
    broken = report.with_name("broken.html")
    text = report.read_text(encoding="utf-8")
    # Same layout (the img tags keep their width and height), but no picture data.
    broken.write_text(text.replace("data:image/png;base64,", "data:image/png;base64,AAAA"))
    layout = _probe(chromium, workdir / "profile", broken)
    first = layout["images"][0]
    assert not first["nw"]
    bottom = int(first["y"] + first["h"]) + 40
    shot = workdir / "shot.png"
    run_chromium(
        chromium,
        workdir / "profile",
        f"--window-size={WIDTH},{bottom}",
        f"--screenshot={shot}",
        broken.as_uri(),
    )
    match = _ink_match(_rgb(shot), round(first["x"]), round(first["y"]), _rgb(plots[0]))
    assert match < 0.5
