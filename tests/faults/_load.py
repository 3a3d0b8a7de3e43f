"""The fault suite's load: users on a mixed workload through one ``AsyncRouter``, and the
bookkeeping that the invariants are checked against afterwards.

Each user is an asyncio task with rows of its own (``items`` ids ``user * 1000 + k`` and
``events`` rows ``(user, seq)``), so users never wait on each other's locks and every value a
user reads can be judged against what that user was told. Even-numbered users call the router
itself (``rt.fetch``, ``rt.transaction()``); odd-numbered ones work in ``rt.session()``s of
:attr:`Workload.session_ops` operations each, handing the session's token to the next one (a
request after a request). The mix: 85 % reads (a point read, a short range, the user's latest
events; some in read-only transactions) and 15 % writes (an update, an insert; some in a
read-write transaction that reads its own write back).

What is recorded:

- every operation: user, kind, phase, start and end, the error's type, the node that served it
  (``rt.last_decision``), in :attr:`Load.ops`;
- every acknowledged write in the :class:`Ledger`, *after* the router returned (a write whose
  call failed is "unknown": it may or may not have committed);
- every read that returned less than the reader's own acknowledged write: :attr:`Load.stale`;
- every write whose server (``RETURNING inet_server_port()``) is not the node the router
  decided, or whose decision was not the primary: :attr:`Load.misrouted`;
- every change of a node's state in ``rt.stats()`` (polled): :attr:`Load.changes`.

An operation runs as a task of its own, watched with a hard bound: one that does not end in
time is counted as hung and left to finish (or not) on its own, so a stuck call can never
stall the load or the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from random import Random
from types import TracebackType
from typing import Any, Self

import asyncpg

from router import AsyncRouter, AsyncSession

__all__ = [
    "Change",
    "Ledger",
    "Load",
    "Op",
    "Workload",
    "check_ledger",
    "create_tables",
    "pool_backends",
]

SCHEMA = """
DROP TABLE IF EXISTS load_items, load_events, load_trace;
CREATE TABLE load_items (id bigint PRIMARY KEY, owner int NOT NULL, v bigint NOT NULL);
CREATE TABLE load_events (owner int NOT NULL, seq bigint NOT NULL, PRIMARY KEY (owner, seq));
-- Every value an update gave a row, written by the server in the update's own transaction:
-- an acknowledged update a failover lost is missing here even after a later one overwrote it.
CREATE TABLE load_trace (id bigint NOT NULL, v bigint NOT NULL);
CREATE OR REPLACE FUNCTION load_trace() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO load_trace (id, v) VALUES (NEW.id, NEW.v); RETURN NULL; END $$;
CREATE TRIGGER load_trace AFTER UPDATE ON load_items FOR EACH ROW EXECUTE FUNCTION load_trace();
"""

POINT = "SELECT v FROM load_items WHERE id = $1"
RANGE = "SELECT id, v FROM load_items WHERE id BETWEEN $1 AND $2 ORDER BY id"
EVENTS = "SELECT seq FROM load_events WHERE owner = $1 ORDER BY seq DESC LIMIT 5"
UPDATE = "UPDATE load_items SET v = $2 WHERE id = $1 RETURNING inet_server_port()"
INSERT = "INSERT INTO load_events (owner, seq) VALUES ($1, $2) RETURNING inet_server_port()"

#: Operation kinds and their shares of the mix: 85 % reads, 15 % writes.
MIX: Mapping[str, float] = {
    "point": 0.40,
    "range": 0.20,
    "events": 0.17,
    "tx-read": 0.08,  # a read-only transaction: a point read and the latest events
    "update": 0.055,
    "insert": 0.055,
    "tx-write": 0.04,  # a read-write transaction: update, insert, read the update back
}
READS = frozenset({"point", "range", "events", "tx-read"})
IN_TX = frozenset({"tx-read", "tx-write"})


@dataclass(frozen=True, slots=True)
class Workload:
    users: int = 32
    rows_per_user: int = 20
    #: Operations per session for session users (then a new session, after=token).
    session_ops: int = 25
    #: asyncpg's per-statement timeout, passed through the router as an application would.
    call_timeout: float = 2.0
    #: An operation not done after this long is counted as hung (and left behind).
    hard_timeout: float = 5.0
    #: A user's pause between operations.
    think: float = 0.002
    #: A user's pause after a failed operation, as an application backs off. Without it, 32
    #: users failing fast (PrimaryUnavailable while no primary exists) spin at thousands of
    #: operations a second and starve the watcher's thread of the GIL: its 20 ms samples came
    #: late, and writes on a just-returned leader looked like writes on a non-primary.
    backoff: float = 0.02
    seed: int = 1


@dataclass(slots=True)
class Op:
    """One operation of one user."""

    user: int
    kind: str
    phase: str
    started: float
    ended: float = 0.0
    error: str | None = None  # the exception's type name
    detail: str = ""
    node: str | None = None  # where the router sent it (its last statement)
    hung: bool = False

    @property
    def read(self) -> bool:
        return self.kind in READS

    @property
    def in_tx(self) -> bool:
        return self.kind in IN_TX

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass(frozen=True, slots=True)
class Change:
    """A node's state in ``rt.stats()`` from *at* on (``serving``: up, and admitted when a
    replica); ``node=""`` records the router's primary."""

    at: float
    node: str
    role: str
    health: str
    admitted: bool
    primary: str | None

    @property
    def serving(self) -> bool:
        if self.role == "primary":
            return self.health == "up"
        return self.health == "up" and self.admitted and self.role == "replica"


@dataclass
class Ledger:
    """Writes the router acknowledged, and writes whose outcome is unknown (their call
    failed: they may have committed or not)."""

    inserts: set[tuple[int, int]] = field(default_factory=set)
    updates: dict[int, int] = field(default_factory=dict)  # id -> latest acknowledged value
    #: Every acknowledged update, (id, v).
    acked_updates: set[tuple[int, int]] = field(default_factory=set)
    #: What :func:`check_ledger` found lost: ("update", id, v) and ("insert", owner, seq).
    lost: set[tuple[str, int, int]] = field(default_factory=set)
    unknown_inserts: set[tuple[int, int]] = field(default_factory=set)
    unknown_updates: dict[int, set[int]] = field(default_factory=dict)
    #: (started, ended, node the server said it is) of every acknowledged write statement.
    writers: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def acknowledged(self) -> int:
        """Write statements acknowledged."""
        return len(self.writers)


@dataclass(slots=True)
class _User:
    number: int
    rng: Random
    ids: list[int]
    seq: int = 0
    known: dict[int, int] = field(default_factory=dict)  # id -> own latest acknowledged v
    event_floor: int = 0  # own latest acknowledged insert
    last_written: int | None = None
    session: AsyncSession | None = None
    session_left: int = 0
    token: str | None = None

    @property
    def plain(self) -> bool:
        return self.number % 2 == 0


class Load:
    """``async with Load(rt, workload, ports)`` runs the users until the block ends (then
    lets each finish its operation, within the hard timeout). Set :attr:`phase` as the
    scenario moves on; *ports* maps each server port to its node name."""

    def __init__(self, rt: AsyncRouter, workload: Workload, ports: Mapping[int, str]) -> None:
        self.rt = rt
        self.workload = workload
        self.ports = dict(ports)
        self.phase = "start"
        self.ops: list[Op] = []
        self.ledger = Ledger()
        self.stale: list[str] = []
        #: The stale reads of :meth:`_saw` and :meth:`_saw_events` again, each with the write
        #: it did not see, as :attr:`Ledger.lost` names writes: a stale read of a write the
        #: failover lost is that loss, not a read sent too far behind.
        self.stale_reads: list[tuple[str, tuple[str, int, int], Op]] = []
        self.misrouted: list[str] = []
        self.changes: list[Change] = []
        self.left_behind: set[asyncio.Task[None]] = set()
        self.decisions_before: dict[str, dict[str, int]] = {}
        self.decisions_after: dict[str, dict[str, int]] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._kinds = list(MIX)
        self._weights = list(MIX.values())

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.decisions_before = _copy(self.rt.stats()["decisions"])
        self._watch_once()
        self._tasks = [asyncio.create_task(self._watch(), name="load-watch")]
        self._tasks += [
            asyncio.create_task(self._user(self._new_user(u)), name=f"load-user-{u}")
            for u in range(self.workload.users)
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self.decisions_after = _copy(self.rt.stats()["decisions"])

    async def settle(self, timeout: float) -> bool:
        """Wait up to *timeout* s for operations left behind as hung; whether all ended."""
        pending = set(self.left_behind)
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        return all(task.done() for task in pending)

    def _new_user(self, number: int) -> _User:
        base = number * 1000
        ids = [base + k for k in range(self.workload.rows_per_user)]
        return _User(number, Random(self.workload.seed * 7919 + number), ids)

    # -- the watcher -------------------------------------------------------------------

    async def _watch(self) -> None:
        while not self._stop.is_set():
            self._watch_once()
            await asyncio.sleep(0.005)
        self._watch_once()

    def _watch_once(self) -> None:
        stats = self.rt.stats()
        now = time.monotonic()
        last = {c.node: c for c in self.changes}
        primary = stats["primary"]
        for name, node in stats["nodes"].items():
            change = Change(now, name, node["role"], node["health"], node["admitted"], primary)
            before = last.get(name)
            if before is None or (before.role, before.health, before.admitted) != (
                change.role,
                change.health,
                change.admitted,
            ):
                self.changes.append(change)
        before = last.get("")
        if before is None or before.primary != primary:
            self.changes.append(Change(now, "", "", "", False, primary))

    # -- users -------------------------------------------------------------------------

    async def _user(self, user: _User) -> None:
        while not self._stop.is_set():
            kind = user.rng.choices(self._kinds, self._weights)[0]
            scope = await self._scope(user)
            op = Op(user.number, kind, self.phase, time.monotonic())
            if not await self._watched(self._run(user, scope, op), op):
                user.session = None  # abandoned with the stuck operation
            await asyncio.sleep(self.workload.backoff if op.error else self.workload.think)
        if user.session is not None:
            await user.session.close()

    async def _watched(self, work: Awaitable[None], op: Op) -> bool:
        """Run *work* (which fills in *op*) as a task; whether it ended within the hard
        timeout (if not, *op* is hung and the task is left behind)."""
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=self.workload.hard_timeout)
        if not done:
            op.hung = True
            op.ended = time.monotonic()
            op.error = op.error or "Hung"
            self.left_behind.add(task)
        self.ops.append(op)
        return bool(done)

    async def track(self, op: Op, work: Callable[[], Awaitable[None]]) -> None:
        """Count *work* as one more operation (*op*), watched like the users' own."""

        async def run() -> None:
            op.started = time.monotonic()
            try:
                await work()
            except Exception as exc:  # counted like any user's
                op.error = type(exc).__name__
                op.detail = str(exc)[:200]
            finally:
                if not op.hung:
                    op.ended = time.monotonic()
                decision = self.rt.last_decision
                op.node = decision.node if decision is not None else None

        await self._watched(run(), op)

    async def _scope(self, user: _User) -> Any:
        """The router, or the user's session (a new one every ``session_ops`` operations)."""
        if user.plain:
            return self.rt
        if user.session is None or user.session_left <= 0:
            if user.session is not None:
                user.token = user.session.token() or user.token
                await user.session.close()
            user.session = self.rt.session(after=user.token)
            user.session_left = self.workload.session_ops
        user.session_left -= 1
        return user.session

    async def _run(self, user: _User, scope: Any, op: Op) -> None:
        # Timed from here, not from the task's creation: a busy loop's lag in starting the
        # task is not the operation's.
        op.started = time.monotonic()
        try:
            await _OPS[op.kind](self, user, scope, op)
        except Exception as exc:  # every failure is what the suite counts
            op.error = type(exc).__name__
            op.detail = str(exc)[:200]
        finally:
            if not op.hung:
                op.ended = time.monotonic()
            decision = self.rt.last_decision
            op.node = decision.node if decision is not None else None

    # -- checks made as the users go -----------------------------------------------------

    def _saw(self, user: _User, op: Op, rows: Iterable[tuple[int, int]]) -> None:
        """Rows ``(id, v)`` a read returned: none may be older than the user's own write."""
        for row_id, v in rows:
            known = user.known.get(row_id)
            if known is not None and v < known:
                self._stale(
                    op,
                    ("update", row_id, known),
                    f"user {user.number} {op.kind} [{op.phase}] on {self._where()}: id {row_id}"
                    f" v={v}, own acknowledged write v={known}",
                )

    def _saw_events(self, user: _User, op: Op, seqs: list[int]) -> None:
        if user.event_floor and (not seqs or max(seqs) < user.event_floor):
            self._stale(
                op,
                ("insert", user.number, user.event_floor),
                f"user {user.number} {op.kind} [{op.phase}] on {self._where()}: latest event"
                f" {max(seqs, default=None)}, own acknowledged insert {user.event_floor}",
            )

    def _stale(self, op: Op, write: tuple[str, int, int], what: str) -> None:
        self.stale.append(what)
        self.stale_reads.append((what, write, op))

    def _wrote(self, op: Op, port: int, started: float) -> str:
        """The node a write statement ran on, checked against the router's decision."""
        node = self.ports.get(port, f"port {port}")
        decision = self.rt.last_decision
        if decision is None or not decision.primary or decision.node != node:
            self.misrouted.append(
                f"{op.kind} [{op.phase}] ran on {node}; the router decided {decision}"
            )
        self.ledger.writers.append((started, time.monotonic(), node))
        return node

    def _where(self) -> str:
        decision = self.rt.last_decision
        return "?" if decision is None else f"{decision.node} ({decision.reason})"

    def _next_seq(self, user: _User) -> int:
        user.seq += 1
        return user.seq

    def _pick(self, user: _User) -> int:
        if user.last_written is not None and user.rng.random() < 0.5:
            return user.last_written
        return user.rng.choice(user.ids)

    def _acked_update(self, user: _User, row_id: int, v: int) -> None:
        self.ledger.updates[row_id] = v
        self.ledger.acked_updates.add((row_id, v))
        user.known[row_id] = v
        user.last_written = row_id

    def _unknown_update(self, row_id: int, v: int) -> None:
        self.ledger.unknown_updates.setdefault(row_id, set()).add(v)

    # -- the operations ------------------------------------------------------------------

    async def _point(self, user: _User, scope: Any, op: Op) -> None:
        row_id = self._pick(user)
        v = await scope.fetchval(POINT, row_id, timeout=self.workload.call_timeout)
        self._saw(user, op, [(row_id, v)])

    async def _range(self, user: _User, scope: Any, op: Op) -> None:
        first = user.rng.choice(user.ids[:-9])
        rows = await scope.fetch(RANGE, first, first + 9, timeout=self.workload.call_timeout)
        self._saw(user, op, [(r[0], r[1]) for r in rows])

    async def _events(self, user: _User, scope: Any, op: Op) -> None:
        rows = await scope.fetch(EVENTS, user.number, timeout=self.workload.call_timeout)
        self._saw_events(user, op, [r[0] for r in rows])

    async def _tx_read(self, user: _User, scope: Any, op: Op) -> None:
        row_id = self._pick(user)
        timeout = self.workload.call_timeout
        async with scope.transaction(readonly=True) as tx:
            v = await tx.fetchval(POINT, row_id, timeout=timeout)
            self._saw(user, op, [(row_id, v)])
            rows = await tx.fetch(EVENTS, user.number, timeout=timeout)
            self._saw_events(user, op, [r[0] for r in rows])

    async def _update(self, user: _User, scope: Any, op: Op) -> None:
        row_id = user.rng.choice(user.ids)
        v = self._next_seq(user)
        started = time.monotonic()
        try:
            port = await scope.fetchval(UPDATE, row_id, v, timeout=self.workload.call_timeout)
        except BaseException:
            self._unknown_update(row_id, v)
            raise
        self._wrote(op, port, started)
        self._acked_update(user, row_id, v)

    async def _insert(self, user: _User, scope: Any, op: Op) -> None:
        seq = self._next_seq(user)
        started = time.monotonic()
        try:
            port = await scope.fetchval(
                INSERT, user.number, seq, timeout=self.workload.call_timeout
            )
        except BaseException:
            self.ledger.unknown_inserts.add((user.number, seq))
            raise
        self._wrote(op, port, started)
        self.ledger.inserts.add((user.number, seq))
        user.event_floor = seq

    async def _tx_write(self, user: _User, scope: Any, op: Op) -> None:
        row_id = user.rng.choice(user.ids)
        v = self._next_seq(user)
        seq = self._next_seq(user)
        timeout = self.workload.call_timeout
        started = time.monotonic()
        ports: list[int] = []
        try:
            async with scope.transaction() as tx:
                ports.append(await tx.fetchval(UPDATE, row_id, v, timeout=timeout))
                ports.append(await tx.fetchval(INSERT, user.number, seq, timeout=timeout))
                inside = await tx.fetchval(POINT, row_id, timeout=timeout)
                if inside != v:
                    self.stale.append(
                        f"user {user.number} tx-write [{op.phase}] read {inside} back inside"
                        f" its own transaction after writing {v}"
                    )
        except BaseException:
            self._unknown_update(row_id, v)
            self.ledger.unknown_inserts.add((user.number, seq))
            raise
        for port in ports:
            self._wrote(op, port, started)
        self._acked_update(user, row_id, v)
        self.ledger.inserts.add((user.number, seq))
        user.event_floor = seq

    # -- figures -----------------------------------------------------------------------

    def errors(self, predicate: Callable[[Op], bool] = lambda op: True) -> Counter[str]:
        return Counter(op.error for op in self.ops if op.error is not None and predicate(op))

    def decisions_delta(self) -> Counter[str]:
        """Decisions taken during the load, by reason (all nodes together)."""
        delta: Counter[str] = Counter()
        for node, reasons in self.decisions_after.items():
            for reason, n in reasons.items():
                delta[reason] += n - self.decisions_before.get(node, {}).get(reason, 0)
        return +delta

    def first_change(self, after: float, predicate: Callable[[Change], bool]) -> float | None:
        """When a change at or after *after* first matched *predicate* (or ``None``)."""
        for change in self.changes:
            if change.at >= after and predicate(change):
                return change.at
        return None

    def state_at(self, node: str, at: float) -> Change | None:
        """The last recorded state of *node* at or before *at*."""
        found = None
        for change in self.changes:
            if change.node == node and change.at <= at:
                found = change
        return found


_OPS: dict[str, Callable[[Load, _User, Any, Op], Awaitable[None]]] = {
    "point": Load._point,
    "range": Load._range,
    "events": Load._events,
    "tx-read": Load._tx_read,
    "update": Load._update,
    "insert": Load._insert,
    "tx-write": Load._tx_write,
}


def _copy(decisions: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    return {node: dict(reasons) for node, reasons in decisions.items()}


# -- the database side --------------------------------------------------------------------


async def create_tables(dsn: str, workload: Workload) -> None:
    """Fresh tables with every user's rows (v = 0), on the server of *dsn* (the primary)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(SCHEMA)
        await conn.executemany(
            "INSERT INTO load_items (id, owner, v) VALUES ($1, $2, 0)",
            [
                (u * 1000 + k, u)
                for u in range(workload.users)
                for k in range(workload.rows_per_user)
            ],
        )
    finally:
        await conn.close()


async def check_ledger(dsn: str, ledger: Ledger) -> list[str]:
    """What the server of *dsn* (the primary afterwards) lacks or holds wrongly, compared
    with *ledger*: one line per problem (empty: every acknowledged write is there)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        values = dict(await conn.fetch("SELECT id, v FROM load_items"))
        events = {(r[0], r[1]) for r in await conn.fetch("SELECT owner, seq FROM load_events")}
        trace = {(r[0], r[1]) for r in await conn.fetch("SELECT id, v FROM load_trace")}
    finally:
        await conn.close()
    problems = []
    lost_inserts = sorted(ledger.inserts - events)
    if lost_inserts:
        problems.append(f"{len(lost_inserts)} acknowledged inserts lost: {lost_inserts[:10]}")
    lost_updates = sorted(ledger.acked_updates - trace)
    if lost_updates:
        problems.append(
            f"{len(lost_updates)} acknowledged updates lost (id, v): {lost_updates[:10]}"
        )
    ledger.lost = {("insert", *key) for key in lost_inserts} | {
        ("update", *key) for key in lost_updates
    }
    for row_id, acked in sorted(ledger.updates.items()):
        v = values.get(row_id)
        later = {u for u in ledger.unknown_updates.get(row_id, ()) if u > acked}
        if v != acked and v not in later:
            problems.append(
                f"id {row_id}: v={v} on the primary; acknowledged {acked}"
                + (f" (or an unacknowledged later {sorted(later)})" if later else "")
            )
    unexplained = sorted(events - ledger.inserts - ledger.unknown_inserts)
    if unexplained:
        problems.append(f"{len(unexplained)} events nobody wrote: {unexplained[:10]}")
    return problems


async def pool_backends(dsn: str, application_name: str) -> int:
    """Server processes of the router's pools (not its monitor) on the server of *dsn*."""
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                application_name,
            )
            return count
        finally:
            await conn.close()
    return -1
