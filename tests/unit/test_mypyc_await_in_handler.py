"""Why the compiled coroutines await nothing in a ``finally`` or ``except`` block
(``router/core/_chain.py``): a tiny module compiled with mypyc, each construct beside the shape
the build's modules use instead. Run with the compiled build (``MYPYC_ROUTER=1``, as
``scripts/check-mypyc`` does: it needs mypyc and a C compiler, ~20 s)."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import textwrap
import threading
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("MYPYC_ROUTER") != "1",
    reason="compiles a module with mypyc: run with the compiled build (MYPYC_ROUTER=1)",
)

SOURCE = """
from __future__ import annotations

import asyncio
from typing import Any

from router._async._runtime import finish


async def tick() -> None:
    await asyncio.sleep(0)


async def await_in_finally(fail: bool) -> int:
    try:
        if fail:
            raise KeyError("the block")
    finally:
        await tick()
    return 1


async def await_after(fail: bool) -> int:
    failed: BaseException | None = None
    try:
        if fail:
            raise KeyError("the block")
    except BaseException as exc:
        failed = exc
    await finish(tick, failed)
    return 1


async def await_in_except(log: list[str], name: str) -> None:
    try:
        raise KeyError(name)
    except KeyError:
        log.append(name)
        await tick()
        await tick()


async def await_after_except(log: list[str], name: str) -> None:
    caught: BaseException | None = None
    try:
        raise KeyError(name)
    except KeyError as exc:
        caught = exc
    if caught is not None:
        log.append(name)
        await tick()
        await tick()
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    where = tmp_path_factory.mktemp("mypyc")
    (where / "handled.py").write_text(textwrap.dedent(SOURCE))
    subprocess.run(
        [sys.executable, "-m", "mypyc", "handled.py"],
        cwd=where,
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(where))
    try:
        handled = importlib.import_module("handled")
    finally:
        sys.path.remove(str(where))
    assert handled.__file__ is not None
    assert handled.__file__.endswith(".so")
    return handled


def _in_a_task(coro: Any) -> tuple[object, BaseException | None]:
    """*coro* run as a task of its own (nothing Python-level around it: its exception state is
    the thread's), then what the thread is left handling. In a thread of its own: what it
    leaves behind stays there."""
    found: list[tuple[object, BaseException | None]] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        try:
            try:
                outcome: object = loop.run_until_complete(asyncio.ensure_future(coro, loop=loop))
            except BaseException as exc:
                outcome = type(exc)
            found.append((outcome, sys.exc_info()[1]))
        finally:
            loop.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    (result,) = found
    return result


def _while_handling(compiled: ModuleType, name: str) -> object:
    async def caller() -> object:
        try:
            raise LookupError("the caller's")  # noqa: TRY301
        except LookupError:
            try:
                return await getattr(compiled, name)(False)
            except BaseException as exc:
                return type(exc)

    return asyncio.run(caller())


@pytest.mark.xfail(strict=True, reason="mypyc 2.4: an await in a finally block")
def test_mypyc_await_in_finally(compiled: ModuleType) -> None:
    # The caller's exception comes back out of a block that raised nothing; after an exception
    # through the block, the thread goes on handling it.
    assert _while_handling(compiled, "await_in_finally") == 1
    assert _in_a_task(compiled.await_in_finally(True)) == (KeyError, None)


def test_the_builds_shape_for_an_await_in_finally(compiled: ModuleType) -> None:
    assert _while_handling(compiled, "await_after") == 1
    assert _in_a_task(compiled.await_after(True)) == (KeyError, None)
    assert _in_a_task(compiled.await_after(False)) == (1, None)


async def _interleaved(fn: Any) -> list[str]:
    log: list[str] = []
    first = asyncio.ensure_future(fn(log, "first"))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(fn(log, "second"))
    await asyncio.gather(first, second)
    return log


@pytest.mark.xfail(strict=True, reason="mypyc 2.4: an await in an except block")
def test_mypyc_await_in_except(compiled: ModuleType) -> None:
    # Two tasks suspended in their `except` blocks, ending in the order they began: the first
    # one's exception is left as the thread's.
    assert _in_a_task(_interleaved(compiled.await_in_except)) == (["first", "second"], None)


def test_the_builds_shape_for_an_await_in_except(compiled: ModuleType) -> None:
    assert _in_a_task(_interleaved(compiled.await_after_except)) == (["first", "second"], None)
