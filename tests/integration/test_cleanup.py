"""Nothing is left behind: not on a normal exit, an exception, a signal, a failing test
session, nor (thanks to orphan reaping) a SIGKILL of the process that owned a cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from router.testing import reap_orphans
from router.testing._proc import pid_alive
from tests.support import run_inner_pytest, wait_until

pytestmark = pytest.mark.integration


_OWNER = textwrap.dedent(
    """
    import faulthandler, json, signal, sys, time
    from router.testing import LocalCluster

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # where it hangs, if it does

    cluster = LocalCluster(replicas=1).start()
    print(json.dumps({"dir": str(cluster.base_dir), "pids": [n.pid for n in cluster.nodes]}),
          flush=True)
    sys.stdin.readline()    # the test has seen the servers running
    mode = sys.argv[1]
    if mode == "exit":      # never closed: the atexit hook must do it
        sys.exit(0)
    if mode == "raise":
        with cluster:
            raise RuntimeError("boom")
    while True:             # wait for a signal
        time.sleep(60)
    """
)


def _start_owner(mode: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _OWNER, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        assert proc.stderr is not None
        pytest.fail(f"cluster owner died: {proc.stderr.read()}")
    info = json.loads(line)
    assert len(info["pids"]) == 2
    assert all(pid_alive(pid) for pid in info["pids"])
    assert Path(info["dir"]).is_dir()
    # Only now may the owner go on (exit, raise): else it could close the cluster before the
    # servers were seen running (a loaded machine saw that race).
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return proc, info


def _assert_gone(info: dict[str, Any]) -> None:
    wait_until(
        lambda: not any(pid_alive(pid) for pid in info["pids"]),
        timeout=15,
        what="the cluster's servers to exit",
    )
    assert not Path(info["dir"]).exists()


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        # Say where the owner is stuck (its threads' stacks), then end it: a failure, with
        # the evidence, not a child and its pipes left to the next test.
        proc.send_signal(signal.SIGUSR1)
        try:
            _, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        pytest.fail(f"the cluster owner did not exit within 60 s; its stderr:\n{err}")
    return proc.returncode, err


@pytest.mark.parametrize("mode", ["exit", "raise"])
def test_an_exiting_owner_leaves_nothing(mode: str) -> None:
    proc, info = _start_owner(mode)
    code, err = _finish(proc)
    assert code == (0 if mode == "exit" else 1), err
    if mode == "raise":
        assert "RuntimeError: boom" in err
    _assert_gone(info)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signalled_owner_leaves_nothing(sig: signal.Signals) -> None:
    proc, info = _start_owner("wait")
    proc.send_signal(sig)
    code, err = _finish(proc)
    assert code != 0
    assert "KeyboardInterrupt" in err
    _assert_gone(info)


def test_a_sigkilled_owners_cluster_is_reaped_by_the_next_one() -> None:
    proc, info = _start_owner("wait")
    proc.kill()
    _finish(proc)
    # SIGKILL runs no cleanup: the servers outlive their owner...
    assert all(pid_alive(pid) for pid in info["pids"])
    # ...until the next cluster (or anyone) reaps orphans.
    removed = reap_orphans(log=lambda _msg: None)
    assert Path(info["dir"]) in removed
    _assert_gone(info)


def test_reaping_spares_live_owners_and_detached_clusters(tmp_path: Path) -> None:
    live = tmp_path / "router-cluster-live"
    live.mkdir()
    (live / "cluster.json").write_text(json.dumps({"owner_pid": os.getpid(), "nodes": []}))
    detached = tmp_path / "router-cluster-detached"
    detached.mkdir()
    (detached / "cluster.json").write_text(
        json.dumps({"owner_pid": 2**22 + 1, "detached": True, "nodes": []})
    )
    dead = tmp_path / "router-cluster-dead"
    dead.mkdir()
    (dead / "cluster.json").write_text(json.dumps({"owner_pid": 2**22 + 1, "nodes": []}))
    unrelated = tmp_path / "router-cluster-not-ours"
    unrelated.mkdir()

    removed = reap_orphans(tmp_path, log=lambda _msg: None)

    assert removed == [dead]
    assert live.exists()
    assert detached.exists()
    assert unrelated.exists()


def _router_postmasters() -> set[int]:
    """Our harness's live postmasters, but those of clusters another live process owns (a
    suite or a script running beside this one on the machine: not ours to judge)."""
    found = set()
    others = _others_clusters()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            cmd
            and cmd[0].endswith(b"/postgres")
            and any(b"/router-cluster-" in c for c in cmd)
            and not any(str(d).encode() in c for d in others for c in cmd)
        ):
            found.add(int(entry.name))
    return {pid for pid in found if pid_alive(pid)}


def _others_clusters() -> set[Path]:
    """Cluster directories whose owner is another live process (the inner sessions here run
    in subprocesses that have exited by the time anything is compared)."""
    found = set()
    for base in Path(tempfile.gettempdir()).glob("router-cluster-*"):
        try:
            owner = json.loads((base / "cluster.json").read_text()).get("owner_pid")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(owner, int) and owner != os.getpid() and pid_alive(owner):
            found.add(base)
    return found


def _cluster_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("router-cluster-*")) - _others_clusters()


def test_a_failing_test_session_twice_in_a_row_leaves_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import pytest

        def test_fails_holding_a_paused_replica(cluster_db):
            cluster_db.cluster.pause_replay("replica1")
            assert False, "on purpose"

        def test_errors(cluster):
            raise RuntimeError("on purpose")
        """
    )
    before_pids, before_dirs = _router_postmasters(), _cluster_dirs()
    for _ in range(2):
        result = run_inner_pytest(pytester)
        result.assert_outcomes(failed=2)
        assert _router_postmasters() <= before_pids
        assert _cluster_dirs() <= before_dirs
