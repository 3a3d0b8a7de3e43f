"""A process that forks while a router is open: what its child must redo.

Pre-forking servers (gunicorn ``--preload``, uWSGI without ``lazy-apps``), Celery's prefork
pool and ``multiprocessing`` with the ``fork`` start method copy the whole process, open
router included, into each child, but none of its threads: the child would have shared the
parent's sockets (two processes speaking on one server session: one reads the other's
results) and kept a topology no monitor updates any more. So, in the child, at the fork:

- each open pool leaves the parent's connections to the parent, neither used nor closed (a
  close would end the parent's server session), and opens its own;
- the monitor leaves its check connections the same way and its thread runs again;
- locks another thread held at the fork, and the threads' bookkeeping, start anew.

Owners register while they are open (:func:`on_fork`, :func:`forget`). At the fork, in the
child, ``_after_fork()`` runs on every owner: resets only, no thread started and no I/O (other
libraries' own fork hooks, which reset locks our threads would take, may run after ours).
``_resume_after_fork()``, where an owner has one, starts its threads again at the child's
first use (:func:`resume`, called from cold paths: a pool found not open, a new SQLAlchemy
connection). The sync flavour's; asyncio's objects do not survive a fork (open an
``AsyncRouter`` in each worker).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

__all__ = ["abandon", "at_fork", "forget", "on_fork", "resume"]

logger = logging.getLogger("router")

#: Owners by id (a strong reference while open: a pool, the monitor, a session factory).
_OWNERS: dict[int, Any] = {}
#: Module-level resets (a global lock, a thread pool), run before the owners'.
_RESETS: list[Callable[[], None]] = []
#: Owners whose threads wait for the child's first use (:func:`resume`).
_PENDING: list[Any] = []
#: The parent's pools and connections, kept for the child's whole life so that no finalizer
#: of theirs runs in it (psycopg's own leaves a socket of another process alone; a pool's
#: would signal worker threads that do not exist here).
_ABANDONED: list[Any] = []


def on_fork(owner: Any) -> None:
    """Call ``owner._after_fork()`` (and ``owner._resume_after_fork()`` if it has one) in the
    child of every fork until :func:`forget`."""
    _OWNERS[id(owner)] = owner


def forget(owner: Any) -> None:
    _OWNERS.pop(id(owner), None)


def at_fork(reset: Callable[[], None]) -> None:
    """Call *reset* in the child of every fork, before the owners."""
    _RESETS.append(reset)


def abandon(thing: Any) -> None:
    """*thing* belongs to the parent: keep it, unused and unclosed, for this process's life."""
    _ABANDONED.append(thing)


def resume() -> None:
    """In the child of a fork, at its first use: start again what ran in the parent (each
    owner once, whichever thread comes first). A list test when nothing waits."""
    while _PENDING:
        try:
            owner = _PENDING.pop()
        except IndexError:  # another thread took the last one
            return
        _call(owner, "_resume_after_fork")


def _call(owner: Any, step: str) -> None:
    try:
        getattr(owner, step)()
    except Exception:
        # Neither a fork hook nor the child's first statement should fail for this: say
        # what could not be redone.
        logger.exception("after fork: %s.%s failed", type(owner).__name__, step)


def _in_child() -> None:
    owners = list(_OWNERS.values())
    for reset in _RESETS:
        reset()
    for owner in owners:
        if hasattr(owner, "_after_fork"):
            _call(owner, "_after_fork")
    _PENDING[:] = [owner for owner in owners if hasattr(owner, "_resume_after_fork")]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
