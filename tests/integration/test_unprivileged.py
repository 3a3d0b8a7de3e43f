"""The harness as an ordinary user runs it (the rest of the suite runs as whoever runs it:
root on CI, where the servers are handed to the `postgres` user)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_SCRIPT = textwrap.dedent(
    """
    import os
    from router.testing import LocalCluster
    with LocalCluster(replicas=1) as c:
        with c.primary.connect() as conn:
            conn.execute("CREATE TABLE t (id int)")
            conn.execute("INSERT INTO t VALUES (42)")
        c.wait_caught_up()
        with c.replicas[0].connect() as conn:
            print(os.geteuid(), conn.execute("SELECT id FROM t").fetchone()[0])
        base = c.base_dir
    print(base.exists())
    """
)


def test_an_ordinary_user_runs_a_cluster_as_itself() -> None:
    if os.geteuid() != 0:
        # We already are an ordinary user: the whole suite proves it; this proves it once more.
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [str(os.geteuid()), "42", "False"]
        return
    # As root: run the same code as `postgres` with the system interpreter of our version
    # (the venv's interpreter may live under /root, which other users cannot enter).
    interpreter = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not interpreter.exists():
        pytest.skip(f"no {interpreter} for the postgres user to run (not a server problem)")
    import router

    src = Path(router.__file__).parent.parent
    site = next(p for p in sys.path if p.endswith("site-packages"))
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", "env", f"PYTHONPATH={src}:{site}", str(interpreter)],
        input=_SCRIPT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    uid = int(
        subprocess.run(["id", "-u", "postgres"], capture_output=True, text=True, check=True).stdout
    )
    assert done.stdout.split() == [str(uid), "42", "False"]
