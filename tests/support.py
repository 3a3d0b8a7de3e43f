"""Test support: wait on conditions (poll with a deadline, never a bare sleep), run pytest."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None], timeout: float = 10.0, what: str = "condition"
) -> T:
    """Return the first truthy value of *condition()* (so never ``None``: a condition typed
    ``-> X | None`` gives an ``X``); fail the test after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def run_inner_pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run a pytest session of the files *pytester* holds, in a subprocess, as users would."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
