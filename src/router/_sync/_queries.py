"""psycopg's way of passing queries, as the sync router, its sessions and its transactions
offer them (the async twin, ``router/_async/_queries.py``, has asyncpg's signatures)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psycopg.abc import Params, Query

__all__ = ["Queries"]


class Queries:
    """``fetch``/``fetchrow``/``fetchval``/``execute``/``executemany`` with psycopg's
    arguments: ``%s`` / ``%(name)s`` placeholders and one *params* sequence or mapping;
    *prepare* as in ``psycopg.Connection.execute``; *timeout*: seconds after which the server
    is asked to cancel the statement and :class:`TimeoutError` is raised (as asyncpg's
    ``timeout``; outside a transaction a read that names none gets ``read_timeout``). Rows
    come from the connection's row factory (tuples by default)."""

    __slots__ = ()

    def _query(self, method: str, query: str, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        raise NotImplementedError

    def fetch(
        self,
        query: Query,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        timeout: float | None = None,
    ) -> list[Any]:
        """All rows."""
        kw = {"prepare": prepare, "timeout": timeout}
        rows: list[Any] = self._query("fetch", _text(query), (params,), kw)
        return rows

    def fetchrow(
        self,
        query: Query,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """The first row, or ``None``."""
        kw = {"prepare": prepare, "timeout": timeout}
        return self._query("fetchrow", _text(query), (params,), kw)

    def fetchval(
        self,
        query: Query,
        params: Params | None = None,
        *,
        column: int = 0,
        prepare: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One value of the first row, or ``None``."""
        kw = {"prepare": prepare, "column": column, "timeout": timeout}
        return self._query("fetchval", _text(query), (params,), kw)

    def execute(
        self,
        query: Query,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        timeout: float | None = None,
    ) -> str:
        """The command status (``"INSERT 0 1"``); several statements when there are no
        parameters (the last one's status)."""
        kw = {"prepare": prepare, "timeout": timeout}
        status: str = self._query("execute", _text(query), (params,), kw)
        return status

    def executemany(
        self, query: Query, params_seq: Iterable[Params], *, timeout: float | None = None
    ) -> None:
        """*query* once per item of *params_seq*."""
        self._query("executemany", _text(query), (params_seq,), {"timeout": timeout})


def _text(query: Query) -> str:
    """The classifier reads text: ``psycopg.sql`` objects must be rendered first (against
    a connection, so they are refused here; pass a string)."""
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode()
    raise TypeError(
        "the router classifies SQL text: pass a str (render psycopg.sql objects with"
        " .as_string(connection) first)"
    )
