"""libpq conninfo -> an asyncpg URL."""

from __future__ import annotations

import pytest

from router._async._dsn import asyncpg_dsn


@pytest.mark.parametrize(
    ("conninfo", "url"),
    [
        ("host=db1 port=5433 user=app dbname=shop", "postgresql://app@db1:5433/shop"),
        ("postgresql://app@db1:5433/shop", "postgresql://app@db1:5433/shop"),
        (
            "host=db1 user=app password='p@ss w:rd/' dbname=shop",
            "postgresql://app:p%40ss%20w%3Ard%2F@db1/shop",
        ),
        ("host=::1 port=5432 dbname=x", "postgresql://[::1]:5432/x"),
        ("host=/var/run/postgresql dbname=x", "postgresql:///x?host=%2Fvar%2Frun%2Fpostgresql"),
        (
            "host=db1 dbname=x sslmode=verify-full connect_timeout=3 keepalives=1",
            "postgresql://db1/x?sslmode=verify-full",
        ),
        (
            "host=db1 dbname=x application_name=app options='-c search_path=s'",
            "postgresql://db1/x?application_name=app&options=-c+search_path%3Ds",
        ),
        ("hostaddr=10.0.0.5 dbname=x", "postgresql://10.0.0.5/x"),
    ],
)
def test_conversion(conninfo: str, url: str) -> None:
    assert asyncpg_dsn(conninfo) == url
