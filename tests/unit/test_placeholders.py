"""Driver placeholders → ``$n``, outside constants, identifiers, comments and dollar quotes."""

from __future__ import annotations

import pytest

from router.core import Hint, normalize_placeholders
from router.core._placeholders import lex


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # psycopg
        ("SELECT %s", "SELECT $1"),
        ("SELECT %s, %s, %s", "SELECT $1, $2, $3"),
        ("SELECT %b, %t", "SELECT $1, $2"),
        ("SELECT %(a)s, %(b)s, %(a)s", "SELECT $1, $2, $1"),
        ("SELECT %(a b)s", "SELECT $1"),
        ("SELECT 10 %% 3", "SELECT 10 % 3"),
        ("SELECT 10 % 3", "SELECT 10 % 3"),
        ("SELECT %d", "SELECT %d"),
        ("SELECT %(open", "SELECT %(open"),
        ("SELECT %", "SELECT %"),
        ("SELECT %s::int", "SELECT $1::int"),
        ("SELECT a%s", "SELECT a $1"),
        ("SELECT %s%s", "SELECT $1 $2"),
        ("SELECT %sabc", "SELECT $1 abc"),
        ("SELECT $%s$", "SELECT $ $1 $"),
        # SQLAlchemy
        ("SELECT :id", "SELECT $1"),
        ("SELECT :a, :b, :a", "SELECT $1, $2, $1"),
        ("SELECT :id::int", "SELECT $1::int"),
        ("SELECT x::int", "SELECT x::int"),
        ("SELECT x::int::text", "SELECT x::int::text"),
        ("SELECT x:::y", "SELECT x:::y"),
        ("SELECT arr[1:2], arr[lo:hi]", "SELECT arr[1:2], arr[lo:hi]"),
        ("SELECT arr[ :hi]", "SELECT arr[ $1]"),
        ("SELECT :名前", "SELECT $1"),
        ("SELECT :", "SELECT :"),
        ("SELECT \\:x", "SELECT :x"),
        ("SELECT :x+:y", "SELECT $1+$2"),
        ("SELECT (:x)", "SELECT ($1)"),
        # native
        ("SELECT $1, $2", "SELECT $1, $2"),
        # skipped: constants, identifiers, comments, dollar quotes
        ("SELECT '%s :x'", "SELECT '%s :x'"),
        ("SELECT 'a''%s'", "SELECT 'a''%s'"),
        ("SELECT E'\\'%s', %s", "SELECT E'\\'%s', $1"),
        ("SELECT e'\\\\', %s", "SELECT e'\\\\', $1"),
        ("SELECT 'a\\', %s", "SELECT 'a\\', $1"),
        ("SELECT some'x', %s", "SELECT some'x', $1"),
        ('SELECT "%s", "a""%s", %s', 'SELECT "%s", "a""%s", $1'),
        ("SELECT U&'%s', %s", "SELECT U&'%s', $1"),
        ("SELECT 1 -- %s :x\n, %s", "SELECT 1 -- %s :x\n, $1"),
        ("SELECT /* %s /* :x */ %s */ %s", "SELECT /* %s /* :x */ %s */ $1"),
        ("SELECT $$ %s $$, %s", "SELECT $$ %s $$, $1"),
        ("SELECT $q$ $$ %s $q$, %s", "SELECT $q$ $$ %s $q$, $1"),
        ("SELECT $1, :x", "SELECT $1, $1"),  # mixing styles is meaningless; no dollar quote
        ("SELECT a$b, %s", "SELECT a$b, $1"),
        ("SELECT $_x$ :y $_x$", "SELECT $_x$ :y $_x$"),
        # unterminated things swallow the rest, as the server's lexer does
        ("SELECT '%s", "SELECT '%s"),
        ("SELECT /* %s", "SELECT /* %s"),
        ("SELECT $$ %s", "SELECT $$ %s"),
        ('SELECT "%s', 'SELECT "%s'),
    ],
)
def test_normalize(sql: str, expected: str) -> None:
    assert normalize_placeholders(sql) == expected


def test_counts_placeholders() -> None:
    assert lex("SELECT %(a)s, %(b)s, %(a)s").placeholders == 2
    assert lex("SELECT 1").placeholders == 0


@pytest.mark.parametrize(
    ("sql", "hints"),
    [
        ("/* router:primary */ SELECT 1", {Hint.PRIMARY}),
        ("SELECT 1 /* router:replica */", {Hint.REPLICA}),
        ("-- router:replica\nSELECT 1", {Hint.REPLICA}),
        ("/* ROUTER:PRIMARY */ SELECT 1", {Hint.PRIMARY}),
        ("/* app=x,router:primary */ SELECT 1", {Hint.PRIMARY}),
        ("/*router:primary*/ SELECT 1", {Hint.PRIMARY}),
        ("/* router:primary */ /* router:replica */", {Hint.PRIMARY, Hint.REPLICA}),
        ("/* outer /* router:primary */ */ SELECT 1", {Hint.PRIMARY}),
        ("SELECT '/* router:primary */'", set()),
        ('SELECT "router:primary"', set()),
        ("SELECT $$ -- router:primary $$", set()),
        ("/* router:primaryx */ SELECT 1", set()),
        ("/* router: primary */ SELECT 1", set()),
    ],
)
def test_hints(sql: str, hints: set[Hint]) -> None:
    assert lex(sql).hints == hints
