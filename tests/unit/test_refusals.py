"""Which replica errors are hot standby's refusals (run again on the primary, remembered)."""

from __future__ import annotations

import pytest

from router.core import refused_by_standby


@pytest.mark.parametrize(
    ("sqlstate", "message"),
    [
        ("0A000", "cannot access temporary or unlogged relations during recovery"),
        # SQLAlchemy's asyncpg adapter puts the driver's class before the message.
        (
            "0A000",
            "<class 'asyncpg.exceptions.FeatureNotSupportedError'>: cannot access temporary"
            " or unlogged relations during recovery",
        ),
        ("0A000", "cannot use serializable mode in a hot standby"),
        ("25006", "cannot execute INSERT in a read-only transaction"),
    ],
)
def test_hot_standby_refusals_count(sqlstate: str, message: str) -> None:
    assert refused_by_standby(sqlstate, message)


@pytest.mark.parametrize(
    ("sqlstate", "message"),
    [
        ("0A000", "unsupported XML feature"),  # a server built without libxml: every node
        ("0A000", "set-returning functions are not allowed in CASE"),
        ("0A000", "not on a replica, says the app"),  # RAISE feature_not_supported
        ("42P01", 'relation "uc" does not exist during recovery'),  # words, wrong SQLSTATE
        (None, "cannot access temporary or unlogged relations during recovery"),
    ],
)
def test_other_errors_do_not(sqlstate: str | None, message: str) -> None:
    assert not refused_by_standby(sqlstate, message)
