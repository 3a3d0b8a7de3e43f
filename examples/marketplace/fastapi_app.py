"""The marketplace on FastAPI + SQLAlchemy async, reads on replicas, read-your-writes across
requests and worker processes with :class:`router.web.ASGIMiddleware`.

Run it (after ``router cluster up``): ``python examples/marketplace/run.py``. Environment:
``ROUTER_URL`` (and any ``ROUTER_*`` option, see ``RouterConfig.from_env``), ``MARKET_SECRET``
(the cookie's signing secret), ``MARKET_MODE`` (see :mod:`baselines`; for the benchmark).

Every JSON answer says which server ran its main query (``port``: ``inet_server_port()``) and
which worker process served it (``pid``), so you can watch reads land on replicas.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import func, select, update

from router import RouterConfig
from router.sqlalchemy import RoutedAsyncSession, async_sessionmaker
from router.web import ASGIMiddleware

try:  # run as a package (tests, benchmark) or from this directory (uvicorn --app-dir)
    from . import baselines
    from .models import LoginSession, Notification, Project
except ImportError:  # pragma: no cover
    import baselines  # type: ignore[import-not-found,no-redef]
    from models import LoginSession, Notification, Project  # type: ignore[import-not-found,no-redef]

MODE = os.environ.get("MARKET_MODE", "router")
if MODE not in baselines.MODES:
    raise SystemExit(f"MARKET_MODE must be one of {', '.join(baselines.MODES)}; got {MODE!r}")

Session = async_sessionmaker(RouterConfig.from_env(), expire_on_commit=False)
PID = os.getpid()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Open the router before the first request: it learns the cluster (so that a position of
    # another cluster is told apart from the first request on) and the nodes' roles.
    async with Session() as session:
        await session.execute(select(1))
    yield
    await Session.aclose()


class PidHeader:
    """``X-Pid`` on every answer, redirects included: which worker process served it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_pid(message: Any) -> None:
            if message["type"] == "http.response.start":
                pid = (b"x-pid", str(PID).encode())
                message = {**message, "headers": [*message.get("headers", ()), pid]}
            await send(message)

        await self.app(scope, receive, send_pid if scope["type"] == "http" else send)


app = FastAPI(lifespan=lifespan)
app.add_middleware(PidHeader)
if MODE == "router":
    # The one line an app needs: the secret signs the position so clients cannot forge it.
    app.add_middleware(ASGIMiddleware, secret=os.environ["MARKET_SECRET"])
elif MODE in baselines.WINDOWS:
    app.add_middleware(baselines.StickyASGI, window=baselines.WINDOWS[MODE])
elif MODE == "primary":
    app.add_middleware(baselines.AllPrimaryASGI)


async def db() -> AsyncIterator[RoutedAsyncSession]:
    """One session per request; it shares the request's floor (router.web)."""
    async with Session(primary=baselines.PRIMARY.get()) as session:
        yield session


DB = Annotated[RoutedAsyncSession, Depends(db)]


def user_id(request: Request) -> int:
    raw = request.headers.get("x-user") or request.cookies.get("uid") or "1"
    return int(raw) if raw.isdigit() else 1


User = Annotated[int, Depends(user_id)]


def answer(port: int, **data: Any) -> dict[str, Any]:
    return {**data, "port": port, "pid": PID}


@app.get("/projects")
async def projects(session: DB) -> dict[str, Any]:
    rows = (
        await session.execute(
            select(Project.id, Project.title, func.inet_server_port())
            .order_by(Project.id.desc())
            .limit(20)
        )
    ).all()
    port = rows[0][2] if rows else 0
    return answer(port, projects=[{"id": r[0], "title": r[1]} for r in rows])


@app.get("/projects/{project_id}")
async def project(project_id: int, session: DB) -> Response:
    # The port comes back even when the project does not (yet) exist where the read ran.
    port, title, owner = (
        await session.execute(
            select(
                func.inet_server_port(),
                select(Project.title).where(Project.id == project_id).scalar_subquery(),
                select(Project.owner_id).where(Project.id == project_id).scalar_subquery(),
            )
        )
    ).one()
    if title is None:
        return JSONResponse(answer(port, detail="no such project"), status_code=404)
    return JSONResponse(answer(port, id=project_id, title=title, owner=owner))


@app.post("/projects")
async def create_project(session: DB, user: User, title: Annotated[str, Form()]) -> Response:
    project = Project(owner_id=user, title=title, score=0)
    session.add(project)
    await session.commit()
    return RedirectResponse(f"/projects/{project.id}", status_code=303)


@app.get("/rankings")
async def rankings(session: DB) -> dict[str, Any]:
    rows = (
        await session.execute(
            select(Project.id, Project.score, func.inet_server_port())
            .order_by(Project.score.desc(), Project.id)
            .limit(10)
        )
    ).all()
    return answer(rows[0][2] if rows else 0, top=[{"id": r[0], "score": r[1]} for r in rows])


@app.get("/notifications")
async def notifications(session: DB, user: User) -> dict[str, Any]:
    count, first, port = (
        await session.execute(
            select(func.count(), func.min(Notification.id), func.inet_server_port()).where(
                Notification.user_id == user, Notification.read.is_(False)
            )
        )
    ).one()
    return answer(port, unread=count, first_unread=first)


@app.post("/notifications/{notification_id}/read")
async def mark_read(notification_id: int, session: DB, user: User) -> Response:
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.user_id == user)
        .values(read=True)
    )
    await session.commit()
    return RedirectResponse("/notifications", status_code=303)


@app.post("/login")
async def login(session: DB, user: User) -> Response:
    sid = secrets.token_urlsafe(24)
    session.add(LoginSession(id=sid, user_id=user))
    await session.commit()
    response = RedirectResponse("/session", status_code=303)
    response.set_cookie("sid", sid, httponly=True, samesite="lax")
    response.set_cookie("uid", str(user), httponly=True, samesite="lax")
    return response


@app.get("/session")
async def validate_session(request: Request, session: DB) -> dict[str, Any]:
    """Session validation: a login that just happened must be found (it used to be kept on
    the primary for exactly that reason)."""
    sid = request.cookies.get("sid", "")
    row = (
        await session.execute(
            select(LoginSession.user_id, func.inet_server_port()).where(LoginSession.id == sid)
        )
    ).first()
    if row is None:
        raise HTTPException(401, "not logged in")
    return answer(row[1], user=row[0])


@app.get("/which")
async def which(session: DB) -> dict[str, Any]:
    """Where a plain read of this request goes, and the position the client sent."""
    port = (await session.execute(select(func.inet_server_port()))).scalar_one()
    return answer(port)
