"""The SQLAlchemy factories' reads carry ``read_timeout`` too (issue 15: "reads carry a
deadline so nothing queues for minutes ... The SQLAlchemy factories too, sync and async"),
directly and through PgBouncer in transaction mode. A session's read on a replica that runs
past it raises ``TimeoutError``; the server stops running it (read from every node's
``pg_stat_activity``), it ran nowhere else, the node stays up, and the next session reads on.
Statements on the primary are not bounded by it (a session's writes and its reads there run
as long as they take)."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import text

from router import PoolConfig
from router.sqlalchemy import async_sessionmaker, sessionmaker
from router.testing.pytest_plugin import ClusterDatabase
from tests.integration.test_async_read_deadline import (
    DEADLINE,
    LATE,
    SLEEP,
    ConfigFor,
    Watch,
    _sleeper,
    config_for,  # noqa: F401 - a fixture
    db,  # noqa: F401 - a fixture
)
from tests.support import wait_until

pytestmark = [pytest.mark.integration]


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _read(make: ConfigFor, flavour: str, query: str, **options: object) -> object:
    """One session's read of *query*, in a factory of its own; what it returned or raised."""
    import asyncio

    config = make(pool=PoolConfig(max_size=1), **options)
    if flavour == "sync":
        factory = sessionmaker(config)
        try:
            with factory() as session:
                return session.execute(text(query)).scalar()
        finally:
            factory.close()

    async def run() -> object:
        afactory = async_sessionmaker(config)
        try:
            async with afactory() as session:
                return (await session.execute(text(query))).scalar()
        finally:
            await afactory.aclose()

    return asyncio.run(run())


def test_a_session_read_past_read_timeout_is_cancelled_on_its_replica(
    db: ClusterDatabase,  # noqa: F811
    config_for: ConfigFor,  # noqa: F811
    flavour: str,
) -> None:
    tag = f"sa-deadline-{uuid.uuid4().hex[:12]}"
    replicas = {node.port for node in db.cluster.replicas}
    with Watch(db, tag) as watch:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            _read(config_for, flavour, _sleeper(tag), read_timeout=DEADLINE)
        elapsed = time.monotonic() - started
        assert elapsed < DEADLINE + LATE + 3.0, elapsed  # the factory's start-up included
        wait_until(
            lambda: bool(watch.ran_on) and not watch.running,
            timeout=SLEEP - elapsed - 2,
            what="the statement cancelled on its server",
        )
    assert len(watch.ran_on) == 1, watch.ran_on
    assert watch.ran_on <= replicas, watch.ran_on
    # The next session reads on (a replica, or the primary: both are fine).
    assert _read(config_for, flavour, "SELECT 1", read_timeout=DEADLINE) == 1


def test_no_deadline_on_the_primary_or_when_asked_for_none(
    db: ClusterDatabase,  # noqa: F811
    config_for: ConfigFor,  # noqa: F811
    flavour: str,
) -> None:
    """A read on the primary (a hint) runs past ``read_timeout``; with ``read_timeout=None``
    a replica read does too."""
    slow = "SELECT 7 FROM pg_sleep(1.2)"
    assert _read(config_for, flavour, f"{slow} /* router:primary */", read_timeout=0.5) == 7
    assert _read(config_for, flavour, slow, read_timeout=None) == 7
