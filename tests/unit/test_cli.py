"""The CLI's own behaviour, without a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from router import __version__
from router.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"router {__version__}"


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["status", "smoke"])
def test_no_cluster_is_a_clear_error(
    action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cluster", action, "--dir", str(tmp_path)]) == 1
    assert f"no local cluster in {tmp_path}" in capsys.readouterr().err


def test_down_without_a_cluster_is_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cluster", "down", "--dir", str(tmp_path)]) == 0
    assert "nothing to stop" in capsys.readouterr().err


def test_negative_replicas_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "up", "--replicas", "-1", "--dir", str(tmp_path)]) == 1
    assert "--replicas must be >= 0" in capsys.readouterr().err
