"""Read-your-writes across web requests, worker processes and background jobs.

A user writes in one request and reads in the next, often served by another worker process,
while replicas lag. This package carries the position after the user's commit to their next
request and makes every session of that request read at or past it, on replicas that have
replayed it (else the primary): no stale read, and no timer that sends an active user's every
read to the primary.

ASGI (Starlette, FastAPI)::

    from router.web import ASGIMiddleware
    app.add_middleware(ASGIMiddleware, secret=os.environ["APP_SECRET"])

WSGI (Flask)::

    from router.web import WSGIMiddleware
    app.wsgi_app = WSGIMiddleware(app.wsgi_app, secret=os.environ["APP_SECRET"])

Nothing else changes in the app: sessions made during the request by ``router.session()``
(``AsyncRouter`` or ``Router``) or by a :mod:`router.sqlalchemy` factory, in a FastAPI
dependency or anywhere else the request runs, share the request's floor (a context
variable). Calls made on the router outside a session are not covered: use a session per
request.

The position travels signed (HMAC-SHA256 with the application secret) in an ``HttpOnly``,
``SameSite=Lax`` cookie (``Secure`` over HTTPS) that lives at most ``max_age`` seconds
(default 60) and is dropped as soon as every replica has replayed it; or, for API clients,
in the ``Router-Position`` header (send it back as you got it; an empty value means "drop
it"). See :class:`Carrier` for the options. A position that does not verify, is expired,
comes from another cluster, or stays ahead of the primary beyond ``horizon`` seconds (a
failover lost it) is ignored: never an error page, never a stale read, never a way to pin a
client's reads to the primary.

Background jobs: :func:`job_token` in the request, :func:`resume` in the worker.
"""

from __future__ import annotations

from router._context import SharedFloor, Start
from router.web._asgi import ASGIMiddleware
from router.web._carrier import DEFAULT_COOKIE, DEFAULT_HEADER, Carrier, Incoming
from router.web._jobs import current_floor, job_token, resume
from router.web._signing import Signer
from router.web._wsgi import WSGIMiddleware

__all__ = [
    "DEFAULT_COOKIE",
    "DEFAULT_HEADER",
    "ASGIMiddleware",
    "Carrier",
    "Incoming",
    "SharedFloor",
    "Signer",
    "Start",
    "WSGIMiddleware",
    "current_floor",
    "job_token",
    "resume",
]
