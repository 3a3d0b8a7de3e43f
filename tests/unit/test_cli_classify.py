"""``router classify``: the subcommand's parser and handler."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from router.cli import _classify


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="router")
    _classify.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_prints_route_effects_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["classify", "SELECT pg_advisory_lock(1)"]) == 0
    out = capsys.readouterr().out
    assert "route:     write" in out
    assert "effects:   pin" in out
    assert "reason:    session advisory lock pg_advisory_lock()" in out
    assert "functions: pg_advisory_lock" in out


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["classify", "--json", "BEGIN READ ONLY"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["route"] == "read"
    assert data["effects"] == ["tx_begin"]
    assert data["readonly_begin"] is True
    assert data["statements"] == 1


def test_reads_stdin_for_dash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("DELETE FROM users"))
    assert run(["classify", "-"]) == 0
    assert "route:     write" in capsys.readouterr().out


def test_function_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["classify", "--read-function", "peek", "SELECT peek()"]) == 0
    assert "route:     read" in capsys.readouterr().out
    assert run(["classify", "--read-function", "f", "--write-function", "f", "SELECT f()"]) == 2
    assert "write_functions" in capsys.readouterr().err


def test_unparseable(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["classify", "SELEC 1"]) == 0
    out = capsys.readouterr().out
    assert "reason:    unparseable" in out
    assert "effects:   -" in out
