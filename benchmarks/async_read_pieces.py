"""Where ``AsyncRouter.fetchrow``'s instructions go, frame by frame, without I/O (callgrind).

    .venv/bin/python benchmarks/async_read_pieces.py [--n 2000] [--json out.json]

Starts itself under ``valgrind --tool=callgrind``; each piece (below) runs *n* times in one
coroutine, inside ``functools.reduce`` (only that is collected, one dump per piece), after a
warm-up. Each piece includes those listed after it, so the difference of two neighbours is what
that frame adds. The router is never opened: its topology is set, and its ``NodePool`` wraps a
stub asyncpg pool whose connection answers at once (under the real ``NodePool``: compiled with
mypyc, ``tools/build_mypyc.py``, the executor accepts nothing else). To measure another tree
(a compiled copy), put its ``src`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _report import callgrind_dumps, stub_router

import router
from router._async import _driver as driver
from router._scope import Call

QUERY = "SELECT * FROM items WHERE id = $1"
WARMUP = 300

#: (name, what it runs), outermost first.
PIECES = (
    ("fetchrow", "AsyncRouter.fetchrow (Queries.fetchrow -> AsyncRouter._query -> ...)"),
    ("call", "Executor.call (classify, checks, Call)"),
    ("read", "Executor._read (the decision, the settling check)"),
    ("run", "Executor._run (record, telemetry test, in-flight, timing, EWMA, counters)"),
    ("on_node", "Executor._on_node (acquire, driver.run, release, their try blocks)"),
    ("driver", "NodePool.acquire + driver.run + NodePool.release"),
    ("nodepool", "NodePool.acquire + NodePool.release"),
    ("bare", "the stub pool's acquire + fetchrow + release (the baseline's floor)"),
    ("decision", "engine.unconfirmed_floor + engine.read_decision (not awaited)"),
    ("classify", "engine.classify, cached (not awaited)"),
    ("loop", "the measuring loop itself (an empty coroutine awaited)"),
)


class _Conn:
    async def fetchrow(self, *args: Any, **kw: Any) -> Any:
        return (1,)

    def is_closed(self) -> bool:
        return False


class _AsyncpgPool:
    """asyncpg's part, under the router's own ``NodePool``."""

    def __init__(self) -> None:
        self.conn = _Conn()

    async def acquire(self) -> _Conn:
        return self.conn

    async def release(self, conn: _Conn) -> None:
        return None


def _router() -> router.AsyncRouter:
    r: router.AsyncRouter = stub_router()
    for pool in r._executor.pools.values():
        pool._pool = _AsyncpgPool()
    return r


def _pieces(r: router.AsyncRouter) -> dict[str, Callable[[], Awaitable[Any] | Any]]:
    ex = r._executor
    scope = r._scope
    engine = ex.engine
    cls = engine.classify(QUERY)
    call = Call("fetchrow", QUERY, (1,), {"timeout": None}, cls)
    decision = engine.read_decision(scope)
    assert decision.node == "replica1"
    pool = ex.pools["replica1"]
    stub = pool._pool
    assert isinstance(stub, _AsyncpgPool)

    async def driver_() -> Any:
        conn = await pool.acquire()
        result = await driver.run(conn, call)
        await pool.release(conn, settled=True)
        return result

    async def nodepool() -> None:
        await pool.release(await pool.acquire(), settled=True)

    async def bare() -> Any:
        conn = await stub.acquire()
        result = await conn.fetchrow(QUERY, 1, timeout=None)
        await stub.release(conn)
        return result

    async def empty() -> None:
        return None

    return {
        "fetchrow": lambda: r.fetchrow(QUERY, 1),
        "call": lambda: ex.call(scope, "fetchrow", QUERY, (1,), {"timeout": None}),
        "read": lambda: ex._read(scope, call),
        "run": lambda: ex._run(scope, decision, call, write=False),
        "on_node": lambda: ex._on_node(pool, decision, call, scope, write=False),
        "driver": driver_,
        "nodepool": nodepool,
        "bare": bare,
        "decision": lambda: engine.unconfirmed_floor(scope) or engine.read_decision(scope),
        "classify": lambda: engine.classify(QUERY),
        "loop": empty,
    }


def _child(n: int) -> None:
    r = _router()
    pieces = _pieces(r)

    async def many(fn: Callable[[], Any], count: int) -> None:
        if asyncio.iscoroutine(probe := fn()):
            await probe
            for _ in range(count - 1):
                await fn()
        else:
            for _ in range(count - 1):
                fn()

    loop = asyncio.new_event_loop()
    for name, _ in PIECES:
        fn = pieces[name]
        loop.run_until_complete(many(fn, WARMUP))
        functools.reduce(lambda acc, _i: (loop.run_until_complete(many(fn, n)), acc)[1], [0], 0)
    loop.close()


def _measure(n: int) -> dict[str, float]:
    totals = callgrind_dumps(__file__, ["--child", "--n", str(n)])
    if len(totals) != len(PIECES):
        raise SystemExit(f"callgrind: {len(totals)} dumps for {len(PIECES)} pieces")
    return {name: t / n for (name, _), t in zip(PIECES, totals, strict=True)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args.n)
        return
    found = _measure(args.n)
    print(f"compiled: {driver.__file__.endswith('.so')} ({router.__file__})")
    print("| piece | instructions per call | what it runs |\n|---|---:|---|")
    for name, what in PIECES:
        print(f"| `{name}` | {found[name]:,.0f} | {what} |")
    if args.json:
        args.json.write_text(json.dumps({"compiled": driver.__file__.endswith(".so"), **found}))


if __name__ == "__main__":
    main()
