"""A pooler between the router and the servers (PgBouncer, RDS Proxy): what each mode allows.

Behind a *transaction* pooler (``pooler_mode="transaction"``) every transaction, and every
statement outside one, may run on another server connection, shared with the pooler's other
clients. So the router prepares no named statements, sends no start-up parameter a pooler
refuses, sets nothing at session level, and refuses session state with
:class:`~router.errors.SessionStateError` (:func:`refuse_session_state`).

A router left in ``pooler_mode="session"`` in front of a transaction pooler sees its drivers'
named prepared statements vanish between statements: :func:`note_pooler_mismatch` turns that
symptom into an error that says what to set (a note on the driver's error, and a log line),
instead of a random-looking failure.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from router.core import Classification, Effect
from router.errors import SessionStateError

__all__ = ["note_pooler_mismatch", "refuse_session_state"]

logger = logging.getLogger("router")

#: The names asyncpg (``__asyncpg_stmt_1__``, SQLAlchemy's ``__asyncpg_<uuid>__``) and psycopg
#: (``_pg3_0``) give the statements they prepare; a user's own ``PREPARE`` names differ.
_DRIVER_STATEMENT: Final = re.compile(r'prepared statement "(__asyncpg_|_pg3_)')
_logged: list[bool] = []


def note_pooler_mismatch(exc: BaseException, *, pooled: bool = False) -> None:
    """When *exc* (a "prepared statement ... does not exist" or "already exists" error, or a
    bind mismatch) is about a statement the driver prepared itself, add a note naming
    ``pooler_mode="transaction"`` and log it once. The error itself passes through unchanged
    (its type, for code that catches it): the same symptom also follows a ``DEALLOCATE ALL``
    or ``DISCARD ALL`` of the application's own, with no pooler in between. A user's own
    ``EXECUTE`` of a name never prepared gets nothing. *pooled*: the router is configured
    for a transaction pooler already; then the note says what remains (SQLAlchemy's asyncpg
    dialect prepares every statement in a round trip of its own, so a statement outside a
    transaction, in AUTOCOMMIT, may meet two server connections)."""
    text = str(exc)
    if not _DRIVER_STATEMENT.search(text):
        return
    if pooled:
        note = (
            "router: the driver's prepared statement vanished between its round trips behind"
            " a transaction pooler: SQLAlchemy's asyncpg dialect prepares a statement, then"
            " runs it, and outside a transaction (AUTOCOMMIT) the pooler may send the two to"
            " different server connections. Run it inside a transaction. A write that failed"
            " this way was not run"
        )
    else:
        note = (
            "router: the driver's prepared statements vanish or collide between statements,"
            " as behind a transaction pooler (PgBouncer pool_mode=transaction, RDS Proxy): if"
            ' one is in between, configure the router with pooler_mode="transaction". A'
            " write, or a COMMIT, that failed this way may have committed"
        )
    exc.add_note(note)
    if not _logged:
        _logged.append(True)
        logger.error("%s: %s", type(exc).__name__, note)


def refuse_session_state(cls: Classification) -> None:
    """Raise :class:`SessionStateError` for a statement that leaves session state (a session
    ``SET``, ``LISTEN``, ``PREPARE``, a temp table, a session advisory lock...): behind a
    transaction pooler it would outlive its transaction on a shared server connection."""
    if Effect.PIN in cls.effects:
        raise SessionStateError(
            f"{cls.reason}: session state cannot be kept behind a transaction pooler"
            ' (pooler_mode="transaction"): the server connection is shared between'
            " transactions, so the state would leak to other clients and be lost to this"
            " session. Nothing was sent. Use SET LOCAL or set_config(..., true) inside a"
            " transaction, a transaction-scoped advisory lock, or a direct or session-mode"
            " connection for this work"
        )
