"""The optional mypyc build (``tools/build_mypyc.py``): when built, the compiled modules are
the ones loaded; otherwise the pure-Python sources are, and never a mix.

``MYPYC_ROUTER=1`` says the run must be compiled (a CI pass after the build), ``MYPYC_ROUTER=0``
that it must be pure Python; unset, either is accepted as long as it is all one or the other.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

import router
from router.core import caused

ROOT = Path(__file__).resolve().parents[2]
# Where `router` is imported from (a tree put first on PYTHONPATH, or this checkout).
SRC = Path(router.__file__).resolve().parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_mypyc", ROOT / "tools" / "build_mypyc.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_mypyc"] = module
    spec.loader.exec_module(module)
    return module


build_mypyc = _tool()


def _module_names() -> list[str]:
    return [path.removesuffix(".py").replace("/", ".") for path in build_mypyc.MODULES]


def _loaded() -> dict[str, bool]:
    """Each module of the build: whether the compiled one is loaded."""
    found = {}
    for name in _module_names():
        module = importlib.import_module(name)
        assert module.__file__ is not None
        found[name] = module.__file__.endswith(".so")
    return found


def test_the_build_covers_the_sync_hot_path() -> None:
    names = set(_module_names())
    for name in (
        "router._engine",
        "router._scope",
        "router._stats",
        "router._sync._executor",
        "router._sync._pool",
        "router._sync._driver",
        "router._sync._session",
        "router._async._executor",
        "router._async._pool",
        "router._async._driver",
        "router._async._session",
        "router._telemetry",
        "router.core._route",
        "router.core._eligibility",
        "router.core._topology",
    ):
        assert name in names
    for path in [*build_mypyc.MODULES, *build_mypyc.ASYNC_MODULES]:
        assert (SRC / path).is_file(), path
    # The async read path too (issue 14 step 6a: its coroutines compile right since they await
    # nothing in a finally or except block, see the test below).
    assert set(build_mypyc.ASYNC_MODULES) <= set(build_mypyc.MODULES)


def test_all_compiled_or_none() -> None:
    loaded = _loaded()
    compiled = {name for name, so in loaded.items() if so}
    assert compiled in (set(), set(loaded)), f"a partial build: only {sorted(compiled)}"
    wanted = os.environ.get("MYPYC_ROUTER")
    if wanted == "1":
        assert compiled == set(loaded), "MYPYC_ROUTER=1 but the pure-Python modules are loaded"
    elif wanted == "0":
        assert not compiled, "MYPYC_ROUTER=0 but compiled modules are loaded"


@pytest.mark.skipif(
    not any(_loaded().values()), reason="pure Python: nothing compiled to check (the fallback)"
)
def test_compiled_modules_come_from_the_build() -> None:
    # Each shim and the shared library of the compiled code are where the build puts them.
    shared = list(SRC.glob(f"{build_mypyc.GROUP}__mypyc*.so"))
    assert len(shared) == 1
    for path in build_mypyc.MODULES:
        stem = SRC / path.removesuffix(".py")
        assert list(stem.parent.glob(f"{stem.name}.*.so")), path


def test_the_fallback_is_the_source() -> None:
    # Without the build (or after `--clean`), the same modules load from their .py files: the
    # .py sources stay in the tree and nothing imports the compiled code by name.
    if any(_loaded().values()):
        pytest.skip("compiled: the fallback is checked in the pure-Python pass")
    for name in _module_names():
        module = sys.modules[name]
        assert module.__file__ is not None
        assert module.__file__.endswith(".py")


def _raises_with_cause(path: Path) -> list[ast.Raise]:
    return [
        node
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Raise) and node.cause is not None
    ]


def test_every_raise_from_in_the_build_keeps_its_cause_compiled() -> None:
    # mypyc ignores a raise's `from` clause: compiled, `raise X from Y` would raise X without
    # its __cause__ (and with its context shown). The build's modules say
    # `raise caused(X, Y) from Y` (router/core/_chain.py), which is the same pure or compiled.
    wrong = []
    for path in [*build_mypyc.MODULES, *build_mypyc.ASYNC_MODULES]:
        for node in _raises_with_cause(SRC / path):
            exc, cause = node.exc, node.cause
            assert cause is not None
            if not (
                isinstance(exc, ast.Call)
                and isinstance(exc.func, ast.Name)
                and exc.func.id == "caused"
                and len(exc.args) == 2
                and ast.dump(exc.args[1]) == ast.dump(cause)
            ):
                wrong.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    assert not wrong, "use `raise caused(X, Y) from Y`:\n" + "\n".join(wrong)


def test_the_guard_sees_a_bare_raise_from(tmp_path: Path) -> None:
    # The check above can fail: a plain `raise X from Y` is what it looks for.
    source = tmp_path / "m.py"
    source.write_text("try:\n    pass\nexcept E as e:\n    raise F() from e\n")
    (found,) = _raises_with_cause(source)
    assert isinstance(found.exc, ast.Call)
    assert isinstance(found.exc.func, ast.Name)
    assert found.exc.func.id == "F"


@pytest.mark.parametrize("cause", [ValueError("the cause"), None])
def test_caused_is_what_raise_from_does(cause: BaseException | None) -> None:
    # The same cause, and the context suppressed, as `raise ... from` (core/_chain.py is one of
    # the build's modules; the compiled raise itself is tested through the modules that use it,
    # e.g. tests/unit/test_connect_closed.py).
    def raising() -> None:
        empty: dict[str, object] = {}
        try:
            empty["the context"]
        except KeyError:
            raise caused(RuntimeError("raised"), cause) from cause

    with pytest.raises(RuntimeError) as info:
        raising()
    assert info.value.__cause__ is cause
    assert info.value.__suppress_context__ is True
    assert isinstance(info.value.__context__, KeyError)


def _awaits_while_handling(path: Path) -> list[str]:
    """Each ``await`` of a coroutine in *path* inside a ``finally`` or ``except`` block."""
    found = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if not isinstance(fn, ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.AsyncWith):
                # mypyc awaits __aexit__ in an `except` block: the same trouble.
                found.append(f"{path.name}:{node.lineno}: async with")
            if not isinstance(node, ast.Try):
                continue
            blocks = [("finally", node.finalbody)]
            blocks += [("except", handler.body) for handler in node.handlers]
            for what, body in blocks:
                for stmt in body:
                    for inner in ast.walk(stmt):
                        if isinstance(inner, (ast.Await, ast.AsyncFor)):
                            found.append(f"{path.name}:{inner.lineno}: await in {what}")
    return found


def test_no_compiled_coroutine_awaits_in_a_finally_or_except_block() -> None:
    # mypyc (2.4) keeps the exception being handled in the thread's state, not the coroutine's:
    # an `await` in a `finally` block re-raises, once the block ends, whatever exception the
    # caller was handling (and on the exceptional path leaves the exception set for good); an
    # `await` in an `except` block leaves it set for other tasks while suspended (issue 14
    # step 6a, benchmarks/RESULTS.md; the async suites failed compiled with earlier tests'
    # exceptions). The build's coroutines record the exception and await after the block
    # (router/_async/_runtime.finish, router/core/_chain.py).
    wrong = []
    for path in [*build_mypyc.MODULES, *build_mypyc.ASYNC_MODULES]:
        wrong += _awaits_while_handling(SRC / path)
    assert not wrong, "await after the block (see router/core/_chain.py):\n" + "\n".join(wrong)


def test_the_guard_sees_an_await_in_a_finally_or_except_block(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "async def f():\n"
        "    try:\n"
        "        await g()\n"
        "    except E:\n"
        "        await h()\n"
        "    finally:\n"
        "        if x:\n"
        "            await i()\n"
        "    async with j():\n"
        "        pass\n"
        "    try:\n"
        "        pass\n"
        "    finally:\n"
        "        async for y in z():\n"
        "            pass\n"
        "def s():\n"
        "    try:\n"
        "        pass\n"
        "    finally:\n"
        "        k()\n"
    )
    assert sorted(_awaits_while_handling(source)) == [
        "m.py:14: await in finally",
        "m.py:5: await in except",
        "m.py:8: await in finally",
        "m.py:9: async with",
    ]
