"""Cost of classifying a statement: cached, first seen, and a bare libpg_query parse beside it.

    .venv/bin/python benchmarks/bench_classify.py [--rounds 7] [--batch 2000]

Each statement of a corpus of ORM-shaped SQL (SQLAlchemy / psycopg placeholders, joins,
DML, transaction control) is timed in batches; a batch's mean is one sample. The table gives the
median and p99 over all samples of all statements, in microseconds per statement:

- ``cached``: ``Classifier.classify`` on a string already in the cache (the common case);
- ``first seen``: ``Classifier(cache_size=0).classify``, i.e. lexing, parsing and deciding;
- ``parse_sql_json``: pglast's bare parse of the same (placeholder-normalised) text;
- ``parse_sql``: pglast's Python-AST parse, the API the classifier avoids.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import pglast
from pglast.parser import parse_sql, parse_sql_json

from router.core import Classifier, normalize_placeholders

CORPUS = [
    "SELECT users.id, users.name, users.email FROM users WHERE users.id = %(id_1)s::INTEGER",
    "SELECT users.id AS users_id, users.name AS users_name FROM users"
    " WHERE users.active = true ORDER BY users.created_at DESC LIMIT %(param_1)s",
    "SELECT orders.id, orders.total, users.name FROM orders JOIN users ON users.id = orders.user_id"
    " WHERE orders.status = %(status_1)s AND orders.created_at > %(created_at_1)s",
    "SELECT count(*) AS count_1 FROM (SELECT orders.id FROM orders"
    " WHERE orders.user_id = %(user_id_1)s) AS anon_1",
    "SELECT u.id, lower(u.name) FROM users u JOIN orders o ON o.user_id = u.id"
    " WHERE u.id = $1 AND o.total > 10 ORDER BY 1 LIMIT 5",
    "SELECT * FROM users WHERE id = :id",
    "SELECT id, name FROM users WHERE email = %s",
    "SELECT user_id, sum(total) FROM orders GROUP BY user_id HAVING sum(total) > %s",
    "SELECT * FROM orders WHERE data @> %s::jsonb ORDER BY id DESC LIMIT 20",
    "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day')"
    " SELECT user_id, count(*) FROM recent GROUP BY user_id",
    "SELECT * FROM users WHERE id = ANY(%(ids)s)",
    "SELECT 1",
    "SELECT pg_is_in_recovery()",
    "SELECT * FROM orders WHERE id = %s FOR UPDATE",
    "SELECT nextval('order_seq')",
    "INSERT INTO users (name, email) VALUES (%(name)s, %(email)s) RETURNING users.id",
    "UPDATE users SET name=%(name)s WHERE users.id = %(id_1)s",
    "DELETE FROM orders WHERE orders.id = %(id_1)s",
    "INSERT INTO orders (user_id, total) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
    "BEGIN",
    "BEGIN READ ONLY",
    "COMMIT",
    "ROLLBACK",
    "SET LOCAL statement_timeout = 500",
    "SELECT set_config('app.user_id', %s, true)",
    "SAVEPOINT sa_savepoint_1",
    "RELEASE SAVEPOINT sa_savepoint_1",
    "SHOW transaction_read_only",
]


def _samples(fn: Callable[[str], object], sql: str, rounds: int, batch: int) -> list[float]:
    out: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(batch):
            fn(sql)
        out.append((time.perf_counter_ns() - start) / batch / 1000)
    return out


def _row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"| {name:<26} | {statistics.median(ordered):>9.2f} | {p99:>9.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="batches per statement")
    parser.add_argument("--batch", type=int, default=2000, help="calls per batch (cached)")
    args = parser.parse_args()

    cached = Classifier()
    uncached = Classifier(cache_size=0)
    normalised = [normalize_placeholders(sql) for sql in CORPUS]
    slow_batch = max(1, args.batch // 20)
    results: dict[str, list[float]] = {
        "cached": [],
        "first seen": [],
        "parse_sql_json (bare)": [],
        "parse_sql (Python AST)": [],
    }
    for sql, text in zip(CORPUS, normalised, strict=True):
        cached.classify(sql)
        results["cached"] += _samples(cached.classify, sql, args.rounds, args.batch)
        results["first seen"] += _samples(uncached.classify, sql, args.rounds, slow_batch)
        results["parse_sql_json (bare)"] += _samples(parse_sql_json, text, args.rounds, slow_batch)
        results["parse_sql (Python AST)"] += _samples(
            parse_sql, text, args.rounds, max(1, slow_batch // 5)
        )
    print(
        f"{len(CORPUS)} statements x {args.rounds} batches; Python {platform.python_version()},"
        f" pglast {pglast.__version__}, {platform.machine()}"
    )
    print("| per statement, µs         |    median |       p99 |")
    print("|---------------------------|-----------|-----------|")
    for name, samples in results.items():
        print(_row(name, samples))


if __name__ == "__main__":
    main()
