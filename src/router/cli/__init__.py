"""The ``router`` command line.

Each subcommand lives in a module of its own exposing ``register(subparsers)``, which adds
its parser and sets ``func(args) -> int`` as the handler.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from router._version import __version__
from router.cli import _classify, _cluster, _status
from router.config import redact
from router_bench import cli as _bench  # its own package: its report modules load when it runs

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, minus the echo of a password: its errors quote what was typed (an
    unrecognized argument, an invalid choice), which may be a connection string."""

    def error(self, message: str) -> NoReturn:
        super().error(redact(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="router",
        description="Read/write splitting for PostgreSQL streaming replicas.",
    )
    parser.add_argument("--version", action="version", version=f"router {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (_cluster, _status, _classify, _bench):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`router ... | head`): stop quietly, as Unix tools do, and keep
        # Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
