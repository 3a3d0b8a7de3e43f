"""Classifier configuration: function catalog, overrides, cache, limits; catalog loading."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from router import ConfigurationError
from router._catalog_load import load_catalog, load_catalog_async
from router.core import (
    CATALOG_QUERY,
    RELATIONS_QUERY,
    Classification,
    Classifier,
    Effect,
    FunctionCatalog,
    Route,
    classify,
    default_classifier,
)

ROWS = [
    ("public", "peek", "s"),
    ("public", "pure", "i"),
    ("public", "bump", "v"),
    ("app", "peek", "v"),  # same bare name, more volatile elsewhere
    ("app", "label", "s"),
    ("pg_catalog", "txid_current", "s"),  # STABLE, yet it assigns an xid
    ("pg_catalog", "brand_new_builtin", "s"),
]


def route(classifier: Classifier, sql: str) -> Route:
    return classifier.classify(sql).route


# --- FunctionCatalog -------------------------------------------------------------------------


def test_catalog_from_rows() -> None:
    catalog = FunctionCatalog.from_rows(ROWS)
    assert catalog.volatility("pure") == "i"
    assert catalog.volatility("peek", "public") == "s"
    assert catalog.volatility("peek", "app") == "v"
    assert catalog.volatility("peek") == "v"  # worst over schemas for an unqualified call
    assert catalog.volatility("label") == "s"
    assert catalog.volatility("missing") is None
    assert catalog.volatility("label", "public") is None
    assert "app.label" in catalog
    assert "label" in catalog
    assert len(catalog) == len(ROWS)


def test_catalog_takes_the_worst_overload_and_bytes() -> None:
    catalog = FunctionCatalog.from_rows([("s", "f", b"i"), ("s", "f", "v"), ("s", "f", "s")])
    assert catalog.volatility("f", "s") == "v"


@pytest.mark.parametrize("row", [("s", "f", "x"), ("s", "f"), ("s", "f", "v", "extra")])
def test_catalog_rejects_bad_rows(row: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"catalog row|volatility"):
        FunctionCatalog.from_rows([row])


def test_catalog_query_reads_pg_proc() -> None:
    assert "pg_proc" in CATALOG_QUERY
    assert "provolatile" in CATALOG_QUERY


# --- catalog in the classifier ---------------------------------------------------------------


def test_without_a_catalog_user_functions_are_write_and_builtins_read() -> None:
    classifier = Classifier()
    assert route(classifier, "SELECT peek()") is Route.WRITE
    assert route(classifier, "SELECT lower('x'), now(), count(*) FROM t") is Route.READ
    assert "no function catalog" in classifier.classify("SELECT peek()").reason


def test_catalog_decides_user_functions() -> None:
    classifier = Classifier(catalog=FunctionCatalog.from_rows(ROWS))
    assert route(classifier, "SELECT pure(1)") is Route.READ
    assert route(classifier, "SELECT public.peek()") is Route.READ
    assert route(classifier, "SELECT app.label(1)") is Route.READ
    assert route(classifier, "SELECT label(1)") is Route.READ
    assert route(classifier, "SELECT bump()") is Route.WRITE
    assert route(classifier, "SELECT app.peek()") is Route.WRITE
    assert route(classifier, "SELECT peek()") is Route.WRITE  # could be app.peek
    assert route(classifier, "SELECT missing()") is Route.WRITE
    assert "not in the catalog" in classifier.classify("SELECT missing()").reason


def test_the_builtin_table_wins_over_the_catalog_for_pg_catalog() -> None:
    classifier = Classifier(catalog=FunctionCatalog.from_rows(ROWS))
    assert route(classifier, "SELECT txid_current()") is Route.WRITE
    assert route(classifier, "SELECT pg_catalog.txid_current()") is Route.WRITE
    # A built-in newer than the shipped list is found in the catalog.
    assert route(classifier, "SELECT pg_catalog.brand_new_builtin()") is Route.READ
    assert route(classifier, "SELECT brand_new_builtin()") is Route.READ


def test_set_catalog_refreshes_and_forgets_cached_results() -> None:
    classifier = Classifier()
    before = classifier.classify("SELECT pure(1)")
    assert before.route is Route.WRITE
    classifier.set_catalog(FunctionCatalog.from_rows(ROWS))
    assert classifier.catalog is not None
    assert route(classifier, "SELECT pure(1)") is Route.READ
    classifier.set_catalog(FunctionCatalog.from_rows([("public", "pure", "v")]))
    assert route(classifier, "SELECT pure(1)") is Route.WRITE
    classifier.set_catalog(None)
    assert classifier.catalog is None
    # mypy keeps the narrowing (not None) from above across set_catalog(None).
    assert route(classifier, "SELECT pure(1)") is Route.WRITE  # type: ignore[unreachable]


# --- overrides -----------------------------------------------------------------------------


def test_overrides_win_over_everything() -> None:
    catalog = FunctionCatalog.from_rows(ROWS)
    classifier = Classifier(
        catalog=catalog,
        read_functions=["bump", "nextval", "app.peek"],
        write_functions=["pure", "lower", "public.label"],
    )
    assert route(classifier, "SELECT bump()") is Route.READ
    assert route(classifier, "SELECT nextval('s')") is Route.READ
    assert route(classifier, "SELECT app.peek()") is Route.READ
    assert route(classifier, "SELECT peek()") is Route.READ  # app.peek may be what it resolves to
    assert route(classifier, "SELECT public.peek()") is Route.READ  # catalog: STABLE
    assert route(classifier, "SELECT pure(1)") is Route.WRITE
    assert route(classifier, "SELECT lower('x')") is Route.WRITE
    assert route(classifier, "SELECT label(1)") is Route.WRITE  # public.label may be the one
    assert route(classifier, "SELECT app.label(1)") is Route.READ
    assert "write_functions" in classifier.classify("SELECT pure(1)").reason


def test_a_read_override_drops_builtin_effects() -> None:
    classifier = Classifier(read_functions=["pg_advisory_lock"])
    result = classifier.classify("SELECT pg_advisory_lock(1)")
    assert (result.route, result.effects) == (Route.READ, frozenset())


def test_overrides_do_not_hide_other_writes() -> None:
    classifier = Classifier(read_functions=["bump"])
    assert route(classifier, "SELECT bump() FROM t FOR UPDATE") is Route.WRITE
    assert route(classifier, "SELECT bump(), nextval('s')") is Route.WRITE


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"read_functions": ["f"], "write_functions": ["f"]}, "read_functions"),
        ({"read_functions": "f"}, "read_functions"),
        ({"write_functions": ["a.b.c"]}, "write_functions"),
        ({"write_functions": [""]}, "write_functions"),
        ({"cache_size": -1}, "cache_size"),
        ({"cache_size": True}, "cache_size"),
        ({"max_length": 0}, "max_length"),
        ({"catalog": {"f": "v"}}, "catalog"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Classifier(**kwargs)
    assert info.value.field == field


# --- cache and limits ----------------------------------------------------------------------


def test_a_repeated_statement_comes_from_the_cache() -> None:
    classifier = Classifier(cache_size=2)
    first = classifier.classify("SELECT 1")
    assert classifier.classify("SELECT 1") is first
    classifier.classify("SELECT 2")
    classifier.classify("SELECT 3")  # evicts "SELECT 1"
    info = classifier.cache_info()
    assert (info.hits, info.misses, info.currsize, info.maxsize) == (1, 3, 2, 2)
    assert classifier.classify("SELECT 1") == first
    classifier.cache_clear()
    assert classifier.cache_info().currsize == 0


def test_cache_can_be_disabled_and_long_strings_are_not_cached() -> None:
    uncached = Classifier(cache_size=0)
    assert uncached.cache_info() is None
    uncached.cache_clear()
    assert uncached.classify("SELECT 1").route is Route.READ
    classifier = Classifier()
    long_sql = "SELECT " + ", ".join(["1"] * 40_000)
    assert classifier.classify(long_sql).route is Route.READ
    assert classifier.cache_info().currsize == 0


def test_too_long_is_write_without_parsing() -> None:
    classifier = Classifier(max_length=100)
    result = classifier.classify("SELECT " + "1, " * 100 + "1")
    assert (result.route, result.reason) == (Route.WRITE, "too long to classify")


@pytest.mark.parametrize("value", [None, b"SELECT 1", 42, ["SELECT 1"]])
def test_non_strings_are_unparseable_not_errors(value: Any) -> None:
    result = Classifier().classify(value)
    assert (result.route, result.reason) == (Route.WRITE, "unparseable")


def test_a_nul_byte_is_unparseable_because_libpg_query_would_stop_there() -> None:
    result = classify("SELECT 1\x00; DELETE FROM users")
    assert (result.route, result.reason) == (Route.WRITE, "unparseable")


def test_deep_nesting_is_write() -> None:
    result = Classifier().classify("SELECT 1 FROM t WHERE " + "(" * 2000 + "1" + ")" * 2000)
    assert result.route in (Route.READ, Route.WRITE)
    deep = Classifier().classify("SELECT 1 FOR UPDATE; SELECT " + "f(" * 3000 + "1" + ")" * 3000)
    assert deep.route is Route.WRITE


def test_threads_share_a_classifier_while_the_catalog_changes() -> None:
    classifier = Classifier(cache_size=64)
    catalogs = [FunctionCatalog.from_rows(ROWS), None]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(300):
                assert classifier.classify(f"SELECT {i % 80}").route is Route.READ
                assert classifier.classify("SELECT bump()").route is Route.WRITE
                if n == 0 and i % 50 == 0:
                    classifier.set_catalog(catalogs[i // 50 % 2])
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def test_default_classifier_and_repr() -> None:
    assert isinstance(default_classifier(), Classifier)
    assert default_classifier().classify("SELECT 1") is classify("SELECT 1")
    assert "cache_size" in repr(Classifier(read_functions=["f"]))


def test_classification_helpers() -> None:
    result = classify("SELECT pg_advisory_lock(1)")
    assert isinstance(result, Classification)
    assert not result.is_read
    assert result.pins
    assert classify("SELECT 1").is_read
    assert result.functions == frozenset({"pg_advisory_lock"})
    assert Effect.PIN in result.effects


# --- loading the catalog (fake drivers; the real ones run in the integration suite) ------------


class _Cursor:
    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        self.rows = rows
        self.query = ""

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: str) -> None:
        self.query = query

    def fetchall(self) -> list[tuple[str, str, str]]:
        if self.query == RELATIONS_QUERY:
            return RELATION_ROWS
        assert self.query == CATALOG_QUERY
        return self.rows


class _SyncConnection:
    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        self.rows = rows

    def cursor(self) -> _Cursor:
        return _Cursor(self.rows)


class _AsyncConnection:
    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        self.rows = rows

    async def fetch(self, query: str) -> list[tuple[str, str, str]]:
        if query == RELATIONS_QUERY:
            return RELATION_ROWS
        assert query == CATALOG_QUERY
        return self.rows


RELATION_ROWS = [("public", "cache", "an unlogged table")]


def test_load_catalog_sync_and_async() -> None:
    catalog = load_catalog(_SyncConnection(ROWS))
    assert catalog.volatility("bump") == "v"
    assert catalog.relation("cache") == "public.cache (an unlogged table)"
    async_catalog = asyncio.run(load_catalog_async(_AsyncConnection(ROWS)))
    assert async_catalog == catalog
