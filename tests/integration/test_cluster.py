"""The local cluster on real servers: replication works and every fault switch does what
it says. These tests are the ground every later routing test stands on."""

from __future__ import annotations

import time

import psycopg
import pytest

from router.testing import ClusterError, LocalCluster, Node
from router.testing.pytest_plugin import ClusterDatabase
from tests.support import wait_until

pytestmark = pytest.mark.integration

_STREAMING = "SELECT EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')"


def _one(dsn: str, query: str, params: tuple[object, ...] = ()) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _insert(db: ClusterDatabase, value: str) -> str:
    """Insert *value* on the primary; return the WAL position just after its commit."""
    with psycopg.connect(db.primary_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS items (v text PRIMARY KEY)")
        conn.execute("INSERT INTO items VALUES (%s)", (value,))
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def _visible(dsn: str, value: str) -> bool:
    try:
        return _one(dsn, "SELECT count(*) FROM items WHERE v = %s", (value,)) == 1
    except psycopg.errors.UndefinedTable:
        return False


def test_nodes_are_a_primary_and_streaming_replicas(local_cluster: LocalCluster) -> None:
    assert local_cluster.primary.name == "primary"
    assert [r.name for r in local_cluster.replicas] == ["replica1", "replica2"]
    ports = {n.port for n in local_cluster.nodes}
    assert len(ports) == 3
    assert _one(local_cluster.primary.dsn, "SELECT pg_is_in_recovery()") is False
    for replica in local_cluster.replicas:
        assert replica.host == "127.0.0.1"
        assert replica.dsn.startswith(f"postgresql://postgres@127.0.0.1:{replica.port}/")
        assert _one(replica.dsn, "SELECT pg_is_in_recovery()") is True
        assert _one(replica.dsn, "SELECT status FROM pg_stat_wal_receiver") == "streaming"
        assert _one(replica.dsn, "SHOW hot_standby_feedback") == "on"
    slots = _one(
        local_cluster.primary.dsn,
        "SELECT array_agg(slot_name::text ORDER BY slot_name) FROM pg_replication_slots"
        " WHERE active AND slot_type = 'physical'",
    )
    assert slots == ["replica1", "replica2"]
    assert _one(local_cluster.primary.dsn, "SHOW wal_level") == "replica"


def test_a_write_on_the_primary_is_read_back_on_every_replica(cluster_db: ClusterDatabase) -> None:
    _insert(cluster_db, "hello")
    cluster_db.cluster.wait_caught_up()
    for dsn in cluster_db.replica_dsns:
        assert _visible(dsn, "hello")


def test_a_replica_refuses_writes(cluster_db: ClusterDatabase) -> None:
    _insert(cluster_db, "seed")
    cluster_db.cluster.wait_caught_up()
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        _one(cluster_db.replica_dsns[0], "INSERT INTO items VALUES ('nope') RETURNING 1")


def test_pause_replay_freezes_the_replay_lsn_and_resume_catches_up(
    cluster_db: ClusterDatabase,
) -> None:
    cluster = cluster_db.cluster
    replica = cluster.replicas[0]
    dsn = cluster_db.dsn(replica)
    _insert(cluster_db, "before")
    cluster.wait_caught_up()

    cluster.pause_replay(replica)
    frozen = _one(dsn, "SELECT pg_last_wal_replay_lsn()::text")
    written = _insert(cluster_db, "while-paused")
    # The replica *receives* the new WAL (so it is not simply cut off) but does not apply it.
    wait_until(
        lambda: _one(dsn, "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (written,)),
        what="the paused replica to receive the write",
    )
    assert _one(dsn, "SELECT pg_last_wal_replay_lsn()::text") == frozen
    assert not _visible(dsn, "while-paused")
    assert _one(dsn, "SELECT pg_is_wal_replay_paused()") is True
    # The other replica is not affected.
    cluster.wait_caught_up(cluster.replicas[1])
    assert _visible(cluster_db.dsn(cluster.replicas[1]), "while-paused")
    status = {s.name: s for s in cluster.status()}[replica.name]
    assert status.replay_paused is True
    assert status.replay_lag_bytes is not None
    assert status.replay_lag_bytes > 0

    cluster.resume_replay(replica)
    cluster.wait_caught_up(replica)
    assert _visible(dsn, "while-paused")


def test_wait_caught_up_times_out_naming_a_paused_replica(cluster_db: ClusterDatabase) -> None:
    cluster = cluster_db.cluster
    cluster.pause_replay("replica2")
    _insert(cluster_db, "x")
    with pytest.raises(ClusterError, match="replica2 to replay up to"):
        cluster.wait_caught_up(timeout=0.3)


def test_apply_delay_holds_a_new_row_back_for_at_least_that_long(
    cluster_db: ClusterDatabase,
) -> None:
    cluster = cluster_db.cluster
    replica = cluster.replicas[0]
    dsn = cluster_db.dsn(replica)
    _insert(cluster_db, "warmup")
    cluster.wait_caught_up()
    cluster.set_apply_delay(replica, 1.0)
    assert _one(dsn, "SHOW recovery_min_apply_delay") == "1s"

    started = time.monotonic()
    _insert(cluster_db, "delayed")
    wait_until(lambda: _visible(dsn, "delayed"), timeout=10, what="the delayed row")
    assert time.monotonic() - started >= 1.0

    cluster.set_apply_delay(replica, 0)
    started = time.monotonic()
    _insert(cluster_db, "prompt")
    wait_until(lambda: _visible(dsn, "prompt"), timeout=10, what="the prompt row")
    assert time.monotonic() - started < 1.0


@pytest.mark.faults
def test_kill_breaks_connections_and_start_brings_the_replica_back(
    cluster_db: ClusterDatabase,
) -> None:
    cluster = cluster_db.cluster
    replica = cluster.replicas[1]
    dsn = cluster_db.dsn(replica)
    held = psycopg.connect(dsn, autocommit=True)
    try:
        held.execute("SELECT 1")
        cluster.kill(replica)
        assert not replica.is_running()
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    finally:
        held.close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2).close()
    assert {s.name: s.running for s in cluster.status()}[replica.name] is False

    _insert(cluster_db, "written-while-down")
    cluster.start_node(replica)
    assert replica.is_running()
    assert _one(dsn, "SELECT status FROM pg_stat_wal_receiver") == "streaming"
    cluster.wait_caught_up(replica)
    assert _visible(dsn, "written-while-down")


@pytest.mark.faults
def test_stopping_the_primary_fails_writes_and_replicas_reconnect_after_start(
    cluster_db: ClusterDatabase,
) -> None:
    cluster = cluster_db.cluster
    _insert(cluster_db, "before-stop")
    cluster.wait_caught_up()
    cluster.stop(cluster.primary)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster_db.primary_dsn, connect_timeout=2).close()
    # Replicas keep serving reads with the primary gone.
    for dsn in cluster_db.replica_dsns:
        assert _visible(dsn, "before-stop")

    cluster.start_node(cluster.primary)
    _insert(cluster_db, "after-start")
    for replica in cluster.replicas:

        def streams(r: Node = replica) -> object:
            return _one(r.dsn, _STREAMING)

        wait_until(
            streams,
            what=f"{replica.name} to stream again",
        )
    cluster.wait_caught_up()
    for dsn in cluster_db.replica_dsns:
        assert _visible(dsn, "after-start")


@pytest.mark.faults
def test_promote_makes_a_writable_primary(cluster_db: ClusterDatabase) -> None:
    cluster = cluster_db.cluster
    old_primary = cluster.primary
    target = cluster.replicas[0]
    _insert(cluster_db, "pre-promotion")
    cluster.wait_caught_up()

    cluster.promote(target)

    assert cluster.primary is target
    assert target.role == "primary"
    assert old_primary.role == "former-primary"
    assert target not in cluster.replicas
    dsn = cluster_db.dsn(target)
    assert _one(dsn, "SELECT pg_is_in_recovery()") is False
    assert _one(dsn, "INSERT INTO items VALUES ('on-new-primary') RETURNING v") == "on-new-primary"
    assert _visible(dsn, "pre-promotion")


@pytest.mark.faults
def test_reset_undoes_every_fault_switch(cluster_db: ClusterDatabase) -> None:
    cluster = cluster_db.cluster
    original = [(n.name, n.role) for n in cluster.nodes]
    r1, r2 = cluster.replicas
    cluster.promote(r1)
    cluster.set_apply_delay(r2, 5)
    cluster.pause_replay(r2)
    cluster.stop("primary", mode="immediate")

    cluster.reset()

    assert [(n.name, n.role) for n in cluster.nodes] == original
    assert _one(cluster.primary.dsn, "SELECT pg_is_in_recovery()") is False
    for replica in cluster.replicas:
        assert _one(replica.dsn, "SELECT pg_is_in_recovery()") is True
        assert _one(replica.dsn, "SELECT pg_is_wal_replay_paused()") is False
        assert _one(replica.dsn, "SHOW recovery_min_apply_delay") == "0"
        assert _one(replica.dsn, "SELECT status FROM pg_stat_wal_receiver") == "streaming"
    # The database of this module survived: it lives on the original primary.
    _insert(cluster_db, "after-reset")
    cluster.wait_caught_up()
    for dsn in cluster_db.replica_dsns:
        assert _visible(dsn, "after-reset")


@pytest.mark.faults
def test_follow_points_a_replica_at_another_upstream() -> None:
    """``follow`` re-points a replica built by ``pg_basebackup -R`` (whose
    ``postgresql.auto.conf`` names its first upstream, and wins over the harness's files):
    it streams from the node it was told to follow, here a cascading standby."""
    with LocalCluster(replicas=2) as own:
        r1, r2 = own.replicas
        own.stop(r2)
        own.follow(r2, r1)

        def upstream() -> int | None:
            with psycopg.connect(r2.dsn, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'"
                ).fetchone()
            return None if row is None else int(row[0])

        assert wait_until(upstream, what="r2 streaming") == r1.port


def test_fault_switches_name_unknown_nodes(local_cluster: LocalCluster) -> None:
    with pytest.raises(ClusterError, match="no node named 'replica9'"):
        local_cluster.pause_replay("replica9")
    with pytest.raises(ClusterError, match="is not a replica"):
        local_cluster.promote(local_cluster.primary)
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        local_cluster.set_apply_delay(local_cluster.replicas[0], -1)


def test_node_repr_and_status_hide_the_password() -> None:
    marker = "pw-MARKER-5e1f"
    with LocalCluster(replicas=1, password=marker) as cluster:
        assert marker in cluster.primary.dsn  # the DSN is what clients connect with
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(cluster.primary.dsn.replace(marker, "wrong"), connect_timeout=2).close()
        assert _one(cluster.replicas[0].dsn, "SELECT status FROM pg_stat_wal_receiver") == (
            "streaming"
        )
        shown = repr(cluster) + repr(cluster.nodes) + repr(cluster.status())
        assert marker not in shown
        logs = "".join(n.log_path.read_text() for n in cluster.nodes)
        assert marker not in logs
