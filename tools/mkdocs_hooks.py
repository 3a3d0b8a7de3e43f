"""mkdocs hooks: the generated pages of the documentation site.

- ``reference/configuration.md``: from the configuration dataclasses
  (``tools/config_reference.py``); an undocumented field fails the build;
- ``benchmarks.md``: ``benchmarks/RESULTS.md``, which lives beside the benchmarks;
- ``<!-- generated:classification-table -->`` in a page: the classifier's verdicts
  (``tools/classification_table.py``);
- reST roles in docstrings (``:class:`~router.X```) shown as plain code in the API pages.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
sys.path.insert(0, str(TOOLS))

import classification_table  # noqa: E402
import config_reference  # noqa: E402

CLASSIFICATION_MARKER = "<!-- generated:classification-table -->"
# The docstrings cross-reference in reST (:class:`~router.errors.X`), which markdown renders as
# the role's name followed by code: keep the code, and of a ``~``-path its last part.
_ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj):(?=<code>)")
_TILDE = re.compile(r"<code>~(?:[\w]+\.)*([\w]+)</code>")


# A relative link or picture in benchmarks/RESULTS.md: served from benchmarks/ in the site.
_RELATIVE = re.compile(r"\]\((?![a-z]+:|#|/)([^)\s]+)\)")


def _benchmarks(config: Any) -> tuple[str, list[File]]:
    """RESULTS.md as the site's ``benchmarks.md``, and the files it links to (its charts)."""
    folder = ROOT / "benchmarks"
    text = (folder / "RESULTS.md").read_text(encoding="utf-8")
    linked = []
    for target in sorted(set(_RELATIVE.findall(text))):
        source = folder / target
        if source.is_file() and not target.endswith(".md"):
            linked.append(
                File.generated(config, f"benchmarks/{target}", content=source.read_bytes())
            )
    return _RELATIVE.sub(lambda m: f"](benchmarks/{m.group(1)})", text), linked


def on_files(files: Files, config: Any) -> Files:
    page, linked = _benchmarks(config)
    for file in linked:
        files.append(file)
    generated = {
        "reference/configuration.md": config_reference.render(),
        "benchmarks.md": page,
    }
    for path, content in generated.items():
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, content=content))
    return files


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    return _TILDE.sub(r"<code>\1</code>", _ROLE.sub("", html))


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if CLASSIFICATION_MARKER in markdown:
        markdown = markdown.replace(CLASSIFICATION_MARKER, classification_table.render())
    return markdown
