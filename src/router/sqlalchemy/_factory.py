"""The session factories: one engine per node, one router core, sessions that route.

No I/O when a factory is made: the core (its monitor, its function catalog) opens at the
first statement of any of its sessions. ``close()`` / ``aclose()`` (or the context manager)
disposes of the engines and closes the core.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import async_sessionmaker as sa_async_sessionmaker
from sqlalchemy.orm import sessionmaker as sa_sessionmaker

from router import _fork
from router._async._router import AsyncRouter
from router._sync._router import Router
from router.config import RouterConfig
from router.sqlalchemy._engines import (
    async_node_engine,
    discard_session_state,
    sync_node_engine,
    watch_errors,
)
from router.sqlalchemy._routing import Routing
from router.sqlalchemy._session import RoutedAsyncSession, RoutedSession

try:  # SQLAlchemy >= 2.1; the old name is deprecated there
    from sqlalchemy.util import await_
except ImportError:  # pragma: no cover - SQLAlchemy 2.0
    from sqlalchemy.util import await_only as await_

__all__ = ["RoutedAsyncSessionmaker", "RoutedSessionmaker", "async_sessionmaker", "sessionmaker"]


def _core_config(config: RouterConfig) -> RouterConfig:
    # The engines hold the connections the sessions use; the core's own pools serve only
    # its catalog query, so they keep no idle connections.
    return config.replace(pool=config.pool.replace(min_size=0))


def _session_class(base: type[RoutedSession], routing: Routing) -> type[RoutedSession]:
    return type(base.__name__, (base,), {"_router_routing": routing, "__module__": __name__})


def _check_subclass(name: str, given: object, base: type) -> None:
    if not (isinstance(given, type) and issubclass(given, base)):
        raise TypeError(f"{name} must be a subclass of {base.__name__}; got {given!r}")


class RoutedSessionmaker(sa_sessionmaker[RoutedSession]):
    """A :class:`~sqlalchemy.orm.sessionmaker` of :class:`RoutedSession`, over a sync
    router core (psycopg 3) and a ``postgresql+psycopg`` engine per node.

    Call it like any session maker, with :class:`RoutedSession`'s keywords too
    (``factory(readonly=True)``, ``factory(after=token)``). :attr:`router` is the core
    (``stats()``, ``explain()``), :attr:`engines` the engines by node name.
    """

    def __init__(
        self,
        config: RouterConfig,
        *,
        class_: type[RoutedSession] = RoutedSession,
        engine_options: Mapping[str, Any] | None = None,
        **session_kw: Any,
    ) -> None:
        _check_subclass("class_", class_, RoutedSession)
        core = Router(_core_config(config))
        role_of = core.engine.role_of
        engines = {
            node.name: sync_node_engine(node, config, role_of, engine_options)
            for node in config.all_nodes
        }
        for name, engine in engines.items():
            watch_errors(engine, name, core.engine)
            discard_session_state(engine, core.engine, asyncpg=False)
        self._core = core
        self._engines = engines
        self._opened = False
        self._open_lock = threading.Lock()
        self._routing = Routing(core.engine, engines, open_core=self._open_core)
        super().__init__(class_=_session_class(class_, self._routing), **session_kw)

    @property
    def router(self) -> Router:
        return self._core

    @property
    def engines(self) -> dict[str, Engine]:
        return dict(self._engines)

    def _open_core(self) -> None:
        with self._open_lock:
            if not self._opened:
                self._core.open()
                self._opened = True
                _fork.on_fork(self)

    def _after_fork(self) -> None:
        """In the child of a fork (``gunicorn --preload``, Celery's prefork pool): each
        engine gets a new pool of its own, the parent's connections left to the parent,
        neither used nor closed here (SQLAlchemy's ``dispose(close=False)``). The core's
        pools and monitor redo themselves."""
        for engine in self._engines.values():
            _fork.abandon(engine.pool)
            engine.dispose(close=False)
        self._open_lock = threading.Lock()
        self._routing.after_fork()

    def close(self) -> None:
        """Dispose of the engines and close the core (idempotent)."""
        _fork.forget(self)
        self._routing.close()
        for engine in self._engines.values():
            engine.dispose()
        self._core.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RoutedAsyncSessionmaker(sa_async_sessionmaker[RoutedAsyncSession]):
    """An :class:`~sqlalchemy.ext.asyncio.async_sessionmaker` of
    :class:`RoutedAsyncSession`, over an :class:`~router.AsyncRouter` core (asyncpg) and a
    ``postgresql+asyncpg`` engine per node. Its sessions route through the same
    :class:`RoutedSession` (as their ``sync_session_class``)."""

    def __init__(
        self,
        config: RouterConfig,
        *,
        class_: type[RoutedAsyncSession] = RoutedAsyncSession,
        sync_session_class: type[RoutedSession] = RoutedSession,
        engine_options: Mapping[str, Any] | None = None,
        **session_kw: Any,
    ) -> None:
        _check_subclass("class_", class_, RoutedAsyncSession)
        _check_subclass("sync_session_class", sync_session_class, RoutedSession)
        core = AsyncRouter(_core_config(config))
        role_of = core.engine.role_of
        engines = {
            node.name: async_node_engine(node, config, role_of, engine_options)
            for node in config.all_nodes
        }
        for name, engine in engines.items():
            watch_errors(engine.sync_engine, name, core.engine)
            discard_session_state(engine.sync_engine, core.engine, asyncpg=True)
        self._core = core
        self._engines = engines
        self._opened = False
        self._open_lock: asyncio.Lock | None = None
        sync_engines = {name: engine.sync_engine for name, engine in engines.items()}
        self._routing = Routing(core.engine, sync_engines, open_core=self._open_core)
        super().__init__(
            class_=class_,
            sync_session_class=_session_class(sync_session_class, self._routing),
            **session_kw,
        )

    @property
    def router(self) -> AsyncRouter:
        return self._core

    @property
    def engines(self) -> dict[str, AsyncEngine]:
        return dict(self._engines)

    def _open_core(self) -> None:
        # Runs inside SQLAlchemy's greenlet (from get_bind): await the core's open() there.
        await_(self._open_core_async())

    async def _open_core_async(self) -> None:
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                await self._core.open()
                self._opened = True
                _fork.on_fork(self)

    def _after_fork(self) -> None:
        """In the child of a fork: the engines' asyncpg connections and the core's loop are
        the parent's and do not survive it; the next statement says so (the core's pools
        refuse too), and nothing of the parent's is used or closed here."""
        self._routing.after_fork(
            "this async session factory was opened in the parent of this forked process: it"
            " does not survive a fork (asyncio's loop and the connections are the parent's)."
            " Make one in each worker process, e.g. in the application's lifespan"
        )

    async def aclose(self) -> None:
        """Dispose of the engines and close the core (idempotent)."""
        _fork.forget(self)
        self._routing.close()
        for engine in self._engines.values():
            await engine.dispose()
        await self._core.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def sessionmaker(config: RouterConfig, **kw: Any) -> RoutedSessionmaker:
    """A factory of sync :class:`RoutedSession` for the cluster of *config* (psycopg 3).

    Keywords: :class:`~sqlalchemy.orm.Session` arguments (``expire_on_commit``, ...) and
    :class:`RoutedSession`'s own (``readonly``, ``primary``, ``consistency``), the defaults
    of every session; ``class_``, a :class:`RoutedSession` subclass to make; and
    ``engine_options``, for each node's ``create_engine`` (over the pool settings taken
    from ``config.pool``). No I/O until the first statement.
    """
    return RoutedSessionmaker(config, **kw)


def async_sessionmaker(config: RouterConfig, **kw: Any) -> RoutedAsyncSessionmaker:
    """A factory of :class:`RoutedAsyncSession` for the cluster of *config* (asyncpg); see
    :func:`sessionmaker`. ``class_`` is a :class:`RoutedAsyncSession` subclass,
    ``sync_session_class`` a :class:`RoutedSession` subclass."""
    return RoutedAsyncSessionmaker(config, **kw)
