"""Bad input (issue "Faults and abuse"): each gets a clear error naming the problem, nothing
crashes the monitor, nothing hangs past its timeout, and the router serves a good query after.

Malformed SQL, NUL characters in SQL and in parameters, 10 MB statements and parameters, wrong
credentials, a closed port, a blackholed address, a host name that does not resolve: on both
routers (``AsyncRouter`` over asyncpg, ``Router`` over psycopg) and the SQLAlchemy factories,
against :func:`~tests.faults.conftest.fault_cluster` (password :data:`SECRET`). Every call is
bounded by an explicit timeout and timed; run with ``-s`` to see the times.

Every field of ``RouterConfig`` / ``PoolConfig`` / ``RetryConfig`` / ``NodeConfig`` given a wrong
type and a wrong value, every ``router_*`` URL option and ``ROUTER_*`` variable given bad text:
the cases are generated from the dataclass fields (``tests/unit/test_config.py`` has the
hand-written table), so a new field without a check fails here.

The blackholed address is a loopback listener whose accept queue is full: the kernel drops
further SYNs, so a connect hangs as it would towards an unroutable address, without sending
anything off this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import math
import socket
import time
import traceback
import types
import typing
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from functools import partial
from typing import Any, Final, TypeVar

import asyncpg
import psycopg
import psycopg.errors
import pytest

import router
from router import (
    ConfigurationError,
    InvalidQuery,
    NodeConfig,
    PoolConfig,
    PrimaryUnavailable,
    RetryConfig,
    RouterConfig,
    RouterError,
)
from router.config._sources import options
from router.core._route import Decision
from router.testing import LocalCluster, router_config
from tests.faults.conftest import SECRET, leaks

F = TypeVar("F", bound=Callable[..., Any])

WRONG: Final = "pw-WRONG-MARKER-93be1f"
"""A wrong password: refused, and never to be seen either."""
DATABASE: Final = "abuse_bad_input"
#: Every call of a test is bounded by this (seconds), unless it says otherwise.
CALL_TIMEOUT: Final = 10.0
#: A statement error, a refused NUL, an unreachable node's error: the caller hears at once.
FAST: Final = 1.0
MONITOR_TIMEOUT: Final = 0.5
CONNECT_TIMEOUT: Final = 1.0
#: open() with a node that never answers: the monitor's patient first round (2 x its timeout
#: + 1 s) and the pools' connect timeout, plus slack for a loaded two-core machine.
OPEN_BOUND: Final = 2 * MONITOR_TIMEOUT + 1 + CONNECT_TIMEOUT + 2.0
FLAVOURS: Final = ("async", "sync")

MEASURED: dict[str, float] = {}


def db_test(fn: F) -> F:
    """Marks of a test that needs the cluster."""
    marked: F = pytest.mark.integration(pytest.mark.faults(fn))
    return marked


def _measured(name: str, seconds: float) -> None:
    # Shown with `pytest -s`: the numbers docs/reliability.md quotes.
    MEASURED[name] = max(seconds, MEASURED.get(name, 0.0))
    print(f"\n[measured] {name}: {seconds * 1000:.1f} ms")


# -- the driver's own errors, by SQLSTATE --------------------------------------------------------

_ASYNCPG_BY_STATE: Final[dict[str, type[BaseException]]] = {
    cls.sqlstate: cls  # type: ignore[attr-defined]
    for cls in vars(asyncpg.exceptions).values()
    if isinstance(cls, type)
    and issubclass(cls, asyncpg.PostgresError)
    and getattr(cls, "sqlstate", None)
}


def driver_error(flavour: str, sqlstate: str) -> type[BaseException]:
    """The class the flavour's driver raises for *sqlstate*: what the caller must get."""
    if flavour == "async":
        return _ASYNCPG_BY_STATE[sqlstate]
    found: type[BaseException] = psycopg.errors.lookup(sqlstate)
    return found


# -- one router of either flavour, driven from a sync test, every call bounded ---------------


@dataclass
class Outcome:
    """What one bounded call did: its value or error, how long it took, where it ran."""

    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0
    decision: Decision | None = None
    hung: bool = False

    def failed(self) -> BaseException:
        assert not self.hung, f"hung for {self.seconds:.1f} s"
        assert self.error is not None, f"succeeded with {self.value!r}"
        return self.error

    def ok(self) -> Any:
        assert not self.hung, f"hung for {self.seconds:.1f} s"
        assert self.error is None, f"{type(self.error).__name__}: {self.error}"
        return self.value


class Client:
    """An ``AsyncRouter`` (on an event loop of its own) or a ``Router`` (on a thread of its own,
    so a call that hangs can be given up on), with asyncpg's or psycopg's placeholders."""

    def __init__(self, flavour: str, config: RouterConfig) -> None:
        self.flavour = flavour
        self.router: Any
        self._runner: asyncio.Runner | None = None
        self._thread: ThreadPoolExecutor | None = None
        if flavour == "async":
            self._runner = asyncio.Runner()
            self.router = router.AsyncRouter(config)
        else:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="abuse-sync")
            self.router = router.Router(config)
        self._hung = False
        self._opened = False

    def ph(self, n: int) -> str:
        """The *n*-th placeholder."""
        return f"${n}" if self.flavour == "async" else "%s"

    def run(self, action: Callable[[Any], Any], timeout: float = CALL_TIMEOUT) -> Outcome:
        """``action(router)``, awaited if it returns an awaitable, given up after *timeout*."""

        async def bounded() -> Outcome:
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout) as limit:
                    value = action(self.router)
                    if inspect.isawaitable(value):
                        value = await value
            except TimeoutError as exc:
                if limit.expired():
                    self._hung = True
                    return Outcome(seconds=time.monotonic() - started, hung=True)
                return Outcome(error=exc, seconds=time.monotonic() - started)
            except Exception as exc:  # the outcome under test
                took = time.monotonic() - started
                return Outcome(None, exc, took, self.router.last_decision)
            return Outcome(value, None, time.monotonic() - started, self.router.last_decision)

        def direct() -> Outcome:
            started = time.monotonic()
            try:
                value = action(self.router)
            except Exception as exc:  # the outcome under test
                took = time.monotonic() - started
                return Outcome(None, exc, took, self.router.last_decision)
            return Outcome(value, None, time.monotonic() - started, self.router.last_decision)

        if self._runner is not None:
            return self._runner.run(bounded())
        assert self._thread is not None
        future = self._thread.submit(direct)
        try:
            return future.result(timeout)
        except FutureTimeout:
            self._hung = True
            return Outcome(seconds=timeout, hung=True)

    def query(self, method: str, sql: str, *params: Any, timeout: float = CALL_TIMEOUT) -> Outcome:
        """``router.<method>(sql, params)`` in the flavour's calling convention."""
        if self.flavour == "async":
            return self.run(lambda r: getattr(r, method)(sql, *params), timeout)
        return self.run(lambda r: getattr(r, method)(sql, params or None), timeout)

    def in_transaction(self, *statements: str, readonly: bool = False) -> Outcome:
        """*statements* in one ``router.transaction()``."""
        if self.flavour == "async":

            async def atx(r: Any) -> None:
                async with r.transaction(readonly=readonly) as tx:
                    for sql in statements:
                        await tx.execute(sql)

            return self.run(atx)

        def tx(r: Any) -> None:
            with r.transaction(readonly=readonly) as t:
                for sql in statements:
                    t.execute(sql)

        return self.run(tx)

    def in_session(self, *statements: str) -> Outcome:
        """*statements* in one ``router.session()``, each via ``fetch``."""
        if self.flavour == "async":

            async def asession(r: Any) -> None:
                async with r.session() as s:
                    for sql in statements:
                        await s.fetch(sql)

            return self.run(asession)

        def session(r: Any) -> None:
            with r.session() as s:
                for sql in statements:
                    s.fetch(sql)

        return self.run(session)

    def wait_until(self, condition: Callable[[Any], bool], what: str, timeout: float = 5) -> None:
        """Poll ``condition(router)`` while the router runs (an async router's monitor runs
        only while its loop does); fail after *timeout* s."""
        deadline = time.monotonic() + timeout
        if self.flavour == "async":

            async def apoll(r: Any) -> bool:
                while not condition(r) and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                return condition(r)

            seen = self.run(apoll, timeout + 1).ok()
        else:

            def poll(r: Any) -> bool:
                while not condition(r) and time.monotonic() < deadline:
                    time.sleep(0.01)
                return condition(r)

            seen = self.run(poll, timeout + 1).ok()
        assert seen, f"timed out after {timeout} s waiting for {what}"

    def rounds(self) -> int:
        rounds: int = self.router.stats()["monitor_rounds"]
        return rounds

    def open(self, timeout: float = CALL_TIMEOUT) -> float:
        outcome = self.run(lambda r: r.open(), timeout)
        outcome.ok()
        self._opened = True
        return outcome.seconds

    def close(self) -> float:
        """Close the router (idempotent); how long that took."""
        seconds = 0.0
        if self._opened and not self._hung:
            self._opened = False
            closing = self.run(lambda r: r.close(), 30.0)
            closing.ok()
            seconds = closing.seconds
        if self._runner is not None:
            self._runner.close()
        if self._thread is not None:
            self._thread.shutdown(wait=not self._hung)
        return seconds


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def db(fault_cluster: LocalCluster) -> Iterator[str]:
    """This module's database, with a table ``abuse (v text)``, on every node."""
    fault_cluster.drop_database(DATABASE)
    fault_cluster.create_database(DATABASE)
    with fault_cluster.primary.connect(DATABASE) as conn:
        conn.execute("CREATE TABLE abuse (v text)")
    fault_cluster.wait_caught_up()
    yield DATABASE
    fault_cluster.drop_database(DATABASE)


def config_for(cluster: LocalCluster, database: str = DATABASE, **options: Any) -> RouterConfig:
    """Fast monitor and probes, short timeouts, on *database*; *options* win."""
    base: dict[str, Any] = {
        "application_name": "abuse",
        "monitor_interval": 0.1,
        "monitor_timeout": MONITOR_TIMEOUT,
        "probe_backoff_initial": 0.1,
        "probe_backoff_max": 0.4,
        "readmit_hold": 0.2,
        "pool": PoolConfig(min_size=1, max_size=4, acquire_timeout=2.0, connect_timeout=1.0),
        "retry": RetryConfig(attempts=2, backoff_initial=0.01, backoff_max=0.05, jitter=0.01),
    }
    return router_config(cluster, database, **{**base, **options})


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def make(flavour: str) -> Iterator[Callable[[RouterConfig], Client]]:
    """Makes clients of the test's flavour; closes them afterwards."""
    made: list[Client] = []

    def make(config: RouterConfig) -> Client:
        client = Client(flavour, config)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def good(db: str, fault_cluster: LocalCluster, make: Callable[[RouterConfig], Client]) -> Client:
    """An open router of the test's flavour on the whole cluster."""
    client = make(config_for(fault_cluster))
    client.open()
    return client


def _fetchval(sql: object, r: Any) -> Any:
    return r.fetchval(sql)


def serves(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    """The router still serves a read and a write, its monitor still runs rounds, and nothing
    logged an error (the monitor's loop logs one when a round dies)."""
    before = client.rounds()
    read = client.query("fetchval", "SELECT pg_is_in_recovery()")
    assert read.ok() in (True, False)
    assert client.query("execute", "INSERT INTO abuse VALUES ('ok')").ok().startswith("INSERT")
    client.wait_until(lambda r: client.rounds() >= before + 2, "two more monitor rounds")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert client.router.stats()["primary"] == "primary"


def assert_no_secrets(error: BaseException) -> None:
    """Neither password in the error, its chain, or its traceback."""
    text = "".join(traceback.format_exception(error))
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        text += repr(link) + str(link)
        link = link.__cause__ or link.__context__
    assert not leaks(text)
    assert WRONG not in text
    assert WRONG[3:-3] not in text


# -- malformed SQL ---------------------------------------------------------------------------------

MALFORMED: Final = [
    ("SELEC 1", "42601"),
    ("SELECT 'never closed", "42601"),
    ("SELECT $tag$ never closed", "42601"),
    ("SELECT 1 /* never closed", "42601"),
    ("SELECT * FROM (", "42601"),
    ("DELETE FROM", "42601"),
    ("INSERT INTO abuse VALUES ('a') RETURNING", "42601"),
    ("SELECT 1; SELEC 2", "42601"),
]


@db_test
@pytest.mark.parametrize(("sql", "sqlstate"), MALFORMED, ids=[s for s, _ in MALFORMED])
def test_malformed_sql_reaches_the_primary_and_its_error_comes_back_unchanged(
    good: Client, caplog: pytest.LogCaptureFixture, sql: str, sqlstate: str
) -> None:
    assert router.classify(sql).reason == "unparseable"
    before = good.router.stats()["nodes"]
    outcome = good.query("execute", sql)
    error = outcome.failed()
    assert type(error) is driver_error(good.flavour, sqlstate), repr(error)
    assert not isinstance(error, RouterError)
    assert outcome.seconds < FAST
    assert outcome.decision is not None
    assert (outcome.decision.node, outcome.decision.reason) == ("primary", "classifier")
    after = good.router.stats()["nodes"]
    # It ran once, on the primary: a statement error is not retried elsewhere.
    assert after["primary"]["errors"] == before["primary"]["errors"] + 1
    for name in ("replica1", "replica2"):
        assert after[name]["errors"] == before[name]["errors"]
        assert after[name]["acquired"] == before[name]["acquired"]
    _measured(f"{good.flavour}: malformed SQL error", outcome.seconds)
    serves(good, caplog)


STATEMENT_ERRORS: Final = [
    ("SELECT 1 / 0", "22012"),
    ("SELECT * FROM no_such_table", "42P01"),
    ("SELECT 'x'::int", "22P02"),
    ("SELECT no_such_function()", "42883"),
]


@db_test
@pytest.mark.parametrize(("sql", "sqlstate"), STATEMENT_ERRORS)
def test_a_read_that_the_replica_refuses_is_not_retried_and_comes_back_unchanged(
    good: Client, caplog: pytest.LogCaptureFixture, sql: str, sqlstate: str
) -> None:
    before = good.router.stats()["nodes"]
    outcome = good.query("fetchval", sql)
    error = outcome.failed()
    assert type(error) is driver_error(good.flavour, sqlstate), repr(error)
    assert outcome.seconds < FAST
    after = good.router.stats()["nodes"]
    # Exactly one node saw it (a replica, or the primary for an unknown function): no retry.
    assert sum(after[n]["errors"] - before[n]["errors"] for n in after) == 1
    assert all(after[n]["health"] == "up" for n in after)
    serves(good, caplog)


@db_test
def test_a_malformed_statement_inside_a_transaction_or_session_leaves_nothing_behind(
    good: Client, caplog: pytest.LogCaptureFixture
) -> None:
    syntax = driver_error(good.flavour, "42601")
    for outcome in (
        good.in_transaction("INSERT INTO abuse VALUES ('tx')", "SELEC 1"),
        good.in_session("SELECT 1", "SELEC 1"),
    ):
        assert type(outcome.failed()) is syntax
        assert outcome.seconds < FAST
    # Unparseable is WRITE: a read-only transaction refuses it before sending it.
    refused = good.in_transaction("SELECT 1", "SELECT 'never closed", readonly=True)
    error = refused.failed()
    assert isinstance(error, router.ReadOnlyViolation), repr(error)
    assert "unparseable" in str(error)
    # The transaction rolled back, and every connection went back to its pool.
    assert good.query("fetchval", "SELECT count(*) FROM abuse WHERE v = 'tx'").ok() == 0
    assert all(n["pool"]["in_use"] == 0 for n in good.router.stats()["nodes"].values())
    serves(good, caplog)


# -- NUL characters, odd text, huge statements --------------------------------------------------


@db_test
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1\x00",
        "SELECT 1\x00; DROP TABLE abuse",
        "INSERT INTO abuse VALUES ('a\x00b')",
        "\x00",
    ],
    ids=["trailing", "hiding-a-drop", "in-a-literal", "alone"],
)
def test_a_nul_in_the_sql_is_refused_before_anything_is_sent(
    good: Client, caplog: pytest.LogCaptureFixture, sql: str
) -> None:
    # libpq would send "SELECT 1" and drop the rest without a word; asyncpg would get a bare
    # "invalid message format" from the server.
    before = good.router.stats()
    for outcome in (good.query("fetchval", sql), good.query("execute", sql)):
        error = outcome.failed()
        assert isinstance(error, InvalidQuery), repr(error)
        assert isinstance(error, ValueError)
        assert "NUL" in str(error)
        assert outcome.seconds < FAST
    # Refused before any node was chosen.
    assert good.router.stats()["decisions"] == before["decisions"]
    for outcome in (good.in_transaction(sql), good.in_session(sql)):
        assert isinstance(outcome.failed(), InvalidQuery), repr(outcome.error)
    after = good.router.stats()
    assert [n["errors"] for n in after["nodes"].values()] == [
        n["errors"] for n in before["nodes"].values()
    ]
    assert good.query("fetchval", "SELECT count(*) FROM abuse WHERE v LIKE 'a%'").ok() == 0
    serves(good, caplog)


@db_test
def test_a_nul_in_a_text_parameter_gets_the_drivers_error_and_bytea_keeps_it(
    good: Client, caplog: pytest.LogCaptureFixture
) -> None:
    p = good.ph(1)
    for method, sql in (
        ("fetchval", f"SELECT {p}::text"),
        ("execute", f"INSERT INTO abuse VALUES ({p})"),
    ):
        outcome = good.query(method, sql, "a\x00b")
        error = outcome.failed()
        # The driver's (psycopg) or the server's (asyncpg) own error, naming the byte.
        assert "0x00" in str(error), repr(error)
        assert not isinstance(error, RouterError)
        assert outcome.seconds < FAST
    if good.flavour == "async":
        assert type(error) is driver_error("async", "22021")
    else:
        assert type(error) is psycopg.DataError
    assert good.query("fetchval", f"SELECT length({p}::bytea)", b"a\x00b").ok() == 3
    serves(good, caplog)


@db_test
def test_text_the_driver_cannot_encode_gets_its_encoding_error(
    good: Client, caplog: pytest.LogCaptureFixture
) -> None:
    for outcome in (
        good.query("fetchval", "SELECT '\udcff'"),
        good.query("fetchval", f"SELECT {good.ph(1)}::text", "\udcff"),
    ):
        error = outcome.failed()
        # The codec's error, or asyncpg's own wrapping of it (a client-side DataError).
        assert isinstance(error, UnicodeEncodeError | asyncpg.DataError), repr(error)
        assert "surrogates not allowed" in str(error)
        assert outcome.seconds < FAST
    serves(good, caplog)


TEN_MB: Final = 10 * 1024 * 1024


@db_test
def test_ten_megabyte_statements_and_parameters(
    good: Client, caplog: pytest.LogCaptureFixture
) -> None:
    p = good.ph(1)
    big = "x" * TEN_MB
    # Too long to classify: WRITE, so the primary; the server takes it.
    statement = good.query("fetchval", f"SELECT length('{big}')")
    assert statement.ok() == TEN_MB
    assert statement.decision is not None
    assert statement.decision.node == "primary"
    assert statement.seconds < 5
    _measured(f"{good.flavour}: 10 MB statement", statement.seconds)
    # A short statement with a 10 MB parameter is an ordinary read.
    parameter = good.query("fetchval", f"SELECT length({p}::text)", big)
    assert parameter.ok() == TEN_MB
    assert parameter.decision is not None
    assert parameter.decision.node in ("replica1", "replica2")
    assert parameter.seconds < 5
    _measured(f"{good.flavour}: 10 MB parameter", parameter.seconds)
    write = good.query("execute", f"INSERT INTO abuse VALUES ({p})", big)
    assert write.ok().startswith("INSERT")
    assert good.query("execute", "DELETE FROM abuse WHERE length(v) > 1000").ok() == "DELETE 1"
    # 10 MB of garbage: the server's syntax error, quickly.
    garbage = good.query("execute", "SELEC " + big)
    assert type(garbage.failed()) is driver_error(good.flavour, "42601")
    assert garbage.seconds < 5
    _measured(f"{good.flavour}: 10 MB malformed statement", garbage.seconds)
    serves(good, caplog)


@db_test
def test_bad_arguments_to_the_router_name_the_problem_before_sending(
    good: Client, caplog: pytest.LogCaptureFixture
) -> None:
    before = good.router.stats()["decisions"]
    for bad in (5, None, ["SELECT 1"]):
        error = good.run(partial(_fetchval, bad)).failed()
        assert isinstance(error, TypeError), repr(error)
        assert "str" in str(error)
    error = good.run(lambda r: r.session(after="garbage")).failed()
    assert isinstance(error, router.InvalidToken)
    assert good.router.stats()["decisions"] == before
    if good.flavour == "async":

        async def bad_isolation(r: Any) -> None:
            async with r.transaction(isolation="sometimes"):
                pass

        error = good.run(bad_isolation).failed()
    else:

        def sync_bad_isolation(r: Any) -> None:
            with r.transaction(isolation="sometimes"):
                pass

        error = good.run(sync_bad_isolation).failed()
    assert isinstance(error, ValueError)
    assert "sometimes" in str(error)
    assert all(n["errors"] == 0 for n in good.router.stats()["nodes"].values())
    serves(good, caplog)


# -- nodes that refuse, never answer, or do not exist -------------------------------------------


@pytest.fixture(scope="module")
def blackhole() -> Iterator[tuple[str, int]]:
    """A loopback address where a connect hangs: a listener that never accepts, its accept
    queue filled, so the kernel drops every further SYN."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            with contextlib.suppress(BlockingIOError):
                filler.connect(address)
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(0.3)
        try:
            with pytest.raises(TimeoutError):
                probe.connect(address)
        finally:
            probe.close()
        yield address
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.fixture(scope="module")
def closed_port() -> tuple[str, int]:
    """A loopback port nothing listens on: the connection is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        address: tuple[str, int] = s.getsockname()
    return address


#: What the unusable node's error must say, per kind and flavour (driver wording differs).
BAD_NODES: Final = {
    "wrong-password": ("password authentication failed",),
    "closed-port": ("refused", "Connect call failed"),
    "blackholed": ("timeout", "no answer within", "timed out"),
    "unresolvable": ("resolve", "Name or service not known", "nodename nor servname"),
}


@pytest.fixture(params=sorted(BAD_NODES))
def bad_node(
    request: pytest.FixtureRequest,
    fault_cluster: LocalCluster,
    db: str,
    blackhole: tuple[str, int],
    closed_port: tuple[str, int],
) -> tuple[str, str]:
    """``(kind, dsn)`` of a node the router cannot use."""
    kind: str = request.param
    replica2 = fault_cluster.node("replica2")  # the bad node stands in for it
    where = {
        "wrong-password": (replica2.host, replica2.port),
        "closed-port": closed_port,
        "blackholed": blackhole,
        "unresolvable": ("no-such-host.invalid", 5432),
    }[kind]
    password = WRONG if kind == "wrong-password" else SECRET
    return kind, f"postgresql://postgres:{password}@{where[0]}:{where[1]}/{db}"


def _names_the_problem(kind: str, text: str) -> bool:
    return any(word.lower() in text.lower() for word in BAD_NODES[kind])


@db_test
def test_a_router_whose_only_node_is_unusable_opens_and_fails_fast_naming_it(
    fault_cluster: LocalCluster,
    make: Callable[[RouterConfig], Client],
    bad_node: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kind, dsn = bad_node
    config = config_for(fault_cluster).replace(primary=NodeConfig(dsn=dsn, name="bad"), replicas=())
    client = make(config)
    opened = client.open(timeout=OPEN_BOUND + 5)
    assert opened < OPEN_BOUND
    _measured(f"{client.flavour}: open() with a {kind} node", opened)
    stats = client.router.stats()
    assert stats["primary"] is None
    for method, sql in (("fetchval", "SELECT 1"), ("execute", "INSERT INTO abuse VALUES ('x')")):
        outcome = client.query(method, sql)
        error = outcome.failed()
        assert isinstance(error, PrimaryUnavailable), repr(error)
        message = str(error)
        assert "bad" in message  # the node
        assert _names_the_problem(kind, message), message
        assert outcome.seconds < FAST
        assert_no_secrets(error)
        _measured(f"{client.flavour}: a call with a {kind} node", outcome.seconds)
    node = client.router.stats()["nodes"]["bad"]
    assert node["health"] == "down"
    assert _names_the_problem(kind, node["last_error"]), node
    assert not leaks(client.router.stats())
    assert WRONG not in repr(client.router.stats())
    # The monitor goes on probing it, and stays bounded while doing so.
    rounds = client.rounds()
    client.wait_until(lambda r: client.rounds() >= rounds + 3, "three more monitor rounds")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    closed = client.close()
    assert closed < OPEN_BOUND
    _measured(f"{client.flavour}: close() with a {kind} node", closed)


@db_test
def test_an_unusable_replica_is_marked_down_and_the_others_serve(
    fault_cluster: LocalCluster,
    make: Callable[[RouterConfig], Client],
    bad_node: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kind, dsn = bad_node
    config = config_for(fault_cluster)
    config = config.replace(replicas=[config.replica_nodes[0], NodeConfig(dsn=dsn, name="bad")])
    client = make(config)
    opened = client.open(timeout=OPEN_BOUND + 5)
    assert opened < OPEN_BOUND
    _measured(f"{client.flavour}: open() with a {kind} replica", opened)
    node = client.router.stats()["nodes"]["bad"]
    assert node["health"] == "down"
    assert _names_the_problem(kind, node["last_error"]), node
    for _ in range(20):
        read = client.query("fetchval", "SELECT 1")
        assert read.ok() == 1
        assert read.decision is not None
        assert read.decision.node != "bad"
        assert read.seconds < FAST
    serves(client, caplog)


@db_test
def test_a_wrong_password_is_named_for_the_node_and_never_shown(
    fault_cluster: LocalCluster, make: Callable[[RouterConfig], Client]
) -> None:
    # Every node, with the wrong password: the error names each node and says why.
    def wrong(node: NodeConfig) -> NodeConfig:
        return node.replace(dsn=node.dsn.replace(SECRET, WRONG), name=node.name)

    config = config_for(fault_cluster)
    config = config.replace(
        primary=wrong(config.all_nodes[0]), replicas=[wrong(n) for n in config.replica_nodes]
    )
    client = make(config)
    client.open()
    started = time.monotonic()
    outcome = client.query("execute", "INSERT INTO abuse VALUES ('x')")
    error = outcome.failed()
    assert isinstance(error, PrimaryUnavailable)
    for name in ("primary", "replica1", "replica2"):
        assert name in str(error)
    assert str(error).count("password authentication failed") == 3, str(error)
    assert_no_secrets(error)
    _measured(f"{client.flavour}: write with a wrong password", time.monotonic() - started)


# -- SQLAlchemy ------------------------------------------------------------------------------------


@db_test
def test_sqlalchemy_sessions_get_the_database_error_and_refuse_nul(
    fault_cluster: LocalCluster, db: str, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlalchemy.exc
    from sqlalchemy import text

    from router.sqlalchemy import sessionmaker

    with sessionmaker(config_for(fault_cluster)) as factory:
        with factory() as session:
            started = time.monotonic()
            with pytest.raises(sqlalchemy.exc.ProgrammingError) as info:
                session.execute(text("SELEC 1"))
            assert type(info.value.orig) is psycopg.errors.SyntaxError
            assert time.monotonic() - started < FAST
        with factory() as session, pytest.raises(InvalidQuery, match="NUL"):
            session.execute(text("SELECT 1\x00; DROP TABLE abuse"))
        with factory() as session:
            counted = session.execute(text("SELECT count(*) FROM abuse WHERE v = 'ok'")).scalar()
            assert isinstance(counted, int)
            session.execute(text("INSERT INTO abuse VALUES ('sa')"))
            session.commit()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@db_test
def test_async_sqlalchemy_sessions_get_the_database_error_and_refuse_nul(
    fault_cluster: LocalCluster, db: str
) -> None:
    import sqlalchemy.exc
    from sqlalchemy import text

    from router.sqlalchemy import async_sessionmaker

    async def scenario() -> None:
        async with async_sessionmaker(config_for(fault_cluster)) as factory:
            async with factory() as session:
                with pytest.raises(sqlalchemy.exc.ProgrammingError) as info:
                    await session.execute(text("SELEC 1"))
                assert isinstance(info.value.orig, sqlalchemy.exc.DBAPIError | Exception)
                assert "syntax error" in str(info.value)
            async with factory() as session:
                with pytest.raises(InvalidQuery, match="NUL"):
                    await session.execute(text("SELECT 1\x00"))
            async with factory() as session:
                assert (await session.execute(text("SELECT 1"))).scalar() == 1

    asyncio.run(asyncio.wait_for(scenario(), CALL_TIMEOUT * 2))


# -- configuration: every field, a wrong type and a wrong value ----------------------------------


class _Opaque:
    """A value of no type any field accepts."""

    def __repr__(self) -> str:
        return "<opaque>"


class _Other(Enum):
    ROUND_ROBIN = "round-robin"


#: Wrong values by the field's type (right type, wrong value), from the hints.
_WRONG_INT: Final = [-1, -(2**63)]
_WRONG_FLOAT: Final = [-1.0, math.nan, math.inf, -math.inf]
#: Fields whose every value of the right type is valid: only wrong types apply (a bool; a
#: PoolConfig or RetryConfig was checked when it was made: their own cases below).
_NO_WRONG_VALUE: Final = frozenset(
    {"replica_read_only", "shadow", "emulate_replicas", "record_sql", "pool", "retry"}
)
#: Values of a wrong type for every field (a bool or a str is right for some: filtered below).
_WRONG_TYPES: Final = [
    _Opaque(),
    b"bytes",
    Decimal("1"),
    Fraction(1, 2),
    {"a": 1},
    1j,
    _Other.ROUND_ROBIN,  # an enum member whose value is a valid choice: still not a str
]
#: Wrong values for fields whose type alone does not say what is wrong.
_SPECIAL: Final[dict[str, list[Any]]] = {
    "application_name": ["", "x" * 64, "naïve", "a\nb", "a\x00b"],
    "name": ["  ", "a\tb", "n" * 200, "a\x00b"],
    "dsn": ["", "postgresql://h", "postgresql:///db", "not a dsn", "postgresql://h/d\x00b"],
    "password": ["pw"],  # also in the DSN (the NodeConfig cases give it one)
    # More than PostgreSQL's MAX_BACKENDS: asyncpg would build a slot for each at open().
    "max_size": [0, -1, 262_144, 10**9],
    # None switches it off; 0 would give up on every statement the router sends on its own;
    # the sync pool hands it to the kernel as an int of milliseconds (TCP_USER_TIMEOUT).
    "command_timeout": [0, 0.0, -1.0, math.nan, math.inf, -math.inf, 1e9],
    "policy": ["rr", "", "ROUND ROBIN!"],
    "consistency": ["linearizable", ""],
    "fallback": ["replica", ""],
    "pooler_mode": ["statement", ""],
    "read_functions": [["a.b.c"], [""], [" x"], ["ok", 5], "now"],
    "write_functions": [["a.b.c"], [""], ["x "], [None]],
    "primary": ["postgresql://h", "", "postgresql://h1,h2/db"],
    "replicas": [["postgresql://h"], "postgresql://r/db", [None]],
    "nodes": [["postgresql://h"], "postgresql://r/db", [5]],
    "patroni_urls": [
        ["ftp://db1:8008"],
        ["http://"],
        ["http://user:secret@db1:8008"],
        [5],
        "db1:8008",
        ["http://db1:99999"],
    ],
}


def _bases(hint: Any) -> set[Any]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return {typing.get_origin(a) or a for a in typing.get_args(hint)}
    return {typing.get_origin(hint) or hint}


def _accepts(bases: set[Any], value: object) -> bool:
    """Whether *value* is of a type the field's hint allows (so not a wrong *type*)."""
    for base in bases:
        if base is Any or base is object:
            return True
        if base in (int, float) and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if base is bool and isinstance(value, bool):
            return True
        if getattr(base, "_is_protocol", False) or not isinstance(base, type):
            continue  # a Protocol or a Literal: the field's own check says what fits
        if base not in (int, float, bool) and isinstance(value, base):
            return True
    return False


def _wrong_values(name: str, hint: Any) -> list[Any]:
    """Values of the right type that are wrong, from the hint (and the table above)."""
    if name in _SPECIAL:
        return _SPECIAL[name]
    if name in _NO_WRONG_VALUE:
        return []
    bases = _bases(hint)
    if int in bases and float not in bases:
        return _WRONG_INT
    if float in bases:
        return _WRONG_FLOAT
    raise AssertionError(
        f"no wrong value known for field {name!r} of type {hint!r}: add one to _SPECIAL"
    )


def _wrong_types(name: str, hint: Any) -> list[Any]:
    bases = _bases(hint)
    extra: list[Any] = []
    if bool in bases:
        extra = [1, "true", None]
    elif bases & {int, float}:
        extra = ["1", True, None] if type(None) not in bases else ["1", True]
    elif str in bases:
        extra = [5] if type(None) in bases else [5, None]
    values = [v for v in [*_WRONG_TYPES, *extra] if not _accepts(bases, v)]
    if name == "policy":  # any callable or object with choose() is a policy
        values = [v for v in values if not callable(v)]
    if name in ("pool", "retry"):
        values += [None, PoolConfig() if name == "retry" else RetryConfig()]
    assert values, f"no wrong type for field {name!r} of type {hint!r}"
    return values


NODE_DSN: Final = "postgresql://u:other@h/db"


def _cases(cls: type[Any], prefix: str) -> list[tuple[str, str, Any, str]]:
    hints = typing.get_type_hints(cls)
    cases = []
    for spec in dataclasses.fields(cls):
        if not spec.init:
            continue
        hint = hints[spec.name]
        field = f"{prefix}{spec.name}"
        for value in _wrong_types(spec.name, hint):
            cases.append((cls.__name__, spec.name, value, field))
        for value in _wrong_values(spec.name, hint):
            cases.append((cls.__name__, spec.name, value, field))
    return cases


CONFIG_CASES: Final = [
    *_cases(RouterConfig, ""),
    *_cases(PoolConfig, "pool."),
    *_cases(RetryConfig, "retry."),
    *_cases(NodeConfig, ""),
]


def _build(cls_name: str, name: str, value: Any) -> object:
    if cls_name == "NodeConfig":
        return NodeConfig(**{"dsn": NODE_DSN, name: value})
    if cls_name == "PoolConfig":
        return PoolConfig(**{name: value})
    if cls_name == "RetryConfig":
        return RetryConfig(**{name: value})
    kwargs: dict[str, Any] = {"primary": "postgresql://p/db", "replicas": ["postgresql://r/db"]}
    if name == "nodes":
        kwargs = {}
    return RouterConfig(**{**kwargs, name: value})


def _expected_field(name: str, field: str) -> set[str]:
    """The field an error may name: lists name the entry (``replicas[0]``)."""
    if name in ("read_functions", "write_functions", "replicas", "nodes", "patroni_urls"):
        return {field, *(f"{field}[{i}]" for i in range(3))}
    return {field}


@pytest.mark.parametrize(
    ("cls_name", "name", "value", "field"),
    CONFIG_CASES,
    ids=[f"{c}.{n}={v!r}"[:60] for c, n, v, _ in CONFIG_CASES],
)
def test_every_config_field_refuses_a_wrong_type_and_a_wrong_value(
    cls_name: str, name: str, value: Any, field: str
) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        _build(cls_name, name, value)
    error = info.value
    assert error.field in _expected_field(name, field), str(error)
    assert error.problem
    assert str(error).startswith(f"{error.field}: ")
    assert isinstance(error, RouterError)
    assert isinstance(error, ValueError)
    assert time.monotonic() - started < FAST


def test_every_field_has_cases() -> None:
    for cls in (RouterConfig, PoolConfig, RetryConfig, NodeConfig):
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        covered = {n for c, n, _, _ in CONFIG_CASES if c == cls.__name__}
        assert names == covered, names ^ covered


def test_a_router_is_built_from_a_config_not_a_url() -> None:
    url: Any = f"postgresql://u:{SECRET}@h/db"
    for make in (router.AsyncRouter, router.Router):
        with pytest.raises(ConfigurationError) as info:
            make(url)
        assert info.value.field == "config"
        assert "RouterConfig.from_url" in info.value.problem
        assert not leaks(info.value)


# -- text options: every router_* URL option and ROUTER_* variable, given bad text ----------------

#: Text that no option of the kind accepts.
_BAD_TEXT: Final[dict[type[Any], list[str]]] = {
    bool: ["maybe", "2", "none", ""],
    int: ["1.5", "ten", "0x", "", "1e3", "-1"],
    float: ["soon", "nan", "inf", "-1", "", "1,5"],
    tuple: ["a.b.c", "ok, a.b.c"],
}
_BAD_STR: Final[dict[str, list[str]]] = {
    "policy": ["fastest", ""],
    "consistency": ["linearizable"],
    "fallback": ["replica"],
    "pooler_mode": ["statement"],
    "application_name": ["x" * 64, "naïve"],
}


def _text_cases() -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for key, option in options(RouterConfig).items():
        if option.kind is str:
            bad = _BAD_STR.get(key)
            assert bad is not None, f"no bad text known for the option {key!r}: add one"
        else:
            bad = _BAD_TEXT[option.kind]
        cases.extend((key, text) for text in bad if not (option.optional and text == "none"))
    return cases


TEXT_CASES: Final = _text_cases()


@pytest.mark.parametrize(("key", "text"), TEXT_CASES)
def test_every_env_variable_names_itself_on_bad_text(key: str, text: str) -> None:
    env = {"ROUTER_URL": f"postgresql://app:{SECRET}@h1,h2/db", f"ROUTER_{key.upper()}": text}
    with pytest.raises(ConfigurationError) as info:
        RouterConfig.from_env(env)
    assert info.value.field == f"ROUTER_{key.upper()}", str(info.value)
    assert not leaks(info.value)


@pytest.mark.parametrize(("key", "text"), TEXT_CASES)
def test_every_url_option_names_itself_on_bad_text(key: str, text: str) -> None:
    from urllib.parse import quote

    url = f"postgresql://app:{SECRET}@h1,h2/db?router_{key}={quote(text)}"
    with pytest.raises(ConfigurationError) as info:
        RouterConfig.from_url(url)
    assert info.value.field == f"url: router_{key}", str(info.value)
    assert not leaks(info.value)


GARBAGE_URLS: Final = [
    "postgresql://",
    "postgresql://h",
    "postgresql://h/",
    "postgresql://:@/",
    "postgresql://h/db?=",
    "postgresql://h/db?&&",
    "postgresql://h/db?router_=",
    "postgresql://[/db",
    "postgresql://[::1]:/",
    "postgresql://h:65536/db",
    "postgresql://h:-1/db",
    "postgresql://h:1:2/db",
    "postgresql://%zz/db",
    "postgresql://h/%zz",
    "postgresql://h/db?sslmode=%",
    "postgresql://h1,,/db",
    "postgresql://" + ",".join(["h"] * 1000) + "/db",
    "postgres:/h/db",
    "postgresql:h/db",
    "mysql://h/db",
    "postgresql://h\x00/db",
    "postgresql://h/db\n?x=1",
    "☃://h/db",
    " ",
    "",
]


@pytest.mark.parametrize("url", GARBAGE_URLS, ids=[repr(u)[:40] for u in GARBAGE_URLS])
def test_garbage_urls_get_a_configuration_error_naming_the_url(url: str) -> None:
    started = time.monotonic()
    makers: list[tuple[Callable[[], object], str]] = [
        (partial(RouterConfig.from_url, url), "url"),
        (partial(RouterConfig.from_env, {"ROUTER_URL": url}), "ROUTER_URL"),
    ]
    for make, field in makers:
        with pytest.raises(ConfigurationError) as info:
            make()
        # The URL, or one of its router_* options ("url: router_").
        assert info.value.field.partition(":")[0] == field, str(info.value)
        assert info.value.problem
    assert time.monotonic() - started < FAST


def test_a_url_without_a_database_says_so_everywhere() -> None:
    for make, field in (
        (lambda: RouterConfig.from_url(f"postgresql://u:{SECRET}@h1,h2"), "url"),
        (lambda: RouterConfig.from_url(f"postgresql://u:{SECRET}@h1,h2/"), "url"),
        (lambda: NodeConfig(dsn=f"postgresql://u:{SECRET}@h"), "dsn"),
        (lambda: NodeConfig(dsn=f"host=h password={SECRET}"), "dsn"),
        (lambda: RouterConfig(primary=f"postgresql://u:{SECRET}@h"), "primary"),
        (lambda: RouterConfig.from_env({"ROUTER_URL": "postgresql://h"}), "ROUTER_URL"),
        (
            lambda: RouterConfig.from_env({"ROUTER_PRIMARY_URL": f"postgresql://u:{SECRET}@p"}),
            "ROUTER_PRIMARY_URL",
        ),
    ):
        with pytest.raises(ConfigurationError) as info:
            make()
        assert info.value.field == field
        assert "database" in info.value.problem
        assert not leaks(info.value)
