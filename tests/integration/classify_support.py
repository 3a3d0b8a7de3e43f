"""The classifier's case table as a router sees it on a given server."""

from __future__ import annotations

import psycopg

import router
from router._catalog_load import load_catalog
from router.core import Route
from tests.unit.classify_cases import CASES, Case


def server_write_cases(dsn: str) -> list[Case]:
    """The table's WRITE cases as a router classifies them on the server at *dsn*.

    A router loads its function catalog from the primary: the fixture's functions, and the
    server's own pg_catalog, so a newer server's built-ins are known (PostgreSQL 16's STABLE
    ``system_user`` is a READ on 18, an unknown name, so WRITE, on 15).
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        classifier = router.Classifier(catalog=load_catalog(conn))
    return [c for c in CASES if classifier.classify(c.sql).route is Route.WRITE]
