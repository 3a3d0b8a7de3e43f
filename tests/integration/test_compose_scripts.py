"""The Compose scripts, run on the local PostgreSQL binaries, make a streaming replica.

There is no Docker engine here, so this runs the very scripts docker-compose.yml mounts
into its containers, the way the official image would run them, against a primary and a
replica built from the server binaries on this machine:

1. ``initdb`` a primary and start it with the ``-c`` settings of the compose file's
   ``primary`` command;
2. run ``primary-init.sh`` with the environment the image gives its init scripts;
3. run ``replica-entrypoint.sh`` on an empty data directory, its command (``"$@"``) being
   a local ``postgres`` with the compose file's replica settings: the script clones the
   primary, then becomes the replica's postmaster (``exec "$@"``);
4. check replication end to end, the compose healthchecks, and a second start of the
   replica on its now populated data directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from router.testing import ClusterError, find_bindir, server_version
from router.testing._proc import (
    chown_to,
    free_port,
    resolve_server_user,
    run_as,
    signal_group,
    spawn_as,
    tail,
    wait_pid_gone,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCRIPTS = ROOT / "deploy" / "compose"

SUPERUSER = "postgres"
# Not the scripts' defaults, so the test shows the scripts obey their environment.
REPLICATION_USER = "compose_replicator"
SLOT = "compose_test_slot"
REPLICA_NAME = "compose-test-replica"

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def _compose() -> dict[str, Any]:
    with COMPOSE_FILE.open() as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict)
    return data


def _settings(command: list[str]) -> list[str]:
    """The ``-c name=value`` flags of a compose ``command``, as argv."""
    flags: list[str] = []
    for i, arg in enumerate(command):
        if arg == "-c":
            flags += ["-c", command[i + 1]]
    return flags


def _image_major(image: str) -> int:
    match = re.match(r"^postgres:(\d+)", image)
    assert match, f"not a pinned postgres image: {image!r}"
    return int(match.group(1))


@dataclass
class Sandbox:
    """A temp dir and the processes started in it; :meth:`close` leaves neither behind."""

    user: str | None
    bindir: Path
    base: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def scripts(self) -> Path:
        """The compose scripts, copied where the server user can reach them: the checkout
        itself may sit under a directory only we can enter (a fresh clone in a 0700 temp
        dir, /root)."""
        return self.base / "compose"

    def env(self, **extra: str) -> dict[str, str]:
        """An environment like the image's: the server binaries first on PATH."""
        return {"PATH": f"{self.bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}", **extra}

    def new_dir(self, name: str) -> Path:
        path = self.base / name
        path.mkdir(mode=0o700)
        chown_to(path, self.user)
        return path

    def new_log(self, name: str) -> Path:
        path = self.base / name
        path.touch()
        chown_to(path, self.user)
        return path

    def spawn(
        self, argv: list[str | Path], log: Path, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        proc = spawn_as(self.user, argv, log, env=env)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Fast shutdown (SIGINT to the postmaster); SIGKILL its whole group if that hangs."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            if not wait_pid_gone(proc.pid, STOP_TIMEOUT, proc):
                # The group holds whatever the script started too (e.g. a pg_basebackup).
                signal_group(proc.pid, signal.SIGKILL)
                wait_pid_gone(proc.pid, STOP_TIMEOUT, proc)
        self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs[:]):
            self.stop(proc)
        shutil.rmtree(self.base, ignore_errors=True)


def _compose_bindir() -> Path:
    """Binaries of the major version docker-compose.yml pins, so this test checks what Compose
    runs: the session's (``PG_BINDIR``) when they are that version, else the system's (a run
    of the suites on the embedded PostgreSQL 18 still checks the scripts on the image's 15)."""
    major = str(_image_major(_compose()["services"]["primary"]["image"]))
    bindir = find_bindir()
    if server_version(bindir).split(".")[0] != major:
        system = {k: v for k, v in os.environ.items() if k != "PG_BINDIR"}
        with contextlib.suppress(ClusterError):
            bindir = find_bindir(system, embedded=False)
    return bindir


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    bindir = _compose_bindir()
    user = resolve_server_user(None)
    base = Path(tempfile.mkdtemp(prefix="router-compose-test-"))
    box = Sandbox(user=user, bindir=bindir, base=base)
    try:
        chown_to(base, user)
        shutil.copytree(SCRIPTS, box.scripts)  # keeps the executable bits
        chown_to(box.scripts, user)
        yield box
    finally:
        box.close()


def _url(port: int, password: str, user: str = SUPERUSER) -> str:
    return f"postgresql://{user}:{password}@127.0.0.1:{port}/postgres"


def _row(url: str, query: str, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(query, params).fetchone()


def _scalar(url: str, query: str, params: Mapping[str, Any] | None = None) -> Any:
    row = _row(url, query, params)
    return row[0] if row else None


def _wait_until(
    what: str,
    condition: Callable[[], bool],
    *,
    timeout: float = STARTUP_TIMEOUT,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll *condition* until it holds; fail on timeout or when *proc* exits meanwhile."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        if proc is not None and proc.poll() is not None:
            pytest.fail(
                f"{what}: the process exited with code {proc.returncode}; "
                f"its log ends:\n{tail(log) if log else ''}"
            )
        try:
            if condition():
                return
        except psycopg.OperationalError as exc:
            last = exc
        if time.monotonic() >= deadline:
            ends = f"\nlog ends:\n{tail(log)}" if log else ""
            pytest.fail(f"timed out after {timeout:g} s waiting for {what} ({last}){ends}")
        time.sleep(0.05)


def _server_argv(bindir: Path, datadir: Path, port: int, settings: list[str]) -> list[str | Path]:
    return [
        bindir / "postgres",
        "-D",
        datadir,
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        *settings,
    ]


def test_compose_scripts_make_a_streaming_replica(sandbox: Sandbox) -> None:
    compose = _compose()
    primary_svc, replica_svc = compose["services"]["primary"], compose["services"]["replica"]
    major = _image_major(primary_svc["image"])
    local = server_version(sandbox.bindir)
    assert local.split(".")[0] == str(major), (
        f"docker-compose.yml pins PostgreSQL {major} but the local server is {local}: "
        f"point PG_BINDIR at PostgreSQL {major} binaries so this test checks what Compose runs"
    )
    box = sandbox
    superuser_password = secrets.token_urlsafe(16)
    replication_password = secrets.token_urlsafe(16)

    # -- the primary: initdb and start, as the image's entrypoint would ---------------------
    primary_dir = box.base / "primary"
    pwfile = box.new_log("superuser.pw")
    pwfile.write_text(superuser_password + "\n")
    run_as(
        box.user,
        [
            box.bindir / "initdb",
            "-D",
            primary_dir,
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--auth-local=trust",
            # The image leaves loopback on trust; passwords here make the test prove they work.
            "--auth-host=scram-sha-256",
        ],
        what="initdb of the primary",
    )
    pwfile.unlink()
    # In the container the replica connects from another address, which none of initdb's
    # loopback `replication` lines match. Drop them here too, so that only the line
    # primary-init.sh adds can let the replica in.
    hba = primary_dir / "pg_hba.conf"
    lines = hba.read_text().splitlines(keepends=True)
    hba.write_text("".join(ln for ln in lines if not re.match(r"\s*host\s+replication\s", ln)))

    primary_port = free_port()
    primary_log = box.new_log("primary.log")
    primary = box.spawn(
        _server_argv(box.bindir, primary_dir, primary_port, _settings(primary_svc["command"])),
        primary_log,
    )
    primary_url = _url(primary_port, superuser_password)
    _wait_until(
        "the primary to accept connections",
        lambda: _scalar(primary_url, "SELECT true") is True,
        proc=primary,
        log=primary_log,
    )

    # -- primary-init.sh, with what the image gives its init scripts --------------------------
    replication_env = {
        "REPLICATION_USER": REPLICATION_USER,
        "REPLICATION_PASSWORD": replication_password,
        "REPLICATION_SLOT": SLOT,
    }
    init_env = box.env(
        PGHOST="127.0.0.1",
        PGPORT=str(primary_port),
        PGPASSWORD=superuser_password,  # the image exports PGPASSWORD=$POSTGRES_PASSWORD
        PGDATA=str(primary_dir),
        POSTGRES_USER=SUPERUSER,
        POSTGRES_PASSWORD=superuser_password,
        POSTGRES_DB="postgres",
        **replication_env,
    )
    init = box.scripts / "primary-init.sh"
    init_out = run_as(box.user, [init], env=init_env, what="primary-init.sh")
    # A second run changes nothing and does not fail.
    init_out += run_as(box.user, [init], env=init_env, what="rerun")
    hba_lines = [ln for ln in hba.read_text().splitlines() if re.match(r"host\s+replication", ln)]
    assert hba_lines == [f"host replication {REPLICATION_USER} samenet scram-sha-256"]
    assert replication_password not in init_out

    # -- replica-entrypoint.sh: clone, then exec into the replica's postmaster ----------------
    replica_dir = box.new_dir("replica")
    replica_port = free_port()
    replica_env = box.env(
        PGDATA=str(replica_dir),
        PRIMARY_HOST="127.0.0.1",
        PRIMARY_PORT=str(primary_port),
        REPLICA_NAME=REPLICA_NAME,
        PRIMARY_WAIT_SECONDS="30",
        **replication_env,
    )
    replica_argv = [
        box.scripts / "replica-entrypoint.sh",
        *_server_argv(box.bindir, replica_dir, replica_port, _settings(replica_svc["command"])),
    ]
    replica_log = box.new_log("replica.log")
    replica = box.spawn(replica_argv, replica_log, env=replica_env)
    replica_url = _url(replica_port, superuser_password)
    streaming_query = "SELECT status FROM pg_stat_wal_receiver"

    def wait_streaming(proc: subprocess.Popen[bytes], log: Path) -> None:
        _wait_until(
            "the replica to stream from the primary",
            lambda: _scalar(replica_url, streaming_query) == "streaming",
            proc=proc,
            log=log,
        )

    wait_streaming(replica, replica_log)

    # The script's process *is* the postmaster: `exec "$@"` replaced it.
    assert int((replica_dir / "postmaster.pid").read_text().split()[0]) == replica.pid
    assert (replica_dir / "standby.signal").exists()
    assert _scalar(replica_url, "SELECT pg_is_in_recovery()") is True
    assert _scalar(replica_url, "SELECT slot_name FROM pg_stat_wal_receiver") == SLOT

    slot = _row(
        primary_url,
        "SELECT slot_type, active FROM pg_replication_slots WHERE slot_name = %(s)s",
        {"s": SLOT},
    )
    assert slot == ("physical", True)
    sender = _row(
        primary_url,
        "SELECT usename, application_name, state FROM pg_stat_replication"
        " WHERE pid = (SELECT active_pid FROM pg_replication_slots WHERE slot_name = %(s)s)",
        {"s": SLOT},
    )
    assert sender == (REPLICATION_USER, REPLICA_NAME, "streaming")
    role = _row(
        primary_url,
        "SELECT rolsuper, rolreplication, rolcanlogin FROM pg_roles WHERE rolname = %(r)s",
        {"r": REPLICATION_USER},
    )
    assert role == (False, True, True), "the replication role must be a non-superuser login"

    # A row written on the primary shows up on the replica.
    token = secrets.token_hex(8)
    with psycopg.connect(primary_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE compose_probe (token text PRIMARY KEY)")
        conn.execute("INSERT INTO compose_probe VALUES (%s)", (token,))
    count_query = "SELECT count(*) FROM compose_probe WHERE token = %(t)s"

    def replicated(value: str) -> Callable[[], bool]:
        def check() -> bool:
            try:
                return bool(_scalar(replica_url, count_query, {"t": value}) == 1)
            except psycopg.errors.UndefinedTable:
                return False

        return check

    _wait_until("the row to reach the replica", replicated(token), timeout=30)

    # -- the compose healthchecks -------------------------------------------------------------
    def healthcheck(role: str, port: int) -> None:
        env = box.env(
            PGHOST="127.0.0.1",
            PGPORT=str(port),
            PGPASSWORD=superuser_password,
            POSTGRES_USER=SUPERUSER,
            POSTGRES_DB="postgres",
        )
        check = box.scripts / "healthcheck.sh"
        run_as(box.user, [check, role], env=env, what=f"healthcheck {role}")

    for svc, port in ((primary_svc, primary_port), (replica_svc, replica_port)):
        test_cmd = svc["healthcheck"]["test"]
        assert Path(test_cmd[1]).name == "healthcheck.sh"
        healthcheck(test_cmd[2], port)
    # Not vacuous: the primary is no healthy replica, and a stopped server no healthy primary.
    with pytest.raises(ClusterError):
        healthcheck("replica", primary_port)
    with pytest.raises(ClusterError):
        healthcheck("primary", free_port())

    # -- a later start: the populated data directory is started as it is ----------------------
    box.stop(replica)
    restart_log = box.new_log("replica-restart.log")
    replica = box.spawn(replica_argv, restart_log, env=replica_env)
    wait_streaming(replica, restart_log)
    assert "already holds a replica" in restart_log.read_text()
    assert "cloning" not in restart_log.read_text()
    second = secrets.token_hex(8)
    with psycopg.connect(primary_url, autocommit=True) as conn:
        conn.execute("INSERT INTO compose_probe VALUES (%s)", (second,))
    _wait_until("a new row to reach the restarted replica", replicated(second), timeout=30)
    assert _scalar(replica_url, count_query, {"t": token}) == 1

    for log in (replica_log, restart_log, primary_log):
        assert replication_password not in log.read_text(), f"{log.name} shows the password"

    box.stop(replica)
    box.stop(primary)
