"""``router status URL...`` as an operator runs it, a separate process, against real servers:
healthy, a replica paused, a replica killed, a wrong password (never printed), ``--json``."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from router.cli._cluster import cluster_url
from router.testing import LocalCluster
from tests.integration.lag_support import behind_without_commits, reconnected_after_first_check
from tests.integration.timeline_support import diverge, rejoin
from tests.support import wait_until

pytestmark = pytest.mark.integration

SECRET = "status-test-Secret-8d41"

#: The JSON document's fields and their types, as docs/reference/status.md describes them.
REPORT_FIELDS: dict[str, tuple[type, ...]] = {
    "schema": (str,),
    "checked_at": (str,),
    "consistency": (str,),
    "primary": (str, type(None)),
    "split_brain": (bool,),
    "ok": (bool,),
    "problems": (list,),
    "nodes": (list,),
}
NODE_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "host": (str,),
    "port": (int,),
    "reachable": (bool,),
    "error": (str, type(None)),
    "role": (str,),
    "timeline": (int, type(None)),
    "replay_lag_bytes": (int, type(None)),
    "replay_lag_seconds": (float, int, type(None)),
    "replay_paused": (bool, type(None)),
    "connections": (int, type(None)),
    "max_connections": (int, type(None)),
    "eligible": (bool,),
    "decision": (str,),
    "patroni": (str, type(None)),
}


def status(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ROUTER_", "PGPASSWORD"))}
    return subprocess.run(
        [sys.executable, "-m", "router.cli", "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**clean, **(env or {})},
    )


def report(*args: str) -> dict[str, Any]:
    done = status(*args, "--json")
    assert done.returncode in (0, 1), done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def check_schema(document: dict[str, Any]) -> None:
    assert set(document) == set(REPORT_FIELDS)
    for key, kinds in REPORT_FIELDS.items():
        assert isinstance(document[key], kinds), key
    assert document["schema"] == "router.status/1"
    for node in document["nodes"]:
        assert set(node) == set(NODE_FIELDS)
        for key, kinds in NODE_FIELDS.items():
            assert isinstance(node[key], kinds), (node["name"], key)
        assert node["role"] in ("primary", "replica", "unknown")


def by_port(document: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {node["port"]: node for node in document["nodes"]}


def test_a_healthy_cluster(cluster: LocalCluster) -> None:
    cluster.wait_caught_up()
    url = cluster_url(cluster)
    done = status(url)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["node", "role", "tl"]
    primary = next(line for line in lines if f":{cluster.primary.port} " in line)
    assert "primary" in primary
    assert "primary: writes" in primary
    for replica in cluster.replicas:
        line = next(line for line in lines if f":{replica.port} " in line)
        assert "eligible for reads" in line
        assert " live " in line

    document = report(url)
    check_schema(document)
    assert document["ok"]
    assert document["problems"] == []
    assert document["consistency"] == "read_your_writes"
    nodes = by_port(document)
    assert document["primary"] == nodes[cluster.primary.port]["name"]
    assert nodes[cluster.primary.port]["role"] == "primary"
    for node in document["nodes"]:
        assert node["reachable"]
        # The session's cluster may have been through a promotion before this test.
        assert node["timeline"] >= 1
        assert 1 <= node["connections"] <= node["max_connections"]
    for replica in cluster.replicas:
        assert nodes[replica.port]["eligible"]
        assert nodes[replica.port]["replay_paused"] is False
    # The configuration decides: under strong, no replica is eligible.
    strong = report(url, "--consistency", "strong")
    assert not any(node["eligible"] for node in strong["nodes"])
    assert "strong" in by_port(strong)[cluster.replicas[0].port]["decision"]


@pytest.mark.parametrize("catches_up", [True, False], ids=["caught-up", "really-behind"])
def test_a_replica_first_seen_behind_wal_without_commits(
    cluster: LocalCluster, catches_up: bool
) -> None:
    # After an idle spell the primary wrote a checkpoint the replica has not replayed when it
    # is checked (it is cut off until it has answered): its last commit is old, and the
    # check alone would show it that far behind (the PostgreSQL 18 CI pass saw "lag 39.9 s").
    # Caught up a moment later, it is shown caught up; really behind, it stays behind.
    replica = cluster.replicas[0]
    url = f"{cluster_url(cluster)}?router_max_lag_seconds=2&router_application_name=first-sight"
    with behind_without_commits(cluster, replica, mark=1.0) as reconnect:
        if catches_up:
            with reconnected_after_first_check(replica, reconnect, "first-sight status"):
                document = report(url)
        else:
            document = report(url)
    node = by_port(document)[replica.port]
    assert node["replay_lag_seconds"] is not None
    if catches_up:
        assert node["eligible"], node["decision"]
        assert node["replay_lag_seconds"] < 1.0
        assert document["ok"]
    else:
        assert not node["eligible"]
        assert node["replay_lag_seconds"] > 1.0
        assert node["decision"].startswith("not eligible: lag "), node["decision"]


def test_a_paused_replica_is_lagging_and_not_eligible(cluster: LocalCluster) -> None:
    paused, other = cluster.replicas
    cluster.pause_replay(paused)
    with cluster.primary.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS status_paused (n int)")
        conn.execute("INSERT INTO status_paused SELECT generate_series(1, 1000)")
    url = cluster_url(cluster)

    def behind() -> dict[str, Any] | None:
        node = by_port(report(url))[paused.port]
        return node if node["replay_paused"] and node["replay_lag_bytes"] else None

    # A paused replay that is behind is lagging (design §5): the gate drops it.
    node = wait_until(behind, what="the paused replica to be seen paused and behind")
    assert not node["eligible"]
    assert node["decision"].startswith("not eligible: replay paused")
    assert by_port(report(url))[other.port]["eligible"]
    done = status(url)
    assert done.returncode == 0  # lagging is the router's business, not a fault of the cluster
    line = next(line for line in done.stdout.splitlines() if f":{paused.port} " in line)
    assert " paused " in line
    assert "not eligible" in line
    # With no replica left to serve, every read lands on the primary: that is a problem.
    cluster.pause_replay(other)
    with cluster.primary.connect() as conn:
        conn.execute("INSERT INTO status_paused SELECT generate_series(1, 1000)")
    wait_until(
        lambda: not any(n["eligible"] for n in report(url)["nodes"]),
        what="both paused replicas to be seen not eligible",
    )
    done = status(url)
    assert done.returncode == 1, done.stdout
    problems = [p for p in done.stdout.splitlines() if p.startswith("problem:")]
    assert len(problems) == 1, done.stdout
    assert "no replica is eligible" in problems[0]
    assert "every read goes to the primary" in problems[0]
    cluster.resume_replay(other)
    cluster.resume_replay(paused)
    wait_until(lambda: by_port(report(url))[paused.port]["eligible"], what="eligible again")
    wait_until(lambda: by_port(report(url))[other.port]["eligible"], what="eligible again")


def test_a_former_primary_on_the_history_the_cluster_left_is_a_problem() -> None:
    """A former primary back as a standby before it was rewound replays WAL the new primary
    never had (tests/integration/timeline_support.py): ``router status``, which never saw it
    lead, finds it replaying past the primary's position, shows why it is not eligible, and
    exits 1."""
    with LocalCluster(replicas=1) as own:
        own.wait_caught_up()
        former, promoted = diverge(own)
        rejoin(own, former, promoted)
        url = cluster_url(own)
        done = status(url)
        assert done.returncode == 1, done.stdout
        line = next(line for line in done.stdout.splitlines() if f":{former.port} " in line)
        assert "not eligible" in line
        problem = next(p for p in done.stdout.splitlines() if p.startswith("problem:"))
        assert "another history" in problem, done.stdout
        document = report(url)
        check_schema(document)
        node = by_port(document)[former.port]
        assert node["role"] == "replica"
        assert not node["eligible"]
        assert by_port(document)[promoted.port]["role"] == "primary"


def test_a_killed_replica_is_a_row_that_says_why(cluster: LocalCluster) -> None:
    killed = cluster.replicas[1]
    cluster.kill(killed)
    url = cluster_url(cluster)
    done = status(url)
    assert done.returncode == 1
    line = next(line for line in done.stdout.splitlines() if f":{killed.port} " in line)
    assert "unreachable" in line
    assert "problem:" in done.stdout
    document = report(url)
    check_schema(document)
    assert not document["ok"]
    node = by_port(document)[killed.port]
    assert not node["reachable"]
    assert not node["eligible"]
    assert node["role"] == "unknown"
    assert "connect" in node["error"].lower() or "refused" in node["error"].lower()
    assert by_port(document)[cluster.replicas[0].port]["eligible"]


def test_watch_refreshes(cluster: LocalCluster) -> None:
    done = status(cluster_url(cluster), "--watch", "0.1", "--count", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("consistency read_your_writes") == 3
    lines = status(cluster_url(cluster), "--watch", "0.1", "--count", "2", "--json")
    documents = [json.loads(line) for line in lines.stdout.splitlines()]
    assert len(documents) == 2
    for document in documents:
        check_schema(document)


def test_watch_before_the_url_takes_the_default_interval(cluster: LocalCluster) -> None:
    """``router status --watch URL``: the URL is a URL, not the seconds (found by the
    new-user tryout); a value that is neither is bad usage."""
    done = status("--watch", cluster_url(cluster), "--count", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("consistency ") == 2
    bad = status("--watch", "soon", cluster_url(cluster))
    assert bad.returncode == 2
    assert "not a number of seconds" in bad.stderr


def test_watch_refreshes_in_place_on_a_terminal(cluster: LocalCluster) -> None:
    primary, terminal = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    command = ["status", cluster_url(cluster), "--watch", "0.1", "--count", "3"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "router.cli", *command],
        stdout=terminal,
        stderr=subprocess.PIPE,
        env=clean,
    )
    os.close(terminal)
    shown = b""
    try:
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the command exited and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
        assert proc.wait(timeout=60) == 0
        assert proc.stderr is not None
        proc.stderr.close()
    # Each refresh homes the cursor and clears the screen, then draws the table again.
    assert shown.count(b"\x1b[H\x1b[2J") == 3
    assert shown.count(b"eligible for reads") == 3 * len(cluster.replicas)


@pytest.fixture(scope="module")
def secret_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(replicas=1, password=SECRET) as cluster:
        yield cluster


def test_passwords_work_and_are_never_printed(secret_cluster: LocalCluster) -> None:
    url = cluster_url(secret_cluster)
    wrong = url.replace("postgres@", "postgres:not-the-Secret-77@")
    done = status(wrong)
    assert done.returncode == 1
    assert "password authentication failed" in done.stdout
    assert "not-the-Secret-77" not in done.stdout + done.stderr
    document = report(wrong)
    assert not any(node["reachable"] for node in document["nodes"])

    # Right, in the URL, in PGPASSWORD or in ROUTER_PASSWORD: all answer, none is shown.
    right = url.replace("postgres@", f"postgres:{SECRET}@")
    for done in (
        status(right),
        status(url, env={"PGPASSWORD": SECRET}),
        status(env={"ROUTER_URL": url, "ROUTER_PASSWORD": SECRET}),
        status(right, "--json"),
        status(right, env={"ROUTER_PASSWORD": "not-the-Secret-77"}),  # the URL's counts
    ):
        assert done.returncode == 0, done.stdout + done.stderr
        assert SECRET not in done.stdout + done.stderr
    # And a wrong one through the environment.
    done = status(url, env={"PGPASSWORD": "not-the-Secret-77"})
    assert done.returncode == 1
    assert "not-the-Secret-77" not in done.stdout + done.stderr


def test_bad_usage_exits_2() -> None:
    done = status()
    assert done.returncode == 2
    assert "ROUTER_URL" in done.stderr
    done = status("postgresql://u:pw-Secret-1@h1/db?router_policy=nope")
    assert done.returncode == 2
    assert "router_policy" in done.stderr
    assert "pw-Secret-1" not in done.stderr
