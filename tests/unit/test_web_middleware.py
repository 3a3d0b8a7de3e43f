"""The ASGI and WSGI middleware's plumbing, with bare apps and no database: the shared floor
is set for the request and only for it, the app's own headers are kept, the position goes
back only after a commit, other ASGI traffic passes through untouched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from router._context import SHARED_FLOOR, SharedFloor
from router.core import Lsn
from router.web import ASGIMiddleware, Carrier, Signer, WSGIMiddleware, current_floor

SECRET = "unit-test-secret-0123456789"


class _Cluster:
    system_id = 99
    topology: Any = None


def _commit(shared: SharedFloor | None, lsn: int = 500) -> None:
    assert shared is not None
    shared._join(_Cluster())
    shared.record_commit(Lsn(lsn))


def _asgi_app(write: bool, seen: list[SharedFloor | None]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(current_floor())
        if write:
            _commit(current_floor())
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"set-cookie", b"a=1")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _call_asgi(app: Any, headers: list[tuple[bytes, bytes]], scheme: str = "http") -> list[Any]:
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "scheme": scheme}
    asyncio.run(app(scope, receive, send))
    return sent


def test_asgi_sets_the_floor_for_the_request_only_and_keeps_the_apps_headers() -> None:
    seen: list[SharedFloor | None] = []
    sent = _call_asgi(ASGIMiddleware(_asgi_app(True, seen), secret=SECRET), [], scheme="https")
    assert isinstance(seen[0], SharedFloor)
    assert SHARED_FLOOR.get() is None
    headers = sent[0]["headers"]
    assert headers[0] == (b"set-cookie", b"a=1")
    name, value = headers[1]
    assert name == b"set-cookie"
    assert value.startswith(b"router_position=r1.")
    assert b"; Secure; HttpOnly; SameSite=Lax" in value
    assert sent[1] == {"type": "http.response.body", "body": b"ok"}


def test_asgi_sends_nothing_after_a_read_only_request() -> None:
    sent = _call_asgi(ASGIMiddleware(_asgi_app(False, []), secret=SECRET), [])
    assert sent[0]["headers"] == [(b"set-cookie", b"a=1")]


def test_asgi_reads_the_cookie_among_several_cookie_headers() -> None:
    value = Signer(SECRET).sign("r1.AAAAAAAAAAAAAAAAAAAAAAAAAAA", 10**10)  # not a position
    seen: list[SharedFloor | None] = []
    _call_asgi(
        ASGIMiddleware(_asgi_app(False, seen), secret=SECRET),
        [(b"cookie", b"x=1"), (b"cookie", b"router_position=" + value.encode())],
    )
    assert seen[0] is not None
    assert seen[0].start is None  # signed but not a token: ignored


def test_other_asgi_traffic_passes_through() -> None:
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])
        assert current_floor() is None

    middleware = ASGIMiddleware(app, secret=SECRET)
    for kind in ("lifespan", "websocket"):
        asyncio.run(middleware({"type": kind}, None, None))  # type: ignore[arg-type]
    assert calls == ["lifespan", "websocket"]


def test_carrier_or_keywords_not_both() -> None:
    with pytest.raises(TypeError):
        ASGIMiddleware(None, carrier=Carrier(secret=SECRET), secret=SECRET)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        WSGIMiddleware(None, carrier=Carrier(secret=SECRET), secret=SECRET)  # type: ignore[arg-type]


def test_wsgi_sets_the_floor_for_the_call_and_answers_after_a_commit() -> None:
    seen: list[SharedFloor | None] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        seen.append(current_floor())
        _commit(current_floor())
        start_response("303 See Other", [("Location", "/x")])
        return [b""]

    answered: list[Any] = []
    middleware = WSGIMiddleware(app, secret=SECRET)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "wsgi.url_scheme": "http"}
    body = middleware(environ, lambda status, headers, exc_info=None: answered.append(headers))
    assert list(body) == [b""]
    assert isinstance(seen[0], SharedFloor)
    assert SHARED_FLOOR.get() is None
    [headers] = answered
    assert headers[0] == ("Location", "/x")
    assert headers[1][0] == "Set-Cookie"
    assert headers[1][1].startswith("router_position=r1.")
    assert "Secure" not in headers[1][1]


def test_wsgi_reads_the_header_and_answers_in_it() -> None:
    value = Signer(SECRET).sign("r1.AAAAAAAAAAAAAAAAAAAAAAAAAAA", 10**10)
    seen: list[SharedFloor | None] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        seen.append(current_floor())
        start_response("200 OK", [])
        return [b""]

    answered: list[Any] = []
    WSGIMiddleware(app, secret=SECRET)(
        {"HTTP_ROUTER_POSITION": value}, lambda s, h, e=None: answered.append(h)
    )
    # Signed, but not a position: ignored, and the client told to drop it.
    assert answered == [[("Router-Position", "")]]
