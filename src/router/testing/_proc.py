"""Processes: run server programs as an unprivileged user, pick ports, stop pids.

PostgreSQL refuses to run as root, so when we are root every server program runs as
an ordinary user (``postgres`` unless told otherwise) and the files it needs are
given to that user. As an ordinary user, everything runs as ourselves.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from router.testing._errors import ClusterError

__all__ = [
    "DEFAULT_SERVER_USER",
    "chown_to",
    "free_port",
    "pid_alive",
    "resolve_server_user",
    "run_as",
    "signal_group",
    "tail",
    "wait_pid_gone",
]

DEFAULT_SERVER_USER = "postgres"

_handed_out: set[int] = set()


def resolve_server_user(requested: str | None) -> str | None:
    """The OS user to run servers as, or ``None`` to run them as ourselves.

    As root, *requested* (default ``postgres``) must exist. As anyone else, we can only
    run as ourselves: asking for another user is an error.
    """
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        if requested not in (None, me):
            raise ClusterError(f"only root can run the servers as {requested!r}; we are {me!r}")
        return None
    name = requested or DEFAULT_SERVER_USER
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ClusterError(
            f"running as root, and PostgreSQL refuses to run as root; the user {name!r} to run "
            f"the servers as does not exist: create it (`useradd --system {name}`) "
            f"or pass server_user="
        ) from None
    if name == "root":
        raise ClusterError("PostgreSQL refuses to run as root: pass another server_user")
    return name


def chown_to(path: Path, user: str | None) -> None:
    """Give *path* (not recursively) to *user*; nothing when running as ourselves."""
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _child_env(user: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    # A clean environment: no PG* variable of ours leaks into the server programs.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    env.pop("LANG", None)
    if user is not None:
        entry = pwd.getpwnam(user)
        env.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    if extra:
        env.update(extra)
    return env


def run_as(
    user: str | None,
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    what: str | None = None,
) -> str:
    """Run *argv* as *user* and return its output; raise :class:`ClusterError` on failure.

    Secrets go through *env* (e.g. ``PGPASSWORD``), never *argv*: argv ends up in errors.
    """
    args = [str(a) for a in argv]
    label = what or Path(args[0]).name
    try:
        done = subprocess.run(
            args,
            env=_child_env(user, env),
            user=user,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"{label} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise ClusterError(f"{label} could not be run: {exc}") from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise ClusterError(f"{label} failed with exit code {done.returncode}: {output[-2000:]}")
    return done.stdout


def spawn_as(
    user: str | None,
    argv: Sequence[str | Path],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running server as *user*, in a process group of its own, logging to *log_path*.

    Its own process group keeps a terminal's Ctrl-C away from it (our cleanup decides how it
    stops) and lets :func:`signal_group` take the whole server down at once. *env* is added
    to the clean environment, as for :func:`run_as`.
    """
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [str(a) for a in argv],
            env=_child_env(user, env),
            user=user,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
        )


def free_port() -> int:
    """A loopback TCP port nobody listens on now (and that we have not handed out already)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise ClusterError("no free loopback port found")


def pid_alive(pid: int) -> bool:
    """Whether *pid* is a live process: a zombie (dead, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:
        # No /proc (not Linux): fall back to signal 0, which sees zombies as alive.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # The state letter follows the parenthesised command name, which may hold spaces.
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send *sig* to the process group led by *pid*; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def processes_where(field: int, value: int) -> list[int]:
    """Live (non-zombie) processes whose ``/proc/<pid>/stat`` field *field* (counted after
    the command name: 1 the parent, 2 the process group) is *value*; none without ``/proc``."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > field and int(fields[field]) == value and fields[0] not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    """The live processes whose parent is *pid*."""
    return processes_where(1, pid)


def wait_pid_gone(pid: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Wait until *pid* has exited (reaping it when it is our child); False on timeout."""
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def tail(path: Path, lines: int = 15) -> str:
    """The last *lines* of a log file, for error messages; empty when unreadable."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
