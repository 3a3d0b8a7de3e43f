"""pgpool-II as the benchmark's baseline, on the real cluster: it starts in front of the primary
and its replicas, balances reads onto the replicas (by pgpool's own counters and by the server
that answered), sends writes to the primary, stops without leaving a process, fails to start
with a clear error and nothing left behind, and works with a password cluster without ever
showing the password."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest

from router.testing import LocalCluster
from router.testing._proc import free_port
from router.testing.pytest_plugin import ClusterDatabase
from router_bench._pgpool import Pgpool, PgpoolError, find_pgpool, pgpool_version
from tests.integration.async_support import WHO_ANSWERS, execute_on, wait_for

pytestmark = [pytest.mark.integration]

MARKER = "pw-MARKER-5b1e9c"


def _group_processes(pgid: int) -> list[str]:
    """Live processes of process group *pgid*, by ``ps`` (not by the code under test)."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for line in out.splitlines():
        pid, group, stat, args = [*line.split(None, 3), ""][:4]
        if int(group) == pgid and not stat.startswith("Z"):
            found.append(f"{pid} {stat} {args}")
    return found


def _assert_reaped(pid: int) -> None:
    """*pid* is no child of ours any more: it exited and was waited for (no zombie left)."""
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _pgpool(cluster: LocalCluster, database: str, workdir: Path, **options: object) -> Pgpool:
    kwargs: dict[str, object] = {
        "primary": (cluster.primary.host, cluster.primary.port),
        "replicas": [(r.host, r.port) for r in cluster.replicas],
        "user": cluster.primary.user,
        "password": None,
        "database": database,
        "workdir": workdir,
        "num_init_children": 16,
        **options,
    }
    return Pgpool(**kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def db(cluster_db: ClusterDatabase) -> ClusterDatabase:
    execute_on(
        cluster_db.primary_dsn,
        "CREATE TABLE items (id serial PRIMARY KEY, port int NOT NULL)",
    )
    cluster_db.cluster.wait_caught_up()
    return cluster_db


@pytest.fixture(scope="module")
def pgpool(db: ClusterDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pgpool]:
    # Stopped before cluster_db drops the database: pgpool's cached connections would block it.
    with _pgpool(db.cluster, db.name, tmp_path_factory.mktemp("pgpool")) as pg:
        yield pg


def test_pgpool_is_installed_and_reports_its_version(pgpool: Pgpool) -> None:
    binary = find_pgpool()
    assert binary is not None, "pgpool-II is missing: apt-get install pgpool2"
    version = pgpool_version(binary)
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", version)
    assert pgpool.version == version


def test_it_sees_every_backend_with_the_primary_first(pgpool: Pgpool, db: ClusterDatabase) -> None:
    nodes = pgpool.pool_nodes()
    assert [(n["hostname"], int(n["port"])) for n in nodes] == [
        (node.host, node.port) for node in (db.cluster.primary, *db.cluster.replicas)
    ]
    assert [n["role"] for n in nodes] == ["primary"] + ["standby"] * len(db.cluster.replicas)
    assert all(n["status"] in ("up", "waiting") for n in nodes)


@pytest.mark.asyncio
async def test_reads_are_balanced_onto_the_replicas(pgpool: Pgpool, db: ClusterDatabase) -> None:
    """pgpool picks one node per session: over 12 sessions (each picks the primary with
    chance 1/3) reads reach replicas, and select_cnt counts exactly the reads each node ran."""
    before = pgpool.node_select_counts()
    served: Counter[int] = Counter()
    conns = [await asyncpg.connect(**pgpool.connect_kwargs()) for _ in range(12)]
    try:
        for conn in conns:
            for _ in range(5):
                served[await conn.fetchval(WHO_ANSWERS)] += 1
    finally:
        for conn in conns:
            await conn.close()
    after = pgpool.node_select_counts()

    assert set(after) == {(n.host, n.port) for n in db.cluster.nodes}
    delta = {port: after[(host, port)] - before[(host, port)] for host, port in after}
    assert delta == {n.port: served[n.port] for n in db.cluster.nodes}
    on_replicas = sum(delta[r.port] for r in db.cluster.replicas)
    assert on_replicas > 0, f"no read left the primary: {delta}"
    assert sum(delta.values()) == 60


@pytest.mark.asyncio
async def test_writes_go_to_the_primary_and_so_do_reads_after_them_in_a_transaction(
    pgpool: Pgpool, db: ClusterDatabase
) -> None:
    primary = db.cluster.primary
    conn = await asyncpg.connect(**pgpool.connect_kwargs())
    try:
        row = await conn.fetchrow(
            "INSERT INTO items (port) VALUES (inet_server_port()) RETURNING id, port"
        )
        assert row is not None
        assert row["port"] == primary.port
        async with conn.transaction():
            await conn.execute("INSERT INTO items (port) VALUES (0)")
            # pgpool's default disable_load_balance_on_write = 'transaction', kept on purpose.
            assert await conn.fetchval(WHO_ANSWERS) == primary.port
    finally:
        await conn.close()
    with psycopg.connect(db.primary_dsn) as direct:
        stored = direct.execute("SELECT port FROM items WHERE id = %s", (row["id"],)).fetchone()
    assert stored == (primary.port,)


@pytest.mark.faults
@pytest.mark.asyncio
async def test_a_replica_past_max_lag_bytes_gets_no_reads(
    db: ClusterDatabase, tmp_path: Path
) -> None:
    """The streaming replication check is on: with replay paused on one replica and more WAL
    than ``max_lag_bytes`` behind it, pgpool sends none of the reads to it."""
    cluster = db.cluster
    lagging = cluster.replicas[0]
    threshold = 4096
    with _pgpool(cluster, db.name, tmp_path, max_lag_bytes=threshold) as pg:
        cluster.pause_replay(lagging)
        execute_on(
            db.primary_dsn, "INSERT INTO items (port) SELECT 0 FROM generate_series(1, 2000)"
        )

        async def pgpool_sees_the_lag() -> bool:
            row = next(r for r in pg.pool_nodes() if int(r["port"]) == lagging.port)
            return int(row["replication_delay"]) > threshold

        await wait_for(pgpool_sees_the_lag, 15, "pgpool's lag check to see the paused replica")
        served: Counter[int] = Counter()
        conns = [await asyncpg.connect(**pg.connect_kwargs()) for _ in range(12)]
        try:
            for conn in conns:
                for _ in range(3):
                    served[await conn.fetchval(WHO_ANSWERS)] += 1
        finally:
            for conn in conns:
                await conn.close()
    assert sum(served.values()) == 36
    assert served[lagging.port] == 0, served


def test_stop_leaves_no_process_and_is_idempotent(db: ClusterDatabase, tmp_path: Path) -> None:
    pg = _pgpool(db.cluster, db.name, tmp_path, num_init_children=4).start()
    pid, group = pg.pid, pg.process_group
    assert pid is not None
    assert group == pid
    assert len(_group_processes(group)) > 4  # main, 4 children, pcp and workers
    with psycopg.connect(pg.dsn, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    pg.stop()
    assert pg.pid is None
    assert _group_processes(group) == []
    _assert_reaped(pid)
    pg.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.dsn, connect_timeout=2).close()

    # and it starts again in the same directory (over the files of the earlier run)
    with pg:
        assert pg.node_select_counts()
    assert _group_processes(pg.process_group or 0) == []


def test_a_backend_it_cannot_reach_fails_the_start_and_leaves_nothing(
    db: ClusterDatabase, tmp_path: Path
) -> None:
    dead = free_port()
    pg = _pgpool(db.cluster, db.name, tmp_path, replicas=[("127.0.0.1", dead)])
    with pytest.raises(PgpoolError, match=rf"pgpool .*127\.0\.0\.1:{dead}") as failed:
        pg.start(timeout=20)
    assert "its log" in str(failed.value)
    assert pg.pid is None
    assert pg.process_group is not None
    assert _group_processes(pg.process_group) == []
    _assert_reaped(pg.process_group)


def test_an_occupied_port_fails_the_start_with_pgpools_reason(
    db: ClusterDatabase, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pg = _pgpool(db.cluster, db.name, tmp_path, port=port)
        with pytest.raises(
            PgpoolError, match=r"^pgpool exited .*: FATAL: .*Address already in use"
        ):
            pg.start(timeout=20)
    assert pg.process_group is not None
    assert _group_processes(pg.process_group) == []
    _assert_reaped(pg.process_group)


def test_bad_arguments_are_refused_before_anything_runs(
    db: ClusterDatabase, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="database"):
        _pgpool(db.cluster, "it's", tmp_path)
    with pytest.raises(ValueError, match="password") as bad:
        _pgpool(db.cluster, db.name, tmp_path, password=MARKER + "\nuser2:TEXTx")
    assert MARKER not in str(bad.value)
    with pytest.raises(ValueError, match="num_init_children"):
        _pgpool(db.cluster, db.name, tmp_path, num_init_children=0)
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def password_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(replicas=1, password=MARKER) as cluster:
        cluster.create_database("bench")
        execute_on(
            cluster.primary.dsn_for("bench"),
            "CREATE TABLE items (id serial PRIMARY KEY, port int NOT NULL)",
        )
        cluster.wait_caught_up()
        yield cluster


@pytest.mark.asyncio
async def test_a_password_cluster_works_and_the_password_never_shows(
    password_cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster = password_cluster
    pg = _pgpool(cluster, "bench", tmp_path, password=MARKER)
    assert MARKER not in repr(pg)
    with pg:
        for text in (repr(pg), pg.dsn, str(pg.pool_nodes())):
            assert MARKER not in text
        conn = await asyncpg.connect(**pg.connect_kwargs())
        try:
            assert await conn.fetchval(WHO_ANSWERS) in {n.port for n in cluster.nodes}
            wrote = await conn.fetchval(
                "INSERT INTO items (port) VALUES (inet_server_port()) RETURNING port"
            )
            assert wrote == cluster.primary.port
        finally:
            await conn.close()
        wrong = {**pg.connect_kwargs(), "password": "not-the-password"}
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
            await asyncpg.connect(**wrong)
        assert pg.pid is not None
        cmdline = Path(f"/proc/{pg.pid}/cmdline").read_bytes().decode(errors="replace")
        assert MARKER not in cmdline
        assert oct((tmp_path / "pool_passwd").stat().st_mode & 0o777) == oct(0o600)
        assert MARKER not in (tmp_path / "pgpool.conf").read_text()
    assert MARKER not in pg.log_path.read_text()

    # A start that fails says why without the password either.
    bad = _pgpool(
        cluster,
        "bench",
        tmp_path / "bad",
        password=MARKER,
        replicas=[("127.0.0.1", free_port())],
    )
    with pytest.raises(PgpoolError) as failed:
        bad.start(timeout=20)
    assert MARKER not in str(failed.value)
    assert MARKER not in repr(bad)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can run pgpool as another OS user")
def test_it_runs_as_another_os_user_where_that_user_can_reach_its_files(
    db: ClusterDatabase, tmp_path: Path
) -> None:
    # pytest's tmp_path lies under a 0700 directory of root's: postgres cannot get there.
    pg = _pgpool(db.cluster, db.name, tmp_path, os_user="postgres")
    with pytest.raises(PgpoolError, match="'postgres', who cannot read"):
        pg.start(timeout=20)
    assert pg.process_group is None

    workdir = Path(tempfile.mkdtemp(prefix="router-pgpool-test-"))
    try:
        with _pgpool(db.cluster, db.name, workdir, os_user="postgres") as pg:
            assert pg.pid is not None
            assert Path(f"/proc/{pg.pid}").stat().st_uid == pwd.getpwnam("postgres").pw_uid
            with psycopg.connect(pg.dsn, connect_timeout=5) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        assert _group_processes(pg.process_group or 0) == []
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
