"""The workloads: which operation a worker does next, on which key, and the SQL. Pure.

The dataset is one table, ``items(id int primary key, version int not null, payload text,
category int)``, named after its size (:func:`table_name`). Operations:

- ``POINT``: read one row by key; ``LIST``: the first 10 rows of a category by id (a short
  list query, served by an index on ``(category, id)``); ``WRITE``: ``version = version + 1``
  on one row;
- ``RYW``: a write on a row of the worker's own key range (workers never contend), then at
  once a ``POINT`` read of that row: stale when it shows a lower version than the write
  returned.

Every read selects the serving node's address and port (``inet_server_addr()``,
``inet_server_port()``: STABLE functions, so every router and pgpool treat the statement as a
read), which tells for every subject alike whether a replica answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from random import Random
from typing import Final, Literal

from router_bench._schema import WorkloadName

__all__ = [
    "MIXES",
    "TABLE_PREFIX",
    "Op",
    "OpPicker",
    "Statements",
    "categories",
    "key_range",
    "statements",
    "table_name",
    "worker_rng",
]

TABLE_PREFIX: Final = "router_bench_items_"
MAX_CATEGORIES: Final = 100
LIST_LIMIT: Final = 10


class Op(IntEnum):
    POINT = 0
    LIST = 1
    WRITE = 2
    RYW = 3


#: Each workload's operations and their shares. Reads are 2/3 point reads, 1/3 list queries.
MIXES: Final[dict[WorkloadName, tuple[tuple[Op, float], ...]]] = {
    "mixed": ((Op.POINT, 0.85 * 2 / 3), (Op.LIST, 0.85 / 3), (Op.WRITE, 0.15)),
    "read-only": ((Op.POINT, 2 / 3), (Op.LIST, 1 / 3)),
    "write-heavy": ((Op.POINT, 0.5 * 2 / 3), (Op.LIST, 0.5 / 3), (Op.WRITE, 0.5)),
    "ryw": ((Op.RYW, 1.0),),
}


def table_name(rows: int) -> str:
    """The dataset's table for *rows* rows: the bench's own, created once and reused."""
    return f"{TABLE_PREFIX}{rows}"


def categories(rows: int) -> int:
    """How many categories the dataset has (row ``id`` is in category ``id % n``)."""
    return max(1, min(MAX_CATEGORIES, rows))


def key_range(worker: int, workers: int, rows: int) -> tuple[int, int]:
    """The ids (inclusive, 1-based) worker *worker* of *workers* owns in ``ryw``: disjoint
    ranges covering every row; each holds at least one row when ``rows >= workers``."""
    if not 0 <= worker < workers or rows < workers:
        raise ValueError(f"worker {worker} of {workers} cannot own rows of {rows}")
    return worker * rows // workers + 1, (worker + 1) * rows // workers


def worker_rng(seed: int, cell: int, round_index: int, worker: int) -> Random:
    """The random source of one worker: the same for every subject of a (cell, round), so
    subjects are measured on the same sequence of operations and keys."""
    return Random(f"router-bench/{seed}/{cell}/{round_index}/{worker}")


class OpPicker:
    """``picker() -> (op, key)``: the next operation of one worker and its key (a row id, or
    a category for ``LIST``)."""

    __slots__ = ("_categories", "_cumulative", "_hi", "_lo", "_randint", "_random", "_rows")

    def __init__(
        self, workload: WorkloadName, rng: Random, *, worker: int, workers: int, rows: int
    ) -> None:
        total = 0.0
        cumulative = []
        for op, share in MIXES[workload]:
            total += share
            cumulative.append((op, total))
        cumulative[-1] = (cumulative[-1][0], float("inf"))  # rounding never falls off the end
        self._cumulative: tuple[tuple[Op, float], ...] = tuple(cumulative)
        self._random: Callable[[], float] = rng.random
        self._randint: Callable[[int, int], int] = rng.randint
        self._rows = rows
        self._categories = categories(rows)
        self._lo, self._hi = key_range(worker, workers, rows)

    def __call__(self) -> tuple[Op, int]:
        r = self._random()
        op = next(op for op, threshold in self._cumulative if r < threshold)
        if op is Op.LIST:
            return op, self._randint(0, self._categories - 1)
        if op is Op.RYW:
            return op, self._randint(self._lo, self._hi)
        return op, self._randint(1, self._rows)


@dataclass(frozen=True, slots=True)
class Statements:
    """The SQL of each operation, in one driver's placeholder style. Reads return the
    version (point) or id and version (list), then the serving node's address and port."""

    point: str
    list: str
    write: str


def statements(table: str, style: Literal["asyncpg", "psycopg"] = "asyncpg") -> Statements:
    p = "$1" if style == "asyncpg" else "%s"
    where = "host(inet_server_addr()) AS addr, inet_server_port() AS port"
    return Statements(
        point=f"SELECT version, {where} FROM {table} WHERE id = {p}",
        list=(
            f"SELECT id, version, {where} FROM {table} WHERE category = {p}"
            f" ORDER BY id LIMIT {LIST_LIMIT}"
        ),
        write=f"UPDATE {table} SET version = version + 1 WHERE id = {p} RETURNING version",
    )
