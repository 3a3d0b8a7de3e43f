"""The sync router's statement deadlines (``router._sync._deadline``), without a server: who
gets cancelled and when, that a cancel never outlives its statement's block, and that the
watchdog's heap does not keep every finished deadline. The server's side (the statement
cancelled, the connection usable) is in ``tests/integration/test_sync_read_deadline.py``."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from router._sync import _deadline
from router._sync._deadline import Deadline
from tests.support import wait_until


class FakeConnection:
    """What a Deadline uses of a psycopg connection: ``cancel_safe`` (recorded; it ends the
    blocked "statement" as a server would) and ``pgconn.socket``."""

    def __init__(self, *, answers: bool = True) -> None:
        self.cancels = 0
        self.answers = answers
        self.ended = threading.Event()

    def cancel_safe(self, *, timeout: float = 30.0) -> None:
        self.cancels += 1
        if self.answers:
            self.ended.set()

    @property
    def pgconn(self) -> Any:
        raise psycopg.OperationalError("no socket here")


def _deadline_for(conn: FakeConnection, timeout: float) -> Deadline:
    return Deadline(conn, timeout)  # type: ignore[arg-type]


def test_a_statement_that_ends_in_time_is_never_cancelled() -> None:
    conn = FakeConnection()
    with _deadline_for(conn, 0.05) as deadline:
        pass
    time.sleep(0.15)  # past the deadline: nothing may fire for a finished statement
    assert not deadline.expired
    assert conn.cancels == 0


def test_a_statement_past_its_deadline_is_cancelled_once() -> None:
    conn = FakeConnection()
    started = time.monotonic()
    with _deadline_for(conn, 0.1) as deadline:
        assert conn.ended.wait(5)  # the "statement" blocks until the cancel ends it
    assert time.monotonic() - started >= 0.1
    assert deadline.expired
    assert conn.cancels == 1


def test_leaving_the_block_waits_for_a_cancel_under_way() -> None:
    """The cancel request must be delivered before the connection can go back to its pool,
    where it would reach the next statement."""
    delivered = threading.Event()

    class Slow(FakeConnection):
        def cancel_safe(self, *, timeout: float = 30.0) -> None:
            self.ended.set()
            time.sleep(0.2)
            delivered.set()

    conn = Slow()
    with _deadline_for(conn, 0.05):
        assert conn.ended.wait(5)
    assert delivered.is_set()


def test_an_unanswered_cancel_cuts_the_link_after_the_grace(monkeypatch: Any) -> None:
    monkeypatch.setattr(_deadline, "CANCEL_GRACE", 0.2)
    cut = threading.Event()
    monkeypatch.setattr(_deadline, "_shut_down", lambda conn: cut.set())
    conn = FakeConnection(answers=False)
    started = time.monotonic()
    with _deadline_for(conn, 0.05) as deadline:
        assert cut.wait(5)  # the blocked call would fail now, its socket shut down
    assert deadline.expired
    assert conn.cancels == 1
    assert time.monotonic() - started >= 0.25


def test_finished_deadlines_do_not_pile_up_in_the_watchdog() -> None:
    conn = FakeConnection()
    for _ in range(5000):
        with _deadline_for(conn, 60.0):
            pass
    assert _deadline._watchdog().pending() < 2 * _deadline._COMPACT_AT
    assert conn.cancels == 0
    # The compacted heap is still the one the watchdog thread waits on: deadlines fire.
    with _deadline_for(conn, 0.05) as deadline:
        assert conn.ended.wait(5)
    assert deadline.expired


def test_the_watchdog_thread_serves_many_threads() -> None:
    conns = [FakeConnection() for _ in range(8)]

    def statement(conn: FakeConnection) -> None:
        with _deadline_for(conn, 0.05):
            conn.ended.wait(5)

    threads = [threading.Thread(target=statement, args=(c,)) for c in conns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    wait_until(lambda: all(c.cancels == 1 for c in conns), what="every statement cancelled")


def test_a_shorter_deadline_wakes_the_watchdog_waiting_for_a_longer_one() -> None:
    """Deadlines are armed without a lock: one that passes before the watchdog would wake
    must still wake it, whatever it was waiting for."""
    slow, fast = FakeConnection(), FakeConnection()
    with _deadline_for(slow, 60.0) as long_one:
        for timeout in (0.3, 0.05):  # later than, then before, the watchdog's wake-up
            started = time.monotonic()
            fast.ended.clear()
            with _deadline_for(fast, timeout) as short:
                assert fast.ended.wait(5)
            assert short.expired
            assert time.monotonic() - started < timeout + 1.0
    assert not long_one.expired
    assert slow.cancels == 0
    assert fast.cancels == 2


def test_a_statement_ending_as_its_deadline_passes_is_given_up_or_not_never_both() -> None:
    """The statement's end and its expiry race for the deadline: the one that comes first
    decides, the block is always left, and a statement that was not given up on never sees a
    cancel."""
    outcomes = set()
    for i in range(300):
        conn = FakeConnection()
        with _deadline_for(conn, 0.001) as deadline:
            conn.ended.wait(0.001 * (i % 3))
        outcomes.add(deadline.expired)
        assert conn.cancels == (1 if deadline.expired else 0)
    wait_until(lambda: _deadline._watchdog().pending() == 0, what="every deadline dropped")
    assert outcomes == {True, False}, outcomes
