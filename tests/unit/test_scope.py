"""The read rules of :class:`router._scope.Scope`: the router floor behind new sessions and calls
outside a session, and monotonic reads across nodes (pure: no database)."""

from __future__ import annotations

import asyncio
import threading

from router._scope import Scope
from router.core import Consistency, Lsn

RYW = Consistency.READ_YOUR_WRITES


def test_a_commit_raises_the_session_and_the_router_floor() -> None:
    root = Scope.for_router(RYW)
    session = root.session(None, None)
    session.advance(Lsn(100))
    assert session.floor == Lsn(100)
    assert root.read_floor == Lsn(100)  # calls outside a session see it
    assert root.session(None, None).floor == Lsn(100)  # and so does a new session


def test_floors_never_fall() -> None:
    root = Scope.for_router(RYW)
    root.advance(Lsn(200))
    root.advance(Lsn(100))
    assert root.read_floor == Lsn(200)


def test_a_new_session_starts_at_the_later_of_its_token_and_the_router_floor() -> None:
    root = Scope.for_router(RYW)
    root.advance(Lsn(100))
    assert root.session(None, Lsn(50)).floor == Lsn(100)
    assert root.session(None, Lsn(150)).floor == Lsn(150)
    # A level without read-your-writes starts from its token only.
    assert root.session(Consistency.EVENTUAL, None).floor is None
    assert root.session(Consistency.BOUNDED, Lsn(50)).floor == Lsn(50)


def test_a_commit_in_a_task_of_its_own_is_seen_by_the_task_that_awaited_it() -> None:
    # asyncio.wait_for runs its awaitable in a task of its own before Python 3.12.
    root = Scope.for_router(RYW)

    async def commit() -> None:
        root.advance(Lsn(10))

    async def main() -> Lsn | None:
        await asyncio.wait_for(asyncio.ensure_future(commit()), 5)
        return root.read_floor

    assert asyncio.run(main()) == Lsn(10)


def test_a_commit_in_another_thread_is_seen() -> None:
    root = Scope.for_router(RYW)
    thread = threading.Thread(target=root.advance, args=(Lsn(100),))
    thread.start()
    thread.join()
    assert root.read_floor == Lsn(100)


def test_moving_to_another_replica_waits_for_the_floor_to_be_settled() -> None:
    session = Scope.for_router(RYW).session(None, Lsn(100))
    assert not session.unsettled("replica1", primary=False)  # nothing read yet
    session.read_on("primary", replica=False)
    assert session.unsettled("replica1", primary=False)  # the primary showed more than 100
    assert not session.unsettled("primary", primary=True)  # staying there is monotonic
    session.settle_reads(Lsn(180))
    assert session.floor == Lsn(180)
    assert not session.unsettled("replica1", primary=False)
    session.read_on("replica1", Lsn(150), replica=True)
    assert session.sticky == "replica1"
    assert session.floor == Lsn(180)  # never lowered by what the replica is known to have
    assert not session.unsettled("replica1", primary=False)  # the same replica only moves on
    assert session.unsettled("replica2", primary=False)
    assert not session.unsettled("primary", primary=True)


def test_a_commit_position_settles_what_was_read_before_it() -> None:
    session = Scope.for_router(RYW).session(None, None)
    session.read_on("primary", replica=False)
    session.advance(Lsn(300))
    assert not session.unsettled("replica1", primary=False)


def test_calls_outside_a_session_and_weaker_levels_are_not_tracked() -> None:
    root = Scope.for_router(RYW)
    root.read_on("primary", replica=False)
    assert not root.unsettled("replica1", primary=False)
    bounded = root.session(Consistency.BOUNDED, None)
    bounded.read_on("primary", replica=False)
    assert not bounded.unsettled("replica1", primary=False)
    bounded.read_on("replica2", Lsn(5), replica=True)
    assert (bounded.sticky, bounded.floor) == ("replica2", Lsn(5))


def test_a_session_opened_after_a_lost_position_starts_with_the_loss() -> None:
    # A session commits, its position cannot be read: the commit stands, and neither the
    # router's floor nor the session's token covers it. The next session (a request after a
    # request, carrying that token) must not read behind it either.
    root = Scope.for_router(RYW)
    first = root.session(None, None)
    first.advance(Lsn(100))
    first.lose_position()
    token = first.floor
    after = root.session(None, token)
    assert after.lost  # reads where the commit surely is (the primary) until regained
    assert root.session(None, None).lost
    # A level without read-your-writes promises nothing about the router's commits.
    assert not root.session(Consistency.EVENTUAL, token).lost
    # A position read after the loss covers it, for the session that read it and the root:
    # sessions opened after that start clean, at or past it.
    after.regain_position(Lsn(400), after.losses())
    assert not after.lost
    assert not root.lost
    assert after.floor == Lsn(400)
    clean = root.session(None, token)
    assert not clean.lost
    assert clean.floor == Lsn(400)
    # The first session's own loss is its own to regain (its floor is behind its commit).
    assert first.lost


def test_a_loss_during_the_regain_is_kept() -> None:
    root = Scope.for_router(RYW)
    root.lose_position()
    session = root.session(None, None)
    taken = session.losses()
    root.lose_position()  # another commit lost while the position was being read
    session.regain_position(Lsn(500), taken)
    assert not session.lost
    assert root.lost  # the later loss may be past 500
    assert root.session(None, None).lost
