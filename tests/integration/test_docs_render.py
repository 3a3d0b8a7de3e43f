"""The documentation site as a person sees it: built offline with ``mkdocs build --strict``,
each page opened from disk in headless Chromium (the helper of the bench report's render
test), screenshot, and checked: text and code blocks are there, pictures decoded, nothing
fetched from the network, and the screenshot is not blank.

No database; marked ``integration`` because it needs Chromium and the ``docs`` extra.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from tests.chromium_support import run_chromium

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 1280
HEIGHT = 1400

# Run once the page has loaded: what a reader would see of it.
PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {src: img.getAttribute("src"), w: img.naturalWidth, done: img.complete};
  });
  var article = document.querySelector("article");
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.style.display = "none";  // in the DOM dump, not in the screenshot
  pre.textContent = JSON.stringify({
    images: images,
    code: document.querySelectorAll("article pre code").length,
    tables: document.querySelectorAll("article table").length,
    text: article ? article.innerText.length : 0,
    title: document.title,
    external: performance.getEntriesByType("resource")
      .map(function (r) { return r.name; })
      .filter(function (n) { return /^https?:/.test(n); })
  });
  document.body.appendChild(pre);
});
</script>"""

# page -> (least code blocks, least tables, an image expected)
PAGES: dict[str, tuple[int, int, bool]] = {
    "index.html": (0, 0, False),
    "getting-started.html": (5, 0, False),
    "concepts/classification.html": (0, 2, False),
    "concepts/consistency.html": (0, 2, True),
    "guides/sqlalchemy.html": (5, 0, False),
    "reference/configuration.html": (0, 4, False),
    "reference/status.html": (2, 2, False),
    "operations.html": (2, 5, False),
    "troubleshooting.html": (1, 0, False),
    "api/index.html": (1, 0, False),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _render(chromium: str, workdir: Path, page: Path) -> tuple[dict[str, Any], NDArray[np.int16]]:
    """One Chromium run over a copy of *page* with the probe: what the probe found, and the
    screenshot's grey levels."""
    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(
        page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    shot = workdir / "shot.png"
    try:
        dom = run_chromium(
            chromium,
            workdir / "profile",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--screenshot={shot}",
            "--dump-dom",
            probe.as_uri(),
        )
    finally:
        probe.unlink()
    start = dom.index('<pre id="probe"')
    start = dom.index(">", start) + 1
    found: dict[str, Any] = json.loads(dom[start : dom.index("</pre>", start)])
    with Image.open(shot) as png:
        pixels = np.asarray(png.convert("L"), dtype=np.int16)
    assert pixels.shape == (HEIGHT, WIDTH)
    return found, pixels


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_renders(name: str, site: Path, chromium: str, workdir: Path) -> None:
    least_code, least_tables, image = PAGES[name]
    page = site / name
    found, pixels = _render(chromium, workdir, page)
    assert found["title"].endswith("router"), found["title"]
    assert found["text"] > 500, found
    assert found["code"] >= least_code, found
    assert found["tables"] >= least_tables, found
    assert found["external"] == [], found  # offline: no fonts, scripts or pictures fetched
    pictures = [i for i in found["images"] if i["src"] and i["src"].endswith(".svg")]
    if image:
        assert pictures, found
    for picture in pictures:
        assert picture["done"], picture
        assert picture["w"] > 0, picture

    # Rendered: a header bar, text, code; not a blank or single-colour page.
    assert (pixels < 128).mean() > 0.02, name
    assert (pixels > 200).mean() > 0.3, name
    assert len(np.unique(pixels)) > 32, name


def test_a_blank_page_fails_the_check(site: Path, chromium: str, workdir: Path) -> None:
    blank = site / "blank.html"
    blank.write_text("<html><head><title>x</title></head><body></body></html>", encoding="utf-8")
    found, pixels = _render(chromium, workdir, blank)
    assert found["text"] == 0
    assert found["code"] == 0
    assert (pixels < 128).mean() < 0.02
