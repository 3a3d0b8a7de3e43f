"""``FunctionCatalog``: function volatility as read from the primary's ``pg_proc``.

A pure value; the I/O that fills it lives in ``router._catalog``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, cast

__all__ = ["CATALOG_QUERY", "FunctionCatalog", "Volatility"]

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

    def volatility(self, name: str, schema: str | None = None) -> Volatility | None:
        """``'i'``, ``'s'`` or ``'v'`` for the function, or ``None`` if the catalog lacks it."""
        found = self.bare.get(name) if schema is None else self.qualified.get(f"{schema}.{name}")
        return cast("Volatility | None", found)

    def __len__(self) -> int:
        return len(self.qualified)

    def __contains__(self, name: object) -> bool:
        return name in self.qualified or name in self.bare
