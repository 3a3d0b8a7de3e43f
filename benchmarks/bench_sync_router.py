"""Routed ``fetchrow`` by primary key (sync ``router.Router``) against a raw psycopg_pool.

    .venv/bin/python benchmarks/bench_sync_router.py [--duration 2.5] [--rounds 5]
        [--concurrency 1,4,16] [--json benchmarks/results/sync_router.json] [--quick]

A :class:`router.testing.LocalCluster` (a primary and two streaming replicas) is started; a
table of ``--rows`` rows is created on the primary and replicated. Every subject reads one
row by a random primary key from ``replica1``, from C threads:

- ``raw``: ``psycopg_pool.ConnectionPool(replica1)`` in autocommit (the strongest baseline:
  one round trip per call), ``with pool.connection() as c: c.execute(q, (id,)).fetchone()``;
- ``raw-tx``: the same pool with psycopg's default (not autocommit): every ``connection()``
  block is a transaction, committed when it ends, as most psycopg code runs;
- ``routed``: ``router.Router`` with the primary and ``replica1`` only, the default
  consistency (``read_your_writes``), so every read is routed to ``replica1``;
- ``routed-eventual``: the same with ``consistency="eventual"``.

Per level C each subject has a pool of C connections; all are opened together; each round
runs every subject once, in an order rotated each round, so drift of the machine falls on all
alike. A run: C threads loop for ``--warmup`` s (not counted), then for ``--duration`` s.
Reported per subject and level: ops/s (median over rounds), p50/p99 latency (median of each
round's), this process's CPU per call, and the ratio to ``raw`` (of medians, and per round).
The GIL makes the client's CPU per call matter more than in the async benchmark: with two
cores shared by the client and three servers, every microsecond of Python shows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
import psycopg_pool
from _report import Level, check_routing, measure_rounds, summary, table

import router
from router.testing import LocalCluster

QUERY = "SELECT id, payload FROM bench_items WHERE id = %s"
SUBJECTS = ("raw", "raw-tx", "routed", "routed-eventual")

Fetchrow = Callable[[int], Any]


@dataclass
class Subject:
    name: str
    fetchrow: Fetchrow
    close: Callable[[], None]
    router: router.Router | None = None


def _open(name: str, primary: str, replica: str, k: int) -> Subject:
    if name in ("raw", "raw-tx"):
        pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = psycopg_pool.ConnectionPool(
            replica,
            min_size=k,
            max_size=k,
            kwargs={"autocommit": name == "raw"},
            open=True,
        )
        pool.wait()

        def fetchrow(key: int) -> Any:
            with pool.connection() as conn:
                return conn.execute(QUERY, (key,)).fetchone()

        return Subject(name, fetchrow, pool.close)
    consistency: Literal["eventual", "read_your_writes"] = (
        "eventual" if name == "routed-eventual" else "read_your_writes"
    )
    config = router.RouterConfig(
        primary=router.NodeConfig(dsn=primary, name="primary"),
        replicas=[router.NodeConfig(dsn=replica, name="replica1")],
        consistency=consistency,
        pool=router.PoolConfig(min_size=k, max_size=k),
    )
    r = router.Router(config).open()
    return Subject(name, lambda key: r.fetchrow(QUERY, (key,)), r.close, router=r)


def _level(
    args: argparse.Namespace, primary: str, replica: str, concurrency: int, ids: list[int]
) -> Level:
    level = Level(concurrency, concurrency, {name: [] for name in args.subjects})
    subjects = [_open(name, primary, replica, concurrency) for name in args.subjects]
    try:
        for subject in subjects:
            row = subject.fetchrow(ids[0])
            if row is None or row[0] != ids[0]:
                raise SystemExit(f"{subject.name}: wrong answer {row!r}")
        measure_rounds(level, subjects, ids, args)
        for subject in subjects:
            if subject.router is not None:
                check_routing(subject.name, subject.router, "replica1")
    finally:
        for subject in subjects:
            subject.close()
    return level


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=2.5, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrency", default="1,4,16", help="comma-separated thread counts")
    p.add_argument("--subjects", default=",".join(SUBJECTS))
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--quick", action="store_true", help="~30 s: 0.8 s runs, 2 rounds")
    args = p.parse_args()
    if args.quick:
        args.duration, args.warmup, args.rounds = 0.8, 0.2, 2
    args.subjects = [s for s in args.subjects.split(",") if s]
    args.levels = [int(c) for c in args.concurrency.split(",") if c]
    return args


def main() -> None:
    args = _parse()
    with LocalCluster(replicas=2) as cluster:
        primary, replica = cluster.primary.dsn, cluster.node("replica1").dsn
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE bench_items (id int PRIMARY KEY, payload text NOT NULL);"
                "INSERT INTO bench_items SELECT g, md5(g::text)"
                f" FROM generate_series(1, {args.rows}) g"
            )
        cluster.wait_caught_up()
        ids = list(range(1, args.rows + 1))
        random.shuffle(ids)
        summaries = [summary(_level(args, primary, replica, c, ids)) for c in args.levels]
    print()
    print(table(summaries))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "command": "benchmarks/bench_sync_router.py "
            + " ".join(
                f"--{k} {v}"
                for k, v in (
                    ("duration", args.duration),
                    ("rounds", args.rounds),
                    ("concurrency", args.concurrency),
                )
            ),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "psycopg": psycopg.__version__,
            },
            "levels": summaries,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
