"""router.sqlalchemy without a database: statements to classifications, and the routing
rules of ``RoutedSession.get_bind`` over a hand-made topology (engines are made, never
connected)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    Sequence,
    String,
    Table,
    create_engine,
    delete,
    func,
    insert,
    lambda_stmt,
    literal_column,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    column_property,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
)

import router
import router.sqlalchemy
from router._async._router import AsyncRouter
from router.core import (
    Classifier,
    FunctionCatalog,
    GateParams,
    Lsn,
    NodeStatus,
    Route,
    Topology,
    encode_token,
    tick,
)
from router.core._route import Reason
from router.core._token import Position
from router.sqlalchemy._routing import Routing
from router.sqlalchemy._session import RoutedSession
from router.sqlalchemy._statements import StatementText, classify_statement

# -- statements ----------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    posts: Mapped[list[Post]] = relationship(back_populates="user")


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(50))
    user: Mapped[User] = relationship(back_populates="posts")


class Ticket(Base):
    """A mapped class whose every load calls a volatile function."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    number = column_property(func.nextval("ticket_numbers"))


core_table = Table("kv", MetaData(), Column("k", Integer, primary_key=True), Column("v", Integer))

DIALECTS = [postgresql.psycopg.dialect(), postgresql.asyncpg.dialect()]


def _route(clause: Any, dialect: Any = DIALECTS[0]) -> Route:
    texts = StatementText(dialect, 100)
    return classify_statement(texts, router.classify, clause).route


READS = {
    "orm select": select(User).where(User.id == 5),
    "orm select, range": select(User).where(User.id.between(1, 10)).order_by(User.id).limit(10),
    "orm join": select(User).join(User.posts).where(Post.title == "x"),
    "selectinload": select(User).options(selectinload(User.posts)),
    "joinedload": select(User).options(joinedload(User.posts)),
    "count": select(func.count()).select_from(User),
    "stable function": select(func.lower(User.name)),
    "in list": select(User).where(User.id.in_([1, 2, 3])),
    "core select": select(core_table).where(core_table.c.k > 3),
    "union": union_all(select(core_table.c.k), select(User.id)),
    "text": text("SELECT * FROM users WHERE id = :id"),
    "text with a cast": text("SELECT name::text FROM users WHERE id = :id"),
    "lambda": lambda_stmt(lambda: select(User).where(User.id == 3)),
    "exists": select(select(User.id).where(User.id == 1).exists()),
}

WRITES = {
    "orm insert": insert(User).values(name="x"),
    "core insert": insert(core_table).values(k=1, v=2),
    "update": update(User).where(User.id == 1).values(name="y"),
    "delete": delete(core_table),
    "for update": select(User).where(User.id == 1).with_for_update(),
    "for share": select(User).with_for_update(read=True),
    "for no key update": select(User).with_for_update(key_share=True),
    "nextval": select(func.nextval("users_id_seq")),
    "sequence": select(Sequence("users_id_seq").next_value()),
    "function executed alone": func.nextval("users_id_seq"),
    "setval in a where": select(User).where(User.id == func.setval("s", 1)),
    "volatile user function": select(func.app_audit(User.id)),
    "literal column": select(literal_column("nextval('s')")),
    "text nextval": text("SELECT nextval('users_id_seq')"),
    "text for update": text("SELECT * FROM users WHERE id = :id FOR UPDATE"),
    "text dml": text("UPDATE users SET name = :n"),
    "hint prefix": select(User).prefix_with("/* router:primary */"),
    "dml in a cte": select(
        insert(core_table).values(k=1, v=1).returning(core_table.c.k).cte("ins")
    ),
    "column_property with nextval": select(Ticket),
    "advisory lock": select(func.pg_advisory_lock(1)),
}


@pytest.mark.parametrize("dialect", DIALECTS, ids=["psycopg", "asyncpg"])
@pytest.mark.parametrize("name", READS)
def test_reads_classify_as_reads(name: str, dialect: Any) -> None:
    assert _route(READS[name], dialect) is Route.READ


@pytest.mark.parametrize("dialect", DIALECTS, ids=["psycopg", "asyncpg"])
@pytest.mark.parametrize("name", WRITES)
def test_writes_classify_as_writes(name: str, dialect: Any) -> None:
    assert _route(WRITES[name], dialect) is Route.WRITE


def test_a_statement_shape_is_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = StatementText(DIALECTS[0], 100)
    compiled: list[object] = []
    real = StatementText._compile

    def counting(self: StatementText, clause: Any) -> str | None:
        compiled.append(clause)
        return real(self, clause)

    monkeypatch.setattr(StatementText, "_compile", counting)
    for i in range(5):
        # New objects each time, as an application builds them: one shape.
        assert classify_statement(texts, router.classify, select(User).where(User.id == i)).route
    assert len(compiled) == 1
    classify_statement(texts, router.classify, select(User).where(User.name == "x"))
    assert len(compiled) == 2
    # DML and text are never compiled.
    classify_statement(texts, router.classify, insert(User).values(name="x"))
    classify_statement(texts, router.classify, text("SELECT 1"))
    assert len(compiled) == 2


def test_the_text_cache_is_bounded() -> None:
    texts = StatementText(DIALECTS[0], 3)
    shapes = [select(User.id), select(User.name), select(Post.id), select(Post.title)]
    for shape in shapes + shapes:
        assert texts.of(shape) is not None
    assert len(texts) == 3
    unbounded = StatementText(DIALECTS[0], 0)
    unbounded.of(select(User))
    assert len(unbounded) == 0


def test_a_remembered_classification_follows_the_classifiers_catalog() -> None:
    """The classification of a compiled shape is kept, and used again only while the
    classifier has not changed (a catalog set, a refusal learnt)."""
    classifier = Classifier()
    texts = StatementText(DIALECTS[0], 100, classifier)
    read = select(func.app_lookup(User.id))  # an unknown function: a write
    again = select(func.app_lookup(User.id))  # the same shape, another object
    assert classify_statement(texts, classifier.classify, read).route is Route.WRITE
    classifier.set_catalog(FunctionCatalog.from_rows([("public", "app_lookup", "s")]))
    assert classify_statement(texts, classifier.classify, again).route is Route.READ
    first = classify_statement(texts, classifier.classify, select(User).where(User.id == 1))
    assert first.route is Route.READ
    text = texts.of(select(User).where(User.id == 2))
    assert text is not None
    classifier.learn_refusal(text, "unlogged")
    after = classify_statement(texts, classifier.classify, select(User).where(User.id == 3))
    assert after.route is Route.WRITE
    assert after.standby_refuses


def test_a_statement_that_does_not_compile_goes_to_the_primary() -> None:
    class Odd:
        """Not a SQL expression: SQLAlchemy refuses it when it compiles the statement."""

    assert _route(select(func.nextval(Odd()))) is Route.WRITE


# -- routing rules -------------------------------------------------------------------------

PARAMS = GateParams(max_lag_bytes=1000, max_lag_seconds=None)
NAMES = ("p", "r1", "r2")


def _topology(r1: int = 100, r2: int = 100, *, primary: str = "p") -> Topology:
    observations = {
        name: NodeStatus(in_recovery=False, wal_lsn=Lsn(100))
        if name == primary
        else NodeStatus(in_recovery=True, replay_lsn=Lsn(r1 if name == "r1" else r2))
        for name in NAMES
    }
    return tick(Topology.initial(list(NAMES)), observations, 0.0, PARAMS)


def _config(**options: Any) -> router.RouterConfig:
    return router.RouterConfig(
        primary=router.NodeConfig(dsn="postgresql://app:s3cret@p.invalid/app", name="p"),
        replicas=[
            router.NodeConfig(dsn="postgresql://app:s3cret@r1.invalid/app", name="r1"),
            router.NodeConfig(dsn="postgresql://app:s3cret@r2.invalid/app", name="r2"),
        ],
        **options,
    )


class Harness:
    """A routing over a core that never opens: its topology is set by the test."""

    def __init__(self, **options: Any) -> None:
        self.core = AsyncRouter(_config(**options))
        self.core._monitor.topology = _topology()
        self.core.engine.system_id = 7
        self.opened = 0
        self.engines = {
            n: create_engine(f"postgresql+psycopg://app@{n}.invalid/app") for n in NAMES
        }
        self.routing = Routing(self.core.engine, self.engines, open_core=self._open)
        self.Session: type[RoutedSession] = type(
            "TestSession", (RoutedSession,), {"_router_routing": self.routing}
        )

    def _open(self) -> None:
        self.opened += 1

    def node(self, session: RoutedSession, clause: Any = None, **kw: Any) -> str:
        """Where *clause* goes, inside a transaction (begun if none is)."""
        if not session.in_transaction():
            session.begin()
        bind = session.get_bind(clause=clause, **kw)
        (name,) = [n for n, e in self.engines.items() if e is bind or e.pool is bind.pool]
        return name

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


READ = select(User).where(User.id == 1)


def _reason(s: RoutedSession) -> Reason:
    assert s.last_decision is not None
    return s.last_decision.reason


def test_reads_go_to_one_replica_per_transaction_and_writes_pin_the_primary(h: Harness) -> None:
    s = h.Session()
    first = h.node(s, READ)
    assert first in {"r1", "r2"}
    assert all(h.node(s, READ) == first for _ in range(5))  # held, not round-robin
    assert _reason(s) is Reason.CLASSIFIER
    assert h.node(s, insert(User).values(name="x")) == "p"
    assert h.node(s, READ) == "p"
    assert _reason(s) is Reason.PINNED
    s.rollback()  # the transaction ends: reads leave the primary again
    assert h.node(s, READ) in {"r1", "r2"}
    assert h.opened == 1
    counted = h.core.engine.decisions
    assert counted[("p", "classifier")] == 1
    assert counted[("p", "pinned")] == 1
    assert sum(n for (node, _), n in counted.items() if node != "p") == 7


def test_a_flush_is_a_write(h: Harness) -> None:
    s = h.Session()
    s._flushing = True
    assert h.node(s, None) == "p"
    s._flushing = False
    assert h.node(s, READ) == "p"


def test_a_connection_without_a_statement_is_taken_for_a_write(h: Harness) -> None:
    s = h.Session()
    assert h.node(s) == "p"
    assert h.node(s, READ) == "p"
    ro = h.Session(readonly=True)
    assert h.node(ro) in {"r1", "r2"}


def test_read_only_sessions_refuse_writes_before_sending_them(h: Harness) -> None:
    s = h.Session(readonly=True)
    node = h.node(s, READ)
    assert node in {"r1", "r2"}
    for write in (insert(User).values(name="x"), WRITES["text nextval"], WRITES["for update"]):
        with pytest.raises(router.ReadOnlyViolation, match="read-only session"):
            s.get_bind(clause=write)
    s._flushing = True
    with pytest.raises(router.ReadOnlyViolation, match="ORM flush"):
        s.get_bind()
    s._flushing = False
    assert h.node(s, READ) == node
    assert s._router_write is None


def test_execution_options_per_statement(h: Harness) -> None:
    s = h.Session()
    assert h.node(s, READ.execution_options(router_primary=True)) == "p"
    assert s.last_decision is not None
    assert s.last_decision.reason is Reason.HINT
    assert h.node(s, READ, router_primary=True) == "p"  # bind_arguments, as execute() passes
    assert h.node(s, READ) in {"r1", "r2"}  # a primary read does not pin
    with pytest.raises(router.ReadOnlyViolation, match="read-only statement"):
        s.get_bind(clause=insert(User).values(name="x").execution_options(postgresql_readonly=True))
    with pytest.raises(router.ReadOnlyViolation):
        s.get_bind(clause=WRITES["nextval"], postgresql_readonly=True)
    assert h.node(s, READ.execution_options(postgresql_readonly=True)) in {"r1", "r2"}
    assert h.node(s, WRITES["hint prefix"]) == "p"


def test_primary_sessions_read_from_the_primary(h: Harness) -> None:
    s = h.Session(primary=True)
    assert h.node(s, READ) == "p"
    assert s.last_decision is not None
    assert s.last_decision.reason is Reason.HINT
    assert s._router_write is None


def test_a_floor_no_replica_has_reached_reads_the_primary(h: Harness) -> None:
    token = encode_token(Position(7, Lsn(150)))
    s = h.Session(after=token)
    assert h.node(s, READ) == "p"
    assert s.last_decision is not None
    assert s.last_decision.reason is Reason.CONSISTENCY
    assert s.token() == token
    h.core._monitor.topology = _topology(r1=150, r2=120)
    s.rollback()
    assert h.node(s, READ) == "r1"
    eventual = h.Session(consistency="eventual")
    assert h.node(eventual, READ) in {"r1", "r2"}


def test_a_token_of_another_cluster_is_refused() -> None:
    foreign = encode_token(Position(8, Lsn(150)))
    h = Harness()
    try:
        with pytest.raises(router.ForeignToken):
            h.Session(after=foreign)
        h.core.engine.system_id = None  # not open yet: checked at the first statement
        s = h.Session(after=foreign)
        assert s.token() == foreign
        h.core.engine.system_id = 7
        with pytest.raises(router.ForeignToken):
            s.get_bind(clause=READ)
        with pytest.raises(router.InvalidToken):
            h.Session(after="r1.nonsense")
    finally:
        h.close()


def test_a_commit_that_wrote_raises_the_floor(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h.routing, "commit_position", lambda: Lsn(180))
    s = h.Session()
    s.begin()
    assert h.node(s, READ) in {"r1", "r2"}
    s.commit()  # only read: no position
    assert s._router_scope.floor == Lsn(100)  # what the replica had replayed
    s.begin()
    h.node(s, insert(User).values(name="x"))
    s.rollback()  # rolled back: nothing to see
    assert s._router_scope.floor == Lsn(100)
    s.begin()
    h.node(s, insert(User).values(name="x"))
    s.begin_nested().commit()  # a savepoint released: not yet
    assert s._router_scope.floor == Lsn(100)
    s.commit()
    assert s._router_scope.floor == Lsn(180)
    assert h.core.engine.scope.floor == Lsn(180)  # the factory's router sees it too
    assert s.token() == encode_token(Position(7, Lsn(180)))
    assert h.node(s, READ) == "p"
    assert s.last_decision is not None
    assert s.last_decision.reason is Reason.CONSISTENCY


def test_an_unknown_commit_position_keeps_reads_on_the_primary(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail() -> Lsn:
        raise router.PrimaryUnavailable("gone")

    monkeypatch.setattr(h.routing, "commit_position", fail)
    s = h.Session()
    s.begin()
    h.node(s, insert(User).values(name="x"))
    s.commit()
    assert h.node(s, READ) == "p"
    assert s.last_decision is not None
    assert "unknown" in s.last_decision.detail
    assert h.node(s, READ) == "p"  # tried again, failed again
    s.rollback()
    # Readable again: the next read takes the position (at or past the commit) and moves on.
    monkeypatch.setattr(h.routing, "commit_position", lambda: Lsn(90))
    assert h.node(s, READ) in {"r1", "r2"}
    assert s._router_scope.floor == Lsn(100)


def test_writes_without_a_primary_fail_fast(h: Harness) -> None:
    observations = {
        "r1": NodeStatus(in_recovery=True, replay_lsn=Lsn(100)),
        "r2": NodeStatus(in_recovery=True, replay_lsn=Lsn(100)),
    }
    h.core._monitor.topology = tick(Topology.initial(list(NAMES)), observations, 0.0, PARAMS)
    s = h.Session(consistency="eventual")
    with pytest.raises(router.PrimaryUnavailable):
        s.get_bind(clause=insert(User).values(name="x"))
    assert h.node(s, READ) in {"r1", "r2"}


def test_role_changes_dispose_of_no_pool_and_route_by_the_new_roles(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Disposing of a pool in the session that saw the change first let sessions in other
    # tasks and threads take its old connections meanwhile: each connection opened for
    # another role is opened again as it is checked out instead (test_sqlalchemy_engines).
    disposed: list[str] = []
    for name, engine in h.engines.items():
        monkeypatch.setattr(engine, "dispose", lambda name=name: disposed.append(name))
    s = h.Session()
    h.node(s, READ)
    h.core._monitor.topology = _topology(primary="r1")  # a failover: p demoted, r1 promoted
    s.rollback()
    assert h.node(s, insert(User).values(name="x")) == "r1"
    assert disposed == []
    assert h.routing.role_of("p") is router.core.Role.REPLICA


def test_shadow_mode_sends_reads_to_the_primary_and_says_where_they_would_go() -> None:
    h = Harness(shadow=True)
    try:
        s = h.Session()
        assert h.node(s, READ) == "p"
        assert s.last_decision is not None
        assert s.last_decision.reason is Reason.SHADOW
        assert "would go to r" in s.last_decision.detail
    finally:
        h.close()


def test_a_closed_routing_refuses_to_route(h: Harness) -> None:
    h.routing.close()
    with pytest.raises(RuntimeError, match="closed"):
        h.Session().get_bind(clause=READ)


def test_an_explicit_bind_wins(h: Harness) -> None:
    s = h.Session()
    assert s.get_bind(clause=READ, bind=h.engines["p"]) is h.engines["p"]
    with pytest.raises(TypeError):
        h.Session(bind=h.engines["p"])


# -- factories -----------------------------------------------------------------------------


def test_factories_do_no_io_and_show_no_password() -> None:
    config = _config()
    with router.sqlalchemy.sessionmaker(config, expire_on_commit=False) as factory:
        assert factory.router._state == "new"
        shown = [repr(factory), repr(factory.router), *map(repr, factory.engines.values())]
        shown += [str(e.url) for e in factory.engines.values()]
        shown += [e.url.render_as_string(hide_password=False) for e in factory.engines.values()]
        assert not [s for s in shown if "s3cret" in s]
        assert set(factory.engines) == {"p", "r1", "r2"}
        session = factory(readonly=True)
        assert session.readonly
        assert not session.expire_on_commit
        assert session.token() is None
        engine = factory.engines["p"]
        assert engine.pool.size() == 10  # type: ignore[attr-defined]
        assert factory.router.config.pool.min_size == 0


@pytest.mark.asyncio
async def test_async_factories_do_no_io_and_show_no_password() -> None:
    async with router.sqlalchemy.async_sessionmaker(_config(), readonly=True) as factory:
        assert factory.router._state == "new"
        assert not [e for e in factory.engines.values() if "s3cret" in repr(e)]
        session = factory()
        assert session.readonly
        assert session.token() is None
        assert session.last_decision is None
        assert isinstance(session.routed, RoutedSession)


def test_factories_make_the_session_classes_they_are_given() -> None:
    class Mine(RoutedSession):
        pass

    with router.sqlalchemy.sessionmaker(_config(), class_=Mine) as factory:
        assert isinstance(factory(), Mine)
    with pytest.raises(TypeError, match="RoutedSession"):
        router.sqlalchemy.sessionmaker(_config(), class_=Session)
    with pytest.raises(TypeError, match="RoutedAsyncSession"):
        router.sqlalchemy.async_sessionmaker(_config(), class_=AsyncSession)


def test_the_public_surface() -> None:
    names = router.sqlalchemy.__all__
    assert names == sorted(set(names), key=names.index)
    for name in names:
        assert hasattr(router.sqlalchemy, name), name
    assert router.sqlalchemy.PRIMARY_OPTION == "router_primary"
    assert router.sqlalchemy.READONLY_OPTION == "postgresql_readonly"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there now: connecting is refused at once


def test_a_failed_connect_hides_the_password_and_is_reported() -> None:
    dsn = f"postgresql://app:s3cret@127.0.0.1:{_closed_port()}/app"
    config = router.RouterConfig(primary=router.NodeConfig(dsn=dsn, name="p"))
    with router.sqlalchemy.sessionmaker(config) as factory:
        with pytest.raises(OperationalError) as failed:
            factory.engines["p"].connect()
        assert "s3cret" not in str(failed.value)
        assert "s3cret" not in repr(failed.value)
        health = factory.router._monitor.topology.by_name["p"]
        assert health.last_failure == "connect_failed"


# Routing.read carries the everyday read (a replica, nothing to settle, confirm or redirect)
# out at once: a read that needs any of those still takes every step.


def test_a_read_moving_to_another_replica_reads_the_primary_position_first(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []

    def commit_position() -> Lsn:
        asked.append(1)
        return Lsn(150)

    monkeypatch.setattr(h.routing, "commit_position", commit_position)
    s = h.Session()
    first = h.node(s, READ)
    s.rollback()  # the next transaction decides again (monotonic reads: first read at 100)
    other = "r2" if first == "r1" else "r1"
    behind = {first: 90, other: 200}
    h.core._monitor.topology = _topology(behind["r1"], behind["r2"])
    assert asked == []
    assert h.node(s, READ) == other
    assert asked == [1]  # settled: the floor rose past what the first read saw
    assert s._router_scope.floor == Lsn(200)  # then read on other, known at 200


@pytest.mark.parametrize("consistency", [None, "strong"])
def test_a_read_on_the_primary_checks_an_imported_floor_there(
    h: Harness, monkeypatch: pytest.MonkeyPatch, consistency: str | None
) -> None:
    # read_your_writes: a replica is asked first (it has not replayed 500), then the
    # primary; strong: the primary at once.
    asked: list[int] = []

    def commit_position() -> Lsn:
        asked.append(1)
        return Lsn(600)

    monkeypatch.setattr(h.routing, "commit_position", commit_position)
    token = encode_token(Position(7, Lsn(500)))  # past every replica (100)
    s = h.Session(after=token, consistency=consistency)
    assert h.node(s, READ) == "p"
    assert asked == [1]  # the floor is not known on this timeline: the primary's position
    assert s._router_scope.seen_on is None  # a read on the primary is not a replica's read
