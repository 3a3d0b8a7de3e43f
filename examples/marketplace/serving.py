"""The example app under a real server, as a subprocess on a free loopback port (uvicorn with
worker processes, or gunicorn for Flask): what the web tests and the web benchmark start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx

from router.testing import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
#: The signing secret the servers started here share (tests and benchmark only).
SECRET = "web-test-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def router_url(cluster: LocalCluster, database: str) -> str:
    """A multi-host URL of every node of *cluster*, for *database* (roles discovered)."""
    primary = cluster.primary
    hosts = ",".join(f"{n.host}:{n.port}" for n in cluster.nodes)
    user = quote(primary.user, safe="") if getattr(primary, "user", None) else ""
    return f"postgresql://{user}@{hosts}/{quote(database, safe='')}"


def ports(cluster: LocalCluster) -> tuple[int, set[int]]:
    """The primary's port and the replicas' ports."""
    return cluster.primary.port, {r.port for r in cluster.replicas}


@contextmanager
def serve(
    kind: str,
    url: str,
    *,
    workers: int = 3,
    mode: str = "router",
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[str]:
    """The example app (``kind``: ``"fastapi"`` under uvicorn, ``"flask"`` under gunicorn)
    with *workers* processes; yields its base URL; stops the whole process group after."""
    port = free_port()
    env = {
        **os.environ,
        "ROUTER_URL": url,
        "MARKET_SECRET": SECRET,
        "MARKET_MODE": mode,
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    if kind == "fastapi":
        command = [
            sys.executable, "-m", "uvicorn", "--workers", str(workers), "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log", "--log-level", "warning",
            "examples.marketplace.fastapi_app:app",
        ]  # fmt: skip
    elif kind == "flask":
        command = [
            sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
            "--log-level", "warning", "examples.marketplace.flask_app:app",
        ]  # fmt: skip
    else:
        raise ValueError(kind)
    proc = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        pids: set[int] = set()
        # Ready once several workers answer (each opens its router at its first request).
        while len(pids) < min(workers, 2):
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} server did not answer within {timeout} s")
            try:
                with httpx.Client(base_url=base, timeout=5) as client:
                    reply = client.get("/which", headers={"Connection": "close"})
                if reply.status_code == 200:
                    pids.add(reply.json()["pid"])
                    continue
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started in a session of its own (``start_new_session``), workers and
    all: SIGTERM to its group, SIGKILL after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
