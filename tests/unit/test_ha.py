"""Topology from Patroni: ``GET /cluster`` parsed, and cross-checked with what each node says."""

from __future__ import annotations

from typing import Any

from router._scope import Scope
from router.core import Consistency, Lsn, Role
from router.core._ha import parse_cluster
from router.core._topology import Topology, tick
from tests.unit.test_topology import HEALTHY, PARAMS, primary, replica

ADDRESSES = {("10.0.0.1", 5432): "p", ("10.0.0.2", 5432): "r1", ("10.0.0.3", 5432): "r2"}


def cluster(leader: str = "pg-a", *, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    members = [
        {"name": "pg-a", "host": "10.0.0.1", "port": 5432, "state": "running", "timeline": 3},
        {"name": "pg-b", "host": "10.0.0.2", "port": 5432, "state": "streaming", "lag": 16},
        {"name": "pg-c", "host": "10.0.0.3", "port": 5432, "state": "stopped"},
    ]
    for m in members:
        m["role"] = "leader" if m["name"] == leader else "replica"
    return {"members": members + (extra or []), "scope": "demo"}


def test_parse_maps_members_to_nodes_by_address() -> None:
    extra = [{"name": "pg-x", "host": "10.9.9.9", "port": 5432, "role": "replica"}]
    view = parse_cluster(cluster(extra=extra), ADDRESSES, "http://a:8008")
    assert view is not None
    assert view.leader == "p"
    assert view.leader_member == "pg-a"
    assert view.members["p"].timeline == 3
    assert view.members["p"].leads
    assert view.members["r1"].lag_bytes == 16
    assert view.members["r1"].state == "streaming"
    assert view.unmatched == ("pg-x",)
    assert view.source == "http://a:8008"


def test_parse_refuses_what_is_not_a_cluster() -> None:
    body: object  # what a /cluster endpoint may answer: any JSON, or none
    for body in (None, [], {"members": "x"}, {"members": [1]}, "<html>"):
        assert parse_cluster(body, ADDRESSES) is None


def test_a_node_patroni_says_is_not_the_leader_is_not_written_to() -> None:
    # p still says it is not in recovery (being demoted), r1 already promoted: Patroni names
    # pg-b leader. Without the view this is a split brain; with it, r1 is the primary.
    observed = {"p": primary(), "r1": primary(Lsn(HEALTHY["p"].wal_lsn or 0)), "r2": replica()}
    topology = Topology.initial(["p", "r1", "r2"])
    sql_only = tick(topology, observed, 0.0, PARAMS)
    assert sql_only.split_brain
    assert sql_only.primary is None
    view = parse_cluster(cluster("pg-b"), ADDRESSES)
    with_ha = tick(topology, observed, 0.0, PARAMS, view)
    assert not with_ha.split_brain
    assert with_ha.primary == "r1"
    assert with_ha.node("p").role is Role.UNKNOWN
    assert "Patroni names pg-b leader" in with_ha.node("p").reason


def test_a_leader_in_recovery_is_not_the_primary() -> None:
    # Patroni names pg-b (r1) leader, but r1 still says it is in recovery: the database has
    # the last word. p, alone in saying it is primary, stays the primary (a view can trail).
    view = parse_cluster(cluster("pg-b"), ADDRESSES)
    topology = tick(Topology.initial(["p", "r1", "r2"]), HEALTHY, 0.0, PARAMS, view)
    assert topology.primary == "p"
    assert topology.node("r1").role is Role.REPLICA


def test_no_view_or_no_leader_is_sql_discovery_alone() -> None:
    initial = Topology.initial(["p", "r1", "r2"])
    assert tick(initial, HEALTHY, 0.0, PARAMS, None).primary == "p"
    leaderless = cluster()
    for m in leaderless["members"]:
        m["role"] = "replica"
    view = parse_cluster(leaderless, ADDRESSES)
    assert view is not None
    assert view.leader is None
    assert tick(initial, HEALTHY, 0.0, PARAMS, view).primary == "p"


def test_a_floor_beyond_the_primary_is_reset_and_reported_once() -> None:
    root = Scope(Consistency.READ_YOUR_WRITES)
    session = Scope(Consistency.READ_YOUR_WRITES, None, root)
    session.advance(Lsn(1000))
    assert not session.unverified(Lsn(10))  # raised in this epoch: known good
    root.epoch += 1  # the primary moved to another node
    assert session.unverified(Lsn(10))
    assert session.unverified(Lsn(2000))  # past the primary's sample, but from before it moved
    assert not session.unverified(Lsn(10), fork=Lsn(1000))  # the new primary had it
    assert session.settle(Lsn(400)) == Lsn(1000)
    assert session.floor == Lsn(400)
    assert root.floor == Lsn(400)
    assert not session.unverified(Lsn(10))
    session.advance(Lsn(500))
    assert session.settle(Lsn(600)) is None
    assert session.floor == Lsn(500)


def test_an_imported_floor_is_checked_once() -> None:
    root = Scope(Consistency.READ_YOUR_WRITES)
    imported = Scope(Consistency.READ_YOUR_WRITES, Lsn(900), root)
    assert imported.unverified(Lsn(800))
    assert not imported.unverified(Lsn(900))
    assert imported.settle(Lsn(950)) is None
    assert imported.floor == Lsn(900)
    assert not imported.unverified(Lsn(800))


def test_a_reset_never_goes_below_a_commit_made_while_the_position_was_read() -> None:
    # A session carrying a token past anything the primary has reads there, then reads the
    # primary's position (400). Meanwhile another task commits at 600 through the router.
    root = Scope(Consistency.READ_YOUR_WRITES)
    imported = root.session(None, Lsn(5000))
    assert imported.unverified(Lsn(300))
    root.advance(Lsn(600))
    assert imported.settle(Lsn(400)) == Lsn(5000)
    assert imported.floor == Lsn(400)
    assert root.floor == Lsn(600)  # not lowered below that commit: its reads must see it


def test_after_a_failover_a_reset_keeps_the_commits_of_the_new_timeline() -> None:
    # The router's floor (1000) names WAL the new primary never had; commits on the new
    # primary (at 500 and 700, below it) cannot raise it. A reset to a position read before
    # the second of them (600) must not lose it.
    root = Scope(Consistency.READ_YOUR_WRITES)
    root.advance(Lsn(1000))
    root.epoch += 1
    session = root.session(None, None)
    root.advance(Lsn(500))
    assert root.floor == Lsn(1000)  # still past both
    root.advance(Lsn(700))
    assert session.unverified(Lsn(10))
    assert session.settle(Lsn(600)) == Lsn(1000)
    assert session.floor == Lsn(600)  # the session made neither commit
    assert root.floor == Lsn(700)
    assert not root.unverified(Lsn(10))
    # A commit kept on one timeline does not hold up a reset on the next one: it may be
    # lost with the WAL past the fork too.
    root.advance(Lsn(2000))
    root.epoch += 1
    root.advance(Lsn(1500))
    root.epoch += 1
    assert root.unverified(Lsn(10))
    assert root.settle(Lsn(300)) == Lsn(2000)
    assert root.floor == Lsn(300)
