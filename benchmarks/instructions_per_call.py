"""Instructions per call of the router's own work, without I/O, for a before/after comparison
that machine load does not blur (callgrind counts instructions, not time).

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/instructions_per_call.py OP N

prints nothing; callgrind's ``Collected`` line (stderr) is the count. Run it with two N (say
1000 and 3000) and divide the difference by the difference of N. *OP*: ``read``
(``AsyncRouter.fetchrow`` to a replica), ``write`` (``execute`` and its commit position),
``session-read`` (``AsyncSession.fetchrow``), ``sync-read`` (the sync ``Router.fetchrow``
to a replica: the router's ``NodePool`` over a stub psycopg_pool), ``sync-read-deadline``
(the same with ``read_timeout=30``: a read deadline armed and disarmed per call), or
``sqlalchemy`` (a new routed SQLAlchemy session, ``begin``, two ``get_bind`` for a select, one
for an insert, ``close``: the unit tests' ``Harness``, run from the repository root;
``sqlalchemy-plain``: the same on a plain ``Session`` bound to one of the harness's engines,
the baseline). The router is never opened: its topology is set, and its pools are stubs whose
connection answers at once. To measure another tree, put its ``src`` first on ``PYTHONPATH``
(and run from its root for ``sqlalchemy``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from _report import stub_router
from psycopg.pq import TransactionStatus

QUERY = "SELECT * FROM items WHERE id = $1"
WARMUP = 500


class _Conn:
    async def fetchrow(self, *args: Any, **kw: Any) -> Any:
        return (1,)

    async def execute(self, *args: Any, **kw: Any) -> str:
        return "UPDATE 1"

    async def fetchval(self, *args: Any, **kw: Any) -> str:
        return "0/1000000"

    def is_closed(self) -> bool:
        return False


class _Pool:
    def __init__(self, real: Any) -> None:
        self.name, self.stats, self._conn = real.name, real.stats, _Conn()

    async def acquire(self) -> _Conn:
        return self._conn

    async def release(self, conn: _Conn, *, dirty: bool = False, settled: bool = False) -> None:
        return None


async def _router_ops(op: str, n: int) -> None:
    r = stub_router()
    for name in list(r._pools):
        r._pools[name] = _Pool(r._pools[name])
    session = r.session()
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "read": lambda: r.fetchrow(QUERY, 1),
        "write": lambda: r.execute("UPDATE items SET x = 1 WHERE id = $1", 1),
        "session-read": lambda: session.fetchrow(QUERY, 1),
    }
    call = calls[op]
    for _ in range(WARMUP + n):
        await call()


class _PgConn:
    # What driver.closed() looks at before the first release (a statement under way).
    transaction_status = TransactionStatus.ACTIVE


class _SyncConn:
    closed = False
    broken = False
    pgconn = _PgConn()

    def execute(self, *args: Any, **kw: Any) -> _SyncConn:
        return self

    def fetchone(self) -> Any:
        return (1,)


class _SyncPool:
    """psycopg_pool's part, under the router's own ``NodePool`` (kept: compiled with mypyc,
    ``tools/build_mypyc.py``, the executor accepts nothing but a ``NodePool``)."""

    def __init__(self) -> None:
        self._conn = _SyncConn()

    def getconn(self, timeout: float | None = None) -> _SyncConn:
        return self._conn

    def putconn(self, conn: _SyncConn) -> None:
        return None


def _sync_router_ops(n: int, read_timeout: float | None = None) -> None:
    r = stub_router("sync", read_timeout=read_timeout)
    for pool in r._pools.values():
        pool._pool = _SyncPool()
    query = "SELECT * FROM items WHERE id = %s"
    for _ in range(WARMUP + n):
        r.fetchrow(query, (1,))


def _sqlalchemy_ops(n: int, *, plain: bool = False) -> None:
    # The harness is the tree's own unit-test module: importable once its root is on the path.
    sys.path.insert(0, ".")
    from sqlalchemy import insert  # noqa: PLC0415
    from sqlalchemy.orm import Session  # noqa: PLC0415
    from tests.unit.test_sqlalchemy_routing import READ, Harness, User  # noqa: PLC0415

    harness = Harness()
    write = insert(User).values(name="x")
    engine = harness.engines["r1"]
    make: Any = (lambda: Session(engine)) if plain else harness.Session
    for _ in range(WARMUP + n):
        session = make()
        session.begin()
        session.get_bind(clause=READ)
        session.get_bind(clause=READ)
        session.get_bind(clause=write)
        session.close()
    harness.close()


def main() -> None:
    op, n = sys.argv[1], int(sys.argv[2])
    if op == "sqlalchemy":
        _sqlalchemy_ops(n)
    elif op == "sqlalchemy-plain":
        _sqlalchemy_ops(n, plain=True)
    elif op == "sync-read":
        _sync_router_ops(n)
    elif op == "sync-read-deadline":
        _sync_router_ops(n, read_timeout=30.0)
    else:
        asyncio.run(_router_ops(op, n))


if __name__ == "__main__":
    main()
