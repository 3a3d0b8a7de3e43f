"""A WSGI app for ``gunicorn --preload`` (``test_sync_fork.py``): its router opens at import,
in the master, and runs a statement there, so the workers fork from a process with an open
pool, live server sessions and a running monitor."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from router import PoolConfig, Router, RouterConfig

WHO = "SELECT inet_server_port(), pg_backend_pid()"
#: The same, on the primary (txid_current() writes: it takes a transaction id).
WHO_WRITING = f"{WHO} FROM txid_current()"

router = Router(
    RouterConfig.from_url(
        os.environ["FORK_APP_URL"],
        application_name="fork-gunicorn",
        monitor_interval=0.1,
        pool=PoolConfig(min_size=2, max_size=4),
    )
).open(wait_for_primary=10)
#: The master's own server sessions (a read and a write), opened before any fork.
MASTER = [list(router.fetchrow(WHO)), list(router.fetchrow(WHO_WRITING))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/who":
        body: dict[str, Any] = {
            "worker": os.getpid(),
            "read": list(router.fetchrow(WHO)),
            "write": list(router.fetchrow(WHO_WRITING)),
            "rounds": router.stats()["monitor_rounds"],
            "master": MASTER,
        }
    elif path == "/echo":
        v = int(parse_qs(environ["QUERY_STRING"])["v"][0])
        body = {"v": router.fetchval("SELECT %s::int", (v,))}
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
