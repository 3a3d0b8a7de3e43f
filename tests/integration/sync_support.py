"""Helpers for the generated sync integration tests: the names of ``async_support.py``, over
threads and psycopg."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from time import monotonic
from typing import TypeVar

import psycopg
import psycopg.errors
import pytest

from tests.integration.async_support import execute_on

__all__ = [
    "MARKS",
    "ODD_STATEMENT_ERRORS",
    "DatabaseError",
    "ReadOnlySqlError",
    "SyntaxSqlError",
    "UndefinedTableError",
    "execute_on",
    "gather",
    "monotonic",
    "sleep",
]

T = TypeVar("T")

MARKS: list[pytest.MarkDecorator] = []
DatabaseError = psycopg.Error
ReadOnlySqlError = psycopg.errors.ReadOnlySqlTransaction
SyntaxSqlError = psycopg.errors.SyntaxError
UndefinedTableError = psycopg.errors.UndefinedTable
#: A deliberately odd statement meets the server's verdict or the driver's own (a lone
#: surrogate cannot be encoded).
ODD_STATEMENT_ERRORS = (psycopg.Error, UnicodeEncodeError)

sleep = time.sleep


def gather(thunks: Sequence[Callable[[], T]]) -> list[T]:
    """Run the thunks on threads of their own; their results in order."""
    with ThreadPoolExecutor(max_workers=max(1, len(thunks))) as pool:
        futures = [pool.submit(thunk) for thunk in thunks]
        return [future.result() for future in futures]
