"""docker-compose.yml has the shape the Compose path promises (no Docker, no database).

tests/integration/test_compose_scripts.py runs the scripts themselves.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCRIPTS = ROOT / "deploy" / "compose"

#: The local server binaries the integration tests run are PostgreSQL 15; Compose must run
#: the same major, or the script test proves nothing about the containers.
PINNED_MAJOR = 15
DATA_DIR = "/var/lib/postgresql/data"
INITDB_DIR = "/docker-entrypoint-initdb.d"
SERVICES = ("primary", "replica")
HOST_PORTS = {"primary": 5432, "replica": 5433}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with COMPOSE_FILE.open() as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict)
    return data


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service = compose["services"][name]
    assert isinstance(service, dict)
    return service


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of each volume in short syntax; mode is "" or e.g. "ro"."""
    mounts = []
    for entry in service.get("volumes", []):
        assert isinstance(entry, str), f"use the short volume syntax: {entry!r}"
        source, target, *mode = entry.split(":")
        mounts.append((source, target, mode[0] if mode else ""))
    return mounts


def _is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def _host_path(service: dict[str, Any], container_path: str) -> Path:
    """The file of this repository that a bind mount puts at *container_path*."""
    for source, target, _ in _mounts(service):
        if not _is_bind(source):
            continue
        if container_path == target:
            return (ROOT / source).resolve()
        if container_path.startswith(target.rstrip("/") + "/"):
            return (ROOT / source / container_path[len(target) :].lstrip("/")).resolve()
    raise AssertionError(f"{container_path} is not bind-mounted from the repository")


def _settings(command: list[str]) -> dict[str, str]:
    pairs = [command[i + 1] for i, arg in enumerate(command) if arg == "-c"]
    return dict(pair.split("=", 1) for pair in pairs)


def _assert_runnable_script(path: Path) -> None:
    assert path.is_file(), f"{path} does not exist"
    assert path.resolve().is_relative_to(SCRIPTS.resolve()), f"{path} is not in deploy/compose"
    assert os.access(path, os.X_OK), f"{path} is not executable"


def test_a_primary_and_a_replica(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == set(SERVICES)


def test_image_pinned_to_one_major(compose: dict[str, Any]) -> None:
    images = {_service(compose, name)["image"] for name in SERVICES}
    assert len(images) == 1, f"both services must run the same image: {images}"
    (image,) = images
    match = re.fullmatch(r"postgres:(\d+)(?:\.\d+)?(?:-[a-z0-9]+)?", image)
    assert match, f"{image!r} is not the official postgres image pinned to a major"
    assert int(match.group(1)) == PINNED_MAJOR


def test_ports_published_to_localhost_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert "network_mode" not in service, f"{name}: keep it on the compose network"
        ports = service.get("ports", [])
        for port in ports:
            assert isinstance(port, str), f"{name}: use host_ip:host:container strings"
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
        assert ports == [f"127.0.0.1:{HOST_PORTS[name]}:5432"]


def test_named_volumes_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used: dict[str, str] = {}
    for name in SERVICES:
        named = [(s, t) for s, t, _ in _mounts(_service(compose, name)) if not _is_bind(s)]
        assert named, f"{name} has no named volume"
        for source, _ in named:
            assert source in declared, f"{name} uses the undeclared volume {source}"
            assert source not in used, f"{source} is shared by {used[source]} and {name}"
            used[source] = name
        assert DATA_DIR in {t for _, t in named}, f"{name}'s data is not on a named volume"
    assert declared == set(used), f"declared but unused: {declared - set(used)}"


def test_bind_mounts_are_read_only_scripts(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        binds = [m for m in _mounts(_service(compose, name)) if _is_bind(m[0])]
        assert binds, f"{name} does not mount deploy/compose"
        for source, target, mode in binds:
            assert (ROOT / source).resolve().is_relative_to(SCRIPTS.resolve()), (name, source)
            assert mode == "ro", f"{name} mounts {source} at {target} writable"


def test_primary_runs_its_init_script(compose: dict[str, Any]) -> None:
    primary = _service(compose, "primary")
    assert primary["command"][0] == "postgres"
    init_targets = [t for s, t, _ in _mounts(primary) if t.startswith(INITDB_DIR + "/")]
    assert len(init_targets) == 1
    assert init_targets[0].endswith(".sh"), "the image runs only *.sh files as scripts"
    script = _host_path(primary, init_targets[0])
    assert script.name == "primary-init.sh"
    _assert_runnable_script(script)


def test_replica_entrypoint_clones_then_hands_over(compose: dict[str, Any]) -> None:
    replica = _service(compose, "replica")
    (entrypoint,) = replica["entrypoint"]
    script = _host_path(replica, entrypoint)
    assert script.name == "replica-entrypoint.sh"
    _assert_runnable_script(script)
    # Its "$@": the image's own entrypoint, which drops root and starts the server.
    assert replica["command"][:2] == ["docker-entrypoint.sh", "postgres"]


def test_healthchecks(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        service = _service(compose, name)
        check = service["healthcheck"]
        kind, path, role = check["test"]
        assert kind == "CMD"
        assert role == name, f"{name} is checked as a {role}"
        _assert_runnable_script(_host_path(service, path))
        assert check["retries"] >= 1
        for key in ("interval", "timeout", "start_period"):
            assert re.fullmatch(r"\d+s", check[key]), f"{name}: {key} = {check[key]!r}"


def test_replica_waits_for_a_healthy_primary(compose: dict[str, Any]) -> None:
    replica = _service(compose, "replica")
    assert replica["depends_on"] == {"primary": {"condition": "service_healthy"}}
    assert replica["environment"]["PRIMARY_HOST"] == "primary"
    assert str(replica["environment"]["PRIMARY_PORT"]) == "5432"


def test_replication_settings(compose: dict[str, Any]) -> None:
    primary = _settings(_service(compose, "primary")["command"])
    assert primary["wal_level"] == "replica"
    assert primary["hot_standby"] == "on"
    assert primary["hot_standby_feedback"] == "on"
    assert int(primary["max_wal_senders"]) >= 2  # the replica, plus pg_basebackup's stream
    assert int(primary["max_replication_slots"]) >= 1
    # A standby needs max_wal_senders and friends at least as high as its primary's.
    assert _settings(_service(compose, "replica")["command"]) == primary


def test_replication_credentials(compose: dict[str, Any]) -> None:
    envs = [_service(compose, name)["environment"] for name in SERVICES]
    for key in ("REPLICATION_USER", "REPLICATION_PASSWORD", "REPLICATION_SLOT"):
        values = {str(env[key]) for env in envs}
        assert len(values) == 1, f"primary and replica disagree on {key}: {values}"
    password = str(envs[0]["REPLICATION_PASSWORD"])
    assert re.fullmatch(r"\$\{REPLICATION_PASSWORD:-[^}]+\}", password), password
    assert password != str(envs[0]["POSTGRES_PASSWORD"])
    assert envs[0]["REPLICATION_USER"] != envs[0]["POSTGRES_USER"]


SHELL_SCRIPTS = sorted(SCRIPTS.glob("*.sh"))


def test_scripts_present() -> None:
    names = {p.name for p in SHELL_SCRIPTS}
    assert {"primary-init.sh", "replica-entrypoint.sh", "healthcheck.sh"} <= names


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_script_is_strict_bash(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    _assert_runnable_script(script)
    subprocess.run(["bash", "-n", str(script)], check=True, capture_output=True)


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_script_documents_its_environment(script: Path) -> None:
    """Every variable a script gives a default is described in its header comment."""
    text = script.read_text()
    header = "".join(itertools.takewhile(lambda ln: ln.startswith("#"), text.splitlines(True)))
    defaults = set(re.findall(r'^: "\$\{([A-Z_]+):=', text, flags=re.MULTILINE))
    assert defaults, f"{script.name} reads no environment variable with a default"
    for var in sorted(defaults):
        assert re.search(rf"#\s+(?:\w+, )*{var}\b", header), f"{script.name}: {var} undocumented"
