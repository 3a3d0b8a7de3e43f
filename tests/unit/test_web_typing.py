"""The middlewares type-check where users put them: Starlette's ``Middleware(...)`` and
``add_middleware`` under ``mypy --strict`` (Starlette's factory protocol hands the wrapped app
with ``Any`` scopes and may pass any keyword: the wrapped app must be positional-only)."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SNIPPET = """
from starlette.applications import Starlette
from starlette.middleware import Middleware

from router.web import ASGIMiddleware

app = Starlette(middleware=[Middleware(ASGIMiddleware, secret="s" * 32)])
app.add_middleware(ASGIMiddleware, secret="s" * 32, cookie="pos")
"""


def test_the_asgi_middleware_type_checks_with_starlette(tmp_path: Path) -> None:
    source = tmp_path / "app.py"
    source.write_text(SNIPPET)
    out, err, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy"), str(source)]
    )
    assert status == 0, out + err
