"""The package's layout as promised: the library imports nothing of the bench (``router_bench``)
and none of the bench's heavy dependencies, and ``router bench`` without the ``bench`` extra says
which extra to install. Each check runs in a fresh interpreter, so what this test session has
already imported cannot hide an import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: The bench's report dependencies (``bench`` extra); numpy comes with matplotlib.
HEAVY = ("matplotlib", "numpy", "rich")


def _modules_after(imports: str) -> list[str]:
    """The top-level package names in ``sys.modules`` after running *imports* in a fresh
    interpreter."""
    code = f"import json, sys\n{imports}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return [str(name) for name in json.loads(out)]


def _loaded(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in packages]


@pytest.mark.parametrize(
    "module", ["router", "router.sqlalchemy", "router.testing", "router.testing.pytest_plugin"]
)
def test_library_imports_neither_the_bench_nor_its_dependencies(module: str) -> None:
    modules = _modules_after(f"import {module}")
    assert module in modules  # the probe itself worked
    assert _loaded(modules, (*HEAVY, "router_bench")) == []


def test_command_line_loads_the_bench_report_only_when_it_runs() -> None:
    # `router --help` registers `router bench`, which needs router_bench's option parser only.
    modules = _modules_after("import router.cli; router.cli.build_parser()")
    assert _loaded(modules, HEAVY) == []
    assert {m for m in modules if m.startswith("router_bench.")} == {
        "router_bench._schema",
        "router_bench.cli",
    }


def test_bench_without_the_extra_names_the_extra(tmp_path: Path) -> None:
    # A None in sys.modules makes `import matplotlib` raise ModuleNotFoundError, as on an
    # installation without the bench extra.
    out = tmp_path / "out"
    code = (
        "import sys\n"
        "for name in ('matplotlib', 'rich'):\n"
        "    sys.modules[name] = None\n"
        "from router.cli import main\n"
        f"sys.exit(main(['bench', '--quick', '--out', {str(out)!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert "router bench: needs the bench extra" in done.stderr
    assert "pip install 'router[bench]'" in done.stderr
    assert not out.exists()


def test_last_decision_returns_public_types() -> None:
    import typing

    import router

    for shell in (router.AsyncRouter, router.Router):
        # A property read on its class is the property object; mypy types it as the getter.
        hints = typing.get_type_hints(shell.last_decision.fget)  # type: ignore[union-attr]
        assert hints["return"] == router.Decision | None
    assert "Decision" in router.__all__
    assert "Reason" in router.__all__
    doc = _doc(router.Decision)
    assert doc
    assert "last_decision" in doc
    assert router.Reason("lag-gate") is router.Reason.LAG_GATE


def _doc(cls: type) -> str | None:
    """*cls*'s docstring; from its source when its module is compiled (mypyc keeps no class
    docstrings: ``tools/build_mypyc.py``)."""
    import ast
    import inspect

    module = sys.modules[cls.__module__]
    if module.__file__ is None or module.__file__.endswith(".py"):
        return cls.__doc__
    source = (Path(module.__file__).parent / f"{cls.__module__.rsplit('.', 1)[-1]}.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return ast.get_docstring(node)
    return inspect.getdoc(cls)


def _cycles(package: str) -> list[tuple[str, ...]]:
    """Pairs of modules of *package* that import each other, directly or through others
    (grimp's graph: what import-linter reads, ``TYPE_CHECKING`` imports included)."""
    import grimp

    graph = grimp.build_graph(package)
    found: set[tuple[str, ...]] = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                found.add(tuple(sorted((module, imported))))
    return sorted(found)


def test_no_import_cycles() -> None:
    # The routers import their sessions, and the sessions run through the executor (they
    # import no router): the cycle _router <-> _session of each flavour is gone.
    assert _cycles("router") == []
