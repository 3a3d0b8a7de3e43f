"""What a transaction pooler allows (pure logic): session state refused with a clear error,
a vanished driver statement noted as a pooler's symptom, and the read deadline's setting."""

from __future__ import annotations

import pytest

from router import (
    AsyncRouter,
    ConfigurationError,
    Router,
    RouterConfig,
    SessionStateError,
    classify,
)
from router._pooler import note_pooler_mismatch, refuse_session_state
from router.config import DEFAULT_POOLED_READ_TIMEOUT

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


def test_with_the_pooler_mode_set_the_note_says_what_remains() -> None:
    # Configured for a transaction pooler already: setting it again is no advice.
    error = RuntimeError('prepared statement "__asyncpg_0f3e9c__" does not exist')
    note_pooler_mismatch(error, pooled=True)
    (note,) = error.__notes__
    assert "pooler_mode" not in note
    assert "inside a transaction" in note


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
    assert RouterConfig(primary=DSN, read_timeout=2).read_timeout == 2.0
    assert RouterConfig(primary=DSN, read_timeout=None).read_timeout is None
    for bad in (0, -1, "5", "never", True):
        with pytest.raises(ConfigurationError, match="read_timeout"):
            RouterConfig(primary=DSN, read_timeout=bad)  # type: ignore[arg-type]
    env = RouterConfig.from_env({"ROUTER_PRIMARY_URL": DSN, "ROUTER_READ_TIMEOUT": "1.5"})
    assert env.read_timeout == 1.5


def test_reads_carry_a_deadline_behind_a_transaction_pooler_unless_told_otherwise() -> None:
    """``"auto"`` (the default): 30 s behind a transaction pooler, none without one; the
    choice is made when the router reads it, so ``replace(pooler_mode=...)`` follows."""
    plain = RouterConfig(primary=DSN)
    assert plain.read_timeout == "auto"
    assert plain.effective_read_timeout is None
    pooled = plain.replace(pooler_mode="transaction")
    assert pooled.effective_read_timeout == DEFAULT_POOLED_READ_TIMEOUT == 30.0
    assert pooled.replace(read_timeout=5).effective_read_timeout == 5.0
    assert pooled.replace(read_timeout=None).effective_read_timeout is None
    assert plain.replace(read_timeout=5).effective_read_timeout == 5.0
    base = {"ROUTER_PRIMARY_URL": DSN, "ROUTER_POOLER_MODE": "transaction"}
    for text, expected in (("none", None), ("auto", 30.0), ("AUTO", 30.0), ("7", 7.0)):
        env = RouterConfig.from_env({**base, "ROUTER_READ_TIMEOUT": text})
        assert env.effective_read_timeout == expected, text
    url = RouterConfig.from_url(
        "postgresql://u@h1,h2/db?router_pooler_mode=transaction&router_read_timeout=none"
    )
    assert url.effective_read_timeout is None
    with pytest.raises(ConfigurationError, match=r"ROUTER_READ_TIMEOUT.*auto or none"):
        RouterConfig.from_env({**base, "ROUTER_READ_TIMEOUT": "soon"})


def test_each_router_takes_the_resolved_deadline() -> None:
    """No I/O: what the async and sync routers keep from ``read_timeout="auto"``."""
    plain = RouterConfig(primary=DSN)
    pooled = plain.replace(pooler_mode="transaction")
    for flavour in (AsyncRouter, Router):
        assert flavour(plain)._executor._read_timeout is None
        assert flavour(pooled)._executor._read_timeout == DEFAULT_POOLED_READ_TIMEOUT
        assert flavour(pooled.replace(read_timeout=None))._executor._read_timeout is None
        assert flavour(plain.replace(read_timeout=4))._executor._read_timeout == 4.0
