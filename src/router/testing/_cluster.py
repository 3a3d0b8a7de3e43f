"""A real primary plus N streaming replicas from the PostgreSQL binaries on this machine."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import psycopg
from psycopg import sql

from router.config import redact
from router.testing import _cleanup
from router.testing._binaries import find_bindir
from router.testing._errors import ClusterError
from router.testing._harness import Harness
from router.testing._node import Node, StopMode
from router.testing._proc import chown_to, free_port, resolve_server_user, run_as

__all__ = ["LocalCluster", "NodeStatus"]

logger = logging.getLogger(__name__)

#: Settings every node gets. A throwaway cluster: durability is traded for speed (fsync off),
#: replication is tuned to notice changes fast. ``settings=`` overrides any of them.
BASE_SETTINGS: Mapping[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "200",
    "shared_buffers": "64MB",
    "wal_level": "replica",
    "max_wal_senders": "16",
    "max_replication_slots": "16",
    # Replicas are cloned concurrently: one clone's checkpoint must not recycle WAL that
    # another clone is still streaming.
    "wal_keep_size": "256MB",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "wal_receiver_status_interval": "1s",
    "wal_retrieve_retry_interval": "200ms",
    "fsync": "off",
    "log_line_prefix": "'%m [%p] %q%a '",
}

_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What a node says about itself (``None``: not known, e.g. the node is down)."""

    name: str
    port: int
    running: bool
    role: str | None  # what the server reports: "primary" or "replica"
    replay_lag_bytes: int | None
    replay_lag_seconds: float | None
    replay_paused: bool | None
    streaming: bool | None
    #: Why a running node could not be asked (e.g. its password is wanted: ``PGPASSWORD``).
    error: str | None = None


def _as_node(cluster: LocalCluster, node: Node | str) -> Node:
    return cluster.node(node) if isinstance(node, str) else node


class LocalCluster(Harness):
    """A primary and *replicas* streaming replicas on free loopback ports.

    No I/O happens until :meth:`start` (or ``with``). The servers run as an unprivileged
    user when we are root (``server_user``, default ``postgres``). Unless ``base_dir`` is
    given the cluster lives in a fresh temp directory, removed on :meth:`close`. With
    ``password`` the superuser gets that password and connections must use it
    (scram-sha-256); without, loopback connections are trusted.
    """

    def __init__(
        self,
        replicas: int = 2,
        base_dir: str | Path | None = None,
        *,
        bindir: str | Path | None = None,
        server_user: str | None = None,
        superuser: str = "postgres",
        password: str | None = None,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
        keep: bool = False,
    ) -> None:
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ValueError(f"replicas must be a non-negative int, not {replicas!r}")
        for name in settings or {}:
            if not _SETTING_NAME.match(name):
                raise ValueError(f"settings: {name!r} is not a PostgreSQL setting name")
        self._replica_count = replicas
        self._base_dir_arg = Path(base_dir) if base_dir is not None else None
        self._bindir_arg = Path(bindir) if bindir is not None else None
        self._server_user_arg = server_user
        self._superuser = superuser
        self._password = password
        self._settings = {**BASE_SETTINGS, **(settings or {})}
        self._startup_timeout = startup_timeout
        self._keep = keep
        self._nodes: list[Node] = []
        self._base_dir: Path | None = None
        self._created_base_dir = False
        self._bindir: Path | None = None
        self._os_user: str | None = None
        self._started = False
        self._closed = False
        self._detached = False
        #: Bumped by every fault switch; lets callers tell whether :meth:`reset` is needed.
        self.faults_used = 0

    # -- public surface ---------------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        if self._base_dir is None:
            raise ClusterError("the cluster has not been started")
        return self._base_dir

    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes)

    @property
    def primary(self) -> Node:
        """The node the harness made primary last (a promoted replica after :meth:`promote`)."""
        for node in self._nodes:
            if node.role == "primary":
                return node
        raise ClusterError("the cluster has not been started")

    @property
    def replicas(self) -> list[Node]:
        return [n for n in self._nodes if n.role == "replica"]

    def node(self, name: str) -> Node:
        for node in self._nodes:
            if node.name == name:
                return node
        raise ClusterError(f"no node named {name!r}; nodes: {[n.name for n in self._nodes]}")

    def __repr__(self) -> str:
        where = str(self._base_dir) if self._base_dir else "not started"
        return f"LocalCluster({where}, nodes={self._nodes!r})"

    def start(self) -> Self:
        """Build and start every node; return once each replica is streaming."""
        if self._started:
            return self
        if self._closed:
            raise ClusterError("a closed LocalCluster cannot be started again")
        self._os_user = resolve_server_user(self._server_user_arg)
        self._bindir = self._bindir_arg or find_bindir(server_user=self._os_user)
        _cleanup.reap_orphans()
        self._base_dir = self._make_base_dir()
        self._started = True
        _cleanup.register(self)
        try:
            self._write_state()
            primary = self._init_primary()
            self._start_node(primary)
            replicas = [
                self._new_node(f"replica{i}", "replica") for i in range(1, self._replica_count + 1)
            ]
            self._nodes.extend(replicas)
            self._write_state()
            # Cloning is mostly waiting on the primary and the disk: do the replicas together.
            with ThreadPoolExecutor(max_workers=max(1, len(replicas))) as pool:
                for done in [pool.submit(self._build_replica, r, primary) for r in replicas]:
                    done.result()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every server and remove the cluster's files (idempotent)."""
        if self._closed or self._detached:
            return
        self._closed = True
        errors = []
        for node in reversed(self._nodes):
            try:
                node._stop("fast", timeout=10.0)
            except ClusterError as exc:
                errors.append(str(exc))
                node._kill(timeout=10.0)
        _cleanup.unregister(self)
        if self._base_dir is not None and not self._keep:
            if self._created_base_dir:
                shutil.rmtree(self._base_dir, ignore_errors=True)
            else:
                for node in self._nodes:
                    shutil.rmtree(node.datadir, ignore_errors=True)
                    node.log_path.unlink(missing_ok=True)
                (self._base_dir / _cleanup.STATE_FILE).unlink(missing_ok=True)
        if errors:
            logger.warning("servers that needed SIGKILL to stop: %s", "; ".join(errors))

    # -- fault switches ---------------------------------------------------------------

    def stop(self, node: Node | str, mode: StopMode = "fast") -> None:
        """Shut *node* down: ``smart``, ``fast`` (default) or ``immediate`` (no checkpoint)."""
        self.faults_used += 1
        _as_node(self, node)._stop(mode, timeout=60.0)

    def kill(self, node: Node | str) -> None:
        """SIGKILL *node*'s postmaster and every backend at once, like a machine lost.

        Clients see their connections reset; :meth:`start` brings it back through crash
        recovery.
        """
        self.faults_used += 1
        _as_node(self, node)._kill(timeout=30.0)

    def start_node(self, node: Node | str, *, streaming: bool = True) -> None:
        """Start a stopped or killed *node*; a replica is back streaming when this returns
        (with ``streaming=False``, as soon as it accepts connections: one whose primary is
        down can then be promoted)."""
        self.faults_used += 1
        n = _as_node(self, node)
        self._start_node(n)
        if n.role == "replica" and streaming:
            self._wait_streaming(n)

    def follow(self, node: Node | str, leader: Node | str) -> None:
        """Start stopped *node* as a standby of *leader*, as it is: no ``pg_rewind``. This is
        what an operator or an HA manager does before finding that a former primary must be
        rewound. A former primary whose WAL runs past the point where *leader*'s timeline
        forked replays that WAL, then cannot stream: it stays in recovery on a history the
        cluster left (role ``rejoined``). Returns once it accepts connections.
        :meth:`reset` cannot undo this for the cluster's first primary: use a cluster of
        your own."""
        self.faults_used += 1
        n, source = _as_node(self, node), _as_node(self, leader)
        if n.is_running():
            raise ClusterError(f"{n.name} is running: stop it first")
        (n.datadir / "standby.signal").touch()
        chown_to(n.datadir / "standby.signal", self._os_user)
        conninfo = (
            f"host={source.host} port={source.port} user={self._superuser} "
            f"application_name={n.name}"
        )
        if self._password is not None:
            conninfo += f" password={self._password}"
        self._write_conf(
            n.datadir / "router_node.conf",
            f"port = {n.port}\ncluster_name = '{n.name}'\n"
            f"primary_conninfo = '{conninfo}'\nprimary_slot_name = ''\n",
        )
        # A replica built by pg_basebackup -R (or given ALTER SYSTEM SET primary_conninfo)
        # names its upstream in postgresql.auto.conf, read after the files above: it wins.
        auto = n.datadir / "postgresql.auto.conf"
        if auto.exists():
            kept = [
                line
                for line in auto.read_text().splitlines(keepends=True)
                if line.split("=", 1)[0].strip() not in {"primary_conninfo", "primary_slot_name"}
            ]
            self._write_conf(auto, "".join(kept))
        n.role = "rejoined"
        self._write_state()
        self._start_node(n)

    def pause_replay(self, node: Node | str) -> None:
        """Stop *node* applying WAL: it keeps receiving, its replay LSN stands still."""
        self.faults_used += 1
        self._run(_as_node(self, node), "SELECT pg_wal_replay_pause()")

    def resume_replay(self, node: Node | str) -> None:
        self.faults_used += 1
        self._run(_as_node(self, node), "SELECT pg_wal_replay_resume()")

    def set_apply_delay(self, node: Node | str, seconds: float) -> None:
        """Set ``recovery_min_apply_delay`` on *node* and reload; returns once it is in force."""
        self.faults_used += 1
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, not {seconds!r}")
        n = _as_node(self, node)
        value = f"{round(seconds * 1000)}ms"
        self._run(n, f"ALTER SYSTEM SET recovery_min_apply_delay = '{value}'")
        self._run(n, "SELECT pg_reload_conf()")
        expected = self._scalar(n, "SELECT '" + value + "'::interval")
        self._wait_for(
            lambda: (
                self._scalar(n, "SELECT current_setting('recovery_min_apply_delay')::interval")
                == expected
            ),
            f"{n.name} to load recovery_min_apply_delay = {value}",
            timeout=10.0,
        )

    def promote(self, node: Node | str) -> None:
        """Promote replica *node*; it becomes :attr:`primary` and the old primary, still
        running and writable until stopped, becomes ``former-primary`` (a split brain)."""
        self.faults_used += 1
        n = _as_node(self, node)
        if n.role != "replica":
            raise ClusterError(f"{n.name} is not a replica (role {n.role!r})")
        if self._scalar(n, "SELECT pg_promote(wait => true, wait_seconds => 60)") is not True:
            raise ClusterError(f"{n.name} did not finish promotion within 60 s")
        old = self.primary
        old.role = "former-primary"
        n.role = "primary"
        self._write_state()

    def wait_caught_up(self, node: Node | str | None = None, timeout: float = 10.0) -> None:
        """Wait until *node* (default: every running replica) has replayed the primary's
        current WAL position; raise :class:`ClusterError` naming the laggard on timeout."""
        target = str(self._scalar(self.primary, "SELECT pg_current_wal_lsn()"))
        nodes = [_as_node(self, node)] if node is not None else self.replicas
        for n in nodes:
            if node is None and not n.is_running():
                continue
            query = f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
            self._wait_for(
                lambda n=n, query=query: self._scalar(n, query) is True,
                f"{n.name} to replay up to {target}",
                timeout=timeout,
            )

    def reset(self) -> None:
        """Undo every fault switch: the topology the cluster was built with, every node
        running, replay resumed, no apply delay, replicas streaming and caught up."""
        original = self._nodes[0]
        if original.role == "rejoined":
            raise ClusterError(f"reset cannot undo follow() of {original.name}, the first primary")
        for n in self._nodes:
            if n is not original and n.role != "replica":
                self._reclone(n, original)
        original.role = "primary"
        if not original.is_running():
            self._start_node(original)
        for n in self.replicas:
            if not n.is_running():
                self._start_node(n)
            with n.connect() as conn:
                row = conn.execute(
                    "SELECT pg_is_wal_replay_paused(),"
                    " current_setting('recovery_min_apply_delay')::interval > '0'"
                ).fetchone()
            paused, delayed = row if row else (False, False)
            if paused:
                self.resume_replay(n)
            if delayed:
                self._run(n, "ALTER SYSTEM RESET recovery_min_apply_delay")
                self.set_apply_delay(n, 0)
        self._write_state()
        for n in self.replicas:
            self._wait_streaming(n)
        self.wait_caught_up(timeout=30.0)

    def status(self) -> list[NodeStatus]:
        """Each node's reported role, replay lag (bytes and idle-safe seconds) and state."""
        primary_lsn: str | None = None
        with contextlib.suppress(psycopg.Error):
            primary_lsn = str(self._scalar(self.primary, "SELECT pg_current_wal_lsn()"))
        return [self._node_status(n, primary_lsn) for n in self._nodes]

    # -- databases --------------------------------------------------------------------

    def create_database(self, name: str) -> None:
        """Create *name* on the primary and wait until every running replica has it."""
        self._run(self.primary, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.wait_caught_up()

    def drop_database(self, name: str) -> None:
        self._run(
            self.primary,
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
        )

    # -- detached clusters (the CLI) ----------------------------------------------------

    def detach(self) -> None:
        """Leave the servers running after this process exits; :meth:`attach` finds them."""
        self._detached = True
        _cleanup.unregister(self)
        for n in self._nodes:
            n._forget_process()
        self._write_state()

    @classmethod
    def attach(cls, base_dir: str | Path, *, password: str | None = None) -> LocalCluster:
        """The detached cluster in *base_dir*; :meth:`close` on it stops and removes it."""
        base = Path(base_dir)
        try:
            state = json.loads((base / _cleanup.STATE_FILE).read_text())
        except FileNotFoundError:
            raise ClusterError(f"no local cluster in {base}") from None
        except (OSError, ValueError) as exc:
            raise ClusterError(f"unreadable cluster state in {base}: {exc}") from exc
        self = cls(0, base, bindir=state["bindir"], superuser=state["superuser"], password=password)
        self._base_dir = base
        self._created_base_dir = bool(state.get("created_base_dir"))
        self._bindir = Path(state["bindir"])
        self._os_user = state.get("server_user")
        self._started = True
        self._nodes = [
            Node(
                name=n["name"],
                port=n["port"],
                datadir=Path(n["datadir"]),
                log_path=Path(n["log_path"]),
                role=n["role"],
                user=state["superuser"],
                _password=password,
            )
            for n in state["nodes"]
        ]
        return self

    # -- building ---------------------------------------------------------------------

    def _make_base_dir(self) -> Path:
        if self._base_dir_arg is None:
            base = Path(tempfile.mkdtemp(prefix=_cleanup.TEMP_PREFIX))
            self._created_base_dir = True
        else:
            base = self._base_dir_arg.resolve()
            if (base / _cleanup.STATE_FILE).exists():
                raise ClusterError(f"{base} already holds a local cluster (router cluster down?)")
            self._created_base_dir = not base.exists()
            base.mkdir(parents=True, exist_ok=True)
        chown_to(base, self._os_user)
        if self._os_user is not None:
            try:
                run_as(self._os_user, ["/bin/sh", "-c", 'test -w "$0" -a -x "$0"', base])
            except ClusterError:
                if self._created_base_dir:
                    base.rmdir()
                raise ClusterError(
                    f"the server user {self._os_user!r} cannot enter {base}: every parent "
                    "directory must be searchable by it (pick a directory under /tmp, or "
                    "chmod o+x the parents)"
                ) from None
        return base

    def _write_state(self) -> None:
        state: dict[str, Any] = {
            "version": 1,
            "bindir": str(self._bindir),
            "server_user": self._os_user,
            "superuser": self._superuser,
            "created_base_dir": self._created_base_dir,
            "detached": self._detached,
            **_cleanup.owner_identity(),
            "nodes": [
                {
                    "name": n.name,
                    "port": n.port,
                    "role": n.role,
                    "datadir": str(n.datadir),
                    "log_path": str(n.log_path),
                }
                for n in self._nodes
            ],
        }
        path = self.base_dir / _cleanup.STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)

    def _new_node(self, name: str, role: Any) -> Node:
        node = Node(
            name=name,
            port=free_port(),
            datadir=self.base_dir / name,
            log_path=self.base_dir / f"{name}.log",
            role=role,
            user=self._superuser,
            _password=self._password,
        )
        node.log_path.touch()
        chown_to(node.log_path, self._os_user)
        return node

    def _init_primary(self) -> Node:
        assert self._bindir is not None
        node = self._new_node("primary", "primary")
        self._nodes.append(node)
        argv: list[str | Path] = [
            self._bindir / "initdb",
            "-D",
            node.datadir,
            "-U",
            self._superuser,
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--auth-local=trust",
        ]
        pwfile = self.base_dir / ".pwfile"
        if self._password is not None:
            pwfile.write_text(self._password + "\n")
            pwfile.chmod(0o600)
            chown_to(pwfile, self._os_user)
            argv += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            argv += ["--auth-host=trust"]
        try:
            run_as(self._os_user, argv, what=f"initdb of {node.name}")
        finally:
            pwfile.unlink(missing_ok=True)
        conf = "".join(f"{k} = {v}\n" for k, v in self._settings.items())
        self._write_conf(node.datadir / "router_cluster.conf", conf)
        with open(node.datadir / "postgresql.conf", "a") as f:
            f.write("\ninclude 'router_cluster.conf'\ninclude_if_exists 'router_node.conf'\n")
        self._write_node_conf(node)
        return node

    def _write_conf(self, path: Path, text: str) -> None:
        path.write_text(text)
        chown_to(path, self._os_user)

    def _write_node_conf(self, node: Node) -> None:
        self._write_conf(
            node.datadir / "router_node.conf",
            f"port = {node.port}\ncluster_name = '{node.name}'\n",
        )

    def _build_replica(self, node: Node, source: Node) -> None:
        self._basebackup(node, source)
        self._start_node(node)
        self._wait_streaming(node)

    def _basebackup(self, node: Node, source: Node) -> None:
        assert self._bindir is not None
        conninfo = (
            f"host={source.host} port={source.port} user={self._superuser} "
            f"application_name={node.name}"
        )
        env = {"PGPASSWORD": self._password} if self._password is not None else None
        run_as(
            self._os_user,
            [
                self._bindir / "pg_basebackup",
                "-D",
                node.datadir,
                "-d",
                conninfo,
                "-R",
                "-X",
                "stream",
                "-C",
                "-S",
                node.name,
                "--checkpoint=fast",
                "--no-sync",
            ],
            env=env,
            what=f"pg_basebackup of {node.name} from {source.name}",
        )
        self._write_node_conf(node)

    def _reclone(self, node: Node, source: Node) -> None:
        """Rebuild *node* from scratch as a replica of *source* (undoes a promotion)."""
        node._stop("immediate", timeout=30.0)
        shutil.rmtree(node.datadir)
        if not source.is_running():
            self._start_node(source)
        self._run(
            source,
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            f" WHERE slot_name = '{node.name}'",
        )
        self._basebackup(node, source)
        node.role = "replica"
        self._start_node(node)

    def _start_node(self, node: Node) -> None:
        assert self._bindir is not None
        for attempt in range(3):
            node._spawn(self._bindir, self._os_user)
            try:
                node._wait_ready(self._startup_timeout)
                return
            except ClusterError as exc:
                # Another process may have taken the port between our check and the bind.
                if "already in use" not in str(exc) or attempt == 2:
                    raise
                node._stop("immediate", timeout=10.0)
                node.port = free_port()
                self._write_node_conf(node)
                self._write_state()

    def _wait_streaming(self, node: Node) -> None:
        self._wait_for(
            lambda: self._scalar(node, "SELECT status FROM pg_stat_wal_receiver") == "streaming",
            f"{node.name} to stream from the primary",
            timeout=self._startup_timeout,
        )

    # -- small helpers ----------------------------------------------------------------

    def _run(self, node: Node, query: str | sql.Composed) -> None:
        with node.connect() as conn:
            conn.execute(query)

    def _scalar(self, node: Node, query: str) -> Any:
        with node.connect() as conn:
            row = conn.execute(query).fetchone()
        return row[0] if row else None

    def _wait_for(self, condition: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            try:
                if condition():
                    return
            except psycopg.OperationalError as exc:
                last = exc
            if time.monotonic() >= deadline:
                cause = f" (last error: {last})" if last else ""
                raise ClusterError(f"timed out after {timeout:g} s waiting for {what}{cause}")
            time.sleep(0.01)

    def _node_status(self, node: Node, primary_lsn: str | None) -> NodeStatus:
        down = NodeStatus(node.name, node.port, node.is_running(), None, None, None, None, None)
        if not down.running:
            return down
        try:
            with node.connect() as conn:
                recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if not recovery or not recovery[0]:
                    return NodeStatus(node.name, node.port, True, "primary", 0, 0.0, None, None)
                row = conn.execute(
                    """
                    SELECT pg_wal_lsn_diff(%(p)s::pg_lsn, pg_last_wal_replay_lsn())::bigint,
                           CASE WHEN pg_last_wal_replay_lsn() >= %(p)s::pg_lsn THEN 0.0
                                ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())
                           END::float8,
                           pg_is_wal_replay_paused(),
                           EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')
                    """,
                    {"p": primary_lsn},
                ).fetchone()
        except psycopg.OperationalError as exc:
            return dataclasses.replace(down, error=redact(" ".join(str(exc).split())))
        assert row is not None
        lag_bytes, lag_seconds, paused, streaming = row
        if primary_lsn is None:
            lag_bytes = lag_seconds = None
        return NodeStatus(
            node.name, node.port, True, "replica", lag_bytes, lag_seconds, paused, streaming
        )
