"""A unit of work (a web request, a job) whose commit position could not be read hands on a
position marked *uncertain*, and one that starts from such a position reads the primary's
position first (issue 16 and 17: a worker resuming from a request's position must not read
behind a commit of that request)."""

from __future__ import annotations

from dataclasses import dataclass, field

from router._context import SHARED_FLOOR, SharedFloor, Start, attach
from router._scope import Scope
from router.core import Consistency, Lsn, Position, Topology

SYSTEM_ID = 7
COMMIT = Lsn(0x5_0000_0000)


@dataclass
class Cluster:
    system_id: int | None = SYSTEM_ID
    topology: Topology = field(default_factory=lambda: Topology.initial(["p"]))


def _session(shared: SharedFloor, cluster: Cluster) -> Scope:
    root = Scope(Consistency.READ_YOUR_WRITES)
    scope = root.session(None, None)
    reset = SHARED_FLOOR.set(shared)
    try:
        attach(scope, cluster)
    finally:
        SHARED_FLOOR.reset(reset)
    return scope


def test_a_unit_that_lost_a_commit_position_hands_on_an_uncertain_position() -> None:
    cluster = Cluster()
    shared = SharedFloor()
    scope = _session(shared, cluster)
    shared.record_commit(COMMIT)
    assert shared.position() == Position(SYSTEM_ID, COMMIT)
    scope.lose_position()  # a later commit whose position could not be read
    assert shared.lost
    assert shared.position() == Position(SYSTEM_ID, COMMIT, uncertain=True)


def test_a_unit_starting_from_an_uncertain_position_learns_the_primary_s_first() -> None:
    cluster = Cluster()
    shared = SharedFloor(Position(SYSTEM_ID, COMMIT, uncertain=True), issued_at=None)
    scope = _session(shared, cluster)
    assert shared.verdict is Start.APPLIED
    assert scope.floor == COMMIT
    assert scope.lost == 1  # its first read regains the position from the primary
    # What it hands on stays uncertain until then.
    shared.record_commit(Lsn(COMMIT - 100))
    assert shared.position() == Position(SYSTEM_ID, COMMIT, uncertain=True)
    # Its read learns the primary's position: the start is settled there, for the unit's
    # later sessions and for what it hands on.
    scope.regain_position(Lsn(COMMIT + 64), scope.losses())
    assert scope.lost == 0
    assert shared.position() == Position(SYSTEM_ID, Lsn(COMMIT + 64))
    assert _session(shared, cluster).lost == 0


def test_a_certain_start_changes_nothing() -> None:
    shared = SharedFloor(Position(SYSTEM_ID, COMMIT), issued_at=None)
    scope = _session(shared, Cluster())
    assert scope.lost == 0
    assert scope.floor == COMMIT


def test_a_unit_whose_only_commit_lost_its_position_still_hands_on_one() -> None:
    """No commit position was read at all (the request's one write lost it): the client must
    still get a position, uncertain, or its next request reads behind the write (a new-user
    tryout saw the cookie left out, and an older one deleted)."""
    cluster = Cluster()
    shared = SharedFloor()
    scope = _session(shared, cluster)
    scope.lose_position()
    assert shared.position() == Position(SYSTEM_ID, Lsn(0), uncertain=True)
    # From an applied start: at the start, uncertain.
    started = SharedFloor(Position(SYSTEM_ID, COMMIT), issued_at=None)
    _session(started, cluster).lose_position()
    assert started.position() == Position(SYSTEM_ID, COMMIT, uncertain=True)


def test_job_token_carries_the_mark() -> None:
    from router.core import decode_token
    from router.web import job_token

    cluster = Cluster()
    shared = SharedFloor()
    scope = _session(shared, cluster)
    scope.lose_position()
    reset = SHARED_FLOOR.set(shared)
    try:
        value = job_token()
    finally:
        SHARED_FLOOR.reset(reset)
    assert value is not None
    token, _, _issued = value.rpartition(".")
    assert decode_token(token).uncertain
