"""The shape the compiled coroutines use instead of an ``await`` in a ``finally`` or ``except``
block (``router/core/_chain.py``, ``router/_async/_runtime.finish``): the same outcome as the
block, checked against what Python itself does with one. Pure and compiled alike (the chain
helpers are in the mypyc build; ``tests/unit/test_mypyc_build.py`` holds the build's modules to
that shape)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import NoReturn

import pytest

from router._async._runtime import finish as finish_async
from router._sync._runtime import finish as finish_sync
from router.core import caused, raised_in, reraise


class Body(Exception):
    pass


class Step(Exception):
    pass


def _throw(exc: BaseException) -> NoReturn:
    raise exc


def _outcome(run: Callable[[], None]) -> tuple[str, str | None, bool]:
    """What *run* raised: its type, its context's type, and whether the context was
    suppressed (``"-"``: nothing raised)."""
    try:
        run()
    except BaseException as exc:
        context = exc.__context__
        return (
            type(exc).__name__,
            type(context).__name__ if context else None,
            exc.__suppress_context__,
        )
    return ("-", None, False)


def _body(fails: bool) -> None:
    if fails:
        raise Body("the block")


def _step(fails: bool, log: list[str]) -> None:
    log.append("step")
    if fails:
        raise Step("the clean-up")


@pytest.mark.parametrize("body_fails", [False, True])
@pytest.mark.parametrize("step_fails", [False, True])
@pytest.mark.parametrize("handling", [False, True])
def test_finish_is_what_finally_does(body_fails: bool, step_fails: bool, handling: bool) -> None:
    # *handling*: all of it inside an `except` block of the caller's (a bare `raise` and a
    # `finally` leave the exception being handled there out of the chain).
    def python(log: list[str]) -> None:
        try:
            _body(body_fails)
        finally:
            _step(step_fails, log)

    def sync(log: list[str]) -> None:
        failed: BaseException | None = None
        try:
            _body(body_fails)
        except BaseException as exc:
            failed = exc
        finish_sync(lambda: _step(step_fails, log), failed)

    def python_async(log: list[str]) -> None:
        async def step() -> None:
            await asyncio.sleep(0)
            _step(step_fails, log)

        async def main() -> None:
            try:
                _body(body_fails)
            finally:
                await step()

        asyncio.run(main())

    def in_async(log: list[str]) -> None:
        async def step() -> None:
            await asyncio.sleep(0)
            _step(step_fails, log)

        async def main() -> None:
            failed: BaseException | None = None
            try:
                _body(body_fails)
            except BaseException as exc:
                failed = exc
            await finish_async(step, failed)

        asyncio.run(main())

    def outcome(way: Callable[[list[str]], None]) -> tuple[object, ...]:
        log: list[str] = []

        def run() -> None:
            if not handling:
                way(log)
                return
            try:
                _throw(LookupError("the caller's"))
            except LookupError:
                way(log)

        return (*_outcome(run), log)

    expected = outcome(python)
    assert expected[-1] == ["step"]
    assert outcome(sync) == expected
    # (asyncio.run raises a task's exception again with `raise`: inside the caller's `except`
    # block that makes the caller's exception its context, whatever the task did.)
    assert outcome(in_async) == outcome(python_async)
    if not handling:
        assert outcome(in_async) == expected


def test_raised_in_is_the_context_python_gives() -> None:
    def python() -> None:
        try:
            _throw(Body("handled"))
        except Body:
            try:
                _throw(KeyError("inner"))
            except KeyError:
                raise Step("late") from None

    with pytest.raises(Step) as info:
        python()
    py = info.value
    assert isinstance(py.__context__, KeyError)
    assert isinstance(py.__context__.__context__, Body)

    # The same chain, raised outside the block and given its context afterwards.
    def outside() -> Step:
        try:
            _throw(KeyError("inner"))
        except KeyError:
            try:
                _throw(caused(Step("late"), None))
            except Step as exc:
                return exc
        raise AssertionError("unreachable")

    late, handled = outside(), Body("handled")
    assert raised_in(late, handled) is late
    assert isinstance(late.__context__, KeyError)
    assert late.__context__.__context__ is handled
    assert late.__suppress_context__ is True
    # Already in the chain (or the exception itself): left as it is.
    assert raised_in(late, handled).__context__.__context__ is handled  # type: ignore[union-attr]
    assert raised_in(handled, handled).__context__ is None


def test_raised_in_makes_no_cycle() -> None:
    # As Python does when an exception is raised again while one it caused is handled.
    first = Body("first")
    second = Step("second")
    second.__context__ = first
    raised_in(first, second)
    assert first.__context__ is second
    assert second.__context__ is None


def test_reraise_is_a_bare_raise() -> None:
    kept = Body("kept")
    exc = Step("again")
    exc.__context__ = kept
    try:
        _throw(LookupError("handled around the call"))
    except LookupError:
        with pytest.raises(Step) as info:
            reraise(exc)
    assert info.value is exc
    assert exc.__context__ is kept  # `raise exc` would have made it the LookupError
