"""What the sync ``Router``'s read deadline costs: routed ``fetchrow`` on a replica with and
without ``read_timeout``, against raw psycopg_pool, interleaved in one run.

    .venv/bin/python benchmarks/bench_read_deadline.py [--via pgbouncer,direct]
        [--concurrency 1,4] [--duration 2.5] [--rounds 5]
        [--json benchmarks/results/read_deadline.json] [--quick]

psycopg cannot bound a statement from the client, so the sync router keeps a read's
``read_timeout`` with a watchdog (``router/_sync/_deadline.py``): a read that outlives it is
cancelled on the server, or its link cut. ``read_timeout="auto"`` arms it on every read
outside a transaction behind a transaction pooler (``pooler_mode="transaction"``: 30 s);
with ``read_timeout`` set it is armed in any mode.

A :class:`router.testing.LocalCluster` (a primary and one streaming replica) is started, a
table of ``--rows`` rows created and replicated. Every subject reads one row by a random
primary key from ``replica1``, from C threads, by way of each ``--via``:

- ``pgbouncer``: a PgBouncer per node in transaction mode (``router.testing.PgBouncers``);
  the routers run with ``pooler_mode="transaction"``, the raw pool with
  ``prepare_threshold=None`` (what the router sets in that mode);
- ``direct``: to the servers; the routers in session mode, the raw pool as configured by
  default.

Subjects (per way):

- ``raw``: ``psycopg_pool.ConnectionPool(replica1)`` in autocommit,
  ``with pool.connection() as c: c.execute(q, (id,)).fetchone()`` (the baseline);
- ``routed``: ``router.Router`` (the primary and ``replica1``), ``read_timeout=None``: no
  deadline;
- ``routed-deadline``: the same with a deadline on every read: ``read_timeout="auto"``
  behind PgBouncer (the 30 s default of that mode), ``read_timeout=30`` direct.

Each round runs every subject once (warm-up ``--warmup`` s, then ``--duration`` s), in an
order rotated between rounds. Reported per way, level and subject: ops/s (median over
rounds), p50/p99 latency, this process's CPU time per call (every thread's: workers, the
routers' monitors and the deadline's watchdog), the ratio to ``raw``, and the deadline's
cost: ``routed-deadline`` minus ``routed`` in CPU µs per call (median of the per-round
differences) and their ops/s ratio. To compare two trees, put the other tree's ``src``
first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
from _report import Level, check_routing, measure_rounds, summary, table

import router
from router.testing import LocalCluster, PgBouncers

QUERY = "SELECT id, payload FROM bench_items WHERE id = %s"
SUBJECTS = ("raw", "routed", "routed-deadline")
WAYS = ("pgbouncer", "direct")
DATABASE = "bench"
#: ``read_timeout`` of ``routed-deadline`` going direct (behind PgBouncer: "auto", i.e. 30 s).
DIRECT_DEADLINE = 30.0

Fetchrow = Callable[[int], Any]


@dataclass
class Subject:
    name: str
    fetchrow: Fetchrow
    close: Callable[[], None]
    router: router.Router | None = None


@dataclass(frozen=True)
class Way:
    name: str
    primary: str
    replica: str

    @property
    def pooled(self) -> bool:
        return self.name == "pgbouncer"


def _open(name: str, way: Way, k: int) -> Subject:
    if name == "raw":
        kwargs: dict[str, Any] = {"autocommit": True}
        if way.pooled:
            kwargs["prepare_threshold"] = None
        pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = psycopg_pool.ConnectionPool(
            way.replica, min_size=k, max_size=k, kwargs=kwargs, open=True
        )
        pool.wait()

        def fetchrow(key: int) -> Any:
            with pool.connection() as conn:
                return conn.execute(QUERY, (key,)).fetchone()

        return Subject(name, fetchrow, pool.close)
    read_timeout: float | str | None = None
    if name == "routed-deadline":
        read_timeout = "auto" if way.pooled else DIRECT_DEADLINE
    config = router.RouterConfig(
        primary=router.NodeConfig(dsn=way.primary, name="primary"),
        replicas=[router.NodeConfig(dsn=way.replica, name="replica1")],
        pooler_mode="transaction" if way.pooled else "session",
        read_timeout=read_timeout,  # type: ignore[arg-type]
        pool=router.PoolConfig(min_size=k, max_size=k),
    )
    r = router.Router(config).open()
    return Subject(name, lambda key: r.fetchrow(QUERY, (key,)), r.close, router=r)


def _level(args: argparse.Namespace, way: Way, concurrency: int, ids: list[int]) -> Level:
    level = Level(concurrency, concurrency, {name: [] for name in args.subjects})
    subjects: list[Subject] = []
    try:
        for name in args.subjects:
            subjects.append(_open(name, way, concurrency))
        for subject in subjects:
            row = subject.fetchrow(ids[0])
            if row is None or row[0] != ids[0]:
                raise SystemExit(f"{subject.name}: wrong answer {row!r}")
        measure_rounds(level, subjects, ids, args, f"{way.name:<9} ")
        for subject in subjects:
            if subject.router is not None:
                check_routing(subject.name, subject.router, "replica1")
    finally:
        for subject in subjects:
            subject.close()
    return level


def _deadline_cost(level: Level) -> dict[str, Any] | None:
    """``routed-deadline`` against ``routed``, round by round (the same round's runs)."""
    armed, bare = level.runs.get("routed-deadline"), level.runs.get("routed")
    if not armed or not bare:
        return None
    cpu = [a.cpu_us - b.cpu_us for a, b in zip(armed, bare, strict=True)]
    ratio = [a.ops_per_s / b.ops_per_s for a, b in zip(armed, bare, strict=True)]
    return {
        "cpu_us_per_call": round(statistics.median(cpu), 1),
        "cpu_us_per_call_rounds": [round(x, 1) for x in cpu],
        "ops_ratio": round(statistics.median(ratio), 3),
        "ops_ratio_rounds": [round(x, 3) for x in ratio],
    }


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=2.5, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrency", default="1,4", help="comma-separated thread counts")
    p.add_argument("--via", default=",".join(WAYS), help="pgbouncer and/or direct")
    p.add_argument("--subjects", default=",".join(SUBJECTS))
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--quick", action="store_true", help="0.8 s runs, 2 rounds")
    args = p.parse_args()
    if args.quick:
        args.duration, args.warmup, args.rounds = 0.8, 0.2, 2
    args.subjects = [s for s in args.subjects.split(",") if s]
    args.ways = [w for w in args.via.split(",") if w]
    for name in args.subjects:
        if name not in SUBJECTS:
            p.error(f"unknown subject {name!r} (one of {', '.join(SUBJECTS)})")
    for name in args.ways:
        if name not in WAYS:
            p.error(f"unknown --via {name!r} (one of {', '.join(WAYS)})")
    args.levels = [int(c) for c in args.concurrency.split(",") if c]
    return args


def main() -> None:
    args = _parse()
    results: list[dict[str, Any]] = []
    with LocalCluster(replicas=1) as cluster:
        cluster.create_database(DATABASE)
        primary, replica = cluster.primary, cluster.node("replica1")
        with psycopg.connect(primary.dsn_for(DATABASE), autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE bench_items (id int PRIMARY KEY, payload text NOT NULL);"
                "INSERT INTO bench_items SELECT g, md5(g::text)"
                f" FROM generate_series(1, {args.rows}) g"
            )
        cluster.wait_caught_up()
        ids = list(range(1, args.rows + 1))
        random.shuffle(ids)
        with PgBouncers(cluster, "transaction") as bouncers:
            ways = {
                "pgbouncer": Way(
                    "pgbouncer",
                    bouncers.dsn_for(primary, DATABASE),
                    bouncers.dsn_for(replica, DATABASE),
                ),
                "direct": Way("direct", primary.dsn_for(DATABASE), replica.dsn_for(DATABASE)),
            }
            for name in args.ways:
                way = ways[name]
                for c in args.levels:
                    level = _level(args, way, c, ids)
                    results.append(
                        {"via": name, **summary(level), "deadline_cost": _deadline_cost(level)}
                    )
    for name in args.ways:
        mine = [r for r in results if r["via"] == name]
        print(f"\n{name}:")
        print(table(mine))
        for r in mine:
            cost = r["deadline_cost"]
            if cost is not None:
                print(
                    f"c={r['concurrency']}: the deadline costs {cost['cpu_us_per_call']:+.1f}"
                    f" CPU µs per call (rounds {cost['cpu_us_per_call_rounds']});"
                    f" ops/s with / without {cost['ops_ratio']:.3f}"
                    f" (rounds {cost['ops_ratio_rounds']})"
                )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "command": "benchmarks/bench_read_deadline.py "
            + " ".join(
                f"--{k} {v}"
                for k, v in (
                    ("via", args.via),
                    ("duration", args.duration),
                    ("rounds", args.rounds),
                    ("concurrency", args.concurrency),
                )
            ),
            "router": os.path.dirname(router.__file__),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "psycopg": psycopg.__version__,
                "load_average": os.getloadavg(),
            },
            "levels": results,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
