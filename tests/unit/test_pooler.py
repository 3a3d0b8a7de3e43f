"""What a transaction pooler allows (pure logic): session state refused with a clear error,
a vanished driver statement noted as a pooler's symptom, and the read deadline's setting."""

from __future__ import annotations

import pytest

from router import ConfigurationError, RouterConfig, SessionStateError, classify
from router._pooler import note_pooler_mismatch, refuse_session_state

DSN = "postgresql://u@h1:5432/db"


@pytest.mark.parametrize(
    "sql",
    [
        "SET statement_timeout = 5",
        "SELECT set_config('work_mem', '8MB', false)",
        "CREATE TEMP TABLE t (x int)",
        "LISTEN chan",
        "PREPARE p AS SELECT 1",
        "SELECT pg_advisory_lock(1)",
    ],
)
def test_session_state_is_refused_naming_the_pooler(sql: str) -> None:
    with pytest.raises(SessionStateError, match=r'pooler_mode="transaction".*Nothing was sent'):
        refuse_session_state(classify(sql))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "INSERT INTO t VALUES (1)",
        "SET LOCAL statement_timeout = 5",
        "SELECT set_config('work_mem', '8MB', true)",
        "BEGIN READ ONLY",
        "SELECT pg_advisory_xact_lock(1)",
    ],
)
def test_transaction_scoped_statements_pass(sql: str) -> None:
    refuse_session_state(classify(sql))


@pytest.mark.parametrize(
    "message",
    [
        'prepared statement "__asyncpg_stmt_1a__" does not exist',
        'prepared statement "__asyncpg_0f3e9c__" already exists',
        'prepared statement "_pg3_0" does not exist',
        'bind message supplies 1 parameters, but prepared statement "__asyncpg_stmt_3__" '
        "requires 0",
    ],
)
def test_a_drivers_vanished_statement_gets_a_note_naming_the_setting(message: str) -> None:
    error = RuntimeError(message)
    note_pooler_mismatch(error)
    assert str(error) == message  # the error itself is unchanged
    (note,) = error.__notes__
    assert 'pooler_mode="transaction"' in note


@pytest.mark.parametrize(
    "message",
    [
        'prepared statement "mine" does not exist',  # the user's own EXECUTE
        "server login has been failing, try again later (server_login_retry)",
        "query_wait_timeout",
    ],
)
def test_other_errors_get_no_note(message: str) -> None:
    error = RuntimeError(message)
    note_pooler_mismatch(error)
    assert not hasattr(error, "__notes__")


def test_read_timeout_is_validated() -> None:
    assert RouterConfig(primary=DSN).read_timeout is None
    assert RouterConfig(primary=DSN, read_timeout=2).read_timeout == 2.0
    for bad in (0, -1, "5", True):
        with pytest.raises(ConfigurationError, match="read_timeout"):
            RouterConfig(primary=DSN, read_timeout=bad)  # type: ignore[arg-type]
    env = RouterConfig.from_env({"ROUTER_PRIMARY_URL": DSN, "ROUTER_READ_TIMEOUT": "1.5"})
    assert env.read_timeout == 1.5
