"""Fuzzing (issue "Faults and abuse"), bounded: the classifier and the configuration parsers.

``tests/unit/test_classify_properties.py`` fuzzes ``classify`` with plain text and token soup,
and ``tests/unit/test_config_secrets.py`` fuzzes ``from_url`` / ``from_env`` with URL-shaped
text. This file goes further: SQL built from a grammar of keywords, comments (nested,
unterminated), quotes of every kind, dollar quotes with matching and mismatched tags, NULs and
placeholders, classified by ``classify``, the default classifier and configured classifiers,
each call timed; literal and comment content that must never change a read into a write; the
classifier's own configuration; and every ``RouterConfig`` / ``PoolConfig`` / ``RetryConfig`` /
``NodeConfig`` field, every ``router_*`` URL option and ``ROUTER_*`` variable, given random
values and text. Only documented errors (``ConfigurationError``) may come out, never a bare
``ValueError`` / ``TypeError`` / ``KeyError`` / ``IndexError``, and never a password.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from functools import partial
from typing import Any, Final
from urllib.parse import quote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import router
from router import (
    Classification,
    Classifier,
    ConfigurationError,
    NodeConfig,
    PoolConfig,
    RetryConfig,
    Route,
    RouterConfig,
)
from router.config._sources import options

MARKER: Final = "pw-FUZZ-MARKER-0c5e7a"
#: A classification slower than this is a hang (a cold parse of 4 KB takes ~1 ms).
CLASSIFY_BOUND: Final = 0.5
#: A configuration built or refused slower than this is a hang.
CONFIG_BOUND: Final = 0.5

FUZZ = settings(
    max_examples=250,
    deadline=2000,  # ms per example: generous for a loaded two-core machine, still bounded
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
SMALL = settings(FUZZ, max_examples=120)


def _timed(call: Callable[[], Any], bound: float) -> Any:
    started = time.perf_counter()
    result = call()
    took = time.perf_counter() - started
    assert took < bound, f"took {took:.3f} s"
    return result


# -- SQL-ish grammar -------------------------------------------------------------------------------

# fmt: off
KEYWORDS: Final = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH", "FROM", "WHERE", "INTO", "VALUES",
    "RETURNING", "FOR UPDATE", "FOR SHARE", "FOR NO KEY UPDATE", "BEGIN", "COMMIT", "ROLLBACK",
    "SAVEPOINT s", "SET", "SET LOCAL", "RESET ALL", "SHOW", "EXPLAIN", "EXPLAIN ANALYZE", "COPY",
    "LISTEN", "NOTIFY", "PREPARE p AS", "EXECUTE p", "DECLARE c CURSOR WITH HOLD FOR", "CALL",
    "DO", "LOCK", "TRUNCATE", "CREATE TEMP TABLE t AS", "TABLE", "UNION", "(", ")", ",", ";",
    "*", "=", "::", "users", "t", "1", "NULL", "nextval('s')", "now()", "pg_sleep(1)",
    "set_config('a','b',false)", "pg_advisory_lock(1)", "f(", "ARRAY[", "]", "IS NOT", "AND",
]
# fmt: on
IDENT = st.text(st.characters(categories=["Ll", "Lu", "Nd"]) | st.sampled_from("_$"), max_size=6)
#: Text that may appear inside quotes and comments: anything, with the quoting characters.
INNER = st.lists(
    st.characters(codec="utf-8") | st.sampled_from(["'", '"', "$", "*/", "/*", "\\", "\n", ";"]),
    max_size=30,
).map("".join)


@st.composite
def _dollar(draw: st.DrawFn) -> str:
    tag = draw(IDENT.filter(lambda t: "$" not in t))
    other = draw(st.sampled_from([tag, tag, "", "x" + tag]))  # sometimes mismatched
    return f"${tag}${draw(INNER)}${other}$"


PIECES = st.one_of(
    st.sampled_from(KEYWORDS),
    IDENT,
    INNER.map(lambda s: f"'{s}'"),  # plain, maybe unterminated (when s holds a quote)
    INNER.map(lambda s: f"E'{s}'"),
    INNER.map(lambda s: f"U&'{s}'"),
    INNER.map(lambda s: f'"{s}"'),
    INNER.map(lambda s: f"/*{s}*/"),
    INNER.map(lambda s: f"/* a /* nested {s} */ b */"),
    INNER.map(lambda s: f"-- {s}\n"),
    _dollar(),
    st.sampled_from(["$1", "%s", "%(name)s", ":name", "?", "%%", "\x00", "/*", "'", "$$", "--"]),
    st.sampled_from(["/* router:primary */", "/* router:replica */", "/*router:primary*/"]),
)
SQLISH = st.lists(PIECES, max_size=25).map(" ".join)
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=400)

CLASSIFIERS: Final = [
    ("classify", router.classify),
    ("default_classifier", router.default_classifier().classify),
    ("uncached", Classifier(cache_size=0).classify),
    (
        "configured",
        Classifier(
            read_functions=["f", "s.g"], write_functions=["nextval2"], cache_size=8
        ).classify,
    ),
]


def _all_classify(sql: str) -> list[Classification]:
    results = []
    for _name, classify in CLASSIFIERS:
        result = _timed(partial(classify, sql), CLASSIFY_BOUND)
        assert isinstance(result, Classification)
        assert result.route in (Route.READ, Route.WRITE)
        assert isinstance(result.reason, str)
        assert result.reason
        results.append(result)
    # One classifier: the same answer, cached or not, configured for other functions or not.
    assert results[0] == results[1] == results[2]
    return results


@FUZZ
@given(SQLISH)
def test_sql_built_from_the_grammar_classifies_without_error_or_hang(sql: str) -> None:
    results = _all_classify(sql)
    if "\x00" in sql:
        assert results[0].route is Route.WRITE  # never READ what the server will not parse


@FUZZ
@given(ANY_TEXT | SQLISH.map(lambda s: s * 20))
def test_any_text_classifies_without_error_or_hang(sql: str) -> None:
    _all_classify(sql)


@FUZZ
@given(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=200))
@example("ROUTER:PRIMARY")
@example("router:replica, router:primary */")
def test_what_a_literal_or_comment_holds_never_makes_a_read_a_write(text: str) -> None:
    # Inside a dollar quote whose tag the text does not hold, and inside a line comment that
    # the text cannot end, anything is just text.
    # A comment is where hints live: one that holds the word router:primary is one (hypothesis
    # found "SELECT 1 -- ROUTER:PRIMARY"), and must make the read go to the primary.
    tag = "q" * (max((len(run) for run in text.split("$")), default=0) + 1)
    comment = text.replace("\n", " ").replace("\r", " ")
    hinted = "router:primary" in comment.lower().replace(",", " ").replace("*", " ").split()
    for sql in (
        f"SELECT ${tag}${text}${tag}$",
        "SELECT 1 -- " + comment,
        "SELECT '" + text.replace("'", "''") + "'",
    ):
        result = router.classify(sql)
        if hinted and sql.startswith("SELECT 1 -- "):
            assert result.route is Route.WRITE, (sql, result)
            assert result.reason == "router:primary hint", (sql, result)
        else:
            assert result.route is Route.READ, (sql, result)


#: Statements whose route the classifier knows; ``{}`` takes a literal or a placeholder.
READ_TEMPLATES: Final = [
    "SELECT {} FROM users WHERE name = {}",
    "SELECT {} AS x , {} AS y",
    "VALUES ({}) , ({})",
    "SELECT * FROM users WHERE id IN ({} , {}) ORDER BY 1",
    "WITH a AS (SELECT {}) SELECT * FROM a WHERE {} IS NOT NULL",
    "SELECT lower({}) FROM users UNION ALL SELECT {}",
]
WRITE_TEMPLATES: Final = [
    "INSERT INTO users (name) VALUES ({})",
    "UPDATE users SET name = {} WHERE id = {}",
    "DELETE FROM users WHERE name = {}",
    "SELECT * FROM users WHERE name = {} FOR UPDATE",
    "WITH d AS (DELETE FROM users WHERE name = {} RETURNING 1) SELECT {}",
    "SELECT nextval({})",
    "SELECT {} ; DELETE FROM users WHERE name = {}",
]
NO_NUL = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)


@st.composite
def _literal(draw: st.DrawFn) -> str:
    text = draw(NO_NUL)
    kind = draw(st.sampled_from(["plain", "escape", "dollar", "number", "null", "placeholder"]))
    if kind == "plain":
        return "'" + text.replace("'", "''") + "'"
    if kind == "escape":
        return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if kind == "dollar":
        tag = "t" * (max((len(run) for run in text.split("$")), default=0) + 1)
        return f"${tag}${text}${tag}$"
    if kind == "number":
        return str(draw(st.integers(-(10**20), 10**20)))
    if kind == "null":
        return "NULL"
    return draw(st.sampled_from(["$1", "%s", "%(name)s", ":name"]))


NOISE = st.one_of(
    st.just(" "),
    st.sampled_from(["\n", "\t", "  "]),
    NO_NUL.map(lambda t: " /* " + t.replace("*/", "").replace("/*", "") + " */ "),
    NO_NUL.map(lambda t: " -- " + t.replace("\n", " ").replace("\r", " ") + "\n"),
)


@st.composite
def _templated(draw: st.DrawFn) -> tuple[str, Route]:
    route = draw(st.sampled_from([Route.READ, Route.WRITE]))
    template = draw(st.sampled_from(READ_TEMPLATES if route is Route.READ else WRITE_TEMPLATES))
    # Noise between the template's words, literals filled into the words: noise never lands
    # inside a literal.
    words = [
        word.format(*(draw(_literal()) for _ in range(word.count("{}"))))
        for word in template.split(" ")
    ]
    noise = [draw(NOISE) for _ in words[1:]]
    return words[0] + "".join(n + w for n, w in zip(noise, words[1:], strict=True)), route


@FUZZ
@given(_templated())
def test_literals_placeholders_and_comments_never_change_a_statements_route(
    case: tuple[str, Route],
) -> None:
    sql, route = case
    results = _all_classify(sql)
    assert results[0].route is route, (sql, results[0])


@SMALL
@given(
    st.lists(
        st.one_of(st.text(max_size=20), st.integers(), st.none(), st.binary(max_size=5)),
        max_size=5,
    )
    | st.text(max_size=20)
    | st.none()
    | st.integers(),
    st.lists(st.text(max_size=20), max_size=5),
    st.one_of(st.integers(-5, 100), st.floats(allow_nan=True), st.text(max_size=3), st.none()),
)
def test_classifier_options_raise_only_configuration_errors(
    reads: Any, writes: Any, cache_size: Any
) -> None:
    classifier: Classifier | None = None
    failure: ConfigurationError | None = None
    try:
        classifier = Classifier(read_functions=reads, write_functions=writes, cache_size=cache_size)
    except ConfigurationError as error:
        failure = error
    if failure is not None:
        assert failure.field in ("read_functions", "write_functions", "cache_size")
    else:
        assert classifier is not None
        assert isinstance(classifier.classify("SELECT f()"), Classification)


# -- configuration: random values for every field --------------------------------------------------


class _Other:
    def __repr__(self) -> str:
        return "<other>"


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.binary(max_size=10),
    st.sampled_from(
        [
            "round-robin",
            "bounded",
            "primary",
            "transaction",
            "postgresql://h/db",
            "postgresql://u:pw@h/db",
            ["f", "s.g"],
            ("postgresql://r/db",),
            Decimal("1.5"),
            Fraction(1, 3),
            _Other(),
            {"a": 1},
            [None],
            1j,
            -0.0,
            PoolConfig(),
            RetryConfig(),
        ]
    ),
)


def _fields(cls: type[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _check_built(config: object) -> None:
    """A config that was accepted holds what its fields promise."""
    for spec in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, spec.name)
        if isinstance(value, float):
            assert math.isfinite(value), (spec.name, value)


def _only_configuration_errors(call: Callable[[], object]) -> ConfigurationError | None:
    failure: ConfigurationError | None = None
    try:
        built = _timed(call, CONFIG_BOUND)
    except ConfigurationError as error:
        failure = error
    if failure is not None:
        assert failure.field
        assert failure.problem
        return failure
    _check_built(built)
    return None


@FUZZ
@given(st.dictionaries(st.sampled_from(_fields(RouterConfig)), VALUES, max_size=4))
def test_router_config_from_random_values_raises_only_configuration_errors(
    values: dict[str, Any],
) -> None:
    kwargs: dict[str, Any] = {"primary": "postgresql://p/db", **values}
    if "nodes" in values and "primary" not in values:
        kwargs.pop("primary")
    _only_configuration_errors(lambda: RouterConfig(**kwargs))


@FUZZ
@given(
    st.sampled_from([PoolConfig, RetryConfig, NodeConfig]).flatmap(
        lambda cls: st.tuples(
            st.just(cls), st.dictionaries(st.sampled_from(_fields(cls)), VALUES, max_size=4)
        )
    )
)
def test_pool_retry_and_node_configs_from_random_values_raise_only_configuration_errors(
    case: tuple[type[Any], dict[str, Any]],
) -> None:
    cls, values = case
    kwargs = {"dsn": "postgresql://h/db", **values} if cls is NodeConfig else values
    _only_configuration_errors(lambda: cls(**kwargs))


# -- text options: random text for every router_* URL option and ROUTER_* variable -------------

OPTION_NAMES: Final = sorted(options(RouterConfig))
OPTION_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["1", "0", "-1", "none", "on", "nan", "inf", "1e309", "9" * 30, "a,b", " "]),
    st.sampled_from([MARKER, f"x{MARKER}y", f"postgresql://u:{MARKER}@h/db"]),
)


def _hidden(error: ConfigurationError | None) -> None:
    if error is not None:
        assert MARKER not in str(error)
        assert MARKER not in repr(error)


@FUZZ
@given(st.dictionaries(st.sampled_from(OPTION_NAMES), OPTION_TEXT, max_size=5))
def test_env_options_with_random_text_raise_only_configuration_errors_and_hide_the_password(
    texts: dict[str, str],
) -> None:
    env = {f"ROUTER_{key.upper()}": value for key, value in texts.items()}
    for nodes in (
        {"ROUTER_URL": f"postgresql://app:{MARKER}@h1,h2/db"},
        {"ROUTER_URL": "postgresql://app@h1,h2/db", "ROUTER_PASSWORD": MARKER},
        {
            "ROUTER_PRIMARY_URL": f"postgresql://app:{MARKER}@p/db",
            "ROUTER_REPLICA_URLS": f"host=r password={MARKER} dbname=db",
        },
    ):
        error = _only_configuration_errors(partial(RouterConfig.from_env, env | nodes))
        _hidden(error)
        if error is not None and error.field.startswith("ROUTER_") and error.field in env:
            assert error.field.removeprefix("ROUTER_").lower() in OPTION_NAMES


@FUZZ
@given(st.dictionaries(st.sampled_from(OPTION_NAMES), OPTION_TEXT, max_size=5))
def test_url_options_with_random_text_raise_only_configuration_errors_and_hide_the_password(
    texts: dict[str, str],
) -> None:
    query = "&".join(f"router_{key}={quote(value)}" for key, value in texts.items())
    url = f"postgresql://app:{MARKER}@h1,h2/db?sslmode=disable&{query}"
    error = _only_configuration_errors(lambda: RouterConfig.from_url(url))
    _hidden(error)
    if error is not None:
        assert error.field == "url" or error.field.removeprefix("url: router_") in OPTION_NAMES


@FUZZ
@given(
    st.text(st.characters(codec="utf-8"), max_size=60),
    st.text(st.characters(codec="utf-8"), max_size=60),
)
def test_node_dsns_around_a_password_raise_only_configuration_errors_and_hide_it(
    before: str, after: str
) -> None:
    for dsn in (
        f"postgresql://u:{MARKER}@{before}/{after}",
        f"host={before} password={MARKER} dbname={after}",
    ):
        _hidden(_only_configuration_errors(partial(NodeConfig, dsn=dsn)))
    _hidden(
        _only_configuration_errors(
            lambda: NodeConfig(dsn=f"postgresql://{before}/{after}", password=MARKER)
        )
    )
