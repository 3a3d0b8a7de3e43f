"""The request scope from the inside, on the real cluster: raw router sessions (async and
sync, in the request's task and in the threads FastAPI runs plain ``def`` endpoints in) share
the request's floor, across two "processes" (two apps, each with its own router, one secret);
and the job helper carries a request's commit into a worker.

The apps run in this process through httpx's ASGI transport: what is under test here is the
scope and the routers, not the server (``test_web.py`` covers real servers and workers).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from functools import partial
from itertools import count
from typing import TypedDict

import httpx
import psycopg
import pytest
import pytest_asyncio
from examples.marketplace.serving import SECRET
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from router import AsyncRouter, Router
from router.testing import LocalCluster
from router.testing.pytest_plugin import ClusterDatabase
from router.web import ASGIMiddleware, WSGIMiddleware, job_token, resume
from tests.support import wait_until

pytestmark = pytest.mark.integration

DELAY = 0.5
_keys = count(1)


class _Job(TypedDict):
    """A background job's payload, as a queue would carry it: a key and the request's
    position (``job_token()``)."""

    k: int
    router_position: str | None


@pytest.fixture(scope="module")
def table(cluster_db: ClusterDatabase) -> str:
    with Router(cluster_db.router_config()) as db:
        db.execute("CREATE TABLE IF NOT EXISTS web_kv (k int PRIMARY KEY, v int)")
    for dsn in cluster_db.replica_dsns:
        wait_until(partial(_has_table, dsn), timeout=30, what="web_kv on the replicas")
    return "web_kv"


def _has_table(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT to_regclass('public.web_kv') IS NOT NULL").fetchone()
    return bool(row and row[0])


@pytest.fixture
def delayed(cluster: LocalCluster, table: str) -> LocalCluster:
    for replica in cluster.replicas:
        cluster.set_apply_delay(replica, DELAY)
    return cluster


def make_app(async_router: AsyncRouter, sync_router: Router) -> FastAPI:
    """One 'worker': an app with its own routers."""
    app = FastAPI()
    app.add_middleware(ASGIMiddleware, secret=SECRET)

    @app.post("/kv/{k}")
    async def put(k: int) -> RedirectResponse:
        async with async_router.session() as session:
            await session.execute("INSERT INTO web_kv VALUES ($1, 1)", k)
        return RedirectResponse(f"/kv/{k}", status_code=303)

    @app.get("/kv/{k}")
    async def get(k: int) -> dict[str, object]:
        async with async_router.session() as session:
            row = await session.fetchrow("SELECT v, inet_server_port() FROM web_kv WHERE k = $1", k)
        return {"found": row is not None, "port": row[1] if row else None}

    @app.post("/sync/kv/{k}")
    def put_sync(k: int) -> RedirectResponse:  # runs in a worker thread of the threadpool
        with sync_router.session() as session:
            session.execute("INSERT INTO web_kv VALUES (%s, 1)", (k,))
        return RedirectResponse(f"/sync/kv/{k}", status_code=303)

    @app.get("/sync/kv/{k}")
    def get_sync(k: int) -> dict[str, object]:
        with sync_router.session() as session:
            row = session.fetchrow("SELECT v, inet_server_port() FROM web_kv WHERE k = %s", (k,))
        return {"found": row is not None, "port": row[1] if row else None}

    return app


@pytest_asyncio.fixture
async def workers(
    cluster_db: ClusterDatabase, table: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    config = cluster_db.router_config()
    async with AsyncRouter(config) as a1, AsyncRouter(config) as a2:
        with Router(config) as s1, Router(config) as s2:
            one = httpx.AsyncClient(
                transport=httpx.ASGITransport(make_app(a1, s1)), base_url="http://one"
            )
            two = httpx.AsyncClient(
                transport=httpx.ASGITransport(make_app(a2, s2)), base_url="http://two"
            )
            async with one, two:
                yield one, two


def _carry(response: httpx.Response) -> dict[str, str]:
    cookie = response.headers["set-cookie"].split(";")[0]
    assert cookie.startswith("router_position=r1.")
    return {"Cookie": cookie}


@pytest.mark.asyncio
@pytest.mark.parametrize("flavour", ["", "/sync"])
async def test_raw_sessions_share_the_request_floor_across_workers(
    workers: tuple[httpx.AsyncClient, httpx.AsyncClient], delayed: LocalCluster, flavour: str
) -> None:
    one, two = workers
    primary = delayed.primary.port
    for _ in range(3):
        k = next(_keys)
        posted = await one.post(f"{flavour}/kv/{k}")
        assert posted.status_code == 303
        carried = await two.get(posted.headers["location"], headers=_carry(posted))
        assert carried.json() == {"found": True, "port": primary}
        # The control: the other worker without the position reads a lagging replica.
        bare = await two.get(posted.headers["location"])
        assert bare.json()["found"] is False


def test_the_wsgi_middleware_shares_the_floor_across_workers(
    cluster_db: ClusterDatabase, delayed: LocalCluster
) -> None:
    """A bare WSGI app (no framework) whose handler writes with the sync router; a second
    'process' with its own router reads with the position; both called as a server would."""
    config = cluster_db.router_config()
    with Router(config) as r1, Router(config) as r2:

        def writer(environ: dict[str, object], start_response: object) -> list[bytes]:
            k = int(str(environ["PATH_INFO"]).rsplit("/", 1)[1])
            with r1.session() as session:
                session.execute("INSERT INTO web_kv VALUES (%s, 2)", (k,))
            start_response("303 See Other", [("Location", f"/kv/{k}")])  # type: ignore[operator]
            return [b""]

        def reader(environ: dict[str, object], start_response: object) -> list[bytes]:
            k = int(str(environ["PATH_INFO"]).rsplit("/", 1)[1])
            with r2.session() as session:
                found = session.fetchval("SELECT v FROM web_kv WHERE k = %s", (k,))
            start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
            return [str(found).encode()]

        one, two = WSGIMiddleware(writer, secret=SECRET), WSGIMiddleware(reader, secret=SECRET)
        with (
            httpx.Client(transport=httpx.WSGITransport(one), base_url="http://one") as c1,
            httpx.Client(transport=httpx.WSGITransport(two), base_url="http://two") as c2,
        ):
            for _ in range(3):
                posted = c1.post(f"/kv/{next(_keys)}")
                assert posted.status_code == 303
                where = posted.headers["location"]
                assert c2.get(where, headers=_carry(posted)).text == "2"
                assert c2.get(where).text == "None"  # the control: no position, stale


@pytest.mark.asyncio
async def test_a_job_resumes_the_request_position_in_a_worker(
    cluster_db: ClusterDatabase, delayed: LocalCluster
) -> None:
    config = cluster_db.router_config()
    primary = delayed.primary.port
    async with AsyncRouter(config) as web, AsyncRouter(config) as worker:
        k = next(_keys)
        with resume(None):  # what the middleware does for a request
            async with web.session() as session:
                await session.execute("INSERT INTO web_kv VALUES ($1, 3)", k)
            payload = _Job(k=k, router_position=job_token())
        assert payload["router_position"] is not None

        async def job(position: str | None) -> tuple[object, object]:
            with resume(position):
                async with worker.session() as session:
                    row = await session.fetchrow(
                        "SELECT v, inet_server_port() FROM web_kv WHERE k = $1", payload["k"]
                    )
            return (row[0], row[1]) if row else (None, None)

        assert await asyncio.create_task(job(payload["router_position"])) == (3, primary)
        # The control: the same job without the position reads a replica that lacks the row.
        assert (await job(None))[0] is None


def test_a_sync_job_resumes_too(cluster_db: ClusterDatabase, delayed: LocalCluster) -> None:
    config = cluster_db.router_config()
    with Router(config) as web, Router(config) as worker:
        k = next(_keys)
        with resume(None):
            with web.session() as session:
                session.execute("INSERT INTO web_kv VALUES (%s, 4)", (k,))
            position = job_token()
        results: list[object] = []

        def job() -> None:
            with resume(position), worker.session() as session:
                results.append(session.fetchval("SELECT v FROM web_kv WHERE k = %s", (k,)))

        thread = threading.Thread(target=job)
        thread.start()
        thread.join()
        assert results == [4]


# -- a unit of work's second session sees its first session's commit ---------------------------

READ_BACK = "SELECT v, inet_server_port() FROM web_kv WHERE k = {}"


@pytest.mark.asyncio
@pytest.mark.parametrize("front", ["async", "sync", "sqlalchemy", "sqlalchemy-async"])
async def test_a_later_session_of_the_same_unit_reads_its_earlier_commit(
    cluster_db: ClusterDatabase, delayed: LocalCluster, front: str
) -> None:
    """Inside one request or job, session 2 (opened after session 1 committed) reads at or
    past that commit: on the primary while the replicas lag, in every front door. The
    control: the same read in a unit of its own misses the row on a lagging replica."""
    from sqlalchemy import text

    from router.sqlalchemy import async_sessionmaker, sessionmaker

    config = cluster_db.router_config()
    primary = delayed.primary.port
    async with AsyncRouter(config) as arouter:
        with Router(config) as srouter:
            factory = sessionmaker(config)
            afactory = async_sessionmaker(config)

            async def write(k: int) -> None:
                if front == "async":
                    async with arouter.session() as s:
                        await s.execute("INSERT INTO web_kv VALUES ($1, 5)", k)
                elif front == "sync":
                    with srouter.session() as s:
                        s.execute("INSERT INTO web_kv VALUES (%s, 5)", (k,))
                elif front == "sqlalchemy":
                    with factory() as s:
                        s.execute(text("INSERT INTO web_kv VALUES (:k, 5)"), {"k": k})
                        s.commit()
                else:
                    async with afactory() as s:
                        await s.execute(text("INSERT INTO web_kv VALUES (:k, 5)"), {"k": k})
                        await s.commit()

            async def read(k: int) -> tuple[object, object]:
                query = READ_BACK.format(int(k))
                if front == "async":
                    async with arouter.session() as s:
                        row = await s.fetchrow(query)
                        return (row[0], row[1]) if row else (None, None)
                if front == "sync":
                    with srouter.session() as s:
                        row = s.fetchrow(query)
                        return (row[0], row[1]) if row else (None, None)
                if front == "sqlalchemy":
                    with factory() as s:
                        found = s.execute(text(query)).first()
                        return (found[0], found[1]) if found else (None, None)
                async with afactory() as s:
                    found = (await s.execute(text(query))).first()
                    return (found[0], found[1]) if found else (None, None)

            try:
                for _ in range(3):
                    k = next(_keys)
                    with resume(None):
                        await write(k)
                        assert await read(k) == (5, primary)
                    k = next(_keys)
                    with resume(None):
                        await write(k)
                    with resume(None):
                        assert (await read(k))[0] is None  # the control
            finally:
                factory.close()
                await afactory.aclose()
