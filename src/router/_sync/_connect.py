"""The connection class the sync pools open connections with (``_pool.py``).

Kept apart from ``_pool.py`` so that it may be compiled with mypyc (``tools/build_mypyc.py``):
mypyc compiles neither a class defined inside a function nor a subclass of psycopg's
``Connection``; this module stays Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

import psycopg

__all__ = ["reporting"]


def reporting(
    on_error: Callable[[BaseException], None],
) -> type[psycopg.Connection[Any]]:
    """A connection class that reports a failure to connect to *on_error* (psycopg_pool
    connects on its worker threads, and only logs the failure)."""

    class ReportingConnection(psycopg.Connection[Any]):
        router_pool_connection = True  # its pool's reconnect records go to DEBUG

        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            try:
                return super().connect(conninfo, **kwargs)
            except (psycopg.Error, OSError) as exc:
                on_error(exc)
                raise

    return ReportingConnection
