"""The classifier's case table, shared by the unit suite and the hot-standby integration test.

``CASES`` is a list of :class:`Case`. Every READ case must be accepted by a real hot standby on
the schema ``FIXTURE_SCHEMA_SQL`` builds, inside ``BEGIN ... ROLLBACK``, after running its
``setup``: ``tests/integration/test_classify_standby.py`` proves it. Cases with ``catalog=True``
are classified with a catalog built from ``CASE_CATALOG_ROWS`` (the fixture's user functions).
Placeholders: run ``normalize_placeholders(case.sql)`` with ``case.params`` (``$n`` order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router.core import Effect, Route

__all__ = ["CASES", "CASE_CATALOG_ROWS", "FIXTURE_SCHEMA_SQL", "READ_CASES", "Case"]

SET, SET_LOCAL, PIN = Effect.SET, Effect.SET_LOCAL, Effect.PIN
TX_BEGIN, TX_END, SAVEPOINT = Effect.TX_BEGIN, Effect.TX_END, Effect.SAVEPOINT

FIXTURE_SCHEMA_SQL = """
CREATE TABLE users (
    id serial PRIMARY KEY,
    name text NOT NULL DEFAULT '',
    email text,
    active boolean NOT NULL DEFAULT true,
    manager_id integer,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    user_id integer REFERENCES users (id),
    total numeric NOT NULL DEFAULT 0,
    status text,
    data jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE "select" ("from" text, "delete" integer, "insert" integer, "update" integer);
CREATE TABLE "ünïcödé" ("名前" text);
CREATE SEQUENCE order_seq;
CREATE VIEW active_users AS SELECT * FROM users WHERE active;
CREATE MATERIALIZED VIEW order_totals AS SELECT user_id, sum(total) AS total FROM orders GROUP BY 1;
CREATE FUNCTION user_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM users';
CREATE FUNCTION add_tax(numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 1.2';
CREATE FUNCTION touch_user(integer) RETURNS void LANGUAGE sql VOLATILE
    AS 'UPDATE users SET created_at = now() WHERE id = $1';
CREATE SCHEMA app;
CREATE FUNCTION app.user_label(integer) RETURNS text LANGUAGE sql STABLE
    AS 'SELECT name FROM users WHERE id = $1';
INSERT INTO users (name, email) VALUES ('ann', 'ann@example.com'), ('bob', NULL);
INSERT INTO orders (user_id, total, status) VALUES (1, 10, 'new'), (2, 20.5, 'paid');
SELECT lo_from_bytea(4242, 'large object');
"""

CASE_CATALOG_ROWS: list[tuple[str, str, str]] = [
    ("public", "user_count", "s"),
    ("public", "add_tax", "i"),
    ("public", "touch_user", "v"),
    ("app", "user_label", "s"),
]


@dataclass(frozen=True)
class Case:
    """One SQL string and what the classifier must say about it.

    ``effects`` is the exact set expected; ``reason`` a fragment of the reason; ``attrs`` other
    ``Classification`` attributes to check; ``params`` dummy values for its placeholders, in
    ``$n`` order; ``setup`` SQL the standby test runs first inside the same transaction.
    """

    sql: str
    route: Route
    effects: frozenset[Effect] = frozenset()
    id: str = ""
    reason: str | None = None
    params: tuple[Any, ...] = ()
    setup: str = ""
    catalog: bool = False
    attrs: Mapping[str, Any] = field(default_factory=dict)


CASES: list[Case] = []
_counts: dict[str, int] = {}


def _add(group: str, sql: str, route: Route, effects: tuple[Effect, ...], **kw: Any) -> None:
    _counts[group] = _counts.get(group, 0) + 1
    kw.setdefault("id", f"{group}-{_counts[group]:03d}")
    CASES.append(Case(sql, route, frozenset(effects), **kw))


def r(group: str, sql: str, *effects: Effect, **kw: Any) -> None:
    _add(group, sql, Route.READ, effects, **kw)


def w(group: str, sql: str, *effects: Effect, **kw: Any) -> None:
    _add(group, sql, Route.WRITE, effects, **kw)


def unparseable(group: str, sql: str, **kw: Any) -> None:
    _add(group, sql, Route.WRITE, (), reason="unparseable", **kw)


# --- plain reads ---------------------------------------------------------------------------
g = "select"
r(g, "SELECT 1", reason="read-only query")
r(g, "select 1")
r(g, "SELECT * FROM users")
r(g, "SELECT id, name FROM users WHERE id = 1")
r(g, "SELECT count(*) FROM users")
r(g, "SELECT lower(name), upper(email) FROM users")
r(g, "SELECT now(), current_timestamp, current_date, localtimestamp")
r(g, "SELECT u.* FROM users u JOIN orders o ON o.user_id = u.id")
r(g, "SELECT * FROM users LEFT JOIN orders ON orders.user_id = users.id")
r(g, "SELECT user_id, sum(total) FROM orders GROUP BY user_id HAVING sum(total) > 10")
r(g, "SELECT * FROM users ORDER BY created_at DESC LIMIT 10 OFFSET 5")
r(g, "SELECT DISTINCT status FROM orders")
r(g, "SELECT DISTINCT ON (user_id) * FROM orders ORDER BY user_id, created_at DESC")
r(g, "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders)")
r(g, "SELECT * FROM users WHERE EXISTS (SELECT 1 FROM orders WHERE orders.user_id = users.id)")
r(g, "WITH t AS (SELECT * FROM orders) SELECT count(*) FROM t")
r(g, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT * FROM r")
r(g, "WITH t AS MATERIALIZED (SELECT id FROM users) SELECT * FROM t")
r(g, "SELECT 1 UNION SELECT 2")
r(g, "SELECT id FROM users INTERSECT SELECT user_id FROM orders")
r(g, "SELECT id FROM users EXCEPT SELECT user_id FROM orders")
r(g, "VALUES (1, 'a'), (2, 'b')")
r(g, "TABLE users")
r(g, "SELECT * FROM generate_series(1, 10)")
r(g, "SELECT * FROM unnest(ARRAY[1, 2, 3]) AS x")
r(g, "SELECT * FROM ROWS FROM (generate_series(1, 2), generate_series(1, 3)) AS t(a, b)")
r(g, "SELECT row_number() OVER (PARTITION BY user_id ORDER BY created_at) FROM orders")
r(g, "SELECT sum(total) OVER w FROM orders WINDOW w AS (ORDER BY id)")
r(g, "SELECT coalesce(name, 'x'), nullif(email, ''), greatest(1, 2), least(1, 2) FROM users")
r(g, "SELECT CASE WHEN active THEN 'y' ELSE 'n' END FROM users")
r(g, "SELECT data->>'k', data @> '{\"a\": 1}' FROM orders")
r(g, "SELECT jsonb_build_object('id', id) FROM users")
r(g, "SELECT json_agg(u) FROM users u")
r(g, "SELECT array_agg(id ORDER BY id) FROM users")
r(g, "SELECT string_agg(name, ',') FROM users")
r(g, "SELECT extract(year FROM created_at) FROM users")
r(g, "SELECT created_at AT TIME ZONE 'UTC' FROM users")
r(g, "SELECT substring(name FROM 1 FOR 3), trim(both ' ' FROM name) FROM users")
r(g, "SELECT position('a' IN name), overlay(name PLACING 'x' FROM 1) FROM users")
r(g, "SELECT name ILIKE '%a%', name SIMILAR TO 'a%' FROM users")
r(g, "SELECT 'a' || 'b', 1 + 2 * 3, 10 % 3")
r(g, "SELECT 1::int, '1'::numeric, CAST(1 AS text), int4 '1'")
r(g, "SELECT * FROM users WHERE id = ANY (ARRAY[1, 2])")
r(g, "SELECT * FROM users WHERE created_at > now() - interval '1 day'")
r(g, "SELECT to_char(now(), 'YYYY'), format('%s and %I', 'a', 'b')")
r(g, "SELECT regexp_replace(name, '\\d+', '') FROM users")
r(g, "SELECT count(*) FILTER (WHERE active) FROM users")
r(g, "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total) FROM orders")
r(g, "SELECT GROUPING(user_id), count(*) FROM orders GROUP BY ROLLUP (user_id)")
r(g, "SELECT pg_catalog.lower('X'), pg_catalog.now()")
r(g, 'SELECT "users".id FROM "users"')
r(g, "SELECT * FROM public.users")
r(g, "SELECT * FROM ONLY users")
r(g, "SELECT FROM users")
r(g, "SELECT * FROM users u, LATERAL (SELECT * FROM orders o WHERE o.user_id = u.id LIMIT 1) x")
r(g, "SELECT * FROM users FETCH FIRST 5 ROWS ONLY")
r(g, "SELECT * FROM users TABLESAMPLE SYSTEM (10)")
r(g, "SELECT * FROM active_users")
r(g, "SELECT * FROM order_totals")
r(g, "SELECT last_value, is_called FROM order_seq")
r(g, "SELECT * FROM pg_class WHERE relname = 'users'")
r(g, "SELECT * FROM information_schema.tables LIMIT 1")
r(g, "SELECT * FROM pg_stat_activity LIMIT 1")
r(g, "SELECT * FROM pg_locks")
r(g, "SELECT * FROM pg_sequences")
r(g, "SELECT version(), current_database(), current_user, session_user")
r(g, "SELECT current_setting('search_path'), current_schemas(true)")
r(g, "SELECT has_table_privilege('users', 'SELECT'), pg_get_viewdef('active_users')")
r(g, "SELECT to_tsvector('english', 'a b') @@ to_tsquery('a')")
r(g, "SELECT xmlelement(name x, 'y'), xmlforest(1 AS a)")
r(
    g,
    "SELECT 1 WHERE EXISTS (SELECT 1 FROM users) AND NOT EXISTS (SELECT 1 FROM orders WHERE false)",
)
r(g, "SELECT (SELECT max(id) FROM users), (SELECT min(total) FROM orders)")
r(g, "SELECT * FROM (SELECT * FROM (SELECT id FROM users) a) b")
r(g, "SELECT id FROM users WHERE name IS NOT NULL AND email IS DISTINCT FROM 'x'")
r(g, "SELECT id BETWEEN 1 AND 10, id IN (1, 2, 3) FROM users")
r(g, "SELECT array_length(ARRAY[1, 2], 1), cardinality(ARRAY[1])")
r(g, "SELECT date_trunc('day', created_at), age(created_at) FROM users")
r(g, "SELECT md5(name), encode(sha256(name::bytea), 'hex') FROM users")
r(g, "SELECT row_to_json(u) FROM users u")
r(g, "SELECT jsonb_path_query(data, '$.a') FROM orders")

# --- built-in functions that a standby runs and that leave nothing behind --------------------
g = "builtin-read"
r(g, "SELECT random(), clock_timestamp(), timeofday()", reason="read-only query")
r(g, "SELECT gen_random_uuid()")
r(g, "SELECT pg_sleep(0)")
r(g, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), pg_last_wal_receive_lsn()")
r(g, "SELECT pg_last_xact_replay_timestamp(), pg_is_wal_replay_paused()")
r(g, "SELECT pg_relation_size('users'), pg_total_relation_size('orders')")
r(
    g,
    "SELECT pg_table_size('users'), pg_indexes_size('users'), pg_database_size(current_database())",
)
r(g, "SELECT pg_backend_pid(), pg_postmaster_start_time()")
r(g, "SELECT txid_current_snapshot(), pg_current_snapshot()")
r(g, "SELECT pg_sequence_last_value('order_seq')")
r(g, "SELECT lo_get(4242)")
r(g, "SELECT pg_blocking_pids(pg_backend_pid())")
r(g, "SELECT set_config('app.user_id', '42', true)", SET_LOCAL, reason="local")
r(g, "SELECT pg_catalog.set_config('app.tenant', 'acme', true)", SET_LOCAL)
r(g, "SELECT set_config('statement_timeout', '5s', true)", SET_LOCAL)
r(g, "SELECT set_config('app.user_id', %s, true)", SET_LOCAL, params=("42",))
r(g, "SELECT set_config('app.a', '1', true), set_config('app.b', '2', true)", SET_LOCAL)

# --- driver placeholders -------------------------------------------------------------------
g = "placeholder"
r(g, "SELECT * FROM users WHERE id = %s", params=(1,))
r(g, "SELECT * FROM users WHERE id = %(id)s", params=(1,))
r(g, "SELECT * FROM users WHERE id = %(id)s OR manager_id = %(id)s", params=(1,))
r(g, "SELECT * FROM users WHERE name LIKE 'a%%' AND id = %s", params=(1,))
r(g, "SELECT %s::int + %s::int", params=(1, 2))
r(g, "SELECT %(a)s::int, %(b)s::text, %(a)s::int", params=(1, "x"))
r(g, "SELECT * FROM users WHERE id = %b", params=(1,))
r(g, "SELECT * FROM users WHERE id = %t", params=(1,))
r(g, "SELECT * FROM users WHERE id = :id", params=(1,))
r(g, "SELECT * FROM users WHERE id = :id AND manager_id = :id", params=(1,))
r(g, "SELECT :x::text", params=("a",))
r(g, "SELECT * FROM orders WHERE data @> :filter::jsonb", params=("{}",))
r(g, "SELECT * FROM users WHERE id = :user_id LIMIT :lim", params=(1, 5))
r(g, "SELECT * FROM users WHERE id = $1", params=(1,))
r(g, "SELECT $1::int AS a, $2::text AS b", params=(1, "x"))
r(g, "SELECT (ARRAY[1, 2, 3])[1:2]")
r(g, "SELECT arr[1:2] FROM (SELECT ARRAY[1, 2, 3] AS arr) s")
r(g, "SELECT 'It''s %s and :x'")
r(g, "SELECT * FROM users WHERE name = %s -- a %s in a comment", params=("a",))
r(g, "SELECT * FROM users WHERE name = %s /* :id and %(x)s */", params=("a",))
r(g, "SELECT %(user id)s::int", params=(1,))
r(g, "SELECT now()::date, '1'::int, %s::int", params=(1,))
r(g, "SELECT 'a:b', E'%s \\' :x'")
r(g, "SELECT $tag$ %s :x $tag$")
r(g, 'SELECT 1 AS ":x", 2 AS "%s"')
r(g, "SELECT id FROM users WHERE id IN (%s, %s, %s)", params=(1, 2, 3))
w(g, "UPDATE users SET name = %s WHERE id = %s", reason="UPDATE")
w(g, "INSERT INTO users (name) VALUES (%(name)s) RETURNING id")
w(g, "DELETE FROM users WHERE id = :id")
w(g, "SELECT nextval(%s)", reason="nextval")
w(g, "SELECT * FROM users WHERE id = %s FOR UPDATE", reason="FOR UPDATE")
unparseable(g, "SELECT * FROM users WHERE id = ?")

# --- lexical traps ---------------------------------------------------------------------------
g = "lexical"
r(g, "/* DELETE FROM users */ SELECT 1")
r(g, "SELECT 1 -- ; DELETE FROM users")
r(g, "SELECT '; DELETE FROM users'")
r(g, "SELECT 'DROP TABLE users' AS x")
r(g, "SELECT $$; DELETE FROM users; $$")
r(g, "SELECT $tag$ $$ ; DELETE FROM users $tag$")
r(g, "SELECT $a$ $b$ ; DELETE FROM users; $b$ $a$")
r(g, "SELECT E'\\'; DELETE FROM users; --'")
r(g, "SELECT E'\\\\', 1")
r(g, "SELECT e'it\\'s' AS x")
r(g, "SELECT 'a\\', 1")
r(g, "/* outer /* inner */ DELETE FROM users */ SELECT 1")
r(g, "/* a /* b /* c */ UPDATE users SET name = 'x' */ */ SELECT 1")
r(g, 'SELECT "delete", "insert", "update" FROM "select"')
r(g, 'SELECT * FROM "select" WHERE "from" = \'x\'')
r(g, "SELECT 'nextval(''order_seq'')'")
r(g, "SELECT 'FOR UPDATE'")
r(g, 'SELECT 1 AS "for update"')
r(g, "SELECT * FROM users /* FOR UPDATE */")
r(g, "SELECT * FROM users -- FOR UPDATE")
r(g, "SELECT 'ünïcödé', '日本語', '🙂'")
r(g, 'SELECT "名前" FROM "ünïcödé"')
r(g, "SELECT 1 AS \"名前\", 'ß' AS straße")
r(g, "SELECT U&'\\0041'")
r(g, 'SELECT U&"\\0069d" FROM users')
r(g, "SELECT B'101', X'1F'")
r(g, "SELECT 'a'\n'b'")
r(g, "SELECT 1;")
r(g, "SELECT 1; /* trailing comment */")
r(g, ";; SELECT 1 ;;")
r(g, "SELECT 1 AS a$b")
r(g, "\n\n  SELECT\n\t1\n\n")
r(g, "sElEcT 1")
r(g, "SELECT 'insert into users values (1)' AS sql")
r(g, "SELECT $$ it's $$, 'don''t'")
r(g, "SELECT '/* not a comment */', '-- nor this'")
r(g, "SELECT 1 /* ' */, 2 /* \" */")
r(g, "SELECT 1 AS \"a\"\"b\", 'c''d'")
r(g, "SELECT '{\"delete\": 1}'::jsonb")
r(g, "SELECT lower('INTO'), upper('for update')")
w(g, "SELECT 1; DELETE FROM users", reason="statement 2 of 2")
w(g, "SELECT 1 /* ; */ ; UPDATE users SET name = 'x'")
w(g, "SELECT $$x$$; INSERT INTO users (name) VALUES ('x')")
w(g, "SELECT E'\\\\'; DELETE FROM users")
w(g, "SELECT 'a\\'; DELETE FROM users; --'")
w(g, "/* a /* b */ */ DELETE FROM users")
w(g, "dElEtE FROM users")
w(g, "WITH x AS (SELECT 1) DELETE FROM users")
w(g, 'DELETE FROM "select" WHERE "delete" = 1')
w(g, 'UPDATE "select" SET "update" = 1')
w(g, "SELECT 1 -- comment\n; UPDATE users SET name = 'x'")

# --- hints ---------------------------------------------------------------------------------
g = "hint"
w(g, "/* router:primary */ SELECT 1", reason="router:primary", attrs={"hint": "primary"})
w(g, "SELECT 1 /* router:primary */", reason="router:primary")
w(g, "-- router:primary\nSELECT * FROM users", reason="router:primary")
w(g, "/* app=web, router:primary */ SELECT 1", reason="router:primary")
w(g, "/* router:primary */ /* router:replica */ SELECT 1", reason="router:primary")
r(g, "/* router:replica */ SELECT 1", reason="router:replica hint", attrs={"hint": "replica"})
r(g, "-- router:replica\nSELECT * FROM users", reason="router:replica")
r(g, "SELECT '/* router:primary */'", attrs={"hint": None})
r(g, 'SELECT 1 AS "router:primary"', attrs={"hint": None})
w(g, "/* router:replica */ SELECT nextval('order_seq')", reason="hint ignored")
w(g, "/* router:replica */ INSERT INTO users (name) VALUES ('x')", reason="hint ignored")
w(g, "/* router:replica */ SELECT * FROM users FOR UPDATE", reason="hint ignored")
w(g, "/* router:replica */ SET search_path TO public", SET, PIN, reason="hint ignored")
w(g, "/* router:primary */ INSERT INTO users (name) VALUES ('x')", reason="INSERT")
unparseable(g, "/* router:primary */", attrs={"hint": "primary"})
unparseable(g, "/* router:replica */ SELEKT 1", attrs={"hint": "replica"})

# --- data-modifying statements, at any depth -----------------------------------------------
g = "dml"
w(g, "INSERT INTO users (name) VALUES ('a')", reason="INSERT writes rows")
w(g, "INSERT INTO users (name) VALUES ('a') RETURNING id")
w(g, "INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT DO NOTHING")
w(g, "INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET name = 'b'")
w(g, "INSERT INTO orders SELECT * FROM orders")
w(g, "INSERT INTO users DEFAULT VALUES")
w(g, "UPDATE users SET name = 'x' WHERE id = 1", reason="UPDATE")
w(g, "UPDATE orders o SET total = 0 FROM users u WHERE u.id = o.user_id")
w(g, "DELETE FROM users WHERE id = 1", reason="DELETE")
w(g, "DELETE FROM orders USING users WHERE users.id = orders.user_id")
w(
    g,
    "MERGE INTO users u USING (VALUES (1)) v(id) ON u.id = v.id"
    " WHEN MATCHED THEN UPDATE SET name = 'x'",
    reason="MERGE",
)
w(g, "TRUNCATE users", reason="TRUNCATE")
w(g, "TRUNCATE TABLE users, orders RESTART IDENTITY CASCADE")
w(g, "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", reason="data-modifying DELETE")
w(
    g,
    "WITH u AS (UPDATE users SET active = true RETURNING id) SELECT count(*) FROM u",
    reason="UPDATE",
)
w(
    g,
    "WITH i AS (INSERT INTO users (name) VALUES ('x') RETURNING id) SELECT id FROM i",
    reason="INSERT",
)
w(
    g,
    "WITH a AS (SELECT 1), b AS (WITH c AS (DELETE FROM orders RETURNING 1) SELECT * FROM c)"
    " SELECT * FROM b",
)
w(
    g,
    "WITH d AS (DELETE FROM orders RETURNING user_id)"
    " SELECT * FROM users WHERE id IN (SELECT user_id FROM d)",
)
w(g, "SELECT * FROM (WITH d AS (DELETE FROM orders RETURNING id) SELECT id FROM d) s")
w(g, "WITH x AS (SELECT 1) INSERT INTO users (name) SELECT 'a' FROM x")
w(g, "INSERT INTO users (name) SELECT name FROM users WHERE id = 1 RETURNING id, name")
w(g, "UPDATE users SET name = (SELECT 'x') WHERE id IN (SELECT user_id FROM orders)")
w(g, "INSERT INTO orders (id) VALUES (nextval('order_seq'))", reason="INSERT")

# --- row locks --------------------------------------------------------------------------
g = "lock"
w(g, "SELECT * FROM users FOR UPDATE", reason="row lock FOR UPDATE")
w(g, "SELECT * FROM users FOR NO KEY UPDATE", reason="FOR NO KEY UPDATE")
w(g, "SELECT * FROM users FOR SHARE", reason="FOR SHARE")
w(g, "SELECT * FROM users FOR KEY SHARE", reason="FOR KEY SHARE")
w(g, "SELECT * FROM users FOR UPDATE NOWAIT")
w(g, "SELECT * FROM orders FOR NO KEY UPDATE SKIP LOCKED LIMIT 1")
w(g, "SELECT * FROM users u JOIN orders o ON o.user_id = u.id FOR UPDATE OF u")
w(g, "SELECT * FROM users FOR SHARE OF users FOR UPDATE OF users", reason="FOR UPDATE")
w(g, "SELECT * FROM (SELECT * FROM users FOR UPDATE) s", reason="FOR UPDATE")
w(g, "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders FOR SHARE)")
w(g, "WITH l AS (SELECT id FROM users FOR UPDATE) SELECT * FROM l")
w(g, "select * from users for update")
w(g, "SELECT 1 FROM users LIMIT 1 FOR UPDATE SKIP LOCKED; SELECT 2")

# --- SELECT INTO / CREATE TABLE AS ---------------------------------------------------------
g = "into"
w(g, "SELECT * INTO new_users FROM users", reason="SELECT INTO")
w(g, "SELECT * INTO TEMP tmp_users FROM users", PIN)
w(g, "SELECT * INTO TEMPORARY TABLE tmp_users FROM users", PIN)
w(g, "SELECT * INTO UNLOGGED new_users FROM users")
w(g, "SELECT id INTO pg_temp.ids FROM users", PIN)
w(g, "CREATE TABLE t2 AS SELECT * FROM users", reason="CREATE TABLE AS")
w(g, "CREATE TEMP TABLE t3 AS SELECT 1", PIN, reason="temporary")
w(g, "CREATE TABLE t4 AS SELECT 1 WITH NO DATA")
w(g, "CREATE MATERIALIZED VIEW mv AS SELECT 1")
w(g, "CREATE TEMP TABLE t5 AS SELECT pg_advisory_lock(1)", PIN)

# --- EXPLAIN --------------------------------------------------------------------------------
g = "explain"
r(g, "EXPLAIN SELECT * FROM users", reason="EXPLAIN")
r(g, "EXPLAIN DELETE FROM users", reason="without ANALYZE")
r(g, "EXPLAIN INSERT INTO users (name) VALUES ('x')")
r(g, "EXPLAIN UPDATE users SET name = 'x'")
r(g, "EXPLAIN SELECT nextval('order_seq')")
r(g, "EXPLAIN SELECT * FROM users FOR UPDATE")
r(g, "EXPLAIN (ANALYZE false) DELETE FROM users")
r(g, "EXPLAIN (ANALYZE off, COSTS off) UPDATE users SET name = 'x'")
r(g, "EXPLAIN (FORMAT JSON) SELECT 1")
r(g, "EXPLAIN (COSTS OFF) SELECT * FROM users WHERE id = 1")
r(g, "EXPLAIN VERBOSE SELECT 1")
r(g, "EXPLAIN ANALYZE SELECT * FROM users", reason="EXPLAIN ANALYZE")
r(g, "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM orders")
r(g, "EXPLAIN (ANALYZE true, TIMING false) SELECT 1")
w(g, "EXPLAIN ANALYZE INSERT INTO users (name) VALUES ('x')", reason="EXPLAIN ANALYZE")
w(g, "EXPLAIN (ANALYZE) DELETE FROM users")
w(g, "EXPLAIN (ANALYZE, BUFFERS) UPDATE users SET name = 'x'")
w(g, "EXPLAIN ANALYZE SELECT nextval('order_seq')", reason="nextval")
w(g, "EXPLAIN ANALYZE SELECT * FROM users FOR UPDATE", reason="FOR UPDATE")
w(g, "EXPLAIN ANALYZE VERBOSE WITH d AS (DELETE FROM orders RETURNING 1) SELECT * FROM d")
w(g, "EXPLAIN ANALYZE SELECT pg_advisory_lock(1)", PIN)
w(g, "EXPLAIN EXECUTE q", reason="EXECUTE")
w(g, "EXPLAIN ANALYZE CREATE TABLE t6 AS SELECT 1")

# --- functions with side effects -------------------------------------------------------------
g = "func"
w(g, "SELECT nextval('order_seq')", reason="nextval")
w(g, "SELECT setval('order_seq', 10)", reason="setval")
w(g, "SELECT currval('order_seq')", reason="currval")
w(g, "SELECT lastval()", reason="lastval")
w(g, "SELECT id, nextval('order_seq') FROM users")
w(g, "SELECT * FROM users WHERE id = nextval('order_seq')")
w(g, "SELECT pg_catalog.nextval('order_seq')")
w(g, "SELECT NEXTVAL('order_seq')")
w(g, "SELECT \"nextval\"('order_seq')")
w(g, "SELECT coalesce(NULL, nextval('order_seq'))")
w(g, "SELECT (SELECT nextval('order_seq'))")
w(g, "SELECT * FROM users WHERE EXISTS (SELECT setval('order_seq', 1))")
w(g, "SELECT count(*) FILTER (WHERE nextval('order_seq') > 0) FROM users")
w(g, "SELECT pg_advisory_lock(1)", PIN, reason="advisory lock")
w(g, "SELECT pg_advisory_lock_shared(1)", PIN)
w(g, "SELECT pg_try_advisory_lock(1, 2)", PIN)
w(g, "SELECT pg_try_advisory_lock_shared(1)", PIN)
w(g, "SELECT pg_advisory_unlock(1)", PIN)
w(g, "SELECT pg_advisory_unlock_shared(1)", PIN)
w(g, "SELECT pg_advisory_unlock_all()", PIN)
w(g, "SELECT pg_advisory_xact_lock(1)", reason="advisory lock")
w(g, "SELECT pg_advisory_xact_lock_shared(1)")
w(g, "SELECT pg_try_advisory_xact_lock(1)")
w(g, "SELECT pg_try_advisory_xact_lock_shared(1)")
w(g, "SELECT id FROM users WHERE pg_try_advisory_lock(id)", PIN)
w(g, "SELECT set_config('search_path', 'public', false)", SET, PIN, reason="session")
w(g, "SELECT set_config('app.user_id', '1', 'false')", SET, PIN)
w(g, "SELECT set_config('app.user_id', '1', %s)", SET, PIN)
w(g, "SELECT set_config('app.user_id', '1')", SET, PIN)
w(g, "SELECT set_config('transaction_read_only', 'off', true)", SET_LOCAL)
w(g, "SELECT set_config('transaction_isolation', 'serializable', true)", SET_LOCAL)
w(g, "SELECT set_config(%s, '1', true)", SET_LOCAL)
w(g, "SELECT set_config('a.b', '1', true), nextval('order_seq')", SET_LOCAL)
w(g, "SELECT txid_current()", reason="transaction id")
w(g, "SELECT pg_current_xact_id()")
w(g, "SELECT txid_current_if_assigned()")
w(g, "SELECT pg_current_xact_id_if_assigned()")
w(g, "SELECT pg_current_wal_lsn()", reason="WAL")
w(g, "SELECT pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn()")
w(g, "SELECT pg_walfile_name(pg_current_wal_lsn())")
w(g, "SELECT pg_switch_wal()")
w(g, "SELECT pg_create_restore_point('x')")
w(g, "SELECT pg_backup_start('x')")
w(g, "SELECT pg_logical_emit_message(true, 'p', 'x')")
w(g, "SELECT pg_notify('chan', 'x')", reason="notification")
w(g, "SELECT pg_terminate_backend(1)")
w(g, "SELECT pg_cancel_backend(1)")
w(g, "SELECT pg_reload_conf()")
w(g, "SELECT pg_rotate_logfile()")
w(g, "SELECT pg_promote()")
w(g, "SELECT pg_stat_reset()", reason="statistics")
w(g, "SELECT pg_stat_reset_single_table_counters('users'::regclass)")
w(g, "SELECT pg_export_snapshot()")
w(g, "SELECT lo_create(0)", reason="large object")
w(g, "SELECT lo_unlink(4242)")
w(g, "SELECT lo_import('/tmp/x')")
w(g, "SELECT lo_put(4242, 0, 'x')")
w(g, "SELECT lo_from_bytea(0, 'x')")
w(g, "SELECT lo_open(4242, 262144)")
w(g, "SELECT dblink_exec('dbname=x', 'DELETE FROM users')", reason="dblink")
w(g, "SELECT dblink_connect('c', 'dbname=x')", PIN)
w(g, "SELECT setseed(0.5)", SET, PIN)
w(
    g,
    "SELECT query_to_xml('DELETE FROM users RETURNING 1', true, true, '')",
    reason="SQL given as text",
)
w(g, "SELECT pg_create_physical_replication_slot('s')", reason="replication slot")
w(g, "SELECT pg_replication_origin_create('o')")
w(g, "SELECT pg_import_system_collations('pg_catalog')")
w(g, "SELECT pg_catalog.unknown_builtin()", reason="unknown function")
w(g, "SELECT my_func()", reason="unknown function my_func()")
w(g, "SELECT public.my_func()", reason="public.my_func")
w(g, "SELECT app.user_label(1)", reason="unknown function")
w(g, "SELECT user_count()", reason="no function catalog")
w(g, "SELECT * FROM my_set_returning_func()")
w(g, "SELECT lower(name), my_func() FROM users")
# PostgreSQL 16's SQL-standard function, STABLE: the built-in table covers 15 through 18 (a
# server without it refuses it on a replica just as on the primary).
r(g, "SELECT system_user", reason="read-only")

# --- user functions, with the fixture's catalog ----------------------------------------------
g = "catalog"
r(g, "SELECT user_count()", catalog=True, reason="read-only query")
r(g, "SELECT add_tax(total) FROM orders", catalog=True)
r(g, "SELECT public.user_count(), app.user_label(1)", catalog=True)
r(g, "SELECT * FROM users WHERE name = app.user_label(1)", catalog=True)
r(g, "SELECT add_tax(10), lower('x'), now()", catalog=True)
w(g, "SELECT touch_user(1)", catalog=True, reason="volatile function touch_user()")
w(g, "SELECT public.touch_user(1)", catalog=True, reason="volatile function public.touch_user()")
w(g, "SELECT user_count(), touch_user(1)", catalog=True, reason="touch_user")
w(g, "SELECT nonexistent_fn()", catalog=True, reason="not in the catalog")
w(g, "SELECT app.touch_user(1)", catalog=True, reason="not in the catalog")
w(g, "SELECT user_count() FOR UPDATE", catalog=True, reason="FOR UPDATE")

# --- transactions --------------------------------------------------------------------------
g = "tx"
r(g, "BEGIN", TX_BEGIN, attrs={"readonly_begin": None, "isolation": None})
r(g, "BEGIN TRANSACTION", TX_BEGIN)
r(g, "BEGIN WORK", TX_BEGIN)
r(g, "START TRANSACTION", TX_BEGIN)
r(g, "BEGIN READ ONLY", TX_BEGIN, attrs={"readonly_begin": True})
r(g, "START TRANSACTION READ ONLY", TX_BEGIN, attrs={"readonly_begin": True})
r(g, "BEGIN ISOLATION LEVEL REPEATABLE READ", TX_BEGIN, attrs={"isolation": "repeatable read"})
r(g, "BEGIN ISOLATION LEVEL READ COMMITTED, READ ONLY", TX_BEGIN, attrs={"readonly_begin": True})
r(g, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY DEFERRABLE", TX_BEGIN)
r(g, "START TRANSACTION ISOLATION LEVEL READ UNCOMMITTED", TX_BEGIN)
w(
    g,
    "BEGIN ISOLATION LEVEL SERIALIZABLE",
    TX_BEGIN,
    reason="SERIALIZABLE",
    attrs={"isolation": "serializable"},
)
w(g, "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", TX_BEGIN, reason="SERIALIZABLE")
w(g, "START TRANSACTION ISOLATION LEVEL SERIALIZABLE", TX_BEGIN)
w(g, "BEGIN READ WRITE", TX_BEGIN, reason="READ WRITE", attrs={"readonly_begin": False})
w(g, "START TRANSACTION READ WRITE", TX_BEGIN, attrs={"readonly_begin": False})
w(g, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ WRITE", TX_BEGIN)
r(g, "COMMIT", TX_END)
r(g, "COMMIT WORK", TX_END)
r(g, "END", TX_END)
r(g, "ROLLBACK", TX_END)
r(g, "ABORT", TX_END)
r(g, "COMMIT AND CHAIN", TX_END, TX_BEGIN)
r(g, "ROLLBACK AND CHAIN", TX_END, TX_BEGIN)
r(g, "SAVEPOINT a", SAVEPOINT)
r(g, "RELEASE SAVEPOINT a", SAVEPOINT, setup="SAVEPOINT a")
r(g, "RELEASE a", SAVEPOINT, setup="SAVEPOINT a")
r(g, "ROLLBACK TO SAVEPOINT a", SAVEPOINT, setup="SAVEPOINT a")
r(g, "ROLLBACK TO a", SAVEPOINT, setup="SAVEPOINT a")
w(g, "PREPARE TRANSACTION 'x'", TX_END, reason="two-phase")
w(g, "COMMIT PREPARED 'x'", TX_END)
w(g, "ROLLBACK PREPARED 'x'", TX_END)
r(g, "BEGIN; SELECT 1; COMMIT", reason="3 read-only statements")
w(g, "BEGIN; INSERT INTO users (name) VALUES ('x'); COMMIT", reason="statement 2 of 3: INSERT")
r(g, "BEGIN; SELECT 1", TX_BEGIN)
r(g, "SELECT 1; COMMIT", TX_END)
r(g, "COMMIT; BEGIN", TX_END, TX_BEGIN)
r(g, "BEGIN READ ONLY; SELECT count(*) FROM users", TX_BEGIN, attrs={"readonly_begin": True})
r(g, "BEGIN; SET LOCAL statement_timeout = 1000; SELECT 1", TX_BEGIN, SET_LOCAL)
r(g, "BEGIN; SET LOCAL statement_timeout = 1000; COMMIT")
r(g, "SET LOCAL statement_timeout = 1000; COMMIT", TX_END)
r(g, "SAVEPOINT a; ROLLBACK", TX_END)
r(g, "SAVEPOINT a; RELEASE a", SAVEPOINT)
w(g, "BEGIN; SET search_path TO public; COMMIT", SET, PIN)
w(g, "BEGIN; SELECT pg_advisory_lock(1); COMMIT", PIN)
w(g, "SELECT 1; BEGIN READ WRITE", TX_BEGIN)
r(g, "COMMIT; BEGIN READ ONLY", TX_END, TX_BEGIN, attrs={"readonly_begin": True})
r(g, "BEGIN READ ONLY; COMMIT; BEGIN", TX_BEGIN, attrs={"readonly_begin": None})

# --- settings ------------------------------------------------------------------------------
g = "set"
w(g, "SET statement_timeout = 1000", SET, PIN, reason="session setting")
w(g, "SET SESSION statement_timeout TO 1000", SET, PIN)
w(g, "SET search_path TO public", SET, PIN)
w(g, "SET search_path = %s", SET, PIN)
w(g, "SET TIME ZONE 'UTC'", SET, PIN)
w(g, "SET application_name = 'x'", SET, PIN)
w(g, "SET ROLE postgres", SET, PIN)
w(g, "RESET ROLE", SET, PIN)
w(g, "SET SESSION AUTHORIZATION DEFAULT", SET, PIN)
w(g, "SET default_transaction_read_only = on", SET, PIN)
w(g, "SET default_transaction_isolation = 'serializable'", SET, PIN)
w(g, "RESET statement_timeout", SET, PIN, reason="RESET")
w(g, "RESET ALL", SET, PIN)
w(g, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", SET, PIN)
w(g, "SET statement_timeout TO DEFAULT", SET, PIN)
r(g, "SET LOCAL statement_timeout = 1000", SET_LOCAL, reason="SET LOCAL")
r(g, "SET LOCAL search_path TO public", SET_LOCAL)
r(g, "SET LOCAL TIME ZONE 'UTC'", SET_LOCAL)
r(g, "SET LOCAL app.user_id = '42'", SET_LOCAL)
r(g, "SET LOCAL ROLE NONE", SET_LOCAL)
r(g, "SET LOCAL statement_timeout TO DEFAULT", SET_LOCAL)
r(g, "SET LOCAL transaction_read_only = on", SET_LOCAL, attrs={"readonly_begin": True})
w(g, "SET LOCAL transaction_read_only = off", SET_LOCAL, reason="READ WRITE")
w(g, "SET LOCAL transaction_isolation = 'serializable'", SET_LOCAL, reason="SERIALIZABLE")
r(g, "SET TRANSACTION READ ONLY", SET_LOCAL, attrs={"readonly_begin": True})
r(
    g,
    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    SET_LOCAL,
    attrs={"isolation": "repeatable read"},
)
r(g, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED READ ONLY", SET_LOCAL)
w(g, "SET TRANSACTION READ WRITE", SET_LOCAL, reason="READ WRITE")
w(g, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", SET_LOCAL, reason="SERIALIZABLE")
r(g, "SET transaction_read_only = on", SET_LOCAL)
r(g, "SET transaction_isolation = 'repeatable read'", SET_LOCAL)
w(g, "SET transaction_read_only = off", SET_LOCAL)
w(g, "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", SET_LOCAL, reason="snapshot")
r(g, "SET CONSTRAINTS ALL DEFERRED", SET_LOCAL)
r(g, "SET CONSTRAINTS ALL IMMEDIATE", SET_LOCAL)
r(g, "SHOW search_path", reason="SHOW")
r(g, "SHOW ALL")
r(g, "SHOW transaction_read_only")
r(g, "SHOW TIME ZONE")

# --- session state: prepared statements, cursors, LISTEN, LOAD, DISCARD ----------------------
g = "session"
w(g, "PREPARE q AS SELECT 1", PIN, reason="PREPARE")
w(g, "PREPARE q(int) AS SELECT * FROM users WHERE id = $1", PIN)
w(g, "PREPARE ins AS INSERT INTO users (name) VALUES ('x')", PIN)
w(g, "EXECUTE q", reason="EXECUTE")
w(g, "EXECUTE q(1)")
w(g, "DEALLOCATE q", PIN, reason="DEALLOCATE")
w(g, "DEALLOCATE PREPARE q", PIN)
w(g, "DEALLOCATE ALL", PIN)
w(g, "DISCARD ALL", PIN, reason="DISCARD")
w(g, "DISCARD PLANS", PIN)
w(g, "DISCARD TEMP", PIN)
w(g, "DISCARD SEQUENCES", PIN)
r(g, "DECLARE c CURSOR FOR SELECT * FROM users")
r(g, "DECLARE c SCROLL CURSOR FOR SELECT 1")
r(g, "DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT id FROM users")
r(g, "DECLARE c BINARY CURSOR FOR SELECT 1")
w(g, "DECLARE c CURSOR WITH HOLD FOR SELECT 1", PIN, reason="WITH HOLD")
w(g, "DECLARE c CURSOR FOR SELECT * FROM users FOR UPDATE", reason="FOR UPDATE")
w(g, "DECLARE c CURSOR FOR SELECT nextval('order_seq')", reason="nextval")
r(g, "FETCH NEXT FROM c", setup="DECLARE c CURSOR FOR SELECT 1")
r(g, "FETCH ALL c", setup="DECLARE c CURSOR FOR SELECT 1")
r(g, "FETCH 10 FROM c", setup="DECLARE c SCROLL CURSOR FOR SELECT 1")
r(g, "MOVE c", setup="DECLARE c CURSOR FOR SELECT 1")
r(g, "CLOSE c", setup="DECLARE c CURSOR FOR SELECT 1")
r(g, "CLOSE ALL")
w(g, "LISTEN chan", PIN, reason="LISTEN")
w(g, 'LISTEN "Chan"', PIN)
w(g, "UNLISTEN chan", PIN)
w(g, "UNLISTEN *", PIN)
w(g, "NOTIFY chan", reason="NOTIFY")
w(g, "NOTIFY chan, 'payload'")
w(g, "LOAD 'plpgsql'", PIN, reason="LOAD")

# --- temporary objects -------------------------------------------------------------------------
g = "temp"
w(g, "CREATE TEMP TABLE tmp (a int)", PIN, reason="temporary")
w(g, "CREATE TEMPORARY TABLE tmp (a int)", PIN)
w(g, "CREATE LOCAL TEMP TABLE tmp (a int)", PIN)
w(g, "CREATE TEMP TABLE tmp (a int) ON COMMIT DROP", PIN)
w(g, "CREATE TEMP TABLE IF NOT EXISTS tmp (LIKE users)", PIN)
w(g, "CREATE TABLE pg_temp.tmp (a int)", PIN)
w(g, "CREATE TEMP VIEW v AS SELECT 1", PIN)
w(g, "CREATE TEMP SEQUENCE s", PIN)
w(g, "CREATE INDEX ON pg_temp.tmp (a)", PIN)
w(g, "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", PIN)
w(g, "SELECT * FROM pg_temp.tmp", reason="temporary")
w(g, "SELECT * FROM users JOIN pg_temp.tmp t ON t.a = users.id")
w(g, "COPY pg_temp.tmp TO STDOUT", reason="temporary")

# --- COPY ---------------------------------------------------------------------------------------
g = "copy"
r(g, "COPY users TO STDOUT", reason="COPY")
r(g, "COPY users (id, name) TO STDOUT WITH (FORMAT csv, HEADER)")
r(g, "COPY (SELECT * FROM users) TO STDOUT WITH CSV")
r(g, "COPY (SELECT id FROM users WHERE active) TO STDOUT (FORMAT binary)")
r(g, "COPY users TO STDOUT (FORMAT binary)")
w(g, "COPY users FROM STDIN", reason="COPY FROM")
w(g, "COPY users (name) FROM STDIN WITH (FORMAT csv)")
w(g, "COPY users TO '/tmp/users.csv'", reason="server file")
w(g, "COPY users TO PROGRAM 'cat > /dev/null'", reason="program")
w(g, "COPY users FROM '/tmp/users.csv'")
w(g, "COPY (SELECT nextval('order_seq')) TO STDOUT", reason="nextval")
w(g, "COPY (DELETE FROM orders RETURNING *) TO STDOUT", reason="DELETE")
w(g, "COPY (SELECT * FROM users FOR UPDATE) TO STDOUT")

# --- DDL, maintenance, privileges, code ---------------------------------------------------
g = "ddl"
w(g, "CREATE TABLE t (a int)", reason="CREATE TABLE")
w(g, "CREATE TABLE IF NOT EXISTS t (a int PRIMARY KEY, b text DEFAULT nextval('order_seq'))")
w(g, "CREATE UNLOGGED TABLE t (a int)")
w(g, "ALTER TABLE users ADD COLUMN x int")
w(g, "ALTER TABLE users RENAME TO people")
w(g, "ALTER TABLE users ENABLE ROW LEVEL SECURITY")
w(g, "DROP TABLE users")
w(g, "DROP TABLE IF EXISTS x, y CASCADE")
w(g, "CREATE INDEX users_name ON users (name)")
w(g, "CREATE UNIQUE INDEX CONCURRENTLY users_email ON users (email)")
w(g, "DROP INDEX users_name")
w(g, "REINDEX TABLE users")
w(g, "CREATE VIEW v AS SELECT 1")
w(g, "CREATE OR REPLACE VIEW v AS SELECT nextval('order_seq')")
w(g, "CREATE SEQUENCE s")
w(g, "ALTER SEQUENCE order_seq RESTART")
w(g, "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
w(g, "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$")
w(g, "CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC SELECT pg_advisory_lock(1); END")
w(g, "CREATE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$")
w(g, "DROP FUNCTION f()")
w(g, "CREATE SCHEMA s")
w(g, "DROP SCHEMA s CASCADE")
w(g, "CREATE EXTENSION IF NOT EXISTS pgcrypto")
w(g, "CREATE TYPE mood AS ENUM ('a', 'b')")
w(g, "ALTER TYPE mood ADD VALUE 'c'")
w(g, "CREATE DOMAIN posint AS int CHECK (VALUE > 0)")
w(g, "CREATE TRIGGER t BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION f()")
w(g, "CREATE RULE r AS ON INSERT TO users DO INSTEAD NOTHING")
w(g, "CREATE POLICY p ON users USING (true)")
w(g, "COMMENT ON TABLE users IS 'people'")
w(g, "GRANT SELECT ON users TO PUBLIC")
w(g, "REVOKE ALL ON users FROM PUBLIC")
w(g, "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC")
w(g, "CREATE ROLE r LOGIN")
w(g, "ALTER ROLE r SET work_mem = '1MB'")
w(g, "DROP ROLE r")
w(g, "CREATE DATABASE x")
w(g, "ALTER SYSTEM SET work_mem = '1MB'")
w(g, "VACUUM")
w(g, "VACUUM (ANALYZE) users")
w(g, "VACUUM FULL users")
w(g, "ANALYZE users")
w(g, "CLUSTER users USING users_pkey")
w(g, "CHECKPOINT", reason="CHECKPOINT")
w(g, "REFRESH MATERIALIZED VIEW order_totals")
w(g, "REFRESH MATERIALIZED VIEW CONCURRENTLY order_totals")
w(g, "CREATE PUBLICATION p FOR TABLE users")
w(g, "REASSIGN OWNED BY r TO postgres")
w(g, "DROP OWNED BY r")
w(g, "SECURITY LABEL ON TABLE users IS 'x'")
w(g, "LOCK TABLE users", reason="LOCK")
w(g, "LOCK users IN ACCESS SHARE MODE")
w(g, "LOCK users IN ROW EXCLUSIVE MODE")
w(g, "LOCK TABLE users, orders IN ACCESS EXCLUSIVE MODE NOWAIT")
w(g, "CALL p()", reason="CALL")
w(g, "CALL p(1, nextval('order_seq'))")
w(g, "CALL p(pg_advisory_lock(1))", PIN)
w(g, "DO $$ BEGIN PERFORM 1; END $$", reason="DO")
w(g, "DO LANGUAGE plpgsql $body$ BEGIN RAISE NOTICE 'x'; END $body$")

# --- malformed, empty, hostile -------------------------------------------------------------
g = "malformed"
unparseable(g, "")
unparseable(g, "   ")
unparseable(g, "\n\t\r\n")
unparseable(g, "/* only a comment */")
unparseable(g, "-- only a comment")
unparseable(g, ";")
unparseable(g, ";;;")
unparseable(g, "SELEC 1")
unparseable(g, "SELECT FROM WHERE")
unparseable(g, "SELECT (1")
unparseable(g, "SELECT 'unterminated")
unparseable(g, "SELECT $$unterminated")
unparseable(g, "SELECT 1 /* unterminated comment")
unparseable(g, 'SELECT "unterminated')
unparseable(g, "SELECT 1\x00; DELETE FROM users")
unparseable(g, "\x00")
unparseable(g, "SELECT '\ud800'")
unparseable(g, "DELETE")
unparseable(g, "INSERT INTO")
unparseable(g, "SELECT 1 +")
unparseable(g, "SELECT 1; garbage")
unparseable(g, "garbage; SELECT 1")
unparseable(g, "\\x")
unparseable(g, "SELECT %(unterminated FROM users")
unparseable(g, "SELECT :")
unparseable(g, "}{][")
unparseable(g, "SELECT * FROM users WHERE")
unparseable(g, "UPDATE users SET")
unparseable(g, "\ufeffSELECT 1")

READ_CASES: list[Case] = [case for case in CASES if case.route is Route.READ]
