"""Properties of ``classify``: it never raises, and a top-level write is never READ."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.core import Classification, Classifier, Route, classify, normalize_placeholders

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

READS = [
    "SELECT 1",
    "SELECT * FROM users WHERE id = %s",
    "SELECT count(*) FROM orders WHERE user_id = :uid",
    "SELECT lower(name) FROM users",
    "VALUES (1)",
    "TABLE users",
    "SHOW search_path",
    "BEGIN",
    "BEGIN READ ONLY",
    "COMMIT",
    "SAVEPOINT s",
    "SET LOCAL statement_timeout = 5",
    "SELECT set_config('app.x', '1', true)",
    "EXPLAIN SELECT 1",
    "SELECT 'it''s ; DELETE FROM users'",
    "SELECT $$ ; DELETE FROM users $$",
    "SELECT E'\\' ; DELETE FROM users'",
    'SELECT 1 AS "DELETE"',
]
WRITES = [
    "INSERT INTO users (name) VALUES ('x')",
    "INSERT INTO users (name) VALUES (%(name)s) RETURNING id",
    "UPDATE users SET name = :name WHERE id = :id",
    "DELETE FROM orders WHERE id = $1",
    "MERGE INTO users u USING (VALUES (1)) v(id) ON u.id = v.id WHEN MATCHED THEN DELETE",
    "TRUNCATE users",
    "COPY users FROM STDIN",
    "WITH d AS (DELETE FROM orders RETURNING 1) SELECT * FROM d",
    "WITH u AS (UPDATE users SET active = false RETURNING id) SELECT 1",
    "EXPLAIN ANALYZE DELETE FROM users",
    "SELECT * FROM users FOR UPDATE",
    "SELECT nextval('s')",
    "SELECT * INTO t FROM users",
    "CREATE TABLE t (a int)",
    "DROP TABLE users",
    "CALL p()",
    "DO $$ BEGIN END $$",
    "LOCK users",
    "NOTIFY chan",
    "LISTEN chan",
    "SET search_path TO x",
]
NOISE = [
    "",
    " ",
    "\n",
    "\t",
    "/* c */",
    "/* router:replica */",
    "/* a /* nested */ b */",
    "-- line\n",
    "/* ; DELETE */",
]

# fmt: off
TOKENS = [
    "SELECT", "1", "'", '"', "$$", "$a$", "$1", "%s", "%(x)s", "%%", ":x", "::", "--", "/*",
    "*/", "\n", ";", "E'\\'", "\\", "(", ")", "FROM", "users", "DELETE", "INTO",
    "FOR UPDATE", "\x00", "\ud800", "router:primary", "U&'", "ü", " ",
]
# fmt: on

noise = st.sampled_from(NOISE)
read = st.sampled_from(READS)
write = st.sampled_from(WRITES)


@st.composite
def scripts_with_a_write(draw: st.DrawFn) -> str:
    """Reads, one write at a random place, separated by ';' with comments and whitespace."""
    statements = draw(st.lists(read, max_size=4))
    statements.insert(draw(st.integers(0, len(statements))), draw(write))
    separator = st.builds(lambda a, b: f"{a};{b}", noise, noise)
    text = draw(noise)
    for i, statement in enumerate(statements):
        if i:
            text += draw(separator)
        text += statement
    if draw(st.booleans()):
        text = text.upper() if draw(st.booleans()) else text.lower()
    return text + draw(st.sampled_from(["", ";", "; ", ";\n-- end"]))


def _is_classification(result: object) -> bool:
    return isinstance(result, Classification) and result.route in (Route.READ, Route.WRITE)


@SETTINGS
@given(st.text(max_size=300))
def test_never_raises_on_any_text(sql: str) -> None:
    assert _is_classification(classify(sql))
    assert isinstance(normalize_placeholders(sql), str)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_never_raises_on_sql_shaped_noise(parts: list[str]) -> None:
    assert _is_classification(classify("".join(parts)))


@SETTINGS
@given(scripts_with_a_write())
def test_a_top_level_write_is_never_read(sql: str) -> None:
    result = classify(sql)
    assert result.route is Route.WRITE, (sql, result)


@SETTINGS
@given(st.lists(read, min_size=1, max_size=4).map("; ".join))
def test_the_json_shortcut_agrees_with_the_tree(sql: str) -> None:
    classifier = Classifier(cache_size=0)
    assert classifier._uncached(sql, fast=True) == classifier._uncached(sql, fast=False)


@SETTINGS
@given(st.text(alphabet=st.characters(blacklist_characters="%:\\"), max_size=200))
def test_text_without_placeholder_characters_is_left_alone(sql: str) -> None:
    assert normalize_placeholders(sql) == sql


def test_huge_and_hostile_inputs_do_not_raise() -> None:
    classifier = Classifier()
    for sql in (
        "SELECT '" + "x" * 10_000_000 + "'",
        "SELECT 1;" * 1_200_000,
        "SELECT " + "f(" * 3000 + "1" + ")" * 3000,
        "SELECT " + "(" * 100_000,
        "SELECT 1" + "+1" * 100_000,
        "\x00" * 1000,
        "\ud800\udfff",
        "%s" * 100_000,
        ":" * 100_000,
    ):
        assert _is_classification(classifier.classify(sql))
    assert classifier.classify("SELECT 1;" * 1_200_000).reason == "too long to classify"
