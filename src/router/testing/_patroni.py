"""A real HA cluster: etcd plus N Patroni members, each managing a PostgreSQL server.

``PatroniCluster`` is :class:`~router.testing.LocalCluster`'s sibling for the failovers that an
HA manager decides (planned switchover, a crashed leader, a lost DCS), not the harness::

    from router.testing import PatroniCluster

    with PatroniCluster(members=3) as cluster:
        print(cluster.leader().dsn, cluster.rest_urls)
        cluster.switchover()

What it needs on the machine: etcd (Debian ``etcd-server``; ``ETCD`` names another binary),
the PostgreSQL server binaries (as ``LocalCluster``), and Patroni 4 with its etcd3 and psycopg3
extras in a Python environment the server user can read (``ROUTER_PATRONI`` names the
``patroni`` script; else ``/opt/router-patroni/venv/bin/patroni``, else ``patroni`` on
``PATH``). ``.ci/run`` builds that venv.

The same guarantees as ``LocalCluster``: free loopback ports, servers run as ``postgres``
when we are root, everything under one temp directory (``router-cluster-*``) removed on
:meth:`close`, and a killed run's leftovers reaped by the next cluster (pid files of etcd and
every Patroni sit in that directory). Patroni starts postgres in a session of its own, so a
postmaster is stopped by the pid in its ``postmaster.pid``, not through Patroni's group.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import psycopg

from router.testing import _cleanup
from router.testing._binaries import find_bindir
from router.testing._errors import ClusterError
from router.testing._harness import Harness
from router.testing._node import Node
from router.testing._patroni_parts import (
    PG_PARAMETERS,
    Member,
    find_etcd,
    find_patroni,
    kill_postmaster,
    member_config,
)
from router.testing._proc import (
    chown_to,
    free_port,
    resolve_server_user,
    signal_group,
    spawn_as,
    tail,
    wait_pid_gone,
)

__all__ = ["PatroniCluster"]

logger = logging.getLogger(__name__)


class PatroniCluster(Harness):
    """etcd plus *members* Patroni members (one leader, the rest streaming replicas).

    ``ttl`` (>= 20, Patroni's minimum), ``loop_wait`` and ``primary_start_timeout`` go to the
    DCS configuration at bootstrap (``primary_start_timeout=0``: a crashed leader fails over
    instead of being restarted in place). No I/O until :meth:`start` (or ``with``).
    """

    def __init__(
        self,
        members: int = 3,
        *,
        ttl: int = 20,
        loop_wait: int = 1,
        retry_timeout: int = 5,
        primary_start_timeout: int = 300,
        failsafe_mode: bool = False,
        synchronous_mode: bool = False,
        bindir: str | Path | None = None,
        server_user: str | None = None,
        startup_timeout: float = 90.0,
    ) -> None:
        if not isinstance(members, int) or isinstance(members, bool) or members < 1:
            raise ValueError(f"members must be a positive int, not {members!r}")
        if ttl < 20:
            raise ValueError(f"ttl must be >= 20 (Patroni's minimum), not {ttl!r}")
        if loop_wait + 2 * retry_timeout > ttl:
            raise ValueError("Patroni needs loop_wait + 2 * retry_timeout <= ttl")
        self._count = members
        self._dcs: dict[str, Any] = {
            "ttl": ttl,
            "loop_wait": loop_wait,
            "retry_timeout": retry_timeout,
            "maximum_lag_on_failover": 16 * 1024 * 1024,
            "primary_start_timeout": primary_start_timeout,
            "failsafe_mode": failsafe_mode,
            "synchronous_mode": synchronous_mode,
            "postgresql": {
                "use_pg_rewind": True,
                "use_slots": True,
                "parameters": dict(PG_PARAMETERS),
            },
        }
        self._bindir_arg = Path(bindir) if bindir is not None else None
        self._server_user_arg = server_user
        self._startup_timeout = startup_timeout
        self.members: list[Member] = []
        self.scope = ""
        self._base_dir: Path | None = None
        self._os_user: str | None = None
        self._etcd: subprocess.Popen[bytes] | None = None
        self._etcd_ports = (0, 0)
        self._patroni: Path | None = None
        self._held: list[int] = []
        self._started = False
        self._closed = False
        #: Bumped by every fault switch; the pytest fixture resets the cluster when it moved.
        self.faults_used = 0

    # -- public surface ---------------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        if self._base_dir is None:
            raise ClusterError("the cluster has not been started")
        return self._base_dir

    @property
    def nodes(self) -> list[Node]:
        """Every member's PostgreSQL server, in member order."""
        return [m.node for m in self.members]

    @property
    def rest_urls(self) -> list[str]:
        """Every member's REST API (``http://127.0.0.1:port``)."""
        return [m.api_url for m in self.members]

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self._etcd_ports[0]}"

    def member(self, name: str | Member | Node) -> Member:
        if isinstance(name, Member):
            return name
        wanted = name.name if isinstance(name, Node) else name
        for m in self.members:
            if m.name == wanted:
                return m
        raise ClusterError(f"no member named {wanted!r}; members: {[m.name for m in self.members]}")

    def node(self, name: str) -> Node:
        return self.member(name).node

    def __repr__(self) -> str:
        where = str(self._base_dir) if self._base_dir else "not started"
        return f"PatroniCluster({where}, members={[m.name for m in self.members]})"

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Self:
        """Start etcd and every member; return once there is a leader and every other
        member streams from it."""
        if self._started:
            return self
        if self._closed:
            raise ClusterError("a closed PatroniCluster cannot be started again")
        bindir = self._bindir_arg or find_bindir()
        self._patroni = find_patroni()
        etcd = find_etcd()
        self._os_user = resolve_server_user(self._server_user_arg)
        _cleanup.reap_orphans()
        self._base_dir = Path(tempfile.mkdtemp(prefix=_cleanup.TEMP_PREFIX + "patroni-"))
        chown_to(self._base_dir, self._os_user)
        self._started = True
        _cleanup.register(self)
        try:
            self.scope = f"router-{os.getpid()}-{self._base_dir.name[-6:]}"
            self._etcd_ports = (free_port(), free_port())
            self._etcd_argv = self._etcd_command(etcd)
            self._write_state()
            self._spawn_etcd()
            for i in range(self._count):
                self.members.append(self._new_member(f"pg{i}", bindir))
            self._write_state()
            # The first member bootstraps alone; the others clone from it once it leads.
            self._spawn_member(self.members[0])
            self.wait_leader(timeout=self._startup_timeout)
            for m in self.members[1:]:
                self._spawn_member(m)
            self.wait_healthy(timeout=self._startup_timeout)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every member, its postgres and etcd; remove the cluster's files (idempotent)."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        for m in self.members:
            if m.proc is not None:
                signal_group(m.proc.pid, signal.SIGKILL)
                wait_pid_gone(m.proc.pid, 10.0, m.proc)
            kill_postmaster(m.node, timeout=10.0)
        if self._etcd is not None:
            signal_group(self._etcd.pid, signal.SIGKILL)
            wait_pid_gone(self._etcd.pid, 10.0, self._etcd)
        _cleanup.stop_servers_in(self.base_dir)
        _cleanup.unregister(self)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- what Patroni says --------------------------------------------------------------

    def cluster_state(self, timeout: float = 2.0) -> dict[str, Any]:
        """``GET /cluster`` from the first member whose REST API answers."""
        last: Exception | None = None
        for m in self.members:
            if not m.patroni_running():
                continue
            try:
                found: dict[str, Any] = self._rest(m, "GET", "/cluster", timeout=timeout)
                return found
            except ClusterError as exc:
                last = exc
        raise ClusterError(f"no member's REST API answered GET /cluster ({last})")

    def leader(self) -> Node:
        """The PostgreSQL server of the member Patroni names leader now."""
        name = self._leader_name()
        if name is None:
            raise ClusterError("Patroni names no leader now")
        return self.node(name)

    @property
    def primary(self) -> Node:
        return self.leader()

    @property
    def replicas(self) -> list[Node]:
        leader = self._leader_name()
        return [m.node for m in self.members if m.name != leader]

    def timeline(self) -> int | None:
        """The leader's timeline as Patroni reports it."""
        for member in self.cluster_state().get("members", []):
            if member.get("role") == "leader":
                tl = member.get("timeline")
                return int(tl) if tl is not None else None
        return None

    def wait_leader(
        self, timeout: float = 60.0, *, other_than: str | None = None, running: bool = True
    ) -> Node:
        """Wait until Patroni names a leader (not *other_than*) whose postgres accepts writes."""

        def ready() -> bool:
            name = self._leader_name()
            if name is None or name == other_than:
                return False
            if not running:
                return True
            with self.node(name).connect(timeout=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return row is not None and row[0] is False

        self._wait_for(ready, "a leader", timeout)
        return self.leader()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until there is a leader and every other member streams from it."""

        def healthy() -> bool:
            state = self.cluster_state()
            members = state.get("members", [])
            if len(members) != len(self.members):
                return False
            leaders = [m for m in members if m.get("role") == "leader"]
            if len(leaders) != 1 or leaders[0].get("state") != "running":
                return False
            return all(m.get("state") == "streaming" for m in members if m.get("role") != "leader")

        self._wait_for(healthy, "every member streaming from a leader", timeout)

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Wait until every running replica has replayed the leader's current WAL position."""
        leader = self.leader()
        with leader.connect() as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        target = row[0]
        for node in self.replicas:
            if not node.is_running():
                continue

            def replayed(node: Node = node) -> bool:
                with node.connect(timeout=2) as conn:
                    r = conn.execute(
                        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                    ).fetchone()
                return bool(r and r[0])

            self._wait_for(replayed, f"{node.name} to replay {target}", timeout)

    # -- HA operations --------------------------------------------------------------------

    def switchover(self, candidate: str | None = None, timeout: float = 60.0) -> Node:
        """A planned switchover (``POST /switchover``) to *candidate* (default: any); returns
        the new leader once it accepts writes."""
        self.faults_used += 1
        leader = self._leader_name()
        if leader is None:
            raise ClusterError("no leader to switch over from")
        body: dict[str, Any] = {"leader": leader}
        if candidate is not None:
            body["candidate"] = candidate
        self._rest(self.member(leader), "POST", "/switchover", body, timeout=timeout)
        return self.wait_leader(timeout, other_than=leader)

    def failover(self, candidate: str, timeout: float = 60.0) -> Node:
        """A manual failover to *candidate* (``POST /failover``)."""
        self.faults_used += 1
        m = self.member(candidate)
        old = self._leader_name()
        self._rest(m, "POST", "/failover", {"candidate": m.name}, timeout=timeout)
        return self.wait_leader(timeout, other_than=old)

    def patch_config(self, **changes: Any) -> None:
        """Change Patroni's DCS configuration (``PATCH /config``), e.g.
        ``primary_start_timeout=0``; :meth:`reset` puts back what the cluster was built with."""
        self.faults_used += 1
        self._patch_config(changes)

    def set_failsafe(self, on: bool) -> None:
        """Patroni's ``failsafe_mode``: whether a leader keeps leading while the DCS is away
        (as long as it can reach every other member)."""
        self.faults_used += 1
        self._patch_config({"failsafe_mode": on})
        if on:
            # The leader writes the member list to the DCS's /failsafe key on its next loop;
            # until then a DCS outage demotes it all the same.
            members = {m.name for m in self.members}

            def written() -> bool:
                leader = self._leader_name()
                if leader is None:
                    return False
                found = self._rest(self.member(leader), "GET", "/failsafe", timeout=2)
                return isinstance(found, dict) and members <= set(found)

            self._wait_for(written, "the failsafe member list in the DCS", 30.0)

    def set_synchronous(self, on: bool, timeout: float = 30.0) -> None:
        """Patroni's ``synchronous_mode``; returns once a sync standby is chosen (on) or
        none is left (off)."""
        self.faults_used += 1
        self._patch_config({"synchronous_mode": on})

        def settled() -> bool:
            roles = [m.get("role") for m in self.cluster_state().get("members", [])]
            return ("sync_standby" in roles) is on

        self._wait_for(settled, f"synchronous_mode {'on' if on else 'off'}", timeout)

    def stop_dcs(self) -> None:
        """Stop etcd (SIGTERM): every member loses the DCS."""
        self.faults_used += 1
        if self._etcd is not None:
            self._etcd.terminate()
            wait_pid_gone(self._etcd.pid, 10.0, self._etcd)
            self._etcd = None

    def start_dcs(self) -> None:
        """Start etcd again, on the same ports and data."""
        self.faults_used += 1
        if self._etcd is None:
            self._spawn_etcd()

    def kill_postgres(self, member: str | Member | Node) -> None:
        """SIGKILL *member*'s postmaster and every backend (Patroni itself keeps running and
        restarts it, or fails over: ``primary_start_timeout``)."""
        self.faults_used += 1
        self._kill_held()
        kill_postmaster(self.member(member).node, timeout=30.0)

    def kill_member(self, member: str | Member | Node) -> None:
        """SIGKILL *member*'s Patroni and its postgres at once: a lost machine. The leader key
        expires after ``ttl``; :meth:`start_member` brings the member back."""
        self.faults_used += 1
        m = self.member(member)
        if m.proc is not None:
            signal_group(m.proc.pid, signal.SIGKILL)
            wait_pid_gone(m.proc.pid, 10.0, m.proc)
            m.proc = None
        self._kill_held()
        kill_postmaster(m.node, timeout=30.0)

    def start_member(self, member: str | Member | Node) -> None:
        """Start *member*'s Patroni (it starts, rewinds or re-clones its postgres)."""
        self.faults_used += 1
        m = self.member(member)
        if not m.patroni_running():
            self._spawn_member(m)

    def hold_wal_sending(self, member: str | Member | Node | None = None) -> list[int]:
        """SIGSTOP the WAL senders of *member* (default: the leader): its replicas receive
        nothing more while it goes on committing (asynchronous replication). Returns the pids
        stopped; :meth:`release_wal_sending` (or killing the member) undoes it."""
        self.faults_used += 1
        node = self.leader() if member is None else self.member(member).node
        with node.connect() as conn:
            pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_replication").fetchall()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        self._held += pids
        return pids

    def _kill_held(self) -> None:
        # Held WAL senders go first: resumed, they would send what they held back before
        # noticing their postmaster is gone (and alive, keep its port and shared memory).
        for pid in self._held:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._held = []

    def release_wal_sending(self) -> None:
        for pid in self._held:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._held = []

    def pause_replay(self, member: str | Member | Node) -> None:
        self.faults_used += 1
        self._sql(self.member(member).node, "SELECT pg_wal_replay_pause()")

    def resume_replay(self, member: str | Member | Node) -> None:
        self.faults_used += 1
        self._sql(self.member(member).node, "SELECT pg_wal_replay_resume()")

    def set_apply_delay(self, member: str | Member | Node, seconds: float) -> None:
        """``recovery_min_apply_delay`` on *member* (ALTER SYSTEM, reload)."""
        self.faults_used += 1
        node = self.member(member).node
        self._sql(node, f"ALTER SYSTEM SET recovery_min_apply_delay = '{round(seconds * 1000)}ms'")
        self._sql(node, "SELECT pg_reload_conf()")

    def reset(self, timeout: float = 120.0) -> None:
        """Undo the fault switches: etcd and every member running, WAL senders released,
        replay resumed, no apply delay, failsafe and synchronous mode as built, every replica
        streaming and caught up. The leader may be another member than at the start."""
        self.release_wal_sending()
        self.start_dcs()
        for m in self.members:
            if not m.patroni_running():
                self._spawn_member(m)
        self.wait_leader(timeout)
        self._patch_config(
            {
                key: self._dcs[key]
                for key in ("failsafe_mode", "synchronous_mode", "primary_start_timeout")
            }
        )
        for m in self.members:
            with contextlib.suppress(psycopg.Error), m.node.connect(timeout=2) as conn:
                row = conn.execute(
                    "SELECT pg_is_in_recovery() AND pg_is_wal_replay_paused(),"
                    " current_setting('recovery_min_apply_delay') <> '0'"
                ).fetchone()
                if row and row[1]:
                    conn.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
                    conn.execute("SELECT pg_reload_conf()")
                if row and row[0]:
                    conn.execute("SELECT pg_wal_replay_resume()")
        self.wait_healthy(timeout)
        self.wait_caught_up(timeout)

    # -- building -------------------------------------------------------------------------

    def _etcd_command(self, etcd: Path) -> list[str | Path]:
        client, peer = self._etcd_ports
        return [
            etcd,
            "--name",
            "etcd0",
            "--data-dir",
            self.base_dir / "etcd",
            "--listen-client-urls",
            f"http://127.0.0.1:{client}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{client}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"etcd0=http://127.0.0.1:{peer}",
            "--initial-cluster-state",
            "new",
            "--log-level",
            "warn",
        ]

    def _spawn_etcd(self) -> None:
        log = self.base_dir / "etcd.log"
        log.touch()
        chown_to(log, self._os_user)
        self._etcd = spawn_as(self._os_user, self._etcd_argv, log)
        (self.base_dir / "etcd.pid").write_text(f"{self._etcd.pid}\n")

        def up() -> bool:
            if self._etcd is not None and self._etcd.poll() is not None:
                raise ClusterError(f"etcd exited while starting; its log ends:\n{tail(log)}")
            try:
                with urllib.request.urlopen(self.etcd_url + "/health", timeout=1) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        self._wait_for(up, "etcd to answer", 30.0)

    def _new_member(self, name: str, bindir: Path) -> Member:
        base = self.base_dir
        node = Node(
            name=name,
            port=free_port(),
            datadir=base / name,
            log_path=base / f"{name}.log",
            role="replica",
        )
        member = Member(name, node, free_port(), base / f"{name}.yml", base / f"{name}.pid")
        config = member_config(
            scope=self.scope,
            member=member,
            etcd_port=self._etcd_ports[0],
            dcs=self._dcs,
            bindir=bindir,
            base=base,
        )
        # JSON is YAML: Patroni reads it as its configuration file.
        member.config_path.write_text(json.dumps(config, indent=2))
        for path in (member.config_path, node.log_path):
            path.touch()
            chown_to(path, self._os_user)
        return member

    def _spawn_member(self, m: Member) -> None:
        assert self._patroni is not None
        m.proc = spawn_as(self._os_user, [self._patroni, m.config_path], m.node.log_path)
        m.pid_path.write_text(f"{m.proc.pid}\n")

    def _write_state(self) -> None:
        state = {
            "version": 1,
            "kind": "patroni",
            "server_user": self._os_user,
            "created_base_dir": True,
            "detached": False,
            **_cleanup.owner_identity(),
            "nodes": [],
        }
        (self.base_dir / _cleanup.STATE_FILE).write_text(json.dumps(state))

    # -- helpers --------------------------------------------------------------------------

    def _leader_name(self) -> str | None:
        try:
            state = self.cluster_state()
        except ClusterError:
            return None
        leader = None
        for member in state.get("members", []):
            if member.get("role") == "leader":
                leader = str(member["name"])
        for m in self.members:
            m.node.role = "primary" if m.name == leader else "replica"
        return leader

    def _patch_config(self, changes: Mapping[str, Any]) -> None:
        for m in self.members:
            if m.patroni_running():
                self._rest(m, "PATCH", "/config", dict(changes))
                return
        raise ClusterError("no member's REST API to change the configuration through")

    def _rest(
        self,
        m: Member,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(m.api_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise ClusterError(f"{method} {path} on {m.name}: HTTP {exc.code}: {detail}") from None
        except OSError as exc:
            raise ClusterError(f"{method} {path} on {m.name}: {exc}") from None
        try:
            return json.loads(text)
        except ValueError:
            return text

    def _sql(self, node: Node, query: str) -> None:
        with node.connect() as conn:
            conn.execute(query)

    def _wait_for(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            try:
                if condition():
                    return
            except (psycopg.Error, ClusterError) as exc:
                last = exc
            if time.monotonic() >= deadline:
                cause = f" (last error: {last})" if last else ""
                logs = "\n".join(f"--- {m.name}:\n{tail(m.node.log_path, 8)}" for m in self.members)
                raise ClusterError(
                    f"timed out after {timeout:g} s waiting for {what}{cause}\n{logs}"
                )
            time.sleep(0.05)
