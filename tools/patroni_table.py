"""Render the Patroni suite's figures (``ROUTER_RELIABILITY_REPORT`` JSON lines written by
``tests/faults/test_patroni.py``) as the Markdown table of ``docs/reliability.md``."""

from __future__ import annotations

import json
import sys
from typing import Any

COLUMNS = [
    ("Scenario", "scenario"),
    ("Discovery", "discovery"),
    ("Ops", "ops"),
    ("Acked writes", "acknowledged_writes"),
    ("New leader writable (s)", "patroni_new_leader_writable_s"),
    ("Router on it after (s)", "router_primary_after_writable_s"),
    ("First acked write after (s)", "first_ack_after_writable_s"),
    ("Write outage (s)", "write_outage_s"),
    ("Reads failed outside tx", "read_errors_outside_tx"),
    ("Errors seen by the app", "errors"),
    ("All serving after Patroni healthy (s)", "router_serving_all_after_patroni_s"),
    ("Stale", "stale"),
    ("Misrouted", "misrouted"),
    ("Lost", "lost"),
]


def cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "scenario":
        return f"`{value}`"
    if key == "errors":
        return ", ".join(f"{k} x {v}" for k, v in sorted(value.items(), key=lambda kv: -kv[1]))
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def main(path: str) -> None:
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print("| " + " | ".join(title for title, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        if "scenario" not in row:
            continue
        print("| " + " | ".join(cell(key, row.get(key)) for _, key in COLUMNS) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
