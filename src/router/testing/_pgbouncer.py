"""A PgBouncer in front of every node of a :class:`~router.testing.LocalCluster`.

The deployment shape the scaling guides describe: the application talks to a PgBouncer per
server, often in ``transaction`` mode, where every transaction (every statement outside one)
may run on a different server connection shared with other clients::

    with LocalCluster(replicas=2) as cluster, PgBouncers(cluster, "transaction") as bouncers:
        config = bouncers.router_config("postgres")   # pooler_mode="transaction" set
        bouncers.kill("replica1")                     # the pooler lost, the server still up
        bouncers.start_node("replica1")

Each PgBouncer (Debian's ``pgbouncer``; :data:`DEFAULT_BINARY` when not on ``PATH``) runs in
the foreground as a child process, as the cluster's server user when we are root (PgBouncer
refuses root, as PostgreSQL does), on a free loopback port, with a configuration of its own in
a temp directory. It is stopped and its directory removed on :meth:`PgBouncers.close`, at
interpreter exit, or, after a SIGKILL of the owning process, by the next cluster's orphan
reaping (the directory carries the same owner record as a cluster's).

Authentication: ``trust`` from loopback without a password; with the cluster's password,
scram-sha-256 against a 0600 ``userlist.txt`` holding it (PgBouncer logs into the server with
it too). The password is never on a command line, in the ``.ini`` or in an error raised here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Self
from urllib.parse import quote

import psycopg

from router.config import NodeConfig, RouterConfig
from router.testing import _cleanup
from router.testing._cluster import LocalCluster
from router.testing._errors import ClusterError
from router.testing._harness import Harness
from router.testing._node import Node
from router.testing._proc import (
    chown_to,
    free_port,
    pid_alive,
    resolve_server_user,
    signal_group,
    spawn_as,
    tail,
    wait_pid_gone,
)

__all__ = ["DEFAULT_BINARY", "Bouncer", "PgBouncers", "PoolMode", "find_pgbouncer"]

#: Where Debian's ``pgbouncer`` package puts it (``/usr/sbin`` is not on every PATH).
DEFAULT_BINARY: Final = Path("/usr/sbin/pgbouncer")
PoolMode = Literal["session", "transaction"]

_HOW_TO_GET_IT = "install PgBouncer (Debian/Ubuntu: `apt-get install pgbouncer`)"
_PREFIX: Final = _cleanup.TEMP_PREFIX + "pgbouncer-"


def find_pgbouncer() -> Path:
    """The ``pgbouncer`` binary: the first on ``$PATH``, else :data:`DEFAULT_BINARY`."""
    found = shutil.which("pgbouncer")
    if found:
        return Path(found)
    if DEFAULT_BINARY.is_file() and os.access(DEFAULT_BINARY, os.X_OK):
        return DEFAULT_BINARY
    raise ClusterError(
        f"no pgbouncer binary found on PATH or at {DEFAULT_BINARY}: {_HOW_TO_GET_IT}"
    )


@dataclass(eq=False, repr=False)
class Bouncer:
    """The PgBouncer in front of one node (``name`` is the node's)."""

    name: str
    port: int
    workdir: Path
    user: str
    host: str = "127.0.0.1"
    _password: str | None = field(default=None, repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "pgbouncer.log"

    @property
    def ini_path(self) -> Path:
        return self.workdir / "pgbouncer.ini"

    @property
    def pid(self) -> int | None:
        """PgBouncer's pid while it runs, else ``None``."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid if pid_alive(self._proc.pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def dsn_for(self, database: str) -> str:
        """A libpq URL for *database* through this PgBouncer (with the password, if any)."""
        auth = quote(self.user, safe="")
        if self._password is not None:
            auth += ":" + quote(self._password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(database, safe='')}"

    def admin(self, command: str) -> list[tuple[Any, ...]]:
        """Run *command* (``SHOW POOLS``, ``RECONNECT``, ...) on the admin console."""
        with psycopg.connect(
            self.dsn_for("pgbouncer"), autocommit=True, connect_timeout=5, prepare_threshold=None
        ) as conn:
            cur = conn.execute(command.encode(), prepare=False)
            return list(cur.fetchall()) if cur.description else []

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"Bouncer(name={self.name!r}, port={self.port}, {state})"


class PgBouncers(Harness):
    """A PgBouncer per node of a started *cluster*, in *mode* (``"transaction"`` or
    ``"session"``). No I/O until :meth:`start` (or ``with``).

    ``pool_size``: server connections per database and user; ``query_wait_timeout``: seconds
    a client's query may wait for one (PgBouncer's default is 120); ``settings``: any other
    ``[pgbouncer]`` setting.
    """

    def __init__(
        self,
        cluster: LocalCluster,
        mode: PoolMode = "transaction",
        *,
        pool_size: int = 20,
        query_wait_timeout: float = 120.0,
        settings: Mapping[str, str | int] | None = None,
        binary: str | Path | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        if mode not in ("session", "transaction"):
            raise ValueError(f"mode must be 'session' or 'transaction', not {mode!r}")
        self.cluster = cluster
        self.mode: PoolMode = mode
        self._pool_size = pool_size
        self._query_wait_timeout = query_wait_timeout
        self._settings = dict(settings or {})
        self._binary_arg = Path(binary) if binary is not None else None
        self._startup_timeout = startup_timeout
        self._bouncers: dict[str, Bouncer] = {}
        self._base: Path | None = None
        self._binary: Path | None = None
        self._os_user: str | None = None
        self._started = False
        self._closed = False
        #: Bumped by every fault switch; tells a fixture whether :meth:`reset` is needed.
        self.faults_used = 0

    # -- public surface ---------------------------------------------------------------

    @property
    def bouncers(self) -> list[Bouncer]:
        return list(self._bouncers.values())

    def bouncer(self, node: Node | str) -> Bouncer:
        name = node if isinstance(node, str) else node.name
        try:
            return self._bouncers[name]
        except KeyError:
            raise ClusterError(f"no PgBouncer in front of {name!r}") from None

    def dsn_for(self, node: Node | str, database: str) -> str:
        return self.bouncer(node).dsn_for(database)

    def router_config(self, database: str, **options: Any) -> RouterConfig:
        """A :class:`RouterConfig` for *database* through the PgBouncers, nodes named and
        roled as the cluster's now; ``pooler_mode`` follows :attr:`mode` unless given."""
        options.setdefault("pooler_mode", self.mode)
        cluster = self.cluster

        def node(n: Node) -> NodeConfig:
            return NodeConfig(dsn=self.dsn_for(n, database), name=n.name)

        return RouterConfig(
            primary=node(cluster.primary),
            replicas=[node(r) for r in cluster.replicas],
            **options,
        )

    def __repr__(self) -> str:
        return f"PgBouncers({self.mode}, {self.bouncers!r})"

    def start(self) -> Self:
        """Start a PgBouncer in front of every node; return once each accepts queries."""
        if self._started:
            return self
        if self._closed:
            raise ClusterError("closed PgBouncers cannot be started again")
        self._binary = self._binary_arg or find_pgbouncer()
        cluster = self.cluster
        nodes = cluster.nodes
        if not nodes:
            raise ClusterError("the cluster has not been started")
        self._os_user = resolve_server_user(cluster._os_user)
        self._base = Path(tempfile.mkdtemp(prefix=_PREFIX))
        chown_to(self._base, self._os_user)
        self._started = True
        _cleanup.register(self)
        (self._base / _cleanup.STATE_FILE).write_text(
            json.dumps({"version": 1, "kind": "pgbouncer", **_cleanup.owner_identity()})
        )
        try:
            for n in nodes:
                bouncer = self._bouncers[n.name] = self._new_bouncer(n)
                self._spawn(bouncer)
            for bouncer in self._bouncers.values():
                self._wait_ready(bouncer)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every PgBouncer and remove their files (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for bouncer in self._bouncers.values():
            self._stop(bouncer, signal.SIGKILL)
        _cleanup.unregister(self)
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)

    # -- fault switches ---------------------------------------------------------------

    def kill(self, node: Node | str) -> None:
        """SIGKILL the PgBouncer in front of *node*: its clients' connections drop, new ones
        are refused; the server behind it keeps running."""
        self.faults_used += 1
        self._stop(self.bouncer(node), signal.SIGKILL)

    def start_node(self, node: Node | str) -> None:
        """Start the PgBouncer in front of *node* again, on the same port."""
        self.faults_used += 1
        bouncer = self.bouncer(node)
        if not bouncer.is_running():
            self._spawn(bouncer)
            self._wait_ready(bouncer)

    def reset(self) -> None:
        """Every PgBouncer running, with no server connection from before (a node may have
        been restarted or rebuilt behind it)."""
        for bouncer in self._bouncers.values():
            if bouncer.is_running():
                self._stop(bouncer, signal.SIGKILL)
            self._spawn(bouncer)
        for bouncer in self._bouncers.values():
            self._wait_ready(bouncer)

    # -- building ---------------------------------------------------------------------

    def _new_bouncer(self, node: Node) -> Bouncer:
        assert self._base is not None
        workdir = self._base / node.name
        workdir.mkdir()
        chown_to(workdir, self._os_user)
        bouncer = Bouncer(
            name=node.name,
            port=free_port(),
            workdir=workdir,
            user=node.user,
            _password=node._password,
        )
        password = node._password
        auth_type = "trust" if password is None else "scram-sha-256"
        userlist = workdir / "userlist.txt"
        userlist.write_text(f'"{node.user}" "{(password or "").replace(chr(34), chr(34) * 2)}"\n')
        userlist.chmod(0o600)
        chown_to(userlist, self._os_user)
        settings: dict[str, str | int] = {
            "listen_addr": "127.0.0.1",
            "listen_port": bouncer.port,
            "unix_socket_dir": "",
            "pidfile": str(workdir / "pgbouncer.pid"),
            "auth_type": auth_type,
            "auth_file": str(userlist),
            "admin_users": node.user,
            "stats_users": node.user,
            "pool_mode": self.mode,
            "max_client_conn": 2000,
            "default_pool_size": self._pool_size,
            "min_pool_size": 0,
            "reserve_pool_size": 0,
            # A server that refused a login is tried again after 1 s, not PgBouncer's 15.
            "server_login_retry": 1,
            "server_connect_timeout": 5,
            "query_wait_timeout": max(1, round(self._query_wait_timeout)),
            "server_reset_query": "DISCARD ALL",
            "log_connections": 0,
            "log_disconnections": 0,
            "log_pooler_errors": 1,
            **self._settings,
        }
        ini = [
            "[databases]",
            f"* = host={node.host} port={node.port}",
            "",
            "[pgbouncer]",
            *(f"{key} = {value}" for key, value in settings.items()),
            "",
        ]
        bouncer.ini_path.write_text("\n".join(ini))
        chown_to(bouncer.ini_path, self._os_user)
        return bouncer

    def _spawn(self, bouncer: Bouncer) -> None:
        assert self._binary is not None
        with open(bouncer.log_path, "ab") as log:
            log.write(f"--- router.testing: starting pgbouncer on port {bouncer.port}\n".encode())
        chown_to(bouncer.log_path, self._os_user)
        with contextlib.suppress(FileNotFoundError):  # left by a SIGKILL: PgBouncer refuses it
            (bouncer.workdir / "pgbouncer.pid").unlink()
        bouncer._proc = spawn_as(self._os_user, [self._binary, bouncer.ini_path], bouncer.log_path)

    def _wait_ready(self, bouncer: Bouncer) -> None:
        deadline = time.monotonic() + self._startup_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            proc = bouncer._proc
            if proc is not None and proc.poll() is not None:
                raise ClusterError(
                    f"pgbouncer in front of {bouncer.name} exited with code {proc.returncode}"
                    f" while starting; its log ({bouncer.log_path}) ends:\n"
                    f"{tail(bouncer.log_path)}"
                )
            try:
                bouncer.admin("SHOW VERSION")
                return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.02)
        raise ClusterError(
            f"pgbouncer in front of {bouncer.name} did not accept connections within "
            f"{self._startup_timeout:g} s ({type(last).__name__}); its log ends:\n"
            f"{tail(bouncer.log_path)}"
        )

    def _stop(self, bouncer: Bouncer, sig: signal.Signals) -> None:
        proc = bouncer._proc
        if proc is None:
            return
        if proc.poll() is None:
            signal_group(proc.pid, sig)
        wait_pid_gone(proc.pid, 10.0, proc)
        bouncer._proc = None
