"""The node engines' checkout rule: a pooled connection opened for another role than its
node has now is opened again (``DisconnectionError``), never handed to a session. No server:
the pool's checkout event is dispatched with a stand-in for SQLAlchemy's pool entry."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import DisconnectionError

from router.core import Role
from router.sqlalchemy._engines import _OPENED_AS, _driver_error, _follow_roles


def _checkout(role_now: Role, opened_as: Role | None) -> None:
    engine = create_engine("postgresql+psycopg://app@db.invalid/app")
    try:
        _follow_roles(engine, "n1", lambda node: role_now if node == "n1" else Role.UNKNOWN)
        record = SimpleNamespace(info={} if opened_as is None else {_OPENED_AS: opened_as})
        engine.pool.dispatch.checkout(object(), record, object())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("now", "opened"),
    [(Role.PRIMARY, Role.REPLICA), (Role.REPLICA, Role.PRIMARY), (Role.REPLICA, Role.UNKNOWN)],
)
def test_a_connection_opened_for_another_role_is_opened_again(now: Role, opened: Role) -> None:
    with pytest.raises(DisconnectionError, match=f"n1 is {now} now"):
        _checkout(now, opened)


@pytest.mark.parametrize(
    ("now", "opened"),
    [
        (Role.PRIMARY, Role.PRIMARY),
        (Role.REPLICA, Role.REPLICA),
        # A node whose check failed keeps its connections: its role is not known to differ.
        (Role.UNKNOWN, Role.REPLICA),
        # Opened by someone else's listener order, or before the rule existed: left alone.
        (Role.PRIMARY, None),
    ],
)
def test_a_connection_opened_for_the_role_it_has_is_handed_out(
    now: Role, opened: Role | None
) -> None:
    _checkout(now, opened)


def test_a_node_failure_is_reported_by_the_drivers_own_error() -> None:
    # SQLAlchemy's asyncpg dialect raises its DBAPI wrapper, named just "Error", from
    # asyncpg's own: "last errors: node: Error" said nothing.
    class Error(Exception):
        pass

    class CannotConnectNowError(Exception):
        pass

    wrapped = Error("wrapped")
    wrapped.__cause__ = CannotConnectNowError("the database system is shutting down")
    assert _driver_error(wrapped) == "CannotConnectNowError"
    assert _driver_error(ConnectionRefusedError()) == "ConnectionRefusedError"
