"""``FunctionCatalog``: function volatility as read from the primary's ``pg_proc``.

A pure value; the I/O that fills it lives in ``router._catalog_load``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, cast

__all__ = ["CATALOG_QUERY", "RELATIONS_QUERY", "FunctionCatalog", "Volatility"]

Volatility = Literal["i", "s", "v"]
"""``pg_proc.provolatile``: IMMUTABLE, STABLE, VOLATILE."""

CATALOG_QUERY: Final = """\
SELECT n.nspname, p.proname, p.provolatile
FROM pg_catalog.pg_proc AS p
JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
"""
"""Rows ``(schema, name, volatility)`` for :meth:`FunctionCatalog.from_rows`.

pg_catalog is included so that a newer server's built-ins are known too; the classifier's own
table still rules for the pg_catalog names it knows (``txid_current`` is STABLE yet writes).
"""

RELATIONS_QUERY: Final = """\
WITH RECURSIVE refused (oid, why) AS (
    SELECT c.oid, 'an unlogged ' || CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END
    FROM pg_catalog.pg_class AS c
    WHERE c.relpersistence = 'u' AND c.relkind IN ('r', 'p', 'S', 'm')
  UNION
    SELECT r.ev_class, 'a view calling volatile function ' || pn.nspname || '.' || p.proname
        || '()'
    FROM pg_catalog.pg_rewrite AS r
    JOIN pg_catalog.pg_depend AS d
      ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
     AND d.refclassid = 'pg_catalog.pg_proc'::regclass
    JOIN pg_catalog.pg_proc AS p ON p.oid = d.refobjid
    JOIN pg_catalog.pg_namespace AS pn ON pn.oid = p.pronamespace
    WHERE p.provolatile = 'v' AND pn.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION
    SELECT r.ev_class, 'a view over ' || x.why
    FROM refused AS x
    JOIN pg_catalog.pg_depend AS d
      ON d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = x.oid
     AND d.classid = 'pg_catalog.pg_rewrite'::regclass
    JOIN pg_catalog.pg_rewrite AS r ON r.oid = d.objid AND r.ev_class <> x.oid
)
SELECT n.nspname, c.relname, min(x.why)
FROM refused AS x
JOIN pg_catalog.pg_class AS c ON c.oid = x.oid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname NOT LIKE 'pg\\_temp\\_%'
GROUP BY n.nspname, c.relname
"""
"""Rows ``(schema, name, why)`` for :meth:`FunctionCatalog.with_relations`: relations a hot
standby refuses to read (unlogged ones, PostgreSQL: "cannot access temporary or unlogged
relations during recovery"), views over them, and views that call a volatile user function
(which may write: the classifier's rule for functions), through views of views.
"""

_RANK: Final[dict[str, int]] = {"i": 0, "s": 1, "v": 2}


def _worst(a: str | None, b: str) -> str:
    return b if a is None or _RANK[b] > _RANK[a] else a


@dataclass(frozen=True, slots=True)
class FunctionCatalog:
    """Function name → worst volatility over its overloads, by ``schema.name`` and by bare name.

    Build it with :meth:`from_rows`. A bare name is as volatile as its most volatile overload in
    any schema, because an unqualified call may resolve to any of them through ``search_path``.
    """

    qualified: Mapping[str, str] = field(default_factory=dict, hash=False)
    bare: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: Relations only the primary can read, by ``schema.name`` and by bare name: why.
    relations: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[Any]]) -> FunctionCatalog:
        """Build from ``(schema, name, volatility)`` rows, as :data:`CATALOG_QUERY` returns.

        ``volatility`` is ``'i'``, ``'s'`` or ``'v'`` (``str`` or ``bytes``). Raises
        ``ValueError`` for a row of another shape or an unknown volatility.
        """
        qualified: dict[str, str] = {}
        bare: dict[str, str] = {}
        for row in rows:
            if len(row) != 3:
                raise ValueError(f"catalog row must be (schema, name, volatility), got {row!r}")
            schema, name, volatility = row
            if isinstance(volatility, bytes | bytearray):
                volatility = volatility.decode("ascii", "replace")
            if volatility not in _RANK:
                raise ValueError(f"unknown volatility {volatility!r} for {schema}.{name}")
            key = f"{schema}.{name}"
            qualified[key] = _worst(qualified.get(key), volatility)
            bare[name] = _worst(bare.get(name), volatility)
        return cls(MappingProxyType(qualified), MappingProxyType(bare))

    def with_relations(self, rows: Iterable[Sequence[Any]]) -> FunctionCatalog:
        """This catalog plus the relations of :data:`RELATIONS_QUERY`'s ``(schema, name,
        why)`` rows. A bare name stands for the relation in any schema (``search_path``)."""
        relations: dict[str, str] = {}
        for row in rows:
            if len(row) != 3:
                raise ValueError(f"relation row must be (schema, name, why), got {row!r}")
            schema, name, why = row
            relations[f"{schema}.{name}"] = f"{schema}.{name} ({why})"
            relations.setdefault(name, f"{schema}.{name} ({why})")
        return FunctionCatalog(self.qualified, self.bare, MappingProxyType(relations))

    def relation(self, name: str, schema: str | None = None) -> str | None:
        """Why only the primary can read relation *name*, or ``None`` if a standby can."""
        return self.relations.get(name if schema is None else f"{schema}.{name}")

    def volatility(self, name: str, schema: str | None = None) -> Volatility | None:
        """``'i'``, ``'s'`` or ``'v'`` for the function, or ``None`` if the catalog lacks it."""
        found = self.bare.get(name) if schema is None else self.qualified.get(f"{schema}.{name}")
        return cast("Volatility | None", found)

    def __len__(self) -> int:
        return len(self.qualified)

    def __contains__(self, name: object) -> bool:
        return name in self.qualified or name in self.bare
