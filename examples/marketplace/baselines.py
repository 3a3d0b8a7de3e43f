"""What frameworks do instead of positions, for the benchmark to compare (not for apps).

``MARKET_MODE`` picks one per app process:

``router``   (default) :class:`router.web.ASGIMiddleware` / ``WSGIMiddleware``: the user's
             commit position in a signed cookie.
``none``     no carrier: each request reads wherever the router sends it.
``rails``    Rails' database selector: after a non-GET request, the user's reads go to the
             primary for 2 s (``delay`` default).
``multidb``  django-multidb-router: after a non-GET request, a cookie pins the user's reads to
             the primary for 15 s (``MULTIDB_PINNING_SECONDS`` default).
``primary``  every read on the primary.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any, Final

MODES: Final = ("router", "none", "rails", "multidb", "primary")
WINDOWS: Final = {"rails": 2.0, "multidb": 15.0}
PIN_COOKIE: Final = "pin_until"

#: Whether the current request's sessions must read from the primary.
PRIMARY: ContextVar[bool] = ContextVar("market_primary", default=False)


def _pinned(cookie_header: str | None, now: float) -> bool:
    for part in (cookie_header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == PIN_COOKIE:
            try:
                return now < float(value)
            except ValueError:
                return False
    return False


def _pin_cookie(window: float, now: float) -> str:
    until = f"{now + window:.3f}"
    return f"{PIN_COOKIE}={until}; Max-Age={int(window) + 1}; Path=/; HttpOnly; SameSite=Lax"


class StickyASGI:
    """A timer after non-GET requests (Rails, django-multidb-router): reads of the next
    *window* seconds go to the primary."""

    def __init__(self, app: Any, window: float) -> None:
        self.app = app
        self.window = window

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = b"; ".join(v for k, v in scope["headers"] if k == b"cookie").decode("latin-1")
        writes = scope["method"] not in ("GET", "HEAD")

        async def send_pin(message: Any) -> None:
            if message["type"] == "http.response.start" and writes:
                pin = _pin_cookie(self.window, time.time()).encode("latin-1")
                message = {**message, "headers": [*message["headers"], (b"set-cookie", pin)]}
            await send(message)

        reset = PRIMARY.set(_pinned(cookies, time.time()))
        try:
            await self.app(scope, receive, send_pin)
        finally:
            PRIMARY.reset(reset)


class AllPrimaryASGI:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        reset = PRIMARY.set(True)
        try:
            await self.app(scope, receive, send)
        finally:
            PRIMARY.reset(reset)


class StickyWSGI:
    def __init__(self, app: Any, window: float) -> None:
        self.app = app
        self.window = window

    def __call__(self, environ: Any, start_response: Any) -> Any:
        writes = environ["REQUEST_METHOD"] not in ("GET", "HEAD")

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if writes:
                headers = [*headers, ("Set-Cookie", _pin_cookie(self.window, time.time()))]
            return start_response(status, headers, exc_info)

        reset = PRIMARY.set(_pinned(environ.get("HTTP_COOKIE"), time.time()))
        try:
            return self.app(environ, start)
        finally:
            PRIMARY.reset(reset)


class AllPrimaryWSGI:
    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> Any:
        reset = PRIMARY.set(True)
        try:
            return self.app(environ, start_response)
        finally:
            PRIMARY.reset(reset)
