"""Which errors say that a hot standby can never serve a read: the one rule the front doors
(the routers' reads outside a transaction, the SQLAlchemy engines) share before they run a
refused read again on the primary and remember the statement for it."""

from __future__ import annotations

from typing import Final

__all__ = ["refused_by_standby"]

#: read_only_sql_transaction: a view or function that writes, on a node in recovery.
_READ_ONLY: Final = "25006"
#: feature_not_supported: also the SQLSTATE of errors that fail on every node (an XML
#: function on a server built without libxml, a set-returning function in CASE, ...).
_FEATURE_NOT_SUPPORTED: Final = "0A000"
#: What PostgreSQL says when 0A000 is hot standby's own refusal ("cannot access temporary or
#: unlogged relations during recovery", "cannot use serializable mode in a hot standby").
_STANDBY_WORDS: Final = ("during recovery", "in a hot standby")


def refused_by_standby(sqlstate: str | None, message: str) -> bool:
    """Whether an error a replica raised for a read says the read can never succeed on a
    standby (it wrote nothing there): SQLSTATE 25006, or 0A000 whose *message* (the error's
    text; the driver may add a prefix) is one of hot standby's refusals. Any other 0A000 is
    the statement's own error, on the primary too: the caller gets it, and the statement is
    not sent to the primary from then on.

    The messages are PostgreSQL's English ones: on a server that translates them
    (``lc_messages``), only 25006 counts, and a refused read of an unlogged relation the
    catalog did not know reaches the caller instead of being run again (the safe side)."""
    if sqlstate == _READ_ONLY:
        return True
    if sqlstate != _FEATURE_NOT_SUPPORTED:
        return False
    return any(words in message for words in _STANDBY_WORDS)
