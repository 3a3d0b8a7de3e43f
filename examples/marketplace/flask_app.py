"""The marketplace's notifications and projects on Flask + SQLAlchemy (sync, psycopg), with
:class:`router.web.WSGIMiddleware`. Run it under gunicorn:
``gunicorn -w 3 'examples.marketplace.flask_app:app'`` (environment as in
:mod:`fastapi_app`)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from flask import Flask, abort, g, redirect, request
from sqlalchemy import func, select, update

from router import RouterConfig
from router.sqlalchemy import RoutedSession, sessionmaker
from router.web import WSGIMiddleware

try:
    from . import baselines
    from .models import LoginSession, Notification, Project
except ImportError:  # pragma: no cover
    import baselines  # type: ignore[import-not-found,no-redef]
    from models import LoginSession, Notification, Project  # type: ignore[import-not-found,no-redef]

MODE = os.environ.get("MARKET_MODE", "router")
if MODE not in baselines.MODES:
    raise SystemExit(f"MARKET_MODE must be one of {', '.join(baselines.MODES)}; got {MODE!r}")

Session = sessionmaker(RouterConfig.from_env(), expire_on_commit=False)
PID = os.getpid()

app = Flask(__name__)
if MODE == "router":
    app.wsgi_app = WSGIMiddleware(app.wsgi_app, secret=os.environ["MARKET_SECRET"])  # type: ignore[method-assign]
elif MODE in baselines.WINDOWS:
    app.wsgi_app = baselines.StickyWSGI(app.wsgi_app, baselines.WINDOWS[MODE])  # type: ignore[method-assign]
elif MODE == "primary":
    app.wsgi_app = baselines.AllPrimaryWSGI(app.wsgi_app)  # type: ignore[method-assign]


@app.after_request
def pid_header(response: Any) -> Any:
    response.headers["X-Pid"] = str(PID)  # which worker process served it
    return response


def warm_up() -> None:
    """Open the router before the first request (gunicorn imports the app in each worker):
    it learns the cluster and the nodes' roles."""
    with Session() as session:
        session.execute(select(1))


warm_up()


def db() -> RoutedSession:
    """The request's session, opened at first use; it shares the request's floor."""
    if "db" not in g:
        g.db = Session(primary=baselines.PRIMARY.get())
    return g.db  # type: ignore[no-any-return]


@app.teardown_appcontext
def close_db(_: BaseException | None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def user_id() -> int:
    raw = request.headers.get("X-User") or request.cookies.get("uid") or "1"
    return int(raw) if raw.isdigit() else 1


def answer(port: int, **data: Any) -> dict[str, Any]:
    return {**data, "port": port, "pid": PID}


@app.get("/projects")
def projects() -> dict[str, Any]:
    rows = (
        db()
        .execute(
            select(Project.id, Project.title, func.inet_server_port())
            .order_by(Project.id.desc())
            .limit(20)
        )
        .all()
    )
    port = rows[0][2] if rows else 0
    return answer(port, projects=[{"id": r[0], "title": r[1]} for r in rows])


@app.get("/projects/<int:project_id>")
def project(project_id: int) -> Any:
    # The port comes back even when the project does not (yet) exist where the read ran.
    port, title, owner = (
        db()
        .execute(
            select(
                func.inet_server_port(),
                select(Project.title).where(Project.id == project_id).scalar_subquery(),
                select(Project.owner_id).where(Project.id == project_id).scalar_subquery(),
            )
        )
        .one()
    )
    if title is None:
        return answer(port, detail="no such project"), 404
    return answer(port, id=project_id, title=title, owner=owner)


@app.post("/projects")
def create_project() -> Any:
    session = db()
    created = Project(owner_id=user_id(), title=request.form.get("title", "untitled"), score=0)
    session.add(created)
    session.commit()
    return redirect(f"/projects/{created.id}", code=303)


@app.get("/rankings")
def rankings() -> dict[str, Any]:
    rows = (
        db()
        .execute(
            select(Project.id, Project.score, func.inet_server_port())
            .order_by(Project.score.desc(), Project.id)
            .limit(10)
        )
        .all()
    )
    return answer(rows[0][2] if rows else 0, top=[{"id": r[0], "score": r[1]} for r in rows])


@app.get("/notifications")
def notifications() -> dict[str, Any]:
    count, first, port = (
        db()
        .execute(
            select(func.count(), func.min(Notification.id), func.inet_server_port()).where(
                Notification.user_id == user_id(), Notification.read.is_(False)
            )
        )
        .one()
    )
    return answer(port, unread=count, first_unread=first)


@app.post("/notifications/<int:notification_id>/read")
def mark_read(notification_id: int) -> Any:
    session = db()
    session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.user_id == user_id())
        .values(read=True)
    )
    session.commit()
    return redirect("/notifications", code=303)


@app.post("/login")
def login() -> Any:
    session = db()
    sid = secrets.token_urlsafe(24)
    session.add(LoginSession(id=sid, user_id=user_id()))
    session.commit()
    response = redirect("/session", code=303)
    response.set_cookie("sid", sid, httponly=True, samesite="Lax")
    return response


@app.get("/session")
def validate_session() -> dict[str, Any]:
    row = (
        db()
        .execute(
            select(LoginSession.user_id, func.inet_server_port()).where(
                LoginSession.id == request.cookies.get("sid", "")
            )
        )
        .first()
    )
    if row is None:
        abort(401)
    return answer(row[1], user=row[0])


@app.get("/which")
def which() -> dict[str, Any]:
    return answer(db().execute(select(func.inet_server_port())).scalar_one())
