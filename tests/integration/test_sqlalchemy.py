"""router.sqlalchemy on the real cluster, sync (psycopg) and async (asyncpg) factories.

Where a statement ran is proven by the server itself (``inet_server_port()`` and
``pg_is_in_recovery()`` in the same statement, or later in the same transaction, which holds
its node) and by ``session.last_decision``."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy import ForeignKey, Select, String, func, insert, select, text
from sqlalchemy.exc import DBAPIError, InternalError, OperationalError
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
)
from sqlalchemy.pool import NullPool

import router
import router.sqlalchemy
from router.sqlalchemy import RoutedAsyncSession, RoutedAsyncSessionmaker, RoutedSessionmaker
from router.testing import LocalCluster
from router.testing.pytest_plugin import ClusterDatabase

pytestmark = [pytest.mark.integration]

FAST = {"monitor_interval": 0.1, "readmit_hold": 0.2}
REPLICAS = {"replica1", "replica2"}
T = TypeVar("T")


class Base(AsyncAttrs, DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    posts: Mapped[list[Post]] = relationship(back_populates="user", order_by="Post.id")


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(80))
    user: Mapped[User] = relationship(back_populates="posts")


#: Where this statement ran, said by the server that ran it.
WHERE = select(func.inet_server_port(), func.pg_is_in_recovery())


@pytest.fixture(scope="module")
def db(cluster_db: ClusterDatabase) -> ClusterDatabase:
    with psycopg.connect(cluster_db.primary_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE users (id serial PRIMARY KEY, name varchar(80) NOT NULL);"
            " CREATE TABLE posts (id serial PRIMARY KEY,"
            "  user_id int NOT NULL REFERENCES users (id), title varchar(80) NOT NULL);"
            " CREATE SEQUENCE tickets;"
            " INSERT INTO users (id, name) VALUES (1, 'ada');"
            " SELECT setval('users_id_seq', 100);"
            " INSERT INTO posts (user_id, title) VALUES (1, 'first'), (1, 'second');"
        )
    cluster_db.cluster.wait_caught_up()
    return cluster_db


@pytest.fixture(scope="module")
def ports(db: ClusterDatabase) -> dict[int, str]:
    return {n.port: n.name for n in db.cluster.nodes}


@pytest.fixture
def factory(db: ClusterDatabase) -> Iterator[RoutedSessionmaker]:
    with router.sqlalchemy.sessionmaker(db.router_config(**FAST)) as made:
        yield made


@pytest_asyncio.fixture
async def afactory(db: ClusterDatabase) -> AsyncIterator[RoutedAsyncSessionmaker]:
    async with router.sqlalchemy.async_sessionmaker(db.router_config(**FAST)) as made:
        yield made


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_until(condition: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """The first truthy value of *condition()*, polled; fail after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _on_primary(db: ClusterDatabase, sql: str, *args: Any) -> Any:
    with psycopg.connect(db.primary_dsn, autocommit=True) as conn:
        row = conn.execute(sql, args or None).fetchone()
        return None if row is None else row[0]


def _on_node(dsn: str, sql: str, *args: Any) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql, args)


def _delay_replicas(db: ClusterDatabase, seconds: float) -> None:
    for replica in db.cluster.replicas:
        db.cluster.set_apply_delay(replica, seconds)


# -- sync: where statements go ---------------------------------------------------------------


def test_reads_run_on_replicas_and_writes_on_the_primary(
    factory: RoutedSessionmaker, ports: dict[int, str]
) -> None:
    assert factory.router._state == "new"  # nothing opened until the first statement
    with factory() as s:
        port, in_recovery = s.execute(WHERE).one()
        assert factory.router._state == "open"
        assert in_recovery is True
        assert ports[port] in REPLICAS
        assert s.last_decision is not None
        assert s.last_decision.node == ports[port]
        held = ports[port]
        for _ in range(3):  # the transaction holds its replica
            assert ports[s.execute(WHERE).one()[0]] == held

        name = _unique("core")
        users = Base.metadata.tables["users"]
        row = s.execute(
            insert(users).values(name=name).returning(users.c.id, func.pg_is_in_recovery())
        ).one()
        assert row[1] is False
        assert s.last_decision is not None
        assert (s.last_decision.node, s.last_decision.reason) == ("primary", "classifier")
        # Pinned: the rest of the transaction runs on the primary, and sees the insert.
        look = select(users.c.name, func.pg_is_in_recovery()).where(users.c.id == row[0])
        assert s.execute(look).one() == (name, False)
        assert s.last_decision is not None
        assert s.last_decision.reason == "pinned"
        s.commit()
    decisions = factory.router.stats()["decisions"]
    assert decisions["primary"]["classifier"] == 1
    assert decisions["primary"]["pinned"] == 1
    assert sum(decisions[held].values()) == 4


def test_orm_reads_get_scalars_and_eager_loads_run_on_a_replica(
    factory: RoutedSessionmaker, ports: dict[int, str]
) -> None:
    with factory() as s:
        ada = s.get(User, 1)
        assert ada is not None
        assert ada.name == "ada"
        assert s.last_decision is not None
        node = s.last_decision.node
        assert node in REPLICAS
        assert ports[s.execute(WHERE).one()[0]] == node  # the same transaction, same node

        users = s.scalars(select(User).where(User.id == 1)).all()
        assert [u.name for u in users] == ["ada"]

        s.expunge_all()
        selectin = s.scalars(select(User).options(selectinload(User.posts)).where(User.id == 1))
        assert [p.title for p in selectin.one().posts] == ["first", "second"]
        assert s.last_decision is not None
        assert s.last_decision.node == node  # the selectin query ran last

        s.expunge_all()
        joined = s.scalars(select(User).options(joinedload(User.posts)).where(User.id == 1))
        assert [p.title for p in joined.unique().one().posts] == ["first", "second"]
        assert s.last_decision is not None
        assert s.last_decision.node == node

        s.expunge_all()
        lazy = s.get(User, 1)
        assert lazy is not None
        assert [p.title for p in lazy.posts] == ["first", "second"]  # a lazy load
        assert s.last_decision is not None
        assert (s.last_decision.node, s.last_decision.primary) == (node, False)

        core = s.execute(select(User.__table__.c.name, func.pg_is_in_recovery())).all()
        assert ("ada", True) in core


def test_volatile_functions_and_row_locks_run_on_the_primary(factory: RoutedSessionmaker) -> None:
    with factory() as s:
        before = _on_primary_session_value(s, "SELECT last_value FROM tickets")
        ticket, in_recovery = s.execute(
            text("SELECT nextval('tickets'), pg_is_in_recovery()")
        ).one()
        assert in_recovery is False
        assert ticket >= before
        s.rollback()

        locked = s.execute(
            select(User.name, func.pg_is_in_recovery()).where(User.id == 1).with_for_update()
        ).one()
        assert locked == ("ada", False)
        s.rollback()

        via_func = s.execute(select(func.nextval("tickets"), func.pg_is_in_recovery())).one()
        assert via_func[1] is False
        assert s.last_decision is not None
        assert s.last_decision.detail == "write"


def _on_primary_session_value(s: Session, sql: str) -> Any:
    # A primary read that does not pin the transaction.
    return s.execute(text(sql), execution_options={"router_primary": True}).scalar_one()


def test_a_lazy_load_after_a_flush_runs_on_the_primary_and_sees_the_flush(
    factory: RoutedSessionmaker,
) -> None:
    with factory() as s:
        ada = s.get(User, 1)
        assert ada is not None
        assert s.last_decision is not None
        assert s.last_decision.node in REPLICAS
        s.add(Post(user_id=1, title="fresh"))
        s.flush()
        assert s.last_decision is not None
        assert s.last_decision.node == "primary"
        # Uncommitted: only the primary connection of this very transaction has the row.
        assert [p.title for p in ada.posts] == ["first", "second", "fresh"]
        assert s.last_decision is not None
        assert (s.last_decision.node, s.last_decision.reason) == ("primary", "pinned")
        s.rollback()


def test_routing_options_and_hints(factory: RoutedSessionmaker) -> None:
    primary = {"router_primary": True}
    with factory() as s:
        assert s.execute(WHERE.execution_options(router_primary=True)).one()[1] is False
        assert s.execute(WHERE, execution_options=primary).one()[1] is False
        assert s.scalar(select(func.pg_is_in_recovery()), execution_options=primary) is False
        assert s.last_decision is not None
        assert s.last_decision.reason == "hint"
        assert s.execute(WHERE).one()[1] is True  # none of those pinned the transaction
        # A comment hint is a write to the classifier: it pins the rest of the transaction.
        assert s.execute(text("/* router:primary */ SELECT pg_is_in_recovery()")).scalar() is False
        assert s.last_decision.reason == "hint"
        assert s.execute(WHERE).one()[1] is False
    with factory(primary=True) as s:
        assert s.execute(WHERE).one()[1] is False
        assert s.get(User, 1) is not None
        assert s.last_decision is not None
        assert s.last_decision.node == "primary"


def test_replica_connections_are_read_only(factory: RoutedSessionmaker) -> None:
    show = text("SELECT current_setting('default_transaction_read_only'), pg_is_in_recovery()")
    with factory() as s:
        assert s.execute(show).one() == ("on", True)
    with factory(primary=True) as s:
        assert s.execute(show).one() == ("off", False)


def test_replica_emulation_with_a_primary_alone_runs_reads_read_only(
    db: ClusterDatabase,
) -> None:
    """With only a primary configured, replica emulation still runs a session's reads READ
    ONLY (a write the classifier took for a read fails, as on a standby), and its writes on
    the primary as usual, in the same session."""
    name = _unique("emulated")
    _on_node(
        db.primary_dsn,
        "CREATE OR REPLACE FUNCTION bump_sa() RETURNS int LANGUAGE sql AS"
        " 'INSERT INTO users (name) VALUES (''bumped by a read'') RETURNING 1'",
    )
    show = text("SELECT current_setting('transaction_read_only')")
    cfg = db.router_config(**FAST).replace(
        replicas=[], emulate_replicas=True, read_functions=["bump_sa"]
    )
    with router.sqlalchemy.sessionmaker(cfg) as made:
        with made() as s:
            assert s.execute(show).scalar_one() == "on"
            decision = s.last_decision
            assert decision is not None
            assert decision.reason == "shadow"
            assert "emulated replica (fallback" in decision.detail
        with made() as s:
            s.execute(insert(User).values(name=name))
            assert s.execute(show).scalar_one() == "off"  # the write's transaction
            s.commit()
            count = select(func.count()).select_from(User).where(User.name == name)
            assert s.execute(count).scalar_one() == 1
            assert s.execute(show).scalar_one() == "on"
        with made() as s, pytest.raises(InternalError) as refused:
            s.execute(text("SELECT bump_sa()"))
    assert getattr(refused.value.orig, "sqlstate", None) == "25006"
    assert _on_primary(db, "SELECT count(*) FROM users WHERE name = 'bumped by a read'") == 0


def test_a_null_pool_given_in_engine_options_is_used(db: ClusterDatabase) -> None:
    """``engine_options={"poolclass": NullPool}`` (a connection per session, closed after):
    the factory's pool sizes are for a queue pool, and are not given to this one (SQLAlchemy
    raised TypeError for them)."""
    name = _unique("nullpool")
    pid = text("SELECT pg_backend_pid()")
    with router.sqlalchemy.sessionmaker(
        db.router_config(**FAST), engine_options={"poolclass": NullPool}
    ) as made:
        pids = set()
        for _ in range(3):
            with made(primary=True) as s:
                pids.add(s.execute(pid).scalar_one())
        with made() as s:
            s.execute(insert(User).values(name=name))
            s.commit()
    assert len(pids) == 3  # a new connection for each session: nothing pooled
    assert _on_primary(db, "SELECT count(*) FROM users WHERE name = %s", name) == 1


# -- sync: read-only sessions ------------------------------------------------------------


def test_a_read_only_session_stays_on_one_replica_and_refuses_writes(
    factory: RoutedSessionmaker, db: ClusterDatabase, ports: dict[int, str]
) -> None:
    name = _unique("ro")
    sequence_before = _on_primary(db, "SELECT last_value FROM tickets")
    with factory(readonly=True) as s:
        assert s.readonly
        seen = {ports[s.execute(WHERE).one()[0]] for _ in range(5)}
        assert len(seen) == 1
        assert seen <= REPLICAS
        with pytest.raises(router.ReadOnlyViolation):
            s.execute(insert(User).values(name=name))
        with pytest.raises(router.ReadOnlyViolation):
            s.execute(text("SELECT nextval('tickets')"))
        with pytest.raises(router.ReadOnlyViolation):
            s.execute(select(User).with_for_update())
        # The transaction is intact: nothing was sent.
        assert {ports[s.execute(WHERE).one()[0]]} == seen
        s.add(User(name=name))
        with pytest.raises(router.ReadOnlyViolation):
            s.flush()
        s.rollback()
    with factory() as s:  # per statement
        with pytest.raises(router.ReadOnlyViolation):
            s.execute(
                insert(User).values(name=name), execution_options={"postgresql_readonly": True}
            )
        assert s.execute(WHERE, execution_options={"postgresql_readonly": True}).one()[1] is True
    assert _on_primary(db, "SELECT count(*) FROM users WHERE name = %s", name) == 0
    assert _on_primary(db, "SELECT last_value FROM tickets") == sequence_before


# -- sync: read-your-writes --------------------------------------------------------------


@pytest.mark.faults
def test_read_your_writes_across_transactions_sessions_and_factories(
    factory: RoutedSessionmaker, db: ClusterDatabase
) -> None:
    _delay_replicas(db, 0.5)
    name = _unique("ryw")
    look = select(User.name).where(User.name == name)
    with factory() as writer:
        writer.add(User(name=name))
        writer.commit()
        token = writer.token()
        assert token is not None
        # The delay is real: a session without the token reads a replica that lacks it.
        with factory(consistency="eventual") as stale:
            assert stale.execute(look).first() is None
            assert stale.last_decision is not None
            assert stale.last_decision.node in REPLICAS
        # A new session of the factory reads at or past the factory's commits.
        with factory() as fresh:
            assert fresh.execute(look).scalar_one() == name
        # The writer's next transaction sees its commit (on the primary, or on a replica
        # once one has replayed it: the test does not race the delay here) ...
        assert writer.execute(look).scalar_one() == name
    # ... so do a session given its token, and a session of another factory (process).
    with factory(after=token) as reader:
        assert reader.execute(look).scalar_one() == name
    with router.sqlalchemy.sessionmaker(db.router_config(**FAST)) as other:
        with other(after=token) as remote:
            assert remote.execute(look).scalar_one() == name
        # Once the replicas have replayed it, token holders read it there.
        with other(after=token) as later:

            def on_a_replica() -> bool:
                found = later.execute(look).first() is not None
                decision = later.last_decision
                later.rollback()
                return found and decision is not None and decision.node in REPLICAS

            wait_until(on_a_replica, "a replica to replay the commit")


# -- sync: failures ----------------------------------------------------------------------


@pytest.mark.faults
def test_a_lost_connection_is_reported_to_the_monitor(
    factory: RoutedSessionmaker, db: ClusterDatabase
) -> None:
    with factory() as s:
        pid = s.scalar(select(func.pg_backend_pid()))
        assert s.last_decision is not None
        node = s.last_decision.node
        assert node in REPLICAS
        _on_node(db.dsn(node), "SELECT pg_terminate_backend(%s)", pid)
        with pytest.raises((OperationalError, DBAPIError)):
            s.execute(WHERE)
        # Reported: the replica turned suspect (out of service until the check the report asked
        # for; the node itself is fine, so that check may already have brought it back).
        health = factory.router._monitor.topology.by_name[node]
        assert health.last_failure == "broken_connection"
    # The monitor brings it back; sessions use it again.
    wait_until(
        lambda: factory.router._monitor.topology.by_name[node].admitted, f"{node} to come back"
    )


#: Where a write ran, and whether that connection defaults to read-only transactions.
WRITE_WHERE = (func.inet_server_port(), func.current_setting("default_transaction_read_only"))


def _read_on(made: RoutedSessionmaker, node: str) -> None:
    """Read through *made* until a session lands on *node* (round-robin): its pool then
    holds a replica's (read-only) connection."""

    def landed() -> bool:
        with made() as s:
            s.execute(WHERE)
            return s.last_decision is not None and s.last_decision.node == node

    wait_until(landed, f"a read on {node}")


@pytest.mark.faults
def test_after_a_failover_writes_reach_the_promoted_replica_on_fresh_connections(
    db: ClusterDatabase, cluster: LocalCluster, ports: dict[int, str]
) -> None:
    with router.sqlalchemy.sessionmaker(db.router_config(**FAST)) as made:
        _read_on(made, "replica1")
        cluster.stop("primary")
        cluster.promote("replica1")
        wait_until(lambda: made.router._monitor.topology.primary == "replica1", "the failover")
        with made() as s:
            port, read_only = s.execute(
                insert(User).values(name=_unique("failover")).returning(*WRITE_WHERE)
            ).one()
            s.commit()
        # Its pooled connections were opened as a replica's: they were replaced.
        assert (ports[port], read_only) == ("replica1", "off")


def test_a_write_refused_as_read_only_by_the_primary_asks_for_rediscovery(
    factory: RoutedSessionmaker, caplog: pytest.LogCaptureFixture
) -> None:
    with factory(primary=True) as s:
        s.execute(text("SET TRANSACTION READ ONLY"))
        with caplog.at_level(logging.WARNING), pytest.raises(InternalError):
            s.execute(insert(User).values(name=_unique("refused")))
    assert "refused a write as read-only" in caplog.text


# -- async -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_reads_run_on_replicas_and_writes_on_the_primary(
    afactory: RoutedAsyncSessionmaker, ports: dict[int, str]
) -> None:
    assert afactory.router._state == "new"
    async with afactory() as s:
        port, in_recovery = (await s.execute(WHERE)).one()
        assert in_recovery is True
        node = ports[port]
        assert node in REPLICAS
        assert s.last_decision is not None
        assert s.last_decision.node == node

        ada = await s.get(User, 1)
        assert ada is not None
        assert s.last_decision.node == node
        users = (await s.scalars(select(User).options(selectinload(User.posts)))).all()
        assert {p.title for u in users for p in u.posts} >= {"first", "second"}
        assert s.last_decision.node == node

        s.expunge_all()
        joined = await s.scalars(select(User).options(joinedload(User.posts)).where(User.id == 1))
        assert [p.title for p in joined.unique().one().posts] == ["first", "second"]
        assert s.last_decision.node == node

        name = _unique("async")
        row = (
            await s.execute(insert(User).values(name=name).returning(func.pg_is_in_recovery()))
        ).one()
        assert row == (False,)
        assert (s.last_decision.node, s.last_decision.reason) == ("primary", "classifier")
        assert (await s.execute(WHERE)).one()[1] is False
        assert s.last_decision.reason == "pinned"
        await s.commit()

    async with afactory() as s:
        ticket = (await s.execute(text("SELECT nextval('tickets'), pg_is_in_recovery()"))).one()
        assert ticket[1] is False
        await s.rollback()
        locked = await s.execute(
            select(User.name, func.pg_is_in_recovery()).where(User.id == 1).with_for_update()
        )
        assert locked.one() == ("ada", False)
    assert sum(afactory.router.stats()["decisions"]["primary"].values()) >= 4


@pytest.mark.asyncio
async def test_async_lazy_loads_after_a_flush_run_on_the_primary(
    afactory: RoutedAsyncSessionmaker,
) -> None:
    async with afactory() as s:
        ada = await s.get(User, 1)
        assert ada is not None
        assert s.last_decision is not None
        assert s.last_decision.node in REPLICAS
        s.add(Post(user_id=1, title="fresh"))
        await s.flush()
        posts = await ada.awaitable_attrs.posts  # a lazy load, inside the greenlet
        assert [p.title for p in posts] == ["first", "second", "fresh"]
        assert (s.last_decision.node, s.last_decision.reason) == ("primary", "pinned")

        def in_sync(session: Session) -> list[str]:
            user = session.get(User, 1)
            assert user is not None
            return [p.title for p in user.posts]

        assert await s.run_sync(in_sync) == ["first", "second", "fresh"]
        await s.rollback()


@pytest.mark.asyncio
async def test_async_read_only_sessions_and_options(
    db: ClusterDatabase, ports: dict[int, str]
) -> None:
    name = _unique("aro")
    config = db.router_config(**FAST)
    async with router.sqlalchemy.async_sessionmaker(config, readonly=True) as made:
        async with made() as s:
            assert s.readonly
            seen = {ports[(await s.execute(WHERE)).one()[0]] for _ in range(5)}
            assert len(seen) == 1
            assert seen <= REPLICAS
            with pytest.raises(router.ReadOnlyViolation):
                await s.execute(insert(User).values(name=name))
            s.add(User(name=name))
            with pytest.raises(router.ReadOnlyViolation):
                await s.flush()
            await s.rollback()
        async with made(readonly=False, primary=True) as s:
            assert (await s.execute(WHERE)).one()[1] is False
        async with made(readonly=False) as s:
            assert (await s.execute(WHERE, execution_options={"router_primary": True})).one()[
                1
            ] is False
            with pytest.raises(router.ReadOnlyViolation):
                await s.execute(
                    insert(User).values(name=name),
                    execution_options={"postgresql_readonly": True},
                )
    assert _on_primary(db, "SELECT count(*) FROM users WHERE name = %s", name) == 0


async def _names(s: RoutedAsyncSession, look: Select[Any]) -> list[str]:
    return list((await s.execute(look)).scalars())


@pytest.mark.asyncio
@pytest.mark.faults
async def test_async_read_your_writes_across_transactions_sessions_and_factories(
    afactory: RoutedAsyncSessionmaker, db: ClusterDatabase
) -> None:
    await asyncio.to_thread(_delay_replicas, db, 0.5)
    name = _unique("aryw")
    look = select(User.name).where(User.name == name)
    async with afactory() as writer:
        writer.add(User(name=name))
        await writer.commit()
        token = writer.token()
        assert token is not None
        async with afactory(consistency="eventual") as stale:
            assert await _names(stale, look) == []
            assert stale.last_decision is not None
            assert stale.last_decision.node in REPLICAS
        # A new session of the factory reads at or past the factory's commits.
        async with afactory() as fresh:
            assert await _names(fresh, look) == [name]
        assert await _names(writer, look) == [name]
    async with afactory(after=token) as reader:
        assert await _names(reader, look) == [name]
    other = router.sqlalchemy.async_sessionmaker(db.router_config(**FAST))
    async with other, other(after=token) as remote:
        assert await _names(remote, look) == [name]
    # The sync factory (another "process") honours the async one's token too.
    with router.sqlalchemy.sessionmaker(db.router_config(**FAST)) as sync_other:

        def read() -> list[str]:
            with sync_other(after=token) as s:
                return list(s.execute(look).scalars())

        assert await asyncio.to_thread(read) == [name]


@pytest.mark.asyncio
@pytest.mark.faults
async def test_async_after_a_failover_writes_reach_the_promoted_replica(
    db: ClusterDatabase, cluster: LocalCluster, ports: dict[int, str]
) -> None:
    async with router.sqlalchemy.async_sessionmaker(db.router_config(**FAST)) as made:
        for _ in range(50):
            async with made() as s:
                await s.execute(WHERE)
                if s.last_decision is not None and s.last_decision.node == "replica1":
                    break
        else:
            pytest.fail("no read landed on replica1")
        await asyncio.to_thread(cluster.stop, "primary")
        await asyncio.to_thread(cluster.promote, "replica1")
        deadline = time.monotonic() + 10
        while made.router._monitor.topology.primary != "replica1":
            assert time.monotonic() < deadline, "the failover was not seen"
            await asyncio.sleep(0.01)
        async with made() as s:
            port, read_only = (
                await s.execute(
                    insert(User).values(name=_unique("afailover")).returning(*WRITE_WHERE)
                )
            ).one()
            await s.commit()
        assert (ports[port], read_only) == ("replica1", "off")


@pytest.mark.asyncio
@pytest.mark.faults
async def test_async_a_lost_connection_is_reported_to_the_monitor(
    afactory: RoutedAsyncSessionmaker, db: ClusterDatabase
) -> None:
    async with afactory() as s:
        pid = await s.scalar(select(func.pg_backend_pid()))
        assert s.last_decision is not None
        node = s.last_decision.node
        assert node in REPLICAS
        await asyncio.to_thread(_on_node, db.dsn(node), "SELECT pg_terminate_backend(%s)", pid)
        with pytest.raises(DBAPIError):
            await s.execute(WHERE)
        # As in the sync test: reported, the replica suspect until the check it asked for.
        health = afactory.router._monitor.topology.by_name[node]
        assert health.last_failure == "broken_connection"
    deadline = time.monotonic() + 10
    while not afactory.router._monitor.topology.by_name[node].admitted:
        assert time.monotonic() < deadline, f"{node} did not come back"
        await asyncio.sleep(0.01)
