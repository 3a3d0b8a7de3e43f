"""Background jobs: carry a request's position in a job's payload, resume it in the worker.

::

    # in the request, after the commit:
    queue.enqueue(send_receipt, order_id, router_position=router.web.job_token())

    # in the worker:
    def send_receipt(order_id, router_position=None):
        with router.web.resume(router_position):
            with Session() as session:            # reads see the request's commit
                ...

The job token is a plain router token with its issue time (``r1.….<unix seconds>``), not
signed: a job queue is the application's own. It is checked like a client's position: one of
another cluster, a malformed one, or one still ahead of the primary after the horizon is
ignored (logged), never an error. ``resume`` is a plain context manager: it works in threads
and in asyncio tasks (it sets a context variable), and it is also a shared floor, so a job's
own commits are available from :func:`job_token` inside it (for a chained job).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from router._context import DEFAULT_HORIZON, SHARED_FLOOR, SharedFloor, Start
from router.core import Position
from router.core import decode_token as decode
from router.core import encode_token as encode
from router.errors import InvalidToken

__all__ = ["current_floor", "job_token", "resume"]

logger = logging.getLogger("router.web")

_APPLIED = frozenset({Start.APPLIED, Start.SETTLED, Start.UNCHECKED})


def current_floor() -> SharedFloor | None:
    """The shared floor of the current request or job (``None`` outside one)."""
    return SHARED_FLOOR.get()


def job_token() -> str | None:
    """The current request's (or job's) position for a job payload: after its commits, else
    the position it started from; ``None`` outside a request or when there is none (the job
    then needs no floor)."""
    shared = SHARED_FLOOR.get()
    if shared is None:
        return None
    position: Position | None = shared.position()
    if position is None and shared.start is not None and shared.verdict in (*_APPLIED, Start.NONE):
        position = shared.start
    if position is None:
        return None
    return f"{encode(position)}.{int(time.time())}"


def _parse(value: str, now: float) -> tuple[Position, float] | None:
    token, _, issued = value.rpartition(".")
    if not issued.isdigit() or len(issued) > 12:
        return None
    try:
        position = decode(token)
    except InvalidToken:
        return None
    # An issue time in the future would stretch the horizon: count it as now.
    return position, min(float(issued), now)


@contextmanager
def resume(value: str | None, *, horizon: float = DEFAULT_HORIZON) -> Iterator[SharedFloor]:
    """Run the block's sessions at or past the position of *value* (from :func:`job_token`;
    ``None``: no floor). Bad values are ignored with a warning, never raised."""
    start = None
    if value is not None:
        parsed = _parse(value, time.time()) if isinstance(value, str) else None
        if parsed is None:
            logger.warning("ignored a malformed job position")
            shared = SharedFloor(horizon=horizon)
        else:
            start, issued_at = parsed
            shared = SharedFloor(start, issued_at=issued_at, horizon=horizon)
    else:
        shared = SharedFloor(horizon=horizon)
    reset = SHARED_FLOOR.set(shared)
    try:
        yield shared
    finally:
        SHARED_FLOOR.reset(reset)
        if start is not None and shared.verdict in (Start.FOREIGN, Start.IMPOSSIBLE):
            logger.warning("ignored a job position: %s", shared.verdict.value)
