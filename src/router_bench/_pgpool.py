"""pgpool-II as a benchmark baseline: started by us, in front of a primary and its replicas.

:class:`Pgpool` writes a minimal configuration of its own into a work directory (never
``/etc/pgpool2``), runs ``pgpool -n`` in the foreground as a child process, waits until it
serves queries with every backend up, and stops it again, leaving no process behind::

    with Pgpool(primary=("127.0.0.1", 5432), replicas=[("127.0.0.1", 5433)],
                user="postgres", password=None, database="bench", workdir=path) as pg:
        conn = await asyncpg.connect(**pg.connect_kwargs())

The configuration is pgpool as people run it in streaming-replication mode: load balancing on
(one node chosen per session, the primary weighted like each replica),
``disable_load_balance_on_write = 'transaction'``, failover on backend errors, the streaming
replication check every second (its ``delay_threshold`` from ``max_lag_bytes`` when given), no
health check, no watchdog, no query cache.

Authentication: without a password, ``trust`` from loopback (as the local cluster without a
password). With one, clients authenticate with scram-sha-256 against a ``pool_passwd`` entry
in ``TEXT`` form, which pgpool also uses towards the backends and for its replication check.
The password lives only in that 0600 file in the work directory: never in ``pgpool.conf``, the
command line, reprs, DSNs or the errors raised here.

Clients, as measured with pgpool 4.3.5: asyncpg works through it with its statement cache on
(cached named statements, the extended protocol, transactions, cursors, ``executemany``);
``statement_cache_size=0`` only makes each call 2-3 times slower. psycopg 3 works too. What a
benchmark should know:

- pgpool counts (``select_cnt``) and routes asyncpg's pool reset on release (``SELECT
  pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) to the primary: one extra round
  trip per acquire/release and one primary "SELECT" each; pass ``reset=`` to the pool to avoid it,
  and count offload by the node that answered rather than by ``select_cnt`` alone.
- A comment before a SELECT stops its load balancing (``allow_sql_comments = off``, pgpool's
  default): such reads all go to the primary.
- A cached statement first run after a write in a transaction (so parsed on the primary) keeps
  going to the primary after the commit, on that connection.
- The node for reads is chosen once per session (weights equal: the primary is one of the
  choices), so with few long-lived connections the split is lumpy.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import psycopg

from router.testing import ClusterError, _cleanup
from router.testing._proc import (
    chown_to,
    free_port,
    pid_alive,
    processes_where,
    resolve_server_user,
    run_as,
    signal_group,
    spawn_as,
    tail,
    wait_pid_gone,
)

__all__ = [
    "DEFAULT_BINARY",
    "Pgpool",
    "PgpoolError",
    "find_pgpool",
    "pgpool_version",
    "render_config",
]

#: Where Debian's ``pgpool2`` package puts the server (``/usr/sbin`` is not on every PATH).
DEFAULT_BINARY: Final = Path("/usr/sbin/pgpool")

_HOW_TO_GET_IT = "install pgpool-II (Debian/Ubuntu: `apt-get install pgpool2`)"
_VERSION = re.compile(r"pgpool-II version (\d+(?:\.\d+)*)")
# A unix socket path must fit sockaddr_un.sun_path (108 bytes with its NUL on Linux).
_MAX_SOCKET_PATH = 100
_STOP_TIMEOUT = 10.0


class PgpoolError(RuntimeError):
    """pgpool-II is missing, or could not be started, queried or stopped as asked.

    Start failures name the cause and end with the tail of pgpool's log. Never holds a password.
    """


def find_pgpool() -> Path | None:
    """The ``pgpool`` binary: the first on ``$PATH``, else :data:`DEFAULT_BINARY`; ``None`` if
    neither is there."""
    found = shutil.which("pgpool")
    if found:
        return Path(found)
    if DEFAULT_BINARY.is_file() and os.access(DEFAULT_BINARY, os.X_OK):
        return DEFAULT_BINARY
    return None


def pgpool_version(binary: Path) -> str:
    """The version *binary* reports, e.g. ``"4.3.5"``; raises :class:`PgpoolError` if it cannot
    be run."""
    try:
        done = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise PgpoolError(f"could not run {binary} --version: {exc}") from exc
    out = (done.stdout + done.stderr).strip()
    match = _VERSION.search(out)
    if done.returncode != 0 or match is None:
        raise PgpoolError(
            f"{binary} --version did not report a pgpool-II version "
            f"(exit code {done.returncode}): {out[-500:]!r}"
        )
    return match.group(1)


def _quote(name: str, value: str) -> str:
    # pgpool.conf strings are single-quoted with backslash escapes; rather than trust our
    # escaping to match its lexer, refuse the characters that would need it.
    if any(c in value for c in "'\\\n\r\0"):
        raise ValueError(f"{name}: {value!r} holds a quote, backslash or line break")
    return f"'{value}'"


def render_config(settings: Mapping[str, str | int | bool]) -> str:
    """``pgpool.conf`` text for *settings*: strings quoted, booleans ``on``/``off``."""
    lines = ["# Written by router_bench: a pgpool-II of the benchmark, started and stopped by it."]
    for name, value in settings.items():
        if isinstance(value, bool):
            text = "on" if value else "off"
        elif isinstance(value, int):
            text = str(value)
        else:
            text = _quote(name, value)
        lines.append(f"{name} = {text}")
    return "\n".join(lines) + "\n"


class Pgpool:
    """pgpool-II in streaming-replication mode in front of a primary and its replicas, with
    load balancing and the streaming replication (lag) check on; started and stopped by us.

    No I/O until :meth:`start` (or ``with``). *port* ``None`` picks a free loopback port.
    Clients beyond *num_init_children* at once wait in pgpool's listen queue (pgpool's
    default, ``reserved_connections = 0``), so keep the benchmark's connections below it.
    *max_lag_bytes* sets ``delay_threshold`` (replicas further behind get no reads); ``None``
    leaves the lag gate off. *os_user* runs pgpool as that OS user (as root only; every
    directory above *workdir* must let that user through); ``None`` runs it as ourselves.
    *settings* overrides or adds ``pgpool.conf`` entries (strings, ints, booleans), e.g.
    ``{"statement_level_load_balance": True}`` or ``{"auto_failback": True}``.
    """

    def __init__(
        self,
        *,
        primary: tuple[str, int],
        replicas: Sequence[tuple[str, int]],
        user: str,
        password: str | None,
        database: str,
        workdir: Path,
        binary: Path | None = None,
        port: int | None = None,
        num_init_children: int = 64,
        max_lag_bytes: int | None = None,
        os_user: str | None = None,
        max_pool: int = 1,
        sr_check_period: int = 1,
        settings: Mapping[str, str | int | bool] | None = None,
    ) -> None:
        backends = [primary, *replicas]
        for i, (host, bport) in enumerate(backends):
            _quote(f"backend_hostname{i}", host)
            _check_port(f"backend_port{i}", bport)
        if port is not None:
            _check_port("port", port)
        for name, value in (("user", user), ("database", database)):
            _quote(name, value)
            if not value:
                raise ValueError(f"{name} must not be empty")
        if ":" in user:
            raise ValueError(f"user: {user!r} holds a ':', which pool_passwd cannot store")
        if password is not None and any(c in password for c in "\n\r\0"):
            raise ValueError("password must not hold a line break or NUL (pool_passwd is per line)")
        _check_int("num_init_children", num_init_children, 1)
        _check_int("max_pool", max_pool, 1)
        _check_int("sr_check_period", sr_check_period, 1)
        if max_lag_bytes is not None:
            _check_int("max_lag_bytes", max_lag_bytes, 1)
        self._backends: list[tuple[str, int]] = backends
        self._user = user
        self._password = password
        self._database = database
        self._workdir = Path(workdir)
        self._binary_arg = binary
        self._num_init_children = num_init_children
        self._max_pool = max_pool
        self._sr_check_period = sr_check_period
        self._max_lag_bytes = max_lag_bytes
        self._os_user_arg = os_user
        self._extra = dict(settings or {})
        render_config(self._extra)  # validate now, not at start
        self._port: int | None = port
        self._binary: Path | None = None
        self._version: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._process_group: int | None = None
        self._socket_tmp: Path | None = None

    # -- what callers see --------------------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """pgpool's client port (a free one is picked at :meth:`start` unless given)."""
        if self._port is None:
            raise PgpoolError("pgpool has not been started: its port is not chosen yet")
        return self._port

    @property
    def dsn(self) -> str:
        """``postgresql://user@host:port/database``, never with the password."""
        return (
            f"postgresql://{quote(self._user, safe='')}@{self.host}:{self.port}/"
            f"{quote(self._database, safe='')}"
        )

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect`` / ``asyncpg.create_pool`` through pgpool."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self._user,
            "password": self._password,
            "database": self._database,
        }

    @property
    def backends(self) -> list[tuple[str, int]]:
        """The backend addresses, primary first, as configured (``backend_hostnameN/portN``)."""
        return list(self._backends)

    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def log_path(self) -> Path:
        return self._workdir / "pgpool.log"

    @property
    def binary(self) -> Path:
        """The pgpool binary used: the one given, else :func:`find_pgpool`'s."""
        if self._binary is None:
            found = self._binary_arg or find_pgpool()
            if found is None:
                raise PgpoolError(
                    f"pgpool-II not found on PATH nor at {DEFAULT_BINARY}: {_HOW_TO_GET_IT}"
                )
            self._binary = found
        return self._binary

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = pgpool_version(self.binary)
        return self._version

    @property
    def pid(self) -> int | None:
        """The pgpool main process's pid while it runs, else ``None``."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return None

    @property
    def process_group(self) -> int | None:
        """The process group of the pgpool last spawned here (kept after :meth:`stop`): every
        pgpool process (main, children, workers) belongs to it, so a caller can check that
        none is left."""
        return self._process_group

    def __repr__(self) -> str:
        state = "running" if self.pid is not None else "stopped"
        port = self._port if self._port is not None else "auto"
        nodes = ", ".join(f"{h}:{p}" for h, p in self._backends)
        return (
            f"Pgpool(port={port}, user={self._user!r}, database={self._database!r}, "
            f"backends=[{nodes}], {state})"
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> Self:
        """Write the configuration, start pgpool and return once it answers a query with every
        backend up and the primary found. Raises :class:`PgpoolError` (naming the cause and
        ending with pgpool's log) and leaves nothing running otherwise. Running already: a
        no-op."""
        if self.pid is not None:
            return self
        binary = self.binary
        os_user = self._resolve_os_user()
        self._workdir.mkdir(parents=True, exist_ok=True)
        if self._port is None:
            self._port = free_port()
        try:
            conf = self._write_files(os_user)
            with open(self.log_path, "ab") as log:
                log.write(f"--- router_bench: starting pgpool on port {self._port}\n".encode())
            chown_to(self.log_path, os_user)
            # -n: stay in the foreground, our child; -D: forget node states of an earlier run.
            argv: list[str | Path] = [binary, "-n", "-D", "-f", conf,
                                      "-F", self._workdir / "pcp.conf",
                                      "-a", self._workdir / "pool_hba.conf"]  # fmt: skip
            try:
                self._proc = spawn_as(os_user, argv, self.log_path)
            except OSError as exc:
                raise PgpoolError(f"could not run {binary}: {exc}") from exc
            self._process_group = self._proc.pid
            _cleanup.register(self)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop pgpool (fast shutdown, then SIGKILL to its whole process group if it lingers)
        and reap it; idempotent."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGINT)  # pgpool's "fast" shutdown
                if not wait_pid_gone(proc.pid, _STOP_TIMEOUT, proc):
                    signal_group(proc.pid, signal.SIGKILL)
                    if not wait_pid_gone(proc.pid, _STOP_TIMEOUT, proc):
                        raise PgpoolError(f"pgpool (pid {proc.pid}) survived SIGKILL")
            if self._process_group is not None and not self._group_gone(_STOP_TIMEOUT):
                signal_group(self._process_group, signal.SIGKILL)
                if not self._group_gone(_STOP_TIMEOUT):
                    raise PgpoolError(
                        f"processes of pgpool's group {self._process_group} survived SIGKILL: "
                        f"{_group_members(self._process_group)}"
                    )
        finally:
            _cleanup.unregister(self)
            if self._socket_tmp is not None:
                shutil.rmtree(self._socket_tmp, ignore_errors=True)
                self._socket_tmp = None

    def close(self) -> None:
        """Same as :meth:`stop` (for the exit-time cleanup shared with the local cluster)."""
        self.stop()

    # -- pgpool's own view ---------------------------------------------------------------

    def pool_nodes(self) -> list[dict[str, str]]:
        """``SHOW pool_nodes``, one dict per backend (``node_id``, ``hostname``, ``port``,
        ``status``, ``pg_status``, ``role``, ``select_cnt``, ``replication_delay``...)."""
        try:
            with self._connect(timeout=5.0) as conn:
                return _show_pool_nodes(conn)
        except psycopg.Error as exc:
            raise PgpoolError(f"SHOW pool_nodes through pgpool failed: {self._scrub(exc)}") from exc

    def node_select_counts(self) -> dict[tuple[str, int], int]:
        """SELECTs pgpool sent to each backend since it started (``select_cnt``), by address."""
        return {
            (row["hostname"], int(row["port"])): int(row["select_cnt"]) for row in self.pool_nodes()
        }

    # -- internals -----------------------------------------------------------------------

    def _resolve_os_user(self) -> str | None:
        requested = self._os_user_arg
        if requested is None or requested == pwd.getpwuid(os.geteuid()).pw_name:
            return None
        try:
            return resolve_server_user(requested)
        except ClusterError as exc:
            raise PgpoolError(f"cannot run pgpool as {requested!r}: {exc}") from exc

    def _socket_dir(self) -> Path:
        wanted = self._workdir / "sockets"
        if len(str(wanted / ".s.PGSQL.65535").encode()) <= _MAX_SOCKET_PATH:
            wanted.mkdir(exist_ok=True)
            return wanted
        # The work directory is too deep for a unix socket path: a short one of our own.
        self._socket_tmp = Path(tempfile.mkdtemp(prefix="pgpool-"))
        return self._socket_tmp

    def _settings(self, sockets: Path) -> dict[str, str | int | bool]:
        assert self._port is not None
        settings: dict[str, str | int | bool] = {
            "backend_clustering_mode": "streaming_replication",
            "listen_addresses": self.host,
            "port": self._port,
            "socket_dir": str(sockets),
            # PCP: no TCP port at all, only a socket in our own directory.
            "pcp_listen_addresses": "",
            "pcp_port": free_port(),
            "pcp_socket_dir": str(sockets),
            "wd_ipc_socket_dir": str(sockets),
            "use_watchdog": False,
            "pid_file_name": str(self._workdir / "pgpool.pid"),
            "logdir": str(self._workdir),
            "log_destination": "stderr",
            "logging_collector": False,
            "log_min_messages": "warning",
            "log_connections": False,
            "log_statement": False,
            "log_per_node_statement": False,
            "enable_pool_hba": True,
            "pool_passwd": str(self._workdir / "pool_passwd"),
            "num_init_children": self._num_init_children,
            "max_pool": self._max_pool,
            "connection_cache": True,
            "load_balance_mode": True,
            "sr_check_period": self._sr_check_period,
            "sr_check_user": self._user,
            # Empty: pgpool takes the password from pool_passwd, so it is never in this file.
            "sr_check_password": "",
            "sr_check_database": self._database,
            "delay_threshold": self._max_lag_bytes or 0,
            "health_check_period": 0,
            "memory_cache_enabled": False,
            "memqcache_oiddir": str(self._workdir / "oiddir"),
        }
        for i, (host, port) in enumerate(self._backends):
            settings[f"backend_hostname{i}"] = host
            settings[f"backend_port{i}"] = port
            settings[f"backend_weight{i}"] = 1
            settings[f"backend_flag{i}"] = "ALLOW_TO_FAILOVER"
        settings.update(self._extra)
        return settings

    def _write_files(self, os_user: str | None) -> Path:
        sockets = self._socket_dir()
        conf = self._workdir / "pgpool.conf"
        conf.write_text(render_config(self._settings(sockets)))
        method = "trust" if self._password is None else "scram-sha-256"
        (self._workdir / "pool_hba.conf").write_text(
            f"local all all {method}\nhost all all 127.0.0.1/32 {method}\n"
        )
        # pgpool reads pcp.conf at start even when nobody uses PCP: no user can log in.
        (self._workdir / "pcp.conf").write_text("")
        passwd = self._workdir / "pool_passwd"
        passwd.touch(mode=0o600)
        passwd.chmod(0o600)
        entry = "" if self._password is None else f"{self._user}:TEXT{self._password}\n"
        passwd.write_text(entry)
        pid_file = self._workdir / "pgpool.pid"
        with contextlib.suppress(OSError, ValueError):
            # pgpool refuses to start over a pid file; one of a dead pgpool is stale.
            if not pid_alive(int(pid_file.read_text().split()[0])):
                pid_file.unlink()
        for path in (self._workdir, sockets, conf, passwd, self._workdir / "pool_hba.conf",
                     self._workdir / "pcp.conf"):  # fmt: skip
            chown_to(path, os_user)
        if os_user is not None:
            # As another user: fail here, clearly, rather than with pgpool's own message.
            try:
                run_as(os_user, ["test", "-r", conf, "-a", "-w", self._workdir], timeout=10)
            except ClusterError as exc:
                raise PgpoolError(
                    f"pgpool would run as {os_user!r}, who cannot read and write "
                    f"{self._workdir}: let that user through every directory above it, or "
                    f"pass another workdir or os_user ({exc})"
                ) from exc
        return conf

    def _connect(self, timeout: float) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self._user,
            password=self._password,
            dbname=self._database,
            connect_timeout=max(2, round(timeout)),
            autocommit=True,
            application_name="router-bench-pgpool-check",
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        why = "it did not answer"
        while True:
            proc = self._proc
            if proc is not None and proc.poll() is not None:
                raise self._start_error(f"pgpool exited with code {proc.returncode} while starting")
            try:
                with self._connect(timeout=2.0) as conn:
                    rows = _show_pool_nodes(conn)
                    detached = _detached(rows)
                    if detached:
                        # Without a failback pgpool never takes a detached backend back.
                        raise self._start_error(f"pgpool detached backends: {detached}")
                    not_ready = _not_ready(rows, len(self._backends))
                    if not not_ready:
                        conn.execute("SELECT 1").fetchone()
                        return
                    why = not_ready
            except psycopg.Error as exc:
                why = f"connecting through it failed: {self._scrub(exc)}"
            if time.monotonic() >= deadline:
                raise self._start_error(f"pgpool was not ready within {timeout:g} s ({why})")
            time.sleep(0.05)

    def _start_error(self, message: str) -> PgpoolError:
        log = tail(self.log_path, 20)
        fatal = _last_fatal(log)
        headline = f"{message}: {fatal}" if fatal else message
        return PgpoolError(self._scrub(f"{headline}; its log ({self.log_path}) ends:\n{log}"))

    def _scrub(self, text: object) -> str:
        out = str(text)
        if self._password:
            out = out.replace(self._password, "***")
        return out

    def _group_gone(self, timeout: float) -> bool:
        assert self._process_group is not None
        deadline = time.monotonic() + timeout
        while _group_members(self._process_group):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        span = f"{low}-{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an int {span}, not {value!r}")


def _check_port(name: str, port: object) -> None:
    _check_int(name, port, 1, 65535)


def _show_pool_nodes(conn: psycopg.Connection) -> list[dict[str, str]]:
    cur = conn.execute("SHOW pool_nodes")
    names = [col.name for col in cur.description or ()]
    return [dict(zip(names, (str(v) for v in row), strict=True)) for row in cur.fetchall()]


def _row_text(row: Mapping[str, str]) -> str:
    return (
        f"node {row['node_id']} {row['hostname']}:{row['port']} ({row['role']}) "
        f"status={row['status']} pg_status={row.get('pg_status', '?')}"
    )


def _detached(rows: list[dict[str, str]]) -> str:
    """The backends pgpool has detached (after failing to reach them), as text; '' if none."""
    return "; ".join(_row_text(r) for r in rows if r["status"] in ("down", "quarantine"))


def _not_ready(rows: list[dict[str, str]], expected: int) -> str:
    """Why pgpool is not ready to serve the benchmark yet ('' when it is)."""
    if len(rows) != expected:
        return f"SHOW pool_nodes lists {len(rows)} backends, not {expected}"
    # pg_status is "unknown" without a health check; "down" means pgpool saw the server fail.
    bad = [r for r in rows if r["status"] not in ("up", "waiting") or r.get("pg_status") == "down"]
    if bad:
        return "backends not up: " + "; ".join(_row_text(r) for r in bad)
    primaries = [r for r in rows if r["role"] == "primary"]
    if len(primaries) != 1:
        return f"pgpool sees {len(primaries)} primaries, not 1"
    return ""


def _last_fatal(log: str) -> str:
    """pgpool's last FATAL message in *log* with its DETAIL, on one line; '' if none."""
    lines = log.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        _, sep, text = lines[i].partition("FATAL:")
        if sep:
            detail = lines[i + 1].partition("DETAIL:")[2] if i + 1 < len(lines) else ""
            return f"FATAL: {text.strip()}" + (f" ({detail.strip()})" if detail else "")
    return ""


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is *pgid*."""
    return processes_where(2, pgid)
