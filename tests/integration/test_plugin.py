"""The pytest plugin, as users get it: fixtures, isolation per module, undo of faults."""

from __future__ import annotations

import pytest

from tests.support import run_inner_pytest

pytestmark = pytest.mark.integration


def test_faults_are_undone_between_tests_and_modules_get_their_own_database(
    pytester: pytest.Pytester,
) -> None:
    common = """
        import psycopg

        def one(dsn, query):
            with psycopg.connect(dsn, autocommit=True) as conn:
                return conn.execute(query).fetchone()[0]
    """
    pytester.makepyfile(
        test_a=common
        + """
        def test_1_throws_every_switch(cluster_db):
            c = cluster_db.cluster
            with psycopg.connect(cluster_db.primary_dsn, autocommit=True) as conn:
                conn.execute("CREATE TABLE only_in_a (id int)")
            c.pause_replay("replica1")
            c.set_apply_delay("replica2", 3)
            c.kill("replica2")

        def test_2_finds_everything_undone(cluster_db):
            c = cluster_db.cluster
            assert [n.name for n in c.replicas] == ["replica1", "replica2"]
            assert all(n.is_running() for n in c.nodes)
            for dsn in cluster_db.replica_dsns:
                assert one(dsn, "SELECT pg_is_wal_replay_paused()") is False
                assert one(dsn, "SHOW recovery_min_apply_delay") == "0"
                assert one(dsn, "SELECT count(*) FROM only_in_a") == 0

        def test_3_promotes(cluster):
            cluster.promote("replica1")
            cluster.stop("primary")

        def test_4_original_topology_is_back(local_cluster):
            assert local_cluster.primary.name == "primary"
            assert one(local_cluster.primary.dsn, "SELECT pg_is_in_recovery()") is False
            for r in local_cluster.replicas:
                assert one(r.dsn, "SELECT pg_is_in_recovery()") is True
        """,
        test_b=common
        + """
        def test_separate_database(cluster_db):
            assert cluster_db.name.endswith("test_b")
            assert one(cluster_db.primary_dsn, "SELECT current_database()") == cluster_db.name
            exists = "SELECT to_regclass('only_in_a') IS NULL"
            assert one(cluster_db.primary_dsn, exists) is True
            for dsn in cluster_db.replica_dsns:
                assert one(dsn, "SELECT current_database()") == cluster_db.name
        """,
    )
    result = run_inner_pytest(pytester, "-v")
    result.assert_outcomes(passed=5)


def test_replica_count_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_count="""
        def test_count(local_cluster):
            assert [r.name for r in local_cluster.replicas] == ["replica1"]
        """
    )
    result = run_inner_pytest(pytester, "--router-replicas=1")
    result.assert_outcomes(passed=1)


def test_missing_binaries_are_an_error_not_a_skip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_missing="""
        def test_needs_cluster(local_cluster):
            pass
        """
    )
    env_dir = pytester.path / "empty-bindir"
    env_dir.mkdir()
    pytester._monkeypatch.setenv("PG_BINDIR", str(env_dir))
    result = run_inner_pytest(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*does not hold the PostgreSQL server binaries*"])
