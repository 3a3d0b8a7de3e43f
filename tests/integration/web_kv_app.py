"""A Starlette app for test_web_lost_position.py: ``POST /kv/{v}`` writes one row, ``GET /kv``
reads it back with the port of the server that answered. ``ROUTER_URL`` names the cluster;
``APP_SECRET`` signs the position cookie."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import router
from router.web import ASGIMiddleware

db = router.AsyncRouter(router.RouterConfig.from_env())


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with db:
        yield


async def write(request: Request) -> JSONResponse:
    async with db.session() as s:
        await s.execute("UPDATE kv SET v = $1 WHERE k = 1", int(request.path_params["v"]))
    return JSONResponse({"ok": True})


async def read(request: Request) -> JSONResponse:
    async with db.session() as s:
        v = await s.fetchval("SELECT v FROM kv WHERE k = 1")
        port = await s.fetchval("SELECT inet_server_port()")
    return JSONResponse({"v": v, "port": port})


app = Starlette(
    routes=[Route("/kv/{v}", write, methods=["POST"]), Route("/kv", read)],
    middleware=[Middleware(ASGIMiddleware, secret=os.environ["APP_SECRET"])],
    lifespan=lifespan,
)
