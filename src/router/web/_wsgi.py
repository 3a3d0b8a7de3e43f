"""WSGI middleware: one shared floor per request (Flask, Django, any WSGI app)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from router._context import SHARED_FLOOR
from router.web._carrier import Carrier, warn_if_late

__all__ = ["WSGIMiddleware"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WSGIMiddleware:
    """Read-your-writes across requests for a WSGI app; see
    :class:`~router.web.ASGIMiddleware` for the contract.

    Flask: ``app.wsgi_app = WSGIMiddleware(app.wsgi_app, secret=...)``. The floor is set
    for the call of the app (where Flask runs the view and commits): sessions opened while
    the body is iterated (a streamed response) do not share it.
    """

    def __init__(self, app: WSGIApp, *, carrier: Carrier | None = None, **options: Any) -> None:
        if carrier is not None and options:
            raise TypeError("give carrier= or its keywords, not both")
        self.app = app
        self.carrier = carrier if carrier is not None else Carrier(**options)
        self._header_key = self.carrier.header_key

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        carrier = self.carrier
        value = environ.get(self._header_key) if self._header_key is not None else None
        incoming = carrier.read(environ.get("HTTP_COOKIE"), value, time.time())
        shared = incoming.shared_floor(carrier.horizon)
        https = environ.get("wsgi.url_scheme") == "https"
        started = False

        def start_with_position(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            nonlocal started
            started = True
            extra = carrier.response_headers(incoming, shared, https, time.time())
            if extra:
                headers = [*headers, *extra]
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        reset = SHARED_FLOOR.set(shared)
        try:
            return self.app(environ, start_with_position)
        finally:
            SHARED_FLOOR.reset(reset)
            if started:
                warn_if_late(shared, environ.get("PATH_INFO", ""))
