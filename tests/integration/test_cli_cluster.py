"""`router cluster up | status | smoke | down` as people run it: separate processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import router
from router.testing._proc import pid_alive
from tests.support import wait_until

pytestmark = pytest.mark.integration


def _router(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(prefix="router-cli-test-"))
    parent.chmod(0o755)  # the server user must be able to enter it
    path = parent / "cluster"
    yield path
    _router("cluster", "down", "--dir", str(path))
    shutil.rmtree(parent, ignore_errors=True)


def test_up_status_smoke_down(cluster_dir: Path) -> None:
    up = _router("cluster", "up", "--replicas", "1", "--dir", str(cluster_dir), "--json")
    assert up.returncode == 0, up.stderr
    described = json.loads(up.stdout)
    nodes = {n["name"]: n for n in described["nodes"]}
    assert sorted(nodes) == ["primary", "replica1"]
    # The cluster outlives the command that started it.
    with psycopg.connect(nodes["primary"]["dsn"], autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
    with psycopg.connect(nodes["replica1"]["dsn"], autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)

    again = _router("cluster", "up", "--dir", str(cluster_dir))
    assert again.returncode == 0
    assert "already up" in again.stdout
    assert f"ROUTER_URL={described['url']}" in again.stdout

    # The README's quickstart: ROUTER_URL from `router cluster url`, roles discovered.
    url = _router("cluster", "url", "--dir", str(cluster_dir))
    assert url.returncode == 0, url.stderr
    assert url.stdout.strip() == described["url"]
    config = router.RouterConfig.from_env({"ROUTER_URL": url.stdout.strip()})
    with router.Router(config) as db:
        assert db.fetchval("SELECT pg_is_in_recovery()") is True
        assert db.last_decision is not None
        assert db.last_decision.node == f"127.0.0.1:{nodes['replica1']['port']}"
        assert db.fetchval("/* router:primary */ SELECT pg_is_in_recovery()") is False

    status = _router("cluster", "status", "--dir", str(cluster_dir), "--json")
    assert status.returncode == 0, status.stderr
    rows = {r["name"]: r for r in json.loads(status.stdout)}
    assert rows["primary"]["role"] == "primary"
    assert rows["replica1"]["role"] == "replica"
    assert rows["replica1"]["streaming"] is True
    assert rows["replica1"]["replay_lag_bytes"] == 0
    table = _router("cluster", "status", "--dir", str(cluster_dir))
    assert "lag bytes" in table.stdout
    assert str(nodes["replica1"]["port"]) in table.stdout

    smoke = _router("cluster", "smoke", "--dir", str(cluster_dir), "--json")
    assert smoke.returncode == 0, smoke.stderr
    assert set(json.loads(smoke.stdout)["replicas"]) == {"replica1"}

    state = json.loads((cluster_dir / "cluster.json").read_text())
    pids = [
        int((Path(n["datadir"]) / "postmaster.pid").read_text().split()[0]) for n in state["nodes"]
    ]
    down = _router("cluster", "down", "--dir", str(cluster_dir))
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(pid) for pid in pids)
    assert not cluster_dir.exists()


def test_status_reports_a_down_node(cluster_dir: Path) -> None:
    up = _router("cluster", "up", "--replicas", "1", "--dir", str(cluster_dir), "--json")
    assert up.returncode == 0, up.stderr
    datadir = cluster_dir / "replica1"
    pid = int((datadir / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGINT)  # fast shutdown of the replica behind the CLI's back
    wait_until(lambda: not pid_alive(pid), what="the replica to stop")
    status = _router("cluster", "status", "--dir", str(cluster_dir))
    assert status.returncode == 1
    assert "down" in status.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the servers to another user")
def test_a_directory_the_server_user_cannot_enter_is_a_clear_error(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    up = _router("cluster", "up", "--dir", str(private / "cluster"))
    assert up.returncode == 1
    assert "cannot enter" in up.stderr
    assert "postgres" in up.stderr
    assert not (private / "cluster").exists()


def test_a_closed_pipe_stops_quietly_and_leaves_no_half_started_cluster(
    cluster_dir: Path,
) -> None:
    done = subprocess.run(
        f"{sys.executable} -m router.cli cluster up --replicas 0 --dir {cluster_dir} | head -c 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr
    # Either it finished and detached (then `down` removes it) or it cleaned up after itself.
    _router("cluster", "down", "--dir", str(cluster_dir))
    assert not cluster_dir.exists()
