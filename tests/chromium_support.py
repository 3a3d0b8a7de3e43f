"""Headless Chromium for the render tests (the bench report, the documentation site); the
``chromium`` fixture is registered for every test by ``tests/conftest.py``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

__all__ = ["TIMEOUT", "chromium", "run_chromium"]

TIMEOUT = 90.0


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "chromium not found: the report's screenshot test needs a headless Chromium "
        "(apt-get install chromium)",
        pytrace=False,
    )


def run_chromium(chromium: str, profile: Path, *args: str) -> str:
    """Run headless Chromium to completion in its own process group; kill the group after it
    (its helpers must not outlive the test) or on timeout."""
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--no-first-run",
        f"--user-data-dir={profile}",
        # Let the page load completely (data: images decode, the load event runs) first.
        "--virtual-time-budget=5000",
        *args,
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"chromium did not finish in {TIMEOUT} s: {command}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err[-2000:]}"
    return out
