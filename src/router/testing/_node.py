"""One server of the local cluster: its address, files and process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import psycopg

from router.testing._errors import ClusterError
from router.testing._proc import (
    children,
    pid_alive,
    signal_group,
    spawn_as,
    tail,
    wait_pid_gone,
)

__all__ = ["Node", "NodeRole", "StopMode"]

NodeRole = Literal["primary", "replica", "former-primary", "rejoined"]
StopMode = Literal["smart", "fast", "immediate"]

_STOP_SIGNALS: dict[str, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}


@dataclass(eq=False, repr=False)
class Node:
    """A PostgreSQL server of a :class:`LocalCluster`.

    ``role`` is what the harness made the node (``primary``, ``replica``,
    ``former-primary`` once a replica was promoted over it, or ``rejoined`` once
    :meth:`LocalCluster.follow` restarted it as a standby as it was); ask the server itself
    (``pg_is_in_recovery()``) for what it believes.
    """

    name: str
    port: int
    datadir: Path
    log_path: Path
    role: NodeRole
    user: str = "postgres"
    host: str = "127.0.0.1"
    database: str = "postgres"
    _password: str | None = field(default=None, repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def dsn(self) -> str:
        """A libpq URL for the node's default database (with the password, if any)."""
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        """A libpq URL for *database* on this node."""
        auth = quote(self.user, safe="")
        if self._password is not None:
            auth += ":" + quote(self._password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(database, safe='')}"

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return (
            f"Node(name={self.name!r}, role={self.role!r}, host={self.host!r}, "
            f"port={self.port}, {state})"
        )

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs, else ``None``."""
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        try:
            first = (self.datadir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def connect(self, database: str | None = None, timeout: float = 5.0) -> psycopg.Connection:
        """An autocommit psycopg connection to the node (the caller closes it)."""
        return psycopg.connect(
            self.dsn_for(database or self.database),
            autocommit=True,
            connect_timeout=max(2, round(timeout)),
        )

    # -- process control (used by LocalCluster) ------------------------------------------

    def _spawn(self, bindir: Path, os_user: str | None) -> None:
        if self.is_running():
            raise ClusterError(f"{self.name} is already running")
        with open(self.log_path, "ab") as log:
            log.write(f"--- router.testing: starting {self.name} on port {self.port}\n".encode())
        self._proc = spawn_as(os_user, [bindir / "postgres", "-D", self.datadir], self.log_path)

    def _wait_ready(self, timeout: float) -> None:
        """Wait until the server accepts connections; raise with its log if it died."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ClusterError(
                    f"{self.name} exited with code {self._proc.returncode} while starting; "
                    f"its log ({self.log_path}) ends:\n{tail(self.log_path)}"
                )
            try:
                with self.connect(timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.02)
        raise ClusterError(
            f"{self.name} did not accept connections within {timeout:g} s ({last}); "
            f"its log ({self.log_path}) ends:\n{tail(self.log_path)}"
        )

    def _stop(self, mode: StopMode, timeout: float) -> None:
        if mode not in _STOP_SIGNALS:
            raise ValueError(f"mode must be one of {sorted(_STOP_SIGNALS)}, not {mode!r}")
        pid = self.pid
        if pid is None:
            self._proc = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, _STOP_SIGNALS[mode])
        if not wait_pid_gone(pid, timeout, self._proc):
            raise ClusterError(
                f"{self.name} (pid {pid}) did not stop ({mode}) within {timeout:g} s"
            )
        self._proc = None

    def _kill(self, timeout: float) -> None:
        """SIGKILL the whole server (postmaster and every backend) at once: a lost machine."""
        pid = self.pid
        if pid is None:
            self._proc = None
            return
        # A server's children lead process groups of their own (PostgreSQL calls setsid()
        # in each): killed one by one first, else a backend would answer its client until
        # it noticed its postmaster gone, later on a loaded machine.
        backends = children(pid)
        for child in backends:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        signal_group(pid, signal.SIGKILL)
        if not wait_pid_gone(pid, timeout, self._proc):
            raise ClusterError(f"{self.name} (pid {pid}) survived SIGKILL for {timeout:g} s")
        for child in backends:
            wait_pid_gone(child, timeout)
        self._proc = None

    def _forget_process(self) -> None:
        """Stop tracking the server process without stopping it (a detached cluster)."""
        if self._proc is not None:
            # Popen warns when collected while its child runs; the child is meant to outlive us.
            self._proc.returncode = 0
        self._proc = None
