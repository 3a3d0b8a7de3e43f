"""Leave nothing behind: atexit, termination signals, and orphans of killed runs.

Three layers, because any one of them can be bypassed:

1. the context manager / ``close()`` (normal exits and exceptions);
2. an ``atexit`` hook for clusters still open at interpreter exit, and SIGTERM / SIGHUP
   turned into ``KeyboardInterrupt`` so they unwind like Ctrl-C does (pytest then runs its
   teardown, and fixtures close the cluster);
3. a process killed with SIGKILL runs none of that, so every new cluster first reaps
   *orphans*: temp clusters whose owning process is gone. Their servers are stopped and
   their directories removed.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from router.testing._proc import pid_alive, signal_group, wait_pid_gone

__all__ = [
    "TEMP_PREFIX",
    "owner_identity",
    "reap_orphans",
    "register",
    "unregister",
]

logger = logging.getLogger(__name__)

TEMP_PREFIX = "router-cluster-"
STATE_FILE = "cluster.json"


class _Closable(Protocol):
    def close(self) -> None: ...


_live: dict[int, _Closable] = {}
_lock = threading.Lock()
_installed: list[bool] = []  # a flag without `global`: set once handlers are in place


def _process_start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def owner_identity() -> dict[str, Any]:
    """Who owns a cluster: our pid plus its start time, so a reused pid is not mistaken."""
    return {"owner_pid": os.getpid(), "owner_start": _process_start_time(os.getpid())}


def _owner_alive(state: dict[str, Any]) -> bool:
    pid = state.get("owner_pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return False
    started = state.get("owner_start")
    return started is None or _process_start_time(pid) == started


def _close_all() -> None:
    with _lock:
        clusters = list(_live.values())
    for cluster in clusters:
        try:
            cluster.close()
        except Exception:
            # Interpreter exit: nobody is left to raise to, so say what is left running.
            logger.exception("could not close %r at exit", cluster)


def _on_terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"terminated by {signal.Signals(signum).name}")


def _install_handlers() -> None:
    if _installed:
        return
    _installed.append(True)
    atexit.register(_close_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        # Only where nobody else has a say: an application's own handler wins.
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _on_terminate)


def register(cluster: _Closable) -> None:
    """Close *cluster* at interpreter exit or on SIGTERM / SIGHUP unless closed before."""
    with _lock:
        _install_handlers()
        _live[id(cluster)] = cluster


def unregister(cluster: _Closable) -> None:
    with _lock:
        _live.pop(id(cluster), None)


def stop_servers_in(base_dir: Path, timeout: float = 10.0) -> None:
    """SIGKILL every process group whose leader's pid is in a ``*.pid`` file in *base_dir*
    (a Patroni cluster's etcd and Patroni members: first, so nothing restarts a server), then
    every postmaster whose data directory lies directly under *base_dir*, and every PgBouncer
    whose work directory does."""
    pid_files = [
        *base_dir.glob("*.pid"),
        *base_dir.glob("*/postmaster.pid"),
        *base_dir.glob("*/pgbouncer.pid"),
    ]
    for pid_file in pid_files:
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            continue
        if pid_alive(pid):
            signal_group(pid, signal.SIGKILL)
            # A postmaster started by Patroni leads no process group of its own.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_pid_gone(pid, timeout)


def reap_orphans(
    temp_root: Path | None = None, *, log: Callable[[str], None] = logger.warning
) -> list[Path]:
    """Stop and remove temp clusters whose owner died without cleaning up.

    Detached clusters (``router cluster up``) and clusters of live processes are left alone.
    Returns the directories removed.
    """
    root = Path(tempfile.gettempdir()) if temp_root is None else temp_root
    removed = []
    for base in root.glob(TEMP_PREFIX + "*"):
        try:
            state = json.loads((base / STATE_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(state, dict) or state.get("detached") or _owner_alive(state):
            continue
        log(
            f"removing a local cluster left behind by dead process {state.get('owner_pid')}: {base}"
        )
        stop_servers_in(base)
        shutil.rmtree(base, ignore_errors=True)
        removed.append(base)
    return removed
