"""The table of what goes where, for ``docs/concepts/classification.md``: each example is run
through the real classifier when the docs are built, so the page cannot drift from the code.
``tests/integration/test_classify_standby.py`` proves the READ verdicts on a real standby."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

import router  # noqa: E402

__all__ = ["EXAMPLES", "render"]

#: (group, SQL): the groups follow the PostgreSQL "Hot Standby" chapter and design §3.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Queries", "SELECT * FROM orders WHERE id = 1"),
    ("Queries", "SELECT now(), random()"),
    ("Queries", "COPY orders TO STDOUT"),
    ("Queries", "SHOW work_mem"),
    ("Queries", "EXPLAIN DELETE FROM orders"),
    ("Queries", "EXPLAIN ANALYZE DELETE FROM orders"),
    ("Queries", "SELECT 1; DELETE FROM orders"),
    ("Row locks", "SELECT * FROM orders FOR UPDATE"),
    ("Row locks", "SELECT * FROM orders FOR KEY SHARE"),
    ("Writes", "INSERT INTO orders VALUES (1)"),
    ("Writes", "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d"),
    ("Writes", "SELECT * INTO copy FROM orders"),
    ("Writes", "COPY orders FROM STDIN"),
    ("Writes", "TRUNCATE orders"),
    ("Functions", "SELECT nextval('orders_id_seq')"),
    ("Functions", "SELECT currval('orders_id_seq')"),
    ("Functions", "SELECT txid_current()"),
    ("Functions", "SELECT pg_current_wal_lsn()"),
    ("Functions", "SELECT pg_advisory_xact_lock(1)"),
    ("Functions", "SELECT pg_advisory_lock(1)"),
    ("Functions", "SELECT my_function()"),
    ("DDL and maintenance", "CREATE TABLE t (a int)"),
    ("DDL and maintenance", "CREATE TEMP TABLE t (a int)"),
    ("DDL and maintenance", "SELECT * FROM pg_temp.t"),
    ("DDL and maintenance", "VACUUM orders"),
    ("DDL and maintenance", "REFRESH MATERIALIZED VIEW totals"),
    ("DDL and maintenance", "LOCK TABLE orders"),
    ("DDL and maintenance", "CALL archive()"),
    ("DDL and maintenance", "DO $$ BEGIN END $$"),
    ("Session state", "SET work_mem = '64MB'"),
    ("Session state", "SELECT set_config('app.user', '42', false)"),
    ("Session state", "LISTEN orders"),
    ("Session state", "NOTIFY orders"),
    ("Session state", "PREPARE q AS SELECT 1"),
    ("Session state", "DECLARE c CURSOR WITH HOLD FOR SELECT 1"),
    ("Session state", "DISCARD ALL"),
    ("Transactions", "BEGIN"),
    ("Transactions", "BEGIN ISOLATION LEVEL SERIALIZABLE"),
    ("Transactions", "SET LOCAL work_mem = '64MB'"),
    ("Transactions", "SELECT set_config('app.user', '42', true)"),
    ("Transactions", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"),
    ("Transactions", "SAVEPOINT a"),
    ("Transactions", "COMMIT"),
    ("Hints and bad SQL", "/* router:primary */ SELECT * FROM orders"),
    ("Hints and bad SQL", "SELEC oops"),
)


def render() -> str:
    """A markdown table: SQL, route, effects, the classifier's reason."""
    lines = ["| | SQL | route | effects | reason |", "|---|---|---|---|---|"]
    for group, sql in EXAMPLES:
        found = router.classify(sql)
        effects = ", ".join(sorted(effect.value for effect in found.effects)) or "-"
        code = sql.replace("|", "\\|")
        route = "**write**" if found.route is router.Route.WRITE else "read"
        lines.append(f"| {group} | `{code}` | {route} | {effects} | {found.reason} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
