"""asyncpg's query methods, as the router, its sessions and its transactions offer them. The
sync twin (``router/_sync/_queries.py``) has psycopg's signatures instead."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["Queries"]


class Queries:
    """``fetch``/``fetchrow``/``fetchval``/``execute``/``executemany`` with asyncpg's
    arguments (``$1`` placeholders, parameters as positional arguments), over :meth:`_query`."""

    __slots__ = ()

    async def _query(
        self, method: str, query: str, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> Any:
        raise NotImplementedError

    async def fetch(self, query: str, *args: Any, timeout: float | None = None, **kw: Any) -> Any:
        """All rows (asyncpg ``Record`` objects)."""
        return await self._query("fetch", query, args, {"timeout": timeout, **kw})

    async def fetchrow(
        self, query: str, *args: Any, timeout: float | None = None, **kw: Any
    ) -> Any:
        """The first row, or ``None``."""
        return await self._query("fetchrow", query, args, {"timeout": timeout, **kw})

    async def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any:
        """One value of the first row, or ``None``."""
        kw = {"column": column, "timeout": timeout}
        return await self._query("fetchval", query, args, kw)

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        """The command status (``"INSERT 0 1"``); several statements when there are no
        arguments."""
        result: str = await self._query("execute", query, args, {"timeout": timeout})
        return result

    async def executemany(
        self, command: str, args: Iterable[Sequence[Any]], *, timeout: float | None = None
    ) -> None:
        """*command* once per argument tuple."""
        await self._query("executemany", command, (args,), {"timeout": timeout})
