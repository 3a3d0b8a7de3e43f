"""The documentation's code runs as written: every Python block of Getting started and the
guides, against the local cluster through ``ROUTER_URL``, as the README's quickstart is run
by ``test_readme.py``. A block that cannot run says so in a marker right above it
(``<!-- docs-test: skip (reason) -->``), and a block marked ``<!-- docs-test: pytest -->`` is a
test file run by pytest. Other languages' blocks (shell, text) must be marked too, so nothing
on these pages is untested by accident."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from router.testing.pytest_plugin import ClusterDatabase
from tests.integration.test_readme import _run

pytestmark = [pytest.mark.integration]

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDES = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.glob("guides/*.md"))
PAGES = ["getting-started.md", *GUIDES]
BLOCK = re.compile(
    r"(?:<!-- docs-test: (?P<mark>[^\n]*?) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)^```", re.S | re.M
)


@dataclass(frozen=True)
class Block:
    lang: str
    mark: str | None
    code: str


def blocks(page: str) -> list[Block]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return [Block(m["lang"], m["mark"], m["code"]) for m in BLOCK.finditer(text)]


def test_every_block_runs_or_says_why_not() -> None:
    assert "guides/sqlalchemy.md" in PAGES
    for page in PAGES:
        found = blocks(page)
        assert found, page
        for block in found:
            if block.lang == "python":
                assert block.mark in (None, "pytest") or block.mark.startswith("skip ("), (
                    page,
                    block.mark,
                )
            else:
                what = f"{page}: a {block.lang or 'plain'} block without a docs-test marker"
                assert block.mark is not None, what
                assert block.mark.startswith("skip ("), what


def _script(page: str) -> str:
    return "\n".join(b.code for b in blocks(page) if b.lang == "python" and b.mark is None)


# What each page's run must print (beyond exiting 0): proof the examples did what they say.
EXPECTED: dict[str, list[str]] = {
    "getting-started.md": ["True\nDecision(", "primary=False", "my first note", "edited"],
    "guides/sqlalchemy.md": ["ada Decision(", "refused:", "False"],
    "guides/raw-routers.md": ["refused:", "64MB"],
    "guides/web-and-jobs.md": ["job saw", "cookie: router_position"],
    "guides/testing.md": ["emulated"],
    "guides/pgbouncer.md": ["refused:", "5s"],
    "guides/ha.md": ["db1:5432", "('http://db1:8008', 'http://db2:8008', 'http://db3:8008')"],
}


@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page: str, cluster_db: ClusterDatabase, tmp_path: Path) -> None:
    script = _script(page)
    if script:
        out = _run(script, cluster_db)
        for expected in EXPECTED.get(page, []):
            assert expected in out, (page, expected, out)
    for index, block in enumerate(b for b in blocks(page) if b.mark == "pytest"):
        path = tmp_path / f"test_example_{index}.py"
        path.write_text(block.code, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        assert " passed" in done.stdout
