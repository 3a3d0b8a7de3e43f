"""Load a :class:`~router.core.FunctionCatalog` from the primary: the only I/O of classification.

Two tiny functions over the pure core, one per driver::

    catalog = load_catalog(psycopg_connection)
    catalog = await load_catalog_async(asyncpg_connection)
    classifier.set_catalog(catalog)  # refresh: load again and set again
"""

from __future__ import annotations

from typing import Any

from router.core import CATALOG_QUERY, RELATIONS_QUERY, FunctionCatalog

__all__ = ["load_catalog", "load_catalog_async"]


def load_catalog(conn: Any) -> FunctionCatalog:
    """Read function volatility through a psycopg 3 (sync) connection.

    Database errors pass through unchanged. The queries only read the catalog, so a replica
    would do as well as the primary, lag aside. Also loads the relations a standby refuses
    (:data:`~router.core.RELATIONS_QUERY`).
    """
    with conn.cursor() as cursor:
        cursor.execute(CATALOG_QUERY)
        catalog = FunctionCatalog.from_rows(cursor.fetchall())
        cursor.execute(RELATIONS_QUERY)
        return catalog.with_relations(cursor.fetchall())


async def load_catalog_async(conn: Any) -> FunctionCatalog:
    """Read function volatility through an asyncpg connection (or pool)."""
    records = await conn.fetch(CATALOG_QUERY)
    catalog = FunctionCatalog.from_rows(tuple(record) for record in records)
    relations = await conn.fetch(RELATIONS_QUERY)
    return catalog.with_relations(tuple(record) for record in relations)
