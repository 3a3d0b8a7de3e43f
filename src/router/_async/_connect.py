"""The connection class the async pools open connections with (``_pool.py``).

Kept apart from ``_pool.py`` so that it may be compiled with mypyc (``tools/build_mypyc.py``):
a subclass of asyncpg's ``Connection`` (which has a metaclass) cannot be a mypyc class; this
module stays Python.
"""

from __future__ import annotations

import asyncpg

__all__ = ["ResettingConnection"]


class ResettingConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg has no types
    """asyncpg's connection, reset to a new session's state: ``DISCARD ALL`` drops what
    asyncpg's reset query leaves (temporary tables, ``PREPARE``d statements, cached plans,
    sequences' state) besides what it does drop (settings, ``WITH HOLD`` cursors, advisory
    locks, ``LISTEN``)."""

    #: Whether this session was set ``default_transaction_read_only = on`` (for a replica).
    read_only_session = False

    def mark_read_only_session(self, read_only: bool) -> None:
        # A method: the pool hands out a proxy, which forwards calls (not assignments).
        self.read_only_session = read_only

    def get_reset_query(self) -> str:
        return "DISCARD ALL"

    async def reset(self, *, timeout: float | None = None) -> None:
        try:
            await super().reset(timeout=timeout)
        finally:
            # The server forgot every prepared statement, asyncpg's cached ones too (whatever
            # came of the DISCARD: a connection it failed on is closed by the caller).
            # Forget them here without the Close each would otherwise cost: asyncpg does the
            # same when its connection ends.
            self._mark_stmts_as_closed()
