"""``router bench``'s command line: options checked before anything starts, and failures that
name what failed without a password (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.cli import build_parser, main
from router_bench.cli import _command


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--concurrency", "8,0"], "--concurrency: 0 is not a whole number >= 1"),
        (["--workloads", "mixed,oltp"], "--workloads: unknown 'oltp'"),
        (["--quick", "--rows", "10"], "--rows: must be a whole number >= 100"),
        (["--duration", "0"], "--duration: must be > 0"),
        (["--subjects", "async/nope/*"], "--subjects: 'async/nope/*' matches no subject"),
    ],
)
def test_bad_options_fail_before_anything_starts(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert f"router bench: {message}" in err
    assert not (tmp_path / "out").exists()


def test_faults_need_the_embedded_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://app:s3cr3t@127.0.0.1:5432/app"
    assert main(["bench", url, "--scenarios", "no-lag,replay-paused"]) == 2
    err = capsys.readouterr().err
    assert "replay-paused need the embedded cluster" in err
    assert "s3cr3t" not in err


def test_a_list_that_is_not_numbers_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "--concurrency", "8,lots"])
    assert info.value.code == 2
    assert "not a list of numbers" in capsys.readouterr().err


def test_an_unreachable_node_is_named_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 1 on loopback refuses at once: a setup failure, exit code 1, nothing written.
    url = "postgresql://app:s3cr3t@127.0.0.1:1,127.0.0.1:2/app"
    assert main(["bench", url, "--quick", "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "router bench: cannot connect to 127.0.0.1:" in captured.err
    assert "s3cr3t" not in captured.err + captured.out
    assert not (tmp_path / "out").exists()


def test_a_bad_url_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "postgresql://app:s3cr3t@h1,h2/app?router_policy=best"]) == 1
    err = capsys.readouterr().err
    assert "router_policy" in err
    assert "s3cr3t" not in err


def test_the_recorded_command_has_no_password() -> None:
    args = build_parser().parse_args(
        [
            "bench",
            "postgresql://app:s3cr3t@h1,h2/app",
            "--quick",
            "--concurrency",
            "1,8",
            "--duration",
            "0.25",
            "--with-pgpool",
        ]
    )
    command = _command(args)
    assert "s3cr3t" not in command
    assert command.startswith("router bench 'postgresql://app:")
    assert "--quick --with-pgpool --concurrency 1,8 --duration 0.25" in command
