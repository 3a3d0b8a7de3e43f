"""Relations a standby refuses, DDL that changes what the router knows, and statements a
replica refused: classification without a database."""

from __future__ import annotations

import pytest

from router import Classifier, FunctionCatalog, Route, classify
from router.core import RELATIONS_QUERY

CATALOG = FunctionCatalog.from_rows([("app", "f", "s")]).with_relations(
    [
        ("public", "uc", "an unlogged table"),
        ("app", "writes", "a view calling volatile function app.log()"),
    ]
)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM uc",
        "SELECT * FROM public.uc",
        'SELECT * FROM "uc" WHERE k = 1',
        "SELECT t.* FROM t JOIN uc ON true",
        "SELECT * FROM t WHERE k IN (SELECT k FROM uc)",
        "WITH x AS (SELECT * FROM uc) SELECT * FROM x",
        "EXPLAIN SELECT * FROM uc",
        "SELECT * FROM app.writes",
        "SELECT * FROM writes",
        "COPY (SELECT * FROM uc) TO STDOUT",
    ],
)
def test_reads_of_relations_a_standby_refuses_go_to_the_primary(sql: str) -> None:
    found = Classifier(catalog=CATALOG).classify(sql)
    assert found.route is Route.WRITE, found
    assert found.standby_refuses
    assert "standbys refuse it" in found.reason


@pytest.mark.parametrize(
    "sql", ["SELECT * FROM t", "SELECT * FROM other.uc", "SELECT app.f()", "SELECT 'uc'"]
)
def test_other_reads_stay_reads(sql: str) -> None:
    found = Classifier(catalog=CATALOG).classify(sql)
    assert found.route is Route.READ, found
    assert not found.standby_refuses


def test_with_relations_keeps_functions_and_says_why() -> None:
    assert CATALOG.volatility("f", "app") == "s"
    assert CATALOG.relation("uc") == "public.uc (an unlogged table)"
    assert CATALOG.relation("uc", "public") == "public.uc (an unlogged table)"
    assert CATALOG.relation("uc", "other") is None
    with pytest.raises(ValueError, match="relation row"):
        FunctionCatalog().with_relations([("public", "x")])
    assert "relpersistence" in RELATIONS_QUERY


@pytest.mark.parametrize(
    ("sql", "changes"),
    [
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", True),
        ("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1'", True),
        ("ALTER FUNCTION f() VOLATILE", True),
        ("DROP FUNCTION f()", True),
        ("CREATE VIEW v AS SELECT 1", True),
        ("DROP TABLE t", True),
        ("ALTER TABLE t RENAME TO u", True),
        ("CREATE UNLOGGED TABLE u (a int)", True),
        ("CREATE UNLOGGED TABLE u AS SELECT 1", True),
        ("ALTER TABLE t SET UNLOGGED", True),
        ("ALTER TABLE t SET LOGGED", True),
        ("BEGIN; CREATE FUNCTION g() RETURNS int LANGUAGE sql AS 'SELECT 1'; COMMIT", True),
        ("CREATE TABLE t (a int)", False),
        ("ALTER TABLE t ADD COLUMN b int", False),
        ("INSERT INTO t VALUES (1)", False),
        ("SELECT 1", False),
    ],
)
def test_ddl_that_changes_the_catalog_is_marked(sql: str, changes: bool) -> None:
    assert classify(sql).changes_catalog is changes


def test_a_refused_statement_is_remembered_as_a_primary_read() -> None:
    classifier = Classifier(catalog=CATALOG)
    sql = "SELECT * FROM hidden"
    assert classifier.classify(sql).route is Route.READ
    classifier.learn_refusal(sql, "replica1 refused it (0A000: unlogged)")
    found = classifier.classify(sql)
    assert found.route is Route.WRITE
    assert found.standby_refuses
    assert found.reason.startswith("a replica refused it before: replica1 refused it")
    classifier.set_catalog(CATALOG)  # survives a catalog reload
    assert classifier.classify(sql) is found
    assert classifier.classify("SELECT * FROM t").route is Route.READ
