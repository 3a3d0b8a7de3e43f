"""ASGI middleware: one shared floor per HTTP request (Starlette, FastAPI, any ASGI app)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from router._context import SHARED_FLOOR
from router.web._carrier import Carrier, warn_if_late

__all__ = ["ASGIMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: What the middleware wraps, typed as permissively as Starlette's ``Middleware`` hands it
#: (``Any`` scopes and messages): ``Middleware(ASGIMiddleware, ...)`` and ``add_middleware``
#: then type-check under mypy --strict.
WrappedApp = Callable[
    [Any, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


def _request_headers(scope: Scope, header: bytes | None) -> tuple[str | None, str | None]:
    cookies: list[str] = []
    value = None
    for key, raw in scope.get("headers", ()):
        if key == b"cookie":
            cookies.append(raw.decode("latin-1"))
        elif header is not None and key == header:
            value = raw.decode("latin-1")
    return ("; ".join(cookies) or None), value


class ASGIMiddleware:
    """Read-your-writes across requests for an ASGI app.

    For each HTTP request: the client's position (a signed cookie or header, see
    :class:`~router.web.Carrier`) becomes the floor of every session the request opens, from
    ``router.session()`` or a SQLAlchemy factory of :mod:`router.sqlalchemy` (in the request's
    task, its dependencies, or threads it starts: they inherit its context); when a session
    of the request committed a write, the response carries the new position back. Anything
    the client sends that does not verify, or is of another cluster, or is impossible, is
    ignored: never an error. Other ASGI traffic (lifespan, websockets) passes through.

    ``app.add_middleware(ASGIMiddleware, secret=...)`` (Starlette/FastAPI), or
    ``ASGIMiddleware(app, secret=...)``; the keywords are :class:`~router.web.Carrier`'s,
    or ``carrier=`` one. Commit before the response starts: a commit after it (a streaming
    body, a background task, a FastAPI dependency that commits on exit, unless declared
    ``Depends(..., scope="function")``) cannot reach this response, and is logged as a
    warning.
    """

    def __init__(
        self, app: WrappedApp, /, *, carrier: Carrier | None = None, **options: Any
    ) -> None:
        if carrier is not None and options:
            raise TypeError("give carrier= or its keywords, not both")
        self.app = app
        self.carrier = carrier if carrier is not None else Carrier(**options)
        header = self.carrier.header
        self._header = None if header is None else header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = self.carrier
        cookies, value = _request_headers(scope, self._header)
        incoming = carrier.read(cookies, value, time.time())
        shared = incoming.shared_floor(carrier.horizon)
        https = scope.get("scheme") == "https"
        started = False

        async def send_with_position(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = carrier.response_headers(incoming, shared, https, time.time())
                if extra:
                    headers = list(message.get("headers", ()))
                    headers.extend(
                        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra
                    )
                    message = {**message, "headers": headers}
            await send(message)

        reset = SHARED_FLOOR.set(shared)
        try:
            await self.app(scope, receive, send_with_position)
        finally:
            SHARED_FLOOR.reset(reset)
        if started:
            warn_if_late(shared, scope.get("path", ""))
