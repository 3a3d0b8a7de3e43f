"""A pooler between the router and the servers (PgBouncer, RDS Proxy): what each mode allows.

Behind a *transaction* pooler (``pooler_mode="transaction"``) every transaction, and every
statement outside one, may run on another server connection, shared with the pooler's other
clients. So the router prepares no named statements, sends no start-up parameter a pooler
refuses, sets nothing at session level, and refuses session state with
:class:`~router.errors.SessionStateError` (:func:`refuse_session_state`).

A router left in ``pooler_mode="session"`` in front of a transaction pooler sees its drivers'
named prepared statements vanish between statements: :func:`pooler_mismatch` turns that
symptom into a :class:`~router.errors.PoolerMismatch` that says what to set, instead of a
random-looking failure.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from router.core import Classification, Effect
from router.errors import PoolerMismatch, SessionStateError

__all__ = ["pooler_mismatch", "refuse_session_state"]

logger = logging.getLogger("router")

#: The names asyncpg (``__asyncpg_stmt_1__``, SQLAlchemy's ``__asyncpg_<uuid>__``) and psycopg
#: (``_pg3_0``) give the statements they prepare; a user's own ``PREPARE`` names differ.
_DRIVER_STATEMENT: Final = re.compile(r'prepared statement "(__asyncpg_|_pg3_)')
_logged: list[bool] = []


def pooler_mismatch(exc: BaseException) -> PoolerMismatch | None:
    """The :class:`PoolerMismatch` to raise instead of *exc* (a "prepared statement ... does
    not exist" or "already exists" error), or ``None`` when the statement was not the
    driver's own (a user's ``EXECUTE`` of a name never prepared: the database's error
    stands)."""
    text = str(exc)
    if not _DRIVER_STATEMENT.search(text):
        return None
    message = (
        f"{type(exc).__name__}: {text}: the driver's prepared statements vanish or collide "
        "between statements, as behind a transaction pooler (PgBouncer pool_mode=transaction, "
        'RDS Proxy): configure the router with pooler_mode="transaction". A write, or a '
        "COMMIT, that failed this way may have committed"
    )
    if not _logged:
        _logged.append(True)
        logger.error("%s", message)
    return PoolerMismatch(message)


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
