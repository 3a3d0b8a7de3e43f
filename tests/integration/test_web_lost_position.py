"""A request whose commit position could not be read (the primary went away between the commit
and the position read; here the app's role is refused the function) still hands its client a
position, marked uncertain, and the client's next request, on another server process, reads
the write (found by a new-user tryout: no cookie was sent, or an older one was deleted, and
the next request read a replica behind the write). Two uvicorn processes, real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from router.testing import LocalCluster
from router.testing._proc import free_port
from tests.support import wait_until

pytestmark = pytest.mark.integration

ROLE = "web_lost_app"
ROOT = Path(__file__).resolve().parents[2]
REVOKE = "REVOKE EXECUTE ON FUNCTION pg_current_wal_insert_lsn() FROM PUBLIC"
GRANT = "GRANT EXECUTE ON FUNCTION pg_current_wal_insert_lsn() TO PUBLIC"


def _serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "ROUTER_URL": url, "APP_SECRET": "s" * 32, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning", "tests.integration.web_kv_app:app",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}")
        try:
            return httpx.get(f"{base}/kv", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout=30, what="uvicorn to answer")
    return proc, base


@pytest.fixture
def servers() -> Iterator[tuple[LocalCluster, str, str]]:
    with LocalCluster(replicas=1) as cluster:
        with psycopg.connect(cluster.primary.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL)")
            conn.execute("INSERT INTO kv VALUES (1, 0)")
            conn.execute(f"CREATE ROLE {ROLE} LOGIN")
            conn.execute(f"GRANT ALL ON kv TO {ROLE}")
        cluster.wait_caught_up()
        # The replica applies late: a read there right after the write would miss it.
        cluster.set_apply_delay(cluster.replicas[0], 3.0)
        hosts = ",".join(f"{n.host}:{n.port}" for n in cluster.nodes)
        url = f"postgresql://{ROLE}@{hosts}/postgres?router_max_lag_seconds=60"
        procs: list[subprocess.Popen[bytes]] = []
        bases: list[str] = []
        try:
            for _ in range(2):
                proc, base = _serve(url)
                procs.append(proc)
                bases.append(base)
            yield cluster, bases[0], bases[1]
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)


def test_a_request_that_lost_its_commit_position_hands_on_an_uncertain_one(
    servers: tuple[LocalCluster, str, str],
) -> None:
    cluster, a, b = servers
    with psycopg.connect(cluster.primary.dsn, autocommit=True) as conn:
        conn.execute(REVOKE)
    try:
        with httpx.Client(timeout=10) as browser:  # one cookie jar for both servers
            for value in (1, 2, 3):
                posted = browser.post(f"{a}/kv/{value}")
                assert posted.status_code == 200
                cookie = posted.headers.get("set-cookie", "")
                assert cookie.startswith("router_position=r2."), cookie
                got = browser.get(f"{b}/kv").json()
                assert got["v"] == value, got
    finally:
        with psycopg.connect(cluster.primary.dsn, autocommit=True) as conn:
            conn.execute(GRANT)
    # The position can be read again: the next write's cookie is certain, and still seen.
    with httpx.Client(timeout=10) as browser:
        posted = browser.post(f"{a}/kv/9")
        assert posted.headers.get("set-cookie", "").startswith("router_position=r1.")
        assert browser.get(f"{b}/kv").json()["v"] == 9
