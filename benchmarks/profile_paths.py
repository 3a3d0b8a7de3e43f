"""Where a routed call's time goes: per path, per layer, per thread count (issue 14, step 1).

    .venv/bin/python benchmarks/profile_paths.py [--sections sync,layers,sqlalchemy,async,callgrind]
        [--duration 1.0] [--rounds 3] [--threads 1,4,16] [--json out.json]

A :class:`router.testing.LocalCluster` (a primary and one streaming replica) is started and a
table of ``--rows`` rows replicated. Every subject reads from ``replica1``, so both sides of a
ratio pay the same server. Sections:

``sync``
    ``Router.fetchrow`` against a raw ``psycopg_pool`` in autocommit, at each thread count,
    interleaved (order rotated per round). Beside the full router, *ablations*: the same router
    with one candidate cost patched out for the run (in this process only, never in the
    source): ``-nold`` (``LAST_DECISION.set``), ``-notel`` (the telemetry
    span start/end), ``-nolock`` (``NodePool``'s own lock), ``-rawpool`` (``NodePool``'s
    acquire/release replaced by a bare ``getconn``/``putconn``). The CPU per call an ablation
    saves is what that layer costs at that thread count. Also: context switches per call
    (``getrusage``: voluntary + involuntary, the process), the signal of lock and GIL hand-offs,
    and a ``probe`` run whose locks count how often they were found taken (contention per call).
``layers``
    Each layer of the sync and async paths alone, without I/O (best of several batches, CPU
    time per call): classifier (cached), read decision, ``Call`` and telemetry,
    ``LAST_DECISION``, the in-flight count, pool acquire+release (``NodePool`` vs
    ``psycopg_pool`` ``getconn``/``putconn`` and ``connection()``), at 1 and 16 threads for
    the pools.
``sqlalchemy``
    A new session per operation (``get`` by primary key, a 10-row select), sync and async, a
    plain session on an engine to ``replica1`` against ``router.sqlalchemy`` over the primary
    and ``replica1`` (every read goes to ``replica1``): CPU per operation, interleaved; then,
    deterministically, what ``get_bind`` and the session's construction cost per operation
    (timed wrappers), and a cProfile of both (tottime by package).
``async``
    ``AsyncRouter.fetchrow`` against an asyncpg pool without reset at concurrency 8 (and
    ablations ``-nold``/``-notel``), interleaved; then a cProfile of the router's functions.
``callgrind``
    Instructions per call (valgrind's callgrind, repeatable on a loaded machine), single
    thread: the loop runs inside ``functools.reduce`` and only that is collected
    (``--toggle-collect=functools_reduce``), at two loop lengths, so start-up cancels out.

CPU time here is the whole process (``time.process_time``): client threads, the router's
monitor and psycopg_pool's workers; the servers are other processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import gc
import json
import os
import pstats
import random
import re
import resource
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import psycopg_pool
from _report import callgrind_dumps
from opentelemetry.trace import INVALID_SPAN
from sqlalchemy import String, create_engine, make_url, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import router
import router.sqlalchemy as rsa
from router._scope import LAST_DECISION, Call, Scope
from router._sync import _pool as sync_pool_module
from router.testing import LocalCluster

QUERY = "SELECT id, payload FROM bench_items WHERE id = %s"
AQUERY = "SELECT id, payload FROM bench_items WHERE id = $1"


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Cell:
    """One run of one subject: calls, wall seconds, process CPU seconds, context switches."""

    ops: int
    seconds: float
    cpu: float
    switches: int
    sys: float = 0.0

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.ops * 1e6

    @property
    def cs_per_call(self) -> float:
        return self.switches / self.ops

    @property
    def sys_us(self) -> float:
        return self.sys / self.ops * 1e6


def _switches() -> int:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_nvcsw + ru.ru_nivcsw


def _sys() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


@contextlib.contextmanager
def _metered() -> Iterator[list[float]]:
    """Yields a list the block fills with [ops]; then holds [ops, wall, cpu, switches, sys]."""
    gc.collect()
    out: list[float] = []
    cpu, wall, cs, st = time.process_time(), time.perf_counter(), _switches(), _sys()
    yield out
    out += [time.perf_counter() - wall, time.process_time() - cpu, _switches() - cs, _sys() - st]


def _cell(m: list[float]) -> Cell:
    return Cell(int(m[0]), m[1], m[2], int(m[3]), m[4])


def _thread_loop(fn: Callable[[int], Any], threads: int, seconds: float, ids: list[int]) -> int:
    counts: list[int] = []
    until = time.perf_counter() + seconds
    n = len(ids)

    def work(start: int) -> None:
        i = start
        clock = time.perf_counter
        done = 0
        while clock() < until:
            fn(ids[i % n])
            i += 1
            done += 1
        counts.append(done)

    ts = [threading.Thread(target=work, args=(random.randrange(n),)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts)


def _summary(cells: list[Cell]) -> dict[str, float]:
    return {
        "ops_per_s": statistics.median(c.ops_per_s for c in cells),
        "cpu_us": statistics.median(c.cpu_us for c in cells),
        "cs_per_call": statistics.median(c.cs_per_call for c in cells),
        "sys_us": statistics.median(c.sys_us for c in cells),
        "rounds": len(cells),
    }


def _print_table(title: str, rows: dict[str, dict[str, float]], base: str) -> list[str]:
    lines = [
        f"#### {title}",
        "",
        "| subject | ops/s | vs base (ops) | CPU µs/call | of it sys | Δ CPU vs routed"
        " | ctx sw/call |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    b = rows[base]
    routed = next((r for n, r in rows.items() if n == "routed"), None)
    for name, r in rows.items():
        delta = (
            "" if routed is None or name == "routed" else f"{r['cpu_us'] - routed['cpu_us']:+.1f}"
        )
        lines.append(
            f"| {name} | {r['ops_per_s']:.0f} | {r['ops_per_s'] / b['ops_per_s']:.2f}x"
            f" | {r['cpu_us']:.1f} | {r['sys_us']:.1f} | {delta} | {r['cs_per_call']:.2f} |"
        )
    text = "\n".join(lines)
    print(text + "\n", flush=True)
    return lines


# -- patches (ablations) -------------------------------------------------------------------


class _NoLock:
    """A lock that is not one (an ablation: what the real one's takes cost)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return True

    def release(self) -> None:
        return None


class _CountingLock:
    """A real lock that counts its takes and how many found it taken."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.takes = 0
        self.contended = 0

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self._inner.release()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.takes += 1
        if self._inner.acquire(False):
            return True
        self.contended += 1
        return bool(self._inner.acquire(blocking, timeout))

    def release(self) -> None:
        self._inner.release()

    # threading.Condition(lock) wants these of an RLock-like lock
    def _is_owned(self) -> bool:
        inner = self._inner
        if hasattr(inner, "_is_owned"):
            return bool(inner._is_owned())
        if inner.acquire(False):
            inner.release()
            return False
        return True


class _NoDecision:
    def set(self, value: Any) -> None:
        return None

    def get(self, default: Any = None) -> Any:
        return default


_NO_LOCK = _NoLock()


@contextlib.contextmanager
def _ablate(r: Any, what: str) -> Iterator[None]:
    """Patch one candidate cost out of router *r* (sync or async) for the block."""
    undo: list[Callable[[], None]] = []

    def setattr_(obj: Any, name: str, value: Any) -> None:
        old = getattr(obj, name)
        setattr(obj, name, value)
        undo.append(lambda: setattr(obj, name, old))

    module = sys.modules[type(r).__module__]
    for part in what.split("+") if what else []:
        if part == "nold":
            setattr_(module, "LAST_DECISION", _NoDecision())
        elif part == "notel":
            setattr_(r._telemetry, "start", lambda *a, **k: INVALID_SPAN)
        elif part == "nolock":
            for pool in r._pools.values():
                setattr_(pool, "_lock", _NO_LOCK)
        elif part == "rawpool":
            for pool in r._pools.values():
                inner = pool._pool
                if hasattr(inner, "getconn"):  # psycopg_pool
                    setattr_(pool, "acquire", inner.getconn)
                    setattr_(pool, "release", lambda conn, _p=inner, **kw: _p.putconn(conn))
                else:  # asyncpg: the pool's own acquire() and release(), awaited as ours
                    setattr_(pool, "acquire", inner.acquire)
                    setattr_(pool, "release", lambda conn, _p=inner, **kw: _p.release(conn))
        else:
            raise SystemExit(f"unknown ablation {part!r}")
    try:
        yield
    finally:
        for fn in reversed(undo):
            fn()


# -- the cluster ----------------------------------------------------------------------------


def _prepare(primary: str, rows: int) -> list[int]:
    with psycopg.connect(primary, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, payload text NOT NULL)"
        )
        conn.execute("TRUNCATE bench_items")
        conn.execute(
            "INSERT INTO bench_items SELECT g, md5(g::text) FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("CHECKPOINT")
    ids = list(range(1, rows + 1))
    random.shuffle(ids)
    return ids


def _wait_replicated(replica: str, rows: int) -> None:
    deadline = time.monotonic() + 30
    with psycopg.connect(replica, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM bench_items").fetchone()
            if row is not None and row[0] == rows:
                return
            time.sleep(0.05)
    raise SystemExit("the replica did not catch up")


def _sync_router(primary: str, replica: str, k: int, **kw: Any) -> router.Router:
    config = router.RouterConfig(
        primary=router.NodeConfig(dsn=primary, name="primary"),
        replicas=[router.NodeConfig(dsn=replica, name="replica1")],
        pool=router.PoolConfig(min_size=k, max_size=k),
        **kw,
    )
    return router.Router(config).open()


def _raw_pool(replica: str, k: int) -> psycopg_pool.ConnectionPool[Any]:
    pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
        replica, min_size=k, max_size=k, kwargs={"autocommit": True}, open=True
    )
    pool.wait()
    return pool


# -- section: sync --------------------------------------------------------------------------

#: (Step 1 also had ``noguard``: the process-wide lock around ``stats.outstanding``, since
#: replaced by the lock-free ``NodeStats.in_flight``.)
SYNC_ABLATIONS = ("nold", "notel", "nolock", "rawpool", "nold+notel+nolock")


def _section_sync(args: argparse.Namespace, primary: str, replica: str, ids: list[int]) -> Any:
    report: dict[str, Any] = {}
    lines: list[str] = []
    for threads in args.threads:
        raw = _raw_pool(replica, threads)
        r = _sync_router(primary, replica, threads)

        def raw_fetchrow(key: int, _pool: Any = raw) -> Any:
            with _pool.connection() as conn:
                return conn.execute(QUERY, (key,)).fetchone()

        def routed_fetchrow(key: int, _r: Any = r) -> Any:
            return _r.fetchrow(QUERY, (key,))

        subjects: dict[str, tuple[Callable[[int], Any], str]] = {
            "raw": (raw_fetchrow, ""),
            "routed": (routed_fetchrow, ""),
        }
        for ablation in args.ablations:
            subjects[f"routed-{ablation}"] = (routed_fetchrow, ablation)
        cells: dict[str, list[Cell]] = defaultdict(list)
        names = list(subjects)
        try:
            for rnd in range(args.rounds):
                shift = rnd % len(names)
                for name in names[shift:] + names[:shift]:
                    fn, ablation = subjects[name]
                    with _ablate(r, ablation):
                        _thread_loop(fn, threads, args.warmup, ids)
                        with _metered() as m:
                            m.append(_thread_loop(fn, threads, args.duration, ids))
                    cells[name].append(_cell(m))
            probe = _probe_sync(r, raw, threads, ids, args.duration)
        finally:
            r.close()
            raw.close()
        rows = {name: _summary(cells[name]) for name in names}
        paired = [
            c.ops_per_s / b.ops_per_s for c, b in zip(cells["routed"], cells["raw"], strict=True)
        ]
        report[str(threads)] = {"subjects": rows, "paired_routed_vs_raw": paired, "probe": probe}
        lines += _print_table(
            f"sync fetchrow, {threads} thread(s): routed/raw paired per round "
            + ", ".join(f"{p:.2f}" for p in paired),
            rows,
            "raw",
        )
        lines += ["", _probe_text(probe), ""]
        print(lines[-2], flush=True)
    return report, lines


def _probe_sync(r: Any, raw: Any, threads: int, ids: list[int], seconds: float) -> Any:
    """Contention per call of each lock on the routed path (and of psycopg_pool's own lock on
    the raw path): takes/call and the share of takes that found the lock taken."""
    out: dict[str, Any] = {}
    pool = r._pools["replica1"]
    node_lock = _CountingLock(pool._lock)
    pp_lock = _CountingLock(pool._pool._lock)
    raw_lock = _CountingLock(raw._lock)
    pool._lock, pool._pool._lock, raw._lock = node_lock, pp_lock, raw_lock
    looks = [0]
    closed = sync_pool_module.__dict__["connection_closed"]

    def counting_closed(conn: Any) -> bool:
        looks[0] += 1
        return bool(closed(conn))

    setattr(sync_pool_module, "connection_closed", counting_closed)  # noqa: B010
    # How often a client had to wait in psycopg_pool's queue (a condition-variable hand-off),
    # and how many getconn attempts NodePool made per acquire (its 5 ms failure poll).
    waits = [0]
    waiting_client = psycopg_pool.pool.WaitingClient
    real_wait = waiting_client.wait

    def counting_wait(self: Any, timeout: float) -> Any:
        waits[0] += 1
        return real_wait(self, timeout)

    waiting_client.wait = counting_wait  # type: ignore[method-assign]
    getconns = [0]
    real_getconn = pool._pool.getconn

    def counting_getconn(timeout: float | None = None) -> Any:
        getconns[0] += 1
        return real_getconn(timeout)

    pool._pool.getconn = counting_getconn
    try:
        calls = _thread_loop(lambda k: r.fetchrow(QUERY, (k,)), threads, seconds, ids)
        routed_waits, waits[0] = waits[0], 0
        raw_calls = _thread_loop(lambda k: _raw_once(raw, k), threads, seconds, ids)
    finally:
        waiting_client.wait = real_wait  # type: ignore[method-assign]
        del pool._pool.getconn
        setattr(sync_pool_module, "connection_closed", closed)  # noqa: B010
        pool._lock, pool._pool._lock, raw._lock = (
            node_lock._inner,
            pp_lock._inner,
            raw_lock._inner,
        )
    for name, lock, n in (
        ("routed: NodePool._lock", node_lock, calls),
        ("routed: psycopg_pool._lock", pp_lock, calls),
        ("raw: psycopg_pool._lock", raw_lock, raw_calls),
    ):
        out[name] = {
            "takes_per_call": lock.takes / max(1, n),
            "contended_per_call": lock.contended / max(1, n),
        }
    out["routed: psycopg_pool queue waits"] = {
        "takes_per_call": routed_waits / max(1, calls),
        "contended_per_call": 0.0,
    }
    out["raw: psycopg_pool queue waits"] = {
        "takes_per_call": waits[0] / max(1, raw_calls),
        "contended_per_call": 0.0,
    }
    out["routed: getconn attempts"] = {
        "takes_per_call": getconns[0] / max(1, calls),
        "contended_per_call": 0.0,
    }
    out["routed: idle-connection looks (poll syscall)"] = {
        "takes_per_call": looks[0] / max(1, calls),
        "contended_per_call": 0.0,
    }
    return out


def _raw_once(raw: Any, key: int) -> Any:
    with raw.connection() as conn:
        return conn.execute(QUERY, (key,)).fetchone()


def _probe_text(probe: dict[str, Any]) -> str:
    parts = [
        f"{name}: {v['takes_per_call']:.2f} takes, {v['contended_per_call']:.3f} contended/call"
        for name, v in probe.items()
    ]
    return "lock probe — " + "; ".join(parts)


# -- section: layers (no I/O) -----------------------------------------------------------------


def _best_us(fn: Callable[[], Any], n: int, batches: int = 7) -> float:
    best = float("inf")
    for _ in range(batches):
        gc.collect()
        t = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t) / n)
    return best * 1e6


def _threaded_us(fn: Callable[[], Any], threads: int, seconds: float) -> tuple[float, float]:
    """(CPU µs per call, context switches per call) of *fn* looped by *threads* threads."""
    with _metered() as m:
        m.append(_thread_loop(lambda _k: fn(), threads, seconds, [0]))
    c = _cell(m)
    return c.cpu_us, c.cs_per_call


def _section_layers(args: argparse.Namespace, primary: str, replica: str, ids: list[int]) -> Any:
    r = _sync_router(primary, replica, 16)
    raw = _raw_pool(replica, 16)
    n = args.batch
    try:
        scope = r._scope
        classify = r.engine.classify
        cls = classify(QUERY)
        addr = r._addresses["replica1"]
        decision = r.engine.read_decision(scope)
        tel = r._telemetry
        pool = r._pools["replica1"]
        stats = pool.stats
        counter = r.engine.decisions
        conn = pool.acquire()
        pool.release(conn, settled=True)

        def telemetry() -> None:
            span = tel.start(
                "fetchrow",
                addr,
                primary=False,
                reason=decision.reason.value,
                detail=decision.detail,
                route=cls.route.value,
                sql=QUERY,
            )
            span.end()

        def in_flight_pair() -> None:
            # What replaced step 1's guard() pair: one atomic step each way, no lock.
            stats.in_flight.append(None)
            stats.in_flight.pop()

        def bookkeeping() -> None:
            key = ("replica1", decision.reason.value)
            counter[key] = counter.get(key, 0) + 1
            started = time.perf_counter()
            stats.latency.update(time.perf_counter() - started)
            stats.reads += 1

        def node_pool() -> None:
            pool.release(pool.acquire(), settled=True)

        def getconn_putconn() -> None:
            raw.putconn(raw.getconn())

        def connection_cm() -> None:
            with raw.connection():
                pass

        key = ids[0]
        one_conn = raw.getconn()

        def driver_query() -> None:
            one_conn.execute(QUERY, (key,)).fetchone()

        def routed_stubbed() -> None:
            # The whole routed path with NodePool and the driver as cheap as they get.
            r.fetchrow(QUERY, (key,))

        layers: dict[str, float] = {
            "classify (cached, with the str/NUL checks)": _best_us(lambda: classify(QUERY), n),
            "read decision (_read_decision)": _best_us(lambda: r.engine.read_decision(scope), n),
            "Call(...) allocation": _best_us(
                lambda: Call("fetchrow", QUERY, ((key,),), {"prepare": None}, cls), n
            ),
            "telemetry start+end (no SDK)": _best_us(telemetry, n),
            "LAST_DECISION.set": _best_us(lambda: LAST_DECISION.set(decision), n),
            "in_flight append+pop (outstanding)": _best_us(in_flight_pair, n),
            "decision count + latency EWMA + reads": _best_us(bookkeeping, n),
            "NodePool acquire+release (1 thread)": _best_us(node_pool, n // 4),
            "psycopg_pool getconn+putconn (1 thread)": _best_us(getconn_putconn, n // 4),
            "psycopg_pool connection() (1 thread)": _best_us(connection_cm, n // 4),
            "driver: conn.execute(q).fetchone() (real I/O)": _best_us(driver_query, 300, 5),
            "routed fetchrow end to end (real I/O)": _best_us(routed_stubbed, 300, 5),
        }
        raw.putconn(one_conn)
        threaded: dict[str, dict[int, tuple[float, float]]] = {}
        for label, fn in (
            ("NodePool acquire+release", node_pool),
            ("psycopg_pool getconn+putconn", getconn_putconn),
            ("psycopg_pool connection()", connection_cm),
            ("in_flight append+pop", in_flight_pair),
        ):
            threaded[label] = {t: _threaded_us(fn, t, args.duration / 2) for t in (1, 4, 16)}
    finally:
        r.close()
        raw.close()
    lines = [
        "#### layers of the sync path, no I/O (best of 7 batches, process CPU µs per call)",
        "",
        "| layer | µs/call |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v:.2f} |" for k, v in layers.items()]
    lines += [
        "",
        "#### pool and in-flight count without I/O under threads"
        " (process CPU µs/call, ctx switches/call)",
        "",
        "| layer | 1 thread | 4 threads | 16 threads |",
        "|---|---:|---:|---:|",
    ]
    for label, by in threaded.items():
        cells = " | ".join(f"{by[t][0]:.2f} µs, {by[t][1]:.3f} cs" for t in (1, 4, 16))
        lines.append(f"| {label} | {cells} |")
    text = "\n".join(lines)
    print(text + "\n", flush=True)
    return {
        "layers": layers,
        "threaded": {k: {str(t): v for t, v in by.items()} for k, by in threaded.items()},
    }, lines


# -- section: sqlalchemy --------------------------------------------------------------------


class _Timer:
    """Accumulates the process CPU time of wrapped calls (single thread)."""

    def __init__(self) -> None:
        self.ns: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.thread_time_ns

        @functools.wraps(fn)
        def timed(*a: Any, **kw: Any) -> Any:
            t = clock()
            try:
                return fn(*a, **kw)
            finally:
                self.ns[label] += clock() - t
                self.calls[label] += 1

        return timed


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    payload: Mapped[str] = mapped_column(String(64))


def _section_sqlalchemy(
    args: argparse.Namespace, primary: str, replica: str, ids: list[int]
) -> Any:

    rows = len(ids)
    config = router.RouterConfig(
        primary=router.NodeConfig(dsn=primary, name="primary"),
        replicas=[router.NodeConfig(dsn=replica, name="replica1")],
        pool=router.PoolConfig(min_size=1, max_size=4),
    )

    def sync_ops(factory: Any) -> dict[str, Callable[[int], Any]]:
        def get(i: int) -> Any:
            with factory() as s:
                return s.get(Item, i % rows + 1)

        def select_(i: int) -> Any:
            a = i % (rows - 10) + 1
            with factory() as s:
                return s.scalars(
                    select(Item).where(Item.id.between(a, a + 9)).order_by(Item.id)
                ).all()

        return {"get": get, "select": select_}

    def async_ops(factory: Any) -> dict[str, Callable[[int], Any]]:
        async def get(i: int) -> Any:
            async with factory() as s:
                return await s.get(Item, i % rows + 1)

        async def select_(i: int) -> Any:
            a = i % (rows - 10) + 1
            async with factory() as s:
                res = await s.scalars(
                    select(Item).where(Item.id.between(a, a + 9)).order_by(Item.id)
                )
                return res.all()

        return {"get": get, "select": select_}

    report: dict[str, Any] = {}
    lines: list[str] = []
    url = make_url(replica)
    plain_sync = sessionmaker(create_engine(url.set(drivername="postgresql+psycopg"), pool_size=4))
    routed_sync = rsa.sessionmaker(config)
    loop = asyncio.new_event_loop()
    plain_async_engine = create_async_engine(url.set(drivername="postgresql+asyncpg"), pool_size=4)
    plain_async = async_sessionmaker(plain_async_engine)
    routed_async = rsa.async_sessionmaker(config)
    try:
        sync_subjects = {"plain": sync_ops(plain_sync), "routed": sync_ops(routed_sync)}
        async_subjects = {"plain": async_ops(plain_async), "routed": async_ops(routed_async)}

        def run_sync(fn: Callable[[int], Any], seconds: float) -> int:
            return _thread_loop(fn, 1, seconds, ids)

        def run_async(fn: Callable[[int], Any], seconds: float) -> int:
            async def go() -> int:
                until = time.perf_counter() + seconds
                i, done = random.randrange(rows), 0
                while time.perf_counter() < until:
                    await fn(i)
                    i += 1
                    done += 1
                return done

            return loop.run_until_complete(go())

        for flavour, subjects, runner in (
            ("sync", sync_subjects, run_sync),
            ("async", async_subjects, run_async),
        ):
            for op in ("get", "select"):
                cells: dict[str, list[Cell]] = defaultdict(list)
                for rnd in range(args.rounds * 2):
                    order = ["plain", "routed"] if rnd % 2 == 0 else ["routed", "plain"]
                    for name in order:
                        fn = subjects[name][op]
                        runner(fn, args.warmup)
                        with _metered() as m:
                            m.append(runner(fn, args.duration))
                        cells[name].append(_cell(m))
                rows_ = {name: _summary(cells[name]) for name in ("plain", "routed")}
                paired = [
                    c.ops_per_s / b.ops_per_s
                    for c, b in zip(cells["routed"], cells["plain"], strict=True)
                ]
                cpu_delta = [
                    c.cpu_us - b.cpu_us
                    for c, b in zip(cells["routed"], cells["plain"], strict=True)
                ]
                report[f"{flavour}-{op}"] = {
                    "subjects": rows_,
                    "paired": paired,
                    "cpu_delta_us": cpu_delta,
                }
                lines += _print_table(
                    f"SQLAlchemy {flavour} {op}: routed/plain paired "
                    + ", ".join(f"{p:.2f}" for p in paired)
                    + "; routed CPU over plain per op, median"
                    + f" {statistics.median(cpu_delta):+.1f} µs",
                    rows_,
                    "plain",
                )
        # Deterministic: each piece of the routed session alone (best of batches), and the
        # Python function calls per operation by package (counts do not depend on load).
        breakdown = _sa_breakdown(routed_sync, plain_sync, args)
        report["breakdown"] = breakdown
        lines += ["", "#### routed sync session, piece by piece (process CPU µs, best of 5)", ""]
        lines += ["| piece | µs |", "|---|---:|"]
        lines += [f"| {label} | {us:.2f} |" for label, us in breakdown.items()]
        prof = _sa_cprofile(sync_subjects)
        report["calls_by_package"] = prof
        lines += ["", "#### Python function calls per operation, by package (cProfile counts)", ""]
        lines += ["| op | package | plain | routed | Δ |", "|---|---|---:|---:|---:|"]
        for op, by in prof.items():
            pkgs = sorted(
                set(by["plain"]) | set(by["routed"]),
                key=lambda p: -abs(by["routed"].get(p, 0) - by["plain"].get(p, 0)),
            )
            total_a, total_b = sum(by["plain"].values()), sum(by["routed"].values())
            lines.append(
                f"| {op} | **all** | {total_a:.0f} | {total_b:.0f} | {total_b - total_a:+.0f} |"
            )
            for pkg in pkgs[:8]:
                x, y = by["plain"].get(pkg, 0.0), by["routed"].get(pkg, 0.0)
                lines.append(f"| {op} | {pkg} | {x:.0f} | {y:.0f} | {y - x:+.0f} |")
        print("\n".join(lines[-40:]), flush=True)
    finally:
        routed_sync.close()
        plain_sync.kw["bind"].dispose() if "bind" in plain_sync.kw else None
        loop.run_until_complete(routed_async.aclose())
        loop.run_until_complete(plain_async_engine.dispose())
        loop.close()
    return report, lines


def _sa_breakdown(factory: Any, plain: Any, args: argparse.Namespace) -> dict[str, float]:

    routing = factory._routing
    texts = routing._texts
    n = max(500, args.batch // 10)

    def build(i: int) -> Any:
        return select(Item).where(Item.id.between(i, i + 9)).order_by(Item.id)

    def best(fn: Callable[[int], Any]) -> float:
        found = []
        for _ in range(5):
            gc.collect()
            t = time.process_time()
            for i in range(n):
                fn(i)
            found.append((time.process_time() - t) / n * 1e6)
        return float(min(found))

    with factory() as session:
        session.get(Item, 1)
        built = best(build)
        scope = Scope(routing.consistency, None, routing.root_scope)
        decision = routing.read(scope)
        sql = texts.of(build(1))
        assert sql is not None

        def get_bind(i: int) -> Any:
            session._router_read = None  # a new transaction's first read
            return session.get_bind(clause=build(i))

        out = {
            "build a 10-row select() (the application's, both sides pay)": built,
            "its _generate_cache_key() (memoized: SQLAlchemy reuses it to execute)": best(
                lambda i: build(i)._generate_cache_key()
            )
            - built,
            "StatementText.of: key + text lookup (over the key)": best(lambda i: texts.of(build(i)))
            - built,
            "routing.classify: of() + core classifier (over the key)": best(
                lambda i: routing.classify(build(i))
            )
            - built,
            "core classifier on the compiled text (cached)": best(
                lambda i: routing.engine.classify(sql)
            ),
            "routing.read: decision for a new session scope": best(
                lambda i: routing.read(Scope(routing.consistency, None, routing.root_scope))
            ),
            "routing.record: count + LAST_DECISION (in get_bind)": best(
                lambda i: routing.record(decision)
            ),
            "get_bind whole, first read of a transaction (over build)": best(get_bind) - built,
        }
    out["plain session construct + close, no statement"] = best(lambda i: plain().close())
    out["routed session construct + close, no statement"] = best(lambda i: factory().close())
    return out


def _sa_cprofile(subjects: dict[str, dict[str, Callable[[int], Any]]]) -> Any:
    out: dict[str, dict[str, dict[str, float]]] = {}
    n = 300
    for op in ("get", "select"):
        out[op] = {}
        for name in ("plain", "routed"):
            fn = subjects[name][op]
            for i in range(100):
                fn(i)
            prof = cProfile.Profile()
            prof.enable()
            for i in range(n):
                fn(i)
            prof.disable()
            out[op][name] = _calls_by_package(prof, n)
    return out


def _calls_by_package(prof: cProfile.Profile, n: int) -> dict[str, float]:
    """Function calls per operation by package: deterministic, unlike cProfile's times on a
    loaded machine."""
    st = pstats.Stats(prof)
    by: dict[str, float] = defaultdict(float)
    for (filename, _line, func), (_cc, nc, _tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        by[_package(filename, func)] += nc
    return {k: v / n for k, v in by.items()}


def _package(filename: str, func: str) -> str:
    m = re.search(r"site-packages/([^/]+)/", filename)
    if m:
        return m.group(1)
    m = re.search(r"src/(router/[^/]+)", filename)
    if m:
        return m.group(1)
    if filename == "~":
        return "builtins: " + func.rsplit(" ", maxsplit=1)[-1].strip("<>'")[:40]
    if "benchmarks" in filename:
        return "benchmark loop"
    return "stdlib"


# -- section: async -------------------------------------------------------------------------


def _section_async(args: argparse.Namespace, primary: str, replica: str, ids: list[int]) -> Any:

    async def no_reset(_conn: Any) -> None:
        return None

    async def main() -> Any:
        c = args.async_concurrency
        raw = await asyncpg.create_pool(replica, min_size=c, max_size=c, reset=no_reset)
        config = router.RouterConfig(
            primary=router.NodeConfig(dsn=primary, name="primary"),
            replicas=[router.NodeConfig(dsn=replica, name="replica1")],
            pool=router.PoolConfig(min_size=c, max_size=c),
        )
        r = await router.AsyncRouter(config).open()
        n = len(ids)

        async def loop_(fetchrow: Any, seconds: float) -> int:
            until = time.perf_counter() + seconds

            async def worker(i: int) -> int:
                done = 0
                while time.perf_counter() < until:
                    await fetchrow(AQUERY, ids[i % n])
                    i += 1
                    done += 1
                return done

            counts = await asyncio.gather(*(worker(random.randrange(n)) for _ in range(c)))
            return sum(counts)

        subjects = {"raw-noreset": (raw.fetchrow, ""), "routed": (r.fetchrow, "")}
        for ablation in ("nold", "notel", "nold+notel"):
            subjects[f"routed-{ablation}"] = (r.fetchrow, ablation)
        cells: dict[str, list[Cell]] = defaultdict(list)
        names = list(subjects)
        try:
            for rnd in range(args.rounds):
                shift = rnd % len(names)
                for name in names[shift:] + names[:shift]:
                    fn, ablation = subjects[name]
                    with _ablate(r, ablation):
                        await loop_(fn, args.warmup)
                        with _metered() as m:
                            m.append(await loop_(fn, args.duration))
                    cells[name].append(_cell(m))
            # cProfile of the routed loop: the router's own functions.
            prof = cProfile.Profile()
            prof.enable()
            calls = await loop_(r.fetchrow, args.duration)
            prof.disable()
            raw_prof = cProfile.Profile()
            raw_prof.enable()
            raw_calls = await loop_(raw.fetchrow, args.duration)
            raw_prof.disable()
        finally:
            await r.close()
            await raw.close()
        return cells, names, (prof, calls), (raw_prof, raw_calls)

    cells, names, (prof, calls), (raw_prof, raw_calls) = asyncio.run(main())
    rows = {name: _summary(cells[name]) for name in names}
    paired = [
        c.ops_per_s / b.ops_per_s
        for c, b in zip(cells["routed"], cells["raw-noreset"], strict=True)
    ]
    lines = _print_table(
        f"async fetchrow, c={args.async_concurrency}: routed/raw-noreset paired "
        + ", ".join(f"{p:.2f}" for p in paired),
        rows,
        "raw-noreset",
    )
    routed_pk = _calls_by_package(prof, calls)
    raw_pk = _calls_by_package(raw_prof, raw_calls)
    lines += [
        "",
        "#### async: Python function calls per fetchrow, by package (cProfile counts)",
        "",
    ]
    lines += ["| package | raw-noreset | routed | Δ |", "|---|---:|---:|---:|"]
    ta, tb = sum(raw_pk.values()), sum(routed_pk.values())
    lines.append(f"| **all** | {ta:.1f} | {tb:.1f} | {tb - ta:+.1f} |")
    for p in sorted(
        set(routed_pk) | set(raw_pk), key=lambda p: -(routed_pk.get(p, 0) - raw_pk.get(p, 0))
    )[:14]:
        a, b = raw_pk.get(p, 0.0), routed_pk.get(p, 0.0)
        lines.append(f"| {p} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
    top = _top_router_functions(prof, calls)
    lines += ["", "| router function (async, routed) | calls per fetchrow |", "|---|---:|"]
    lines += [f"| {f} | {nc:.2f} |" for f, nc in top]
    print("\n".join(lines[len(rows) + 4 :]), flush=True)
    return {
        "subjects": rows,
        "paired": paired,
        "by_package": {"routed": routed_pk, "raw": raw_pk},
    }, lines


def _top_router_functions(prof: cProfile.Profile, n: int) -> list[tuple[str, float]]:
    st = pstats.Stats(prof)
    found = []
    for (filename, line, func), (_cc, nc, _tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        if "/src/router/" in filename:
            short = filename.split("/src/")[1]
            found.append((f"{short}:{line} {func}", nc / n))
    found.sort(key=lambda x: -x[1])
    return found[:20]


# -- section: callgrind ---------------------------------------------------------------------

CALLGRIND_SUBJECTS = (
    "raw",
    "routed",
    "routed-nold",
    "routed-notel",
    "routed-nolock",
    "routed-rawpool",
    "classify",
    "decision",
    "nodepool",
    "getconn",
    "connection",
    "driver",
    "async-raw",
    "async-routed",
    "sa-sync-plain-get",
    "sa-sync-routed-get",
    "sa-sync-plain-select",
    "sa-sync-routed-select",
    "sa-async-plain-get",
    "sa-async-routed-get",
    "sa-async-plain-select",
    "sa-async-routed-select",
)


def _loop_child(subjects: list[str], n: int, primary: str, replica: str, threads: int) -> None:
    """Run *n* calls of each of *subjects* in turn, split over *threads* threads, each thread
    inside its own ``functools.reduce``: what callgrind collects, dumping at each exit."""
    ids = list(range(1, 1001))
    r = _sync_router(primary, replica, threads)
    raw = _raw_pool(replica, threads + ("driver" in subjects))
    pool = r._pools["replica1"]
    deadline = time.monotonic() + 60
    inner = pool._pool
    assert inner is not None, "the pool opened with the router"
    while time.monotonic() < deadline and inner.get_stats().get("pool_available", 0) < threads:
        time.sleep(0.05)

    def raw_call(i: int) -> Any:
        with raw.connection() as conn:
            return conn.execute(QUERY, (ids[i % 1000],)).fetchone()

    def routed_call(i: int) -> Any:
        return r.fetchrow(QUERY, (ids[i % 1000],))

    def nodepool(i: int) -> Any:
        pool.release(pool.acquire(), settled=True)

    def getconn(i: int) -> Any:
        raw.putconn(raw.getconn())

    def connection(i: int) -> Any:
        with raw.connection():
            pass

    held = raw.getconn() if "driver" in subjects else None

    def driver(i: int) -> Any:
        assert held is not None
        return held.execute(QUERY, (ids[i % 1000],)).fetchone()

    plain = {
        "raw": raw_call,
        "classify": lambda i: r.engine.classify(QUERY),
        "decision": lambda i: r.engine.read_decision(r._scope),
        "nodepool": nodepool,
        "getconn": getconn,
        "connection": connection,
        "driver": driver,
    }
    for subject in subjects:
        if subject.startswith("async-"):
            # ``async-routed/1``: the concurrency after the slash (8 without one).
            name, _, c = subject.partition("/")
            _async_loop_child(name, n, primary, replica, int(c or 8))
            continue
        if subject.startswith("sa-"):
            _sa_loop_child(subject, n, primary, replica)
            continue
        base, _, ablation = subject.partition("-")
        fn = routed_call if base == "routed" else plain[subject]
        with _ablate(r, ablation if base == "routed" else ""):
            for i in range(50):
                fn(i)
            each = n // threads
            barrier = threading.Barrier(threads)

            ts = [
                threading.Thread(target=_reduce_loop, args=(fn, t * each, each, barrier))
                for t in range(threads)
            ]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
    if held is not None:
        raw.putconn(held)
    r.close()
    raw.close()


def _reduce_loop(
    fn: Callable[[int], Any], offset: int, count: int, barrier: threading.Barrier
) -> None:
    barrier.wait()
    functools.reduce(lambda acc, i: (fn(i), acc)[1], range(offset, offset + count), 0)


def _async_loop_child(subject: str, n: int, primary: str, replica: str, c: int = 8) -> None:
    """*n* fetchrows by *c* tasks on one loop, the loop run inside functools.reduce
    (``--cg-subjects async-raw/1,async-routed/1``: *c* = 1; 8 without the slash)."""

    async def no_reset(_conn: Any) -> None:
        return None

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if subject == "async-raw":
        pool = loop.run_until_complete(
            asyncpg.create_pool(replica, min_size=c, max_size=c, reset=no_reset, timeout=60)
        )
        fetchrow, close = pool.fetchrow, pool.close
    else:
        config = router.RouterConfig(
            primary=router.NodeConfig(dsn=primary, name="primary"),
            replicas=[router.NodeConfig(dsn=replica, name="replica1")],
            pool=router.PoolConfig(min_size=c, max_size=c),
        )
        config = config.replace(
            monitor_timeout=30.0,
            # no monitor round inside the counted loop (a round costs per second, not per call)
            monitor_interval=60.0,
            pool=router.PoolConfig(min_size=c, max_size=c, connect_timeout=60),
        )
        r = loop.run_until_complete(router.AsyncRouter(config).open())
        fetchrow, close = r.fetchrow, r.close

    ablation = subject.removeprefix("async-routed").removeprefix("-")
    if subject.startswith("async-routed") and ablation:
        ablate = _ablate(r, ablation)
        ablate.__enter__()

    async def run(calls: int) -> None:
        async def worker(start: int) -> None:
            for i in range(start, start + calls // c):
                await fetchrow(AQUERY, i % 1000 + 1)

        await asyncio.gather(*(worker(k * 1000) for k in range(c)))

    loop.run_until_complete(run(8 * c))
    functools.reduce(lambda acc, _i: (loop.run_until_complete(run(n)), acc)[1], range(1), 0)
    loop.run_until_complete(close())
    loop.close()


def _sa_loop_child(subject: str, n: int, primary: str, replica: str) -> None:
    """*n* SQLAlchemy operations (``sa-{sync,async}-{plain,routed}-{get,select}``), a new
    session each, inside functools.reduce."""

    # A repeat of a subject in one run is named with a suffix: ``sa-sync-plain-get@2``.
    _, flavour, kind, op = subject.partition("@")[0].split("-")
    config = router.RouterConfig(
        primary=router.NodeConfig(dsn=primary, name="primary"),
        replicas=[router.NodeConfig(dsn=replica, name="replica1")],
        pool=router.PoolConfig(min_size=1, max_size=2, connect_timeout=60),
        monitor_timeout=30.0,
        # no monitor round inside the counted loop (a round costs per second, not per call)
        monitor_interval=60.0,
    )
    url = make_url(replica)

    def stmt(i: int) -> Any:
        a = i % 990 + 1
        return select(Item).where(Item.id.between(a, a + 9)).order_by(Item.id)

    if flavour == "sync":
        if kind == "plain":
            factory: Any = sessionmaker(create_engine(url.set(drivername="postgresql+psycopg")))
        else:
            factory = rsa.sessionmaker(config)
        if kind == "routedfixed":
            # The routed session with routing itself cut out: get_bind hands back the
            # replica's engine, so what is left is the session class, its events, its engines.
            engine = factory.engines["replica1"]
            factory.class_.get_bind = lambda self, *a, **kw: engine

        def one(i: int) -> Any:
            with factory() as s:
                if op == "get":
                    return s.get(Item, i % 1000 + 1)
                return s.scalars(stmt(i)).all()

        for i in range(100):
            one(i)
        functools.reduce(lambda acc, i: (one(i), acc)[1], range(n), 0)
        if kind != "plain":
            factory.close()
        return
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if kind == "plain":
        engine = create_async_engine(url.set(drivername="postgresql+asyncpg"))
        factory = async_sessionmaker(engine)
    else:
        factory = rsa.async_sessionmaker(config)

    async def run(first: int, count: int) -> None:
        for i in range(first, first + count):
            async with factory() as s:
                if op == "get":
                    await s.get(Item, i % 1000 + 1)
                else:
                    (await s.scalars(stmt(i))).all()

    loop.run_until_complete(run(0, 100))
    functools.reduce(lambda acc, _i: (loop.run_until_complete(run(100, n)), acc)[1], range(1), 0)
    loop.run_until_complete(factory.aclose() if kind == "routed" else engine.dispose())
    loop.close()


def _callgrind(
    subjects: list[str], n: int, primary: str, replica: str, threads: int
) -> dict[str, float]:
    """Instructions per call of each subject (one valgrind run for all of them)."""
    totals = callgrind_dumps(
        __file__,
        [
            "--loop-child", ",".join(subjects), "--n", str(n), "--primary", primary,
            "--replica", replica, "--threads", str(threads),
        ],
    )  # fmt: skip
    # One dump per thread of a sync subject; one per async subject (a single loop).
    single = ("async-", "sa-")
    per = [1 if s.startswith(single) else threads for s in subjects]
    if len(totals) != sum(per):
        raise SystemExit(f"callgrind: {len(totals)} dumps for {subjects} x {threads}")
    found: dict[str, float] = {}
    at = 0
    for subject, k in zip(subjects, per, strict=True):
        calls = n if subject.startswith(single) else n // threads * threads
        found[subject] = sum(totals[at : at + k]) / calls
        at += k
    return found


def _section_callgrind(args: argparse.Namespace, primary: str, replica: str, ids: list[int]) -> Any:
    result: dict[str, dict[int, float]] = defaultdict(dict)
    for threads in args.threads:
        subjects = [
            s
            for s in args.cg_subjects
            if threads == 1
            or not (s in ("classify", "decision", "driver") or s.startswith(("async-", "sa-")))
        ]
        found = _callgrind(subjects, args.cg_n * threads, primary, replica, threads)
        for subject, ir in found.items():
            result[subject][threads] = ir
            print(f"  callgrind {subject} x{threads}: {ir:,.0f} instructions/call", flush=True)
    lines = [
        "#### instructions per call (callgrind, client process only; threads run serialized)",
        "",
        "| subject | " + " | ".join(f"{t} thread(s)" for t in args.threads) + " |",
        "|---|" + "---:|" * len(args.threads),
    ]
    for subject, by in result.items():
        cells = " | ".join(f"{by[t]:,.0f}" if t in by else "" for t in args.threads)
        lines.append(f"| {subject} | {cells} |")
    print("\n".join(lines), flush=True)
    return result, lines


# -- main -----------------------------------------------------------------------------------

SECTIONS: dict[str, Callable[..., Any]] = {
    "sync": _section_sync,
    "layers": _section_layers,
    "sqlalchemy": _section_sqlalchemy,
    "async": _section_async,
    "callgrind": _section_callgrind,
}


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sections", default="sync,layers,sqlalchemy,async")
    p.add_argument("--duration", type=float, default=1.0, help="measured seconds per cell")
    p.add_argument("--warmup", type=float, default=0.2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", default="1,4,16")
    p.add_argument("--ablations", default=",".join(SYNC_ABLATIONS))
    p.add_argument("--async-concurrency", type=int, default=8)
    p.add_argument("--batch", type=int, default=20000, help="calls per no-I/O batch")
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--cg-n", type=int, default=300, help="callgrind: calls in the short loop")
    p.add_argument("--cg-subjects", default=",".join(CALLGRIND_SUBJECTS))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--markdown", type=Path, default=None, help="write the tables here")
    # internal: a callgrind child
    p.add_argument("--loop-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument(
        "--primary", default=None, help="a running cluster's primary DSN (else one is started)"
    )
    p.add_argument("--replica", default=None, help="and its replica's")
    args = p.parse_args()
    args.sections = [s for s in args.sections.split(",") if s]
    args.threads = [int(t) for t in args.threads.split(",") if t]
    args.ablations = [a for a in args.ablations.split(",") if a]
    args.cg_subjects = [s for s in args.cg_subjects.split(",") if s]
    return args


def main() -> None:
    args = _parse()
    if args.loop_child:
        subjects = args.loop_child.split(",")
        _loop_child(subjects, args.n, args.primary, args.replica, args.threads[0])
        return

    report: dict[str, Any] = {
        "argv": sys.argv,
        "python": sys.version.split()[0],
        "load_at_start": os.getloadavg(),
    }
    markdown: list[str] = [f"Command: `{' '.join(sys.argv)}`", ""]
    with contextlib.ExitStack() as stack:
        if args.primary and args.replica:  # a cluster started elsewhere (for repeated runs)
            primary, replica = args.primary, args.replica
        else:
            cluster = stack.enter_context(LocalCluster(replicas=1))
            primary, replica = cluster.primary.dsn, cluster.node("replica1").dsn
        ids = _prepare(primary, args.rows)
        _wait_replicated(replica, args.rows)
        for name in args.sections:
            started = time.monotonic()
            print(f"== {name} (load {os.getloadavg()[0]:.1f})", flush=True)
            report[name], lines = SECTIONS[name](args, primary, replica, ids)
            markdown += [*lines, "", f"({name}: {time.monotonic() - started:.0f} s)", ""]
    report["load_at_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    if args.markdown:
        args.markdown.write_text("\n".join(markdown) + "\n")


if __name__ == "__main__":
    main()
