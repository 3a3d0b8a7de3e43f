"""``router classify SQL``: how the classifier routes a statement, and why."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from router.config import redact
from router.core import Classification, Classifier

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "classify",
        help="show where a SQL string would be routed (read/write), its effects and why",
        description="Classify SQL the way the router does: route, session effects and reason.",
    )
    parser.add_argument("sql", help='the SQL text, or "-" to read it from standard input')
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--read-function",
        action="append",
        default=[],
        metavar="NAME",
        help="treat this function as read-only (repeatable)",
    )
    parser.add_argument(
        "--write-function",
        action="append",
        default=[],
        metavar="NAME",
        help="treat this function as writing (repeatable)",
    )
    parser.set_defaults(func=handler)


def _as_dict(result: Classification) -> dict[str, Any]:
    return {
        "route": str(result.route),
        "effects": sorted(str(effect) for effect in result.effects),
        "reason": result.reason,
        "functions": sorted(result.functions),
        "readonly_begin": result.readonly_begin,
        "isolation": result.isolation,
        "hint": None if result.hint is None else str(result.hint),
        "statements": result.statements,
    }


def handler(args: argparse.Namespace) -> int:
    """Print the classification of ``args.sql``; 0 on success, 2 on a bad option."""
    sql = sys.stdin.read() if args.sql == "-" else args.sql
    try:
        classifier = Classifier(
            read_functions=args.read_function,
            write_functions=args.write_function,
            cache_size=0,
        )
    except ValueError as exc:
        # The message quotes the bad name, which may be a connection string typed there.
        print(f"router: {redact(str(exc))}", file=sys.stderr)
        return 2
    result = classifier.classify(sql)
    if args.json:
        print(json.dumps(_as_dict(result), indent=2))
        return 0
    data = _as_dict(result)
    print(f"route:     {data['route']}")
    print(f"effects:   {', '.join(data['effects']) or '-'}")
    print(f"reason:    {data['reason']}")
    if data["functions"]:
        print(f"functions: {', '.join(data['functions'])}")
    for key in ("readonly_begin", "isolation", "hint"):
        if data[key] is not None:
            print(f"{key + ':':<11}{data[key]}")
    return 0
