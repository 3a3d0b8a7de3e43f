"""The parts of :class:`~router.testing.PatroniCluster` that need no cluster: where Patroni
and etcd are, a member's files and configuration, and how its postmaster is killed."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from router.testing._errors import ClusterError
from router.testing._node import Node
from router.testing._proc import wait_pid_gone

__all__ = [
    "PATRONI_REQUIREMENT",
    "PATRONI_VENV",
    "PG_PARAMETERS",
    "Member",
    "find_etcd",
    "find_patroni",
    "kill_postmaster",
    "member_config",
]

#: Where ``.ci/run`` builds the Patroni venv (readable by the ``postgres`` user).
PATRONI_VENV: Final = Path("/opt/router-patroni/venv")
PATRONI_REQUIREMENT: Final = "patroni[etcd3,psycopg3]==4.1.5"

#: PostgreSQL settings of every member (Patroni adds its own: wal_level, hot_standby, ...).
PG_PARAMETERS: Final[Mapping[str, Any]] = {
    "max_connections": 200,
    "shared_buffers": "64MB",
    "max_wal_senders": 16,
    "max_replication_slots": 16,
    "wal_keep_size": "256MB",
    "hot_standby_feedback": "on",
    "wal_receiver_status_interval": "1s",
    "wal_retrieve_retry_interval": "200ms",
    "wal_log_hints": "on",  # pg_rewind
    "fsync": "off",
    "log_line_prefix": "%m [%p] %q%a ",
}


def find_patroni(environ: Mapping[str, str] | None = None) -> Path:
    """The ``patroni`` script to run (see the module docstring for the search order)."""
    env = os.environ if environ is None else environ
    explicit = env.get("ROUTER_PATRONI")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise ClusterError(f"ROUTER_PATRONI={explicit} is not an executable patroni script")
        return Path(explicit)
    candidate = PATRONI_VENV / "bin" / "patroni"
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("patroni", path=env.get("PATH"))
    if found:
        return Path(found)
    raise ClusterError(
        "Patroni not found: build a venv the server user can read, e.g. "
        f"`/usr/bin/python3 -m venv {PATRONI_VENV} && {PATRONI_VENV}/bin/pip install "
        f"'{PATRONI_REQUIREMENT}'` (what .ci/run does), or set ROUTER_PATRONI"
    )


def find_etcd(environ: Mapping[str, str] | None = None) -> Path:
    """The ``etcd`` server binary: ``ETCD``, else ``etcd`` on ``PATH`` or in ``/usr/bin``."""
    env = os.environ if environ is None else environ
    explicit = env.get("ETCD")
    found = explicit or shutil.which("etcd", path=env.get("PATH")) or "/usr/bin/etcd"
    if not os.access(found, os.X_OK):
        raise ClusterError(
            f"etcd not found ({found}): install it (Debian: `apt-get install etcd-server`) "
            "or set ETCD to the server binary"
        )
    return Path(found)


@dataclass(eq=False)
class Member:
    """One Patroni member: its REST API and the PostgreSQL server it manages (``node``)."""

    name: str
    node: Node
    api_port: int
    config_path: Path
    pid_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def patroni_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def member_config(
    *, scope: str, member: Member, etcd_port: int, dcs: Mapping[str, Any], bindir: Path, base: Path
) -> dict[str, Any]:
    """A member's Patroni configuration: REST API and PostgreSQL on loopback, etcd3 as the
    DCS, trust on loopback (a throwaway cluster), *dcs* as the bootstrap DCS settings."""
    return {
        "scope": scope,
        "name": member.name,
        "log": {"level": "WARNING"},
        "restapi": {
            "listen": f"127.0.0.1:{member.api_port}",
            "connect_address": f"127.0.0.1:{member.api_port}",
        },
        "etcd3": {"hosts": [f"127.0.0.1:{etcd_port}"]},
        "bootstrap": {
            "dcs": dcs,
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}],
            "pg_hba": [
                "host all all 127.0.0.1/32 trust",
                "host replication all 127.0.0.1/32 trust",
            ],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{member.node.port}",
            "connect_address": f"127.0.0.1:{member.node.port}",
            "data_dir": str(member.node.datadir),
            "bin_dir": str(bindir),
            "pgpass": str(base / f"{member.name}.pgpass"),
            "authentication": {
                "superuser": {"username": "postgres"},
                "replication": {"username": "postgres"},
                "rewind": {"username": "postgres"},
            },
            "parameters": {"unix_socket_directories": str(base)},
            "pg_hba": [
                "host all all 127.0.0.1/32 trust",
                "host replication all 127.0.0.1/32 trust",
            ],
        },
    }


def kill_postmaster(node: Node, timeout: float) -> None:
    """SIGKILL *node*'s postmaster by the pid in its ``postmaster.pid``: Patroni started it in
    a session of its own, and every backend has one too (they exit once they see the
    postmaster gone)."""
    pid = node.pid
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_pid_gone(pid, timeout):
        raise ClusterError(f"{node.name} (pid {pid}) survived SIGKILL for {timeout:g} s")
