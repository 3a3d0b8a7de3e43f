"""The harness as an ordinary user runs it (the rest of the suite runs as whoever runs it:
root on CI, where the servers are handed to the `postgres` user)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from router.testing import find_bindir

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
    # As root: run the same code as `postgres` with the system interpreter of our version.
    # Neither the venv's interpreter nor the checkout need be reachable by other users (/root,
    # a clone in a 0700 temp dir), so the code it needs is copied where `postgres` can read it.
    interpreter = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not interpreter.exists():
        pytest.skip(f"no {interpreter} for the postgres user to run (not a server problem)")
    with tempfile.TemporaryDirectory(prefix="router-unprivileged-") as tmp:
        lib = Path(tmp)
        lib.chmod(0o755)
        _copy_importable("router.testing", lib)
        done = subprocess.run(
            # The binaries as this session found them (a PG_BINDIR=embedded names a wheel that
            # is not in the copy): as root, find_bindir gives ones `postgres` can run.
            [
                *("runuser", "-u", "postgres", "--", "env", f"PYTHONPATH={lib}"),
                f"PG_BINDIR={find_bindir()}",
                str(interpreter),
            ],
            input=_SCRIPT,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            cwd="/",
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(pwd.getpwnam("postgres").pw_uid), "42", "False"]


_FIND_MODULES = """
import importlib, json, sys, sysconfig
importlib.import_module(sys.argv[1])
roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
import router
roots.add(str(__import__("pathlib").Path(router.__file__).parent.parent))
found = set()
for module in list(sys.modules.values()):
    file = getattr(module, "__file__", None) or ""
    for root in roots:
        if file.startswith(root + "/"):
            found.add((root, file[len(root) + 1 :].split("/")[0]))
print(json.dumps(sorted(found)))
"""


def _copy_importable(module: str, dest: Path) -> None:
    """Copy *module* and every package it imports from outside the standard library."""
    out = subprocess.run(
        [sys.executable, "-c", _FIND_MODULES, module],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for root, entry in json.loads(out):
        source = Path(root) / entry
        if source.is_dir():
            shutil.copytree(source, dest / entry, ignore=shutil.ignore_patterns("__pycache__"))
            # Wheels bundle shared libraries beside the package (e.g. psycopg_binary.libs).
            for libs in Path(root).glob(f"{entry}.libs"):
                shutil.copytree(libs, dest / libs.name)
        else:
            shutil.copy2(source, dest / entry)
    for path in dest.rglob("*"):
        path.chmod(path.stat().st_mode | 0o044 | (0o011 if path.is_dir() else 0))
