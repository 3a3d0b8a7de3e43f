"""The classifier's values: where a statement may run and what it leaves behind."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["UNPARSEABLE", "Classification", "Effect", "Hint", "Route"]

UNPARSEABLE: Final = "unparseable"


class Route(StrEnum):
    """Which kind of node may serve a statement."""

    READ = "read"
    """A hot standby accepts it and it leaves no state the application expects to keep."""
    WRITE = "write"
    """The primary only."""


class Effect(StrEnum):
    """A change to session or transaction state that routing must follow.

    Multi-statement strings report the net effect: ``BEGIN; ...; COMMIT`` opens and closes its
    own transaction, so neither ``TX_BEGIN`` nor ``TX_END`` is reported for it.
    """

    SET = "set"
    """A session-level setting changed (``SET``, ``RESET``, ``set_config(..., false)``,
    ``SET ROLE``, ``SET SESSION CHARACTERISTICS``). Always comes with ``PIN``."""
    SET_LOCAL = "set_local"
    """A transaction-scoped setting changed (``SET LOCAL``, ``SET TRANSACTION``,
    ``SET CONSTRAINTS``, ``set_config(..., true)``). Does not pin."""
    PIN = "pin"
    """The session now holds state on the node that ran it (session ``SET``, session advisory lock,
    ``LISTEN``, ``PREPARE``, ``DECLARE ... WITH HOLD``, temporary objects, ``LOAD``...): keep the
    session on that node, which is the primary, until it ends."""
    TX_BEGIN = "tx_begin"
    """A transaction block starts (``BEGIN``, ``START TRANSACTION``, ``COMMIT AND CHAIN``)."""
    TX_END = "tx_end"
    """A transaction commits or aborts (``COMMIT``, ``ROLLBACK``, ``END``, ``ABORT``,
    ``PREPARE TRANSACTION``, ``COMMIT PREPARED``, ``ROLLBACK PREPARED``)."""
    SAVEPOINT = "savepoint"
    """A savepoint command (``SAVEPOINT``, ``RELEASE``, ``ROLLBACK TO``): only inside a
    transaction."""


class Hint(StrEnum):
    """A routing hint found in a comment: ``/* router:primary */`` or ``/* router:replica */``."""

    PRIMARY = "primary"
    REPLICA = "replica"


@dataclass(frozen=True, slots=True)
class Classification:
    """What the classifier decided for one SQL string.

    ``route``
        ``Route.READ`` only if a hot standby accepts every statement and none leaves state the
        application expects to keep; otherwise ``Route.WRITE``.
    ``effects``
        Net session / transaction effects of the whole string.
    ``reason``
        A short human string; exactly ``"unparseable"`` when PostgreSQL's grammar rejects the text.
    ``functions``
        Names of the functions the string calls, as written (``"nextval"``, ``"app.audit"``).
    ``readonly_begin``
        For a string that sets transaction modes (``BEGIN``, ``START TRANSACTION``,
        ``SET TRANSACTION``): ``True`` for ``READ ONLY``, ``False`` for ``READ WRITE``, else
        ``None``.
    ``isolation``
        The isolation level asked for (``"serializable"``, ``"repeatable read"``...) or ``None``.
    ``hint``
        The comment hint found, whether or not it was honoured.
    ``statements``
        How many statements the string holds (0 when unparseable or empty).
    ``changes_catalog``
        DDL that creates, replaces, alters or drops what the router knows from the catalog
        (functions' volatility, unlogged relations, views): the router reloads its catalog
        once it has committed.
    ``standby_refuses``
        A read that only the primary can serve (it reads an unlogged relation, or a view that
        writes, or a standby refused it before): ``route`` is ``WRITE``, yet it writes nothing
        the router must wait for.
    ``opaque``
        It runs code the router cannot see into (``DO``, ``CALL``), which may leave session
        state (``set_config(..., false)``, a temporary table): its connection is reset before
        it is used again, as after a statement with ``PIN``, without pinning anything.
    """

    route: Route
    effects: frozenset[Effect]
    reason: str
    functions: frozenset[str] = frozenset()
    readonly_begin: bool | None = None
    isolation: str | None = None
    hint: Hint | None = None
    statements: int = 0
    changes_catalog: bool = False
    standby_refuses: bool = False
    opaque: bool = False

    @property
    def is_read(self) -> bool:
        """``True`` when a replica may serve the string."""
        return self.route is Route.READ

    @property
    def pins(self) -> bool:
        """``True`` when the session must stay on the node that ran the string."""
        return Effect.PIN in self.effects
