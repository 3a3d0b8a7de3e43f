"""The subjects as clients the workers drive: each opens its pools, hands out *units* (what
one operation runs on: a router session, a SQLAlchemy session, a pool), and closes.

A unit offers the three statements of the workloads: ``point(key) -> (version, ident)``,
``list(category) -> ident``, ``write(key) -> version``, then ``close()``. Router subjects open a
session per unit (one request of an application), so read-your-writes ties a read-back to the
write before it in the same unit; baselines have no sessions. Async clients' units are awaited
on the event loop; threaded clients' (the sync ``Router``) are called from worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

import asyncpg
import psycopg_pool
from sqlalchemy import Column, Integer, MetaData, Table, Text, bindparam, func, select, update

from router import AsyncRouter, Router
from router.config import RouterConfig
from router.sqlalchemy import async_sessionmaker
from router_bench._measure import fallbacks
from router_bench._plan import BOUNDED_MAX_LAG_SECONDS, SubjectSpec
from router_bench._target import APPLICATION_NAME, Ident, Target
from router_bench._workloads import Statements, statements

if TYPE_CHECKING:
    from router_bench._pgpool import Pgpool

__all__ = [
    "AsyncUnit",
    "Client",
    "SyncUnit",
    "make_client",
    "router_config",
]

STATS_ATTEMPTS: Final = 5


class AsyncUnit(Protocol):
    async def point(self, key: int) -> tuple[int, Ident]: ...
    async def list(self, category: int) -> Ident | None: ...
    async def write(self, key: int) -> int: ...
    async def close(self) -> None: ...


class SyncUnit(Protocol):
    def point(self, key: int) -> tuple[int, Ident]: ...
    def list(self, category: int) -> Ident | None: ...
    def write(self, key: int) -> int: ...
    def close(self) -> None: ...


class Client(Protocol):
    spec: SubjectSpec
    #: True: units are sync, driven from threads; False: async, driven by tasks.
    threaded: bool

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    def unit(self) -> Any: ...  # AsyncUnit, or SyncUnit when threaded
    def counters(self) -> tuple[int, float]:
        """``(fallbacks, acquire wait seconds)`` so far (cumulative; zeros for baselines)."""
        ...

    def abort(self) -> None:
        """Close every connection at once, under operations that hang (asyncpg waits without
        end for a server to acknowledge a cancelled query: pgpool after a backend died)."""
        ...


def router_config(target: Target, spec: SubjectSpec, pool_size: int) -> RouterConfig:
    """The target's configuration for a router subject: its policy and consistency, a pool
    of *pool_size* connections per node (opened up front), and for ``bounded`` a lag budget
    of :data:`BOUNDED_MAX_LAG_SECONDS`; the subject's ``ryw_wait`` and ``pooler_mode``; with
    ``unprepared`` the drivers' statement caches off (``statement_cache_size=0``,
    ``prepare_threshold=None``: each router uses its own driver's)."""
    changes: dict[str, Any] = {
        "policy": spec.policy,
        "consistency": spec.consistency,
        "pool": target.base_config.pool.replace(min_size=pool_size, max_size=pool_size),
        "application_name": APPLICATION_NAME,
        "pooler_mode": spec.router_pooler_mode,
    }
    if spec.unprepared:
        changes["statement_cache_size"] = 0
        changes["prepare_threshold"] = None
    if spec.consistency == "bounded":
        changes["max_lag_seconds"] = BOUNDED_MAX_LAG_SECONDS
    if spec.ryw_wait:
        changes["ryw_wait"] = spec.ryw_wait
    return target.base_config.replace(**changes)


def _router_counters(spec: SubjectSpec, stats: Callable[[], dict[str, Any]]) -> tuple[int, float]:
    # A sync router's worker threads may add a key to its decision counter while stats()
    # copies it; try again (a new key is rare: the first decision of its kind).
    for attempt in range(STATS_ATTEMPTS):
        try:
            found = stats()
            break
        except RuntimeError:
            if attempt == STATS_ATTEMPTS - 1:
                raise
    waits = sum(float(n["acquire_wait_seconds"]) for n in found["nodes"].values())
    if spec.policy == "primary-only":
        # Its reads are on the primary by choice: none is a fallback, whatever reason the
        # router records when no replica would have qualified either (the session's floor).
        return 0, waits
    return fallbacks(found["decisions"], found["primary"]), waits


# -- units -------------------------------------------------------------------------------


class _AsyncpgUnit:
    """Statements on asyncpg-style objects (a router session, an asyncpg pool)."""

    __slots__ = ("_close", "_reads", "_sql", "_writes")

    def __init__(self, reads: Any, writes: Any, sql: Statements, close: Any = None) -> None:
        self._reads = reads
        self._writes = writes
        self._sql = sql
        self._close = close

    async def point(self, key: int) -> tuple[int, Ident]:
        row = await self._reads.fetchrow(self._sql.point, key)
        return row[0], (row[1], row[2])

    async def list(self, category: int) -> Ident | None:
        rows = await self._reads.fetch(self._sql.list, category)
        return (rows[0][2], rows[0][3]) if rows else None

    async def write(self, key: int) -> int:
        version: int = await self._writes.fetchval(self._sql.write, key)
        return version

    async def close(self) -> None:
        if self._close is not None:
            await self._close()


class _PsycopgUnit:
    """Statements on a sync router session (psycopg placeholders and rows)."""

    __slots__ = ("_session", "_sql")

    def __init__(self, session: Any, sql: Statements) -> None:
        self._session = session
        self._sql = sql

    def point(self, key: int) -> tuple[int, Ident]:
        row = self._session.fetchrow(self._sql.point, (key,))
        return row[0], (row[1], row[2])

    def list(self, category: int) -> Ident | None:
        rows = self._session.fetch(self._sql.list, (category,))
        return (rows[0][2], rows[0][3]) if rows else None

    def write(self, key: int) -> int:
        version: int = self._session.fetchval(self._sql.write, (key,))
        return version

    def close(self) -> None:
        self._session.close()


# -- router clients ----------------------------------------------------------------------


class AsyncRouterClient:
    threaded = False

    def __init__(self, spec: SubjectSpec, config: RouterConfig, sql: Statements) -> None:
        self.spec = spec
        self._config = config
        self._sql = sql
        self._router: AsyncRouter | None = None

    async def open(self) -> None:
        router = AsyncRouter(self._config)
        await router.open()
        self._router = router

    async def close(self) -> None:
        router, self._router = self._router, None
        if router is not None:
            await router.close()

    def unit(self) -> _AsyncpgUnit:
        assert self._router is not None
        session = self._router.session()
        return _AsyncpgUnit(session, session, self._sql, session.close)

    def counters(self) -> tuple[int, float]:
        assert self._router is not None
        return _router_counters(self.spec, self._router.stats)

    def abort(self) -> None:
        pass  # the router's close() is bounded: it gives up on a pool after a timeout


class SyncRouterClient:
    threaded = True

    def __init__(self, spec: SubjectSpec, config: RouterConfig, sql: Statements) -> None:
        self.spec = spec
        self._config = config
        self._sql = sql
        self._router: Router | None = None

    async def open(self) -> None:
        router = Router(self._config)
        await asyncio.to_thread(router.open)
        self._router = router

    async def close(self) -> None:
        router, self._router = self._router, None
        if router is not None:
            await asyncio.to_thread(router.close)

    def unit(self) -> _PsycopgUnit:
        assert self._router is not None
        return _PsycopgUnit(self._router.session(), self._sql)

    def counters(self) -> tuple[int, float]:
        assert self._router is not None
        return _router_counters(self.spec, self._router.stats)

    def abort(self) -> None:
        pass  # the router's close() is bounded: it gives up on a pool after a timeout


class SqlalchemyClient:
    """``router.sqlalchemy.async_sessionmaker``: a session per unit; reads are ``select``s
    (``session.execute``), writes ``update(...).returning`` then ``commit``."""

    threaded = False

    def __init__(self, spec: SubjectSpec, config: RouterConfig, table: str) -> None:
        self.spec = spec
        self._config = config
        items = Table(
            table,
            MetaData(),
            Column("id", Integer, primary_key=True),
            Column("version", Integer, nullable=False),
            Column("payload", Text),
            Column("category", Integer),
        )
        where = (
            func.host(func.inet_server_addr()).label("addr"),
            func.inet_server_port().label("port"),
        )
        self._point = select(items.c.version, *where).where(items.c.id == bindparam("key"))
        self._list = (
            select(items.c.id, items.c.version, *where)
            .where(items.c.category == bindparam("key"))
            .order_by(items.c.id)
            .limit(10)
        )
        self._write = (
            update(items)
            .where(items.c.id == bindparam("key"))
            .values(version=items.c.version + 1)
            .returning(items.c.version)
        )
        self._factory: Any = None

    async def open(self) -> None:
        factory = async_sessionmaker(self._config, expire_on_commit=False)
        try:
            # The router core opens at a factory's first statement: do it now, not timed.
            async with factory() as session:
                await session.execute(self._point, {"key": 1})
            # Each engine initializes its dialect (a few round trips) on its first connection:
            # that too belongs before the timed window, on every node.
            for engine in factory.engines.values():
                with contextlib.suppress(Exception):  # a node down now is the run's business
                    async with engine.connect() as conn:
                        await conn.execute(select(1))
        except BaseException:
            await factory.aclose()
            raise
        self._factory = factory

    async def close(self) -> None:
        factory, self._factory = self._factory, None
        if factory is not None:
            await factory.aclose()

    def unit(self) -> _SqlalchemyUnit:
        return _SqlalchemyUnit(self._factory(), self)

    def counters(self) -> tuple[int, float]:
        assert self._factory is not None
        return _router_counters(self.spec, self._factory.router.stats)

    def abort(self) -> None:
        pass  # see AsyncRouterClient.abort


class _SqlalchemyUnit:
    __slots__ = ("_client", "_session")

    def __init__(self, session: Any, client: SqlalchemyClient) -> None:
        self._session = session
        self._client = client

    async def point(self, key: int) -> tuple[int, Ident]:
        row = (await self._session.execute(self._client._point, {"key": key})).one()
        return row[0], (row[1], row[2])

    async def list(self, category: int) -> Ident | None:
        rows = (await self._session.execute(self._client._list, {"key": category})).all()
        return (rows[0][2], rows[0][3]) if rows else None

    async def write(self, key: int) -> int:
        result = await self._session.execute(self._client._write, {"key": key})
        version: int = result.scalar_one()
        await self._session.commit()
        return version

    async def close(self) -> None:
        await self._session.close()


# -- baselines ---------------------------------------------------------------------------


async def _pool(dsn: str | None, size: int, **connect: Any) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=size,
        max_size=size,
        server_settings={"application_name": APPLICATION_NAME},
        **connect,
    )
    return pool


class RawClient:
    """One asyncpg pool (asyncpg's defaults) on the primary, or on pgpool."""

    threaded = False

    def __init__(
        self, spec: SubjectSpec, sql: Statements, size: int, dsn: str | None, **connect: Any
    ) -> None:
        self.spec = spec
        self._sql = sql
        self._size = size
        self._dsn = dsn
        self._connect = connect
        self._pool: asyncpg.Pool | None = None
        self._unit: _AsyncpgUnit | None = None

    async def open(self) -> None:
        self._pool = await _pool(self._dsn, self._size, **self._connect)
        self._unit = _AsyncpgUnit(self._pool, self._pool, self._sql)

    async def close(self) -> None:
        # The pool stays reachable by abort() while it closes: a close that waits on a hung
        # connection (pgpool after a backend died) is ended by terminating the pool.
        if self._pool is not None:
            await self._pool.close()
        self._pool = None

    def unit(self) -> _AsyncpgUnit:
        assert self._unit is not None
        return self._unit

    def counters(self) -> tuple[int, float]:
        return 0, 0.0

    def abort(self) -> None:
        if self._pool is not None:
            self._pool.terminate()


class NaiveSplitClient:
    """A pool on the primary for writes; a pool per replica, taken in turn, for reads."""

    threaded = False

    def __init__(
        self, spec: SubjectSpec, sql: Statements, size: int, primary: str, replicas: list[str]
    ) -> None:
        self.spec = spec
        self._sql = sql
        self._size = size
        self._dsns = [primary, *replicas]
        self._units: list[_AsyncpgUnit] = []
        self._pools: list[asyncpg.Pool] = []
        self._turn = itertools.count()

    async def open(self) -> None:
        try:
            for dsn in self._dsns:
                self._pools.append(await _pool(dsn, self._size))
        except BaseException:
            await self.close()
            raise
        primary, *replicas = self._pools
        self._units = [_AsyncpgUnit(r, primary, self._sql) for r in replicas]

    async def close(self) -> None:
        # As RawClient.close: abort() can still reach the pools while they close.
        for pool in self._pools:
            await pool.close()
        self._pools = []

    def unit(self) -> _AsyncpgUnit:
        return self._units[next(self._turn) % len(self._units)]

    def counters(self) -> tuple[int, float]:
        return 0, 0.0

    def abort(self) -> None:
        for pool in self._pools:
            pool.terminate()


class _PsycopgPoolUnit:
    """Statements on a psycopg_pool: a connection per statement, as a plain app takes one."""

    __slots__ = ("_pool", "_sql")

    def __init__(self, pool: psycopg_pool.ConnectionPool[Any], sql: Statements) -> None:
        self._pool = pool
        self._sql = sql

    def point(self, key: int) -> tuple[int, Ident]:
        with self._pool.connection() as conn:
            row = conn.execute(self._sql.point, (key,)).fetchone()
        assert row is not None
        return row[0], (row[1], row[2])

    def list(self, category: int) -> Ident | None:
        with self._pool.connection() as conn:
            rows = conn.execute(self._sql.list, (category,)).fetchall()
        return (rows[0][2], rows[0][3]) if rows else None

    def write(self, key: int) -> int:
        with self._pool.connection() as conn:
            row = conn.execute(self._sql.write, (key,)).fetchone()
        assert row is not None
        version: int = row[0]
        return version

    def close(self) -> None:
        pass


class RawPsycopgClient:
    """One psycopg_pool on the primary in autocommit (the bare sync driver), psycopg's own
    ``prepare_threshold`` unless *prepare_threshold* is given (``None``: never prepare)."""

    threaded = True

    def __init__(
        self, spec: SubjectSpec, sql: Statements, size: int, conninfo: str, **connect: Any
    ) -> None:
        self.spec = spec
        self._sql = sql
        self._size = size
        self._conninfo = conninfo
        self._connect = connect
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._unit: _PsycopgPoolUnit | None = None

    async def open(self) -> None:
        pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            self._conninfo,
            min_size=self._size,
            max_size=self._size,
            open=False,
            kwargs={"autocommit": True, "application_name": APPLICATION_NAME, **self._connect},
            name=self.spec.name,
        )
        try:
            await asyncio.to_thread(pool.open, wait=True, timeout=30.0)
        except BaseException:
            await asyncio.to_thread(pool.close)
            raise
        self._pool = pool
        self._unit = _PsycopgPoolUnit(pool, self._sql)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.close)

    def unit(self) -> _PsycopgPoolUnit:
        assert self._unit is not None
        return self._unit

    def counters(self) -> tuple[int, float]:
        return 0, 0.0

    def abort(self) -> None:
        pass  # psycopg_pool's close() is bounded (its timeout); workers are threads


def make_client(
    spec: SubjectSpec,
    target: Target,
    table: str,
    pool_size: int,
    pgpool: Pgpool | None = None,
) -> Client:
    """A closed client for *spec* on *target* (``pgpool`` for the pgpool baseline)."""
    sql = statements(table)
    if spec.api == "async":
        return AsyncRouterClient(spec, router_config(target, spec, pool_size), sql)
    if spec.api == "sync":
        psql = statements(table, "psycopg")
        return SyncRouterClient(spec, router_config(target, spec, pool_size), psql)
    if spec.api == "sqlalchemy":
        return SqlalchemyClient(spec, router_config(target, spec, pool_size), table)
    if spec.name == "raw-asyncpg":
        return RawClient(spec, sql, pool_size, target.primary.dsn)
    if spec.name == "raw-asyncpg+unprepared":
        return RawClient(spec, sql, pool_size, target.primary.dsn, statement_cache_size=0)
    if spec.name in ("raw-psycopg", "raw-psycopg+unprepared"):
        psql = statements(table, "psycopg")
        conninfo = target.primary.config.connect_dsn
        if spec.unprepared:
            return RawPsycopgClient(spec, psql, pool_size, conninfo, prepare_threshold=None)
        return RawPsycopgClient(spec, psql, pool_size, conninfo)
    if spec.name == "naive-split":
        replicas = [r.dsn for r in target.replicas]
        return NaiveSplitClient(spec, sql, pool_size, target.primary.dsn, replicas)
    if spec.name == "pgpool":
        if pgpool is None:
            raise ValueError("the pgpool subject needs a started Pgpool")
        return RawClient(spec, sql, pool_size, None, **pgpool.connect_kwargs())
    raise ValueError(f"unknown subject {spec.name!r}")
