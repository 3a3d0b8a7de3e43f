"""The README's quickstart for app developers runs as written, against a local cluster
reached through ``ROUTER_URL`` (as ``router cluster url`` prints it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from router.cli._cluster import cluster_url
from router.testing.pytest_plugin import ClusterDatabase

pytestmark = [pytest.mark.integration]

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(tag: str) -> str:
    found = re.search(rf"<!-- quickstart:{tag} -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert found is not None, f"no quickstart:{tag} block in README.md"
    return found.group(1)


def _run(code: str, db: ClusterDatabase) -> str:
    url = cluster_url(db.cluster).rsplit("/", 1)[0] + f"/{db.name}"
    env = {**os.environ, "ROUTER_URL": url}
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_quickstart_runs_as_written(cluster_db: ClusterDatabase) -> None:
    out = _run(_block("sync"), cluster_db)
    assert "from the raw router" in out
    assert "from the ORM" in out
    assert "reason=" in out  # the decisions are printed
    # ... of a read on a replica and of statements on the primary.
    assert "primary=False, reason=<Reason.CLASSIFIER" in out
    assert "primary=True, reason=<Reason.HINT" in out
    out = _run(_block("async"), cluster_db)
    assert "Decision(" in out
    assert "primary=False" in out
    assert "primary=True" in out
