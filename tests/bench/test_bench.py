"""``router bench`` end to end: the quick plan on its own embedded cluster (with pgpool-II),
and a small plan on a cluster given by URL, whose data the bench must leave alone."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from router.cli import main
from router.testing import LocalCluster, Node
from router.testing.pytest_plugin import ClusterDatabase
from router_bench._output import read_result
from router_bench._plan import PlanOptions, build_plan
from router_bench._schema import BenchResult, Cell
from router_bench._target import DATASET_MARK
from tests.support import wait_until

pytestmark = pytest.mark.integration

QUICK_TIMEOUT = 240


def _by_cell(result: BenchResult) -> dict[tuple[str, str, int], dict[str, Cell]]:
    cells: dict[tuple[str, str, int], dict[str, Cell]] = defaultdict(dict)
    for cell in result["cells"]:
        key = (cell["scenario"], cell["workload"], cell["concurrency"])
        assert cell["subject"] not in cells[key], f"{cell['subject']} twice in {key}"
        cells[key][cell["subject"]] = cell
    return cells


def _refused(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, int(port))) != 0


@pytest.mark.faults
@pytest.mark.timeout(QUICK_TIMEOUT)
def test_quick_on_the_embedded_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["bench", "--quick", "--with-pgpool", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    result = read_result(out / "bench.json")
    assert (out / "report.html").is_file()
    assert list(out.glob("*.png"))
    assert "async/round-robin/read_your_writes" in captured.out  # the table
    assert str(out / "bench.json") in captured.out

    plan = build_plan(PlanOptions(quick=True, with_pgpool=True))
    expected = {s.name for s in plan.subjects}
    assert {s["name"] for s in result["subjects"]} == expected
    assert result["settings"]["quick"] is True
    env = result["environment"]
    assert env["embedded"] is True
    assert sorted(n["role"] for n in env["nodes"]) == ["primary", "replica", "replica"]
    assert env["pgpool"]

    cells = _by_cell(result)
    assert sorted(cells) == [
        ("delay-0.2s", "mixed", 8),
        ("delay-0.2s", "ryw", 8),
        ("no-lag", "mixed", 8),
        ("no-lag", "ryw", 8),
    ]
    ryw = {s["name"] for s in result["subjects"] if s["consistency"] == "read_your_writes"}
    waiting = {s["name"] for s in result["subjects"] if s.get("ryw_wait")}
    assert waiting == {"async/round-robin/read_your_writes+wait"}
    assert waiting < ryw
    for (scenario, workload, _), subjects in cells.items():
        # A ryw_wait subject runs where sessions read their own writes back.
        assert set(subjects) == (expected if workload == "ryw" else expected - waiting)
        for name, cell in subjects.items():
            where = f"{scenario}/{workload}/{name}"
            assert cell["errors"] == 0, (where, cell["error_samples"])
            assert cell["rounds"][0]["ops"] > 0, where
            assert cell["reads"] > 0, where
            assert cell["writes"] > 0, where
            if workload == "ryw":
                assert cell["reads"] == cell["writes"], where
                if name in ryw:
                    assert cell["stale_reads"] == 0, where
            else:
                assert 0.05 < cell["writes"] / (cell["reads"] + cell["writes"]) < 0.3, where
            if name == "raw-asyncpg" or "/primary-only/" in name:
                assert cell["replica_reads"] == 0, where
                assert cell["offload"] == 0.0, where
            if "/round-robin/" in name and (workload == "mixed" or "read_your" not in name):
                assert cell["offload"] is not None, where
                assert cell["offload"] > 0, where
            if name == "raw-asyncpg":
                assert cell["vs_baseline"] == 1.0
    # Waiting on a replica for the session's own write takes read-backs off the primary, and
    # none of them is stale (asserted above); without the wait nearly all go to the primary.
    # Unless the box is so slow that read-backs come after the replicas applied the write
    # (a CI run: 0.9944 without the wait, 0.9931 with it): then there is nothing to take off
    # the primary, and both must be near 1.
    for scenario in ("no-lag", "delay-0.2s"):
        ryw_cell = cells[scenario, "ryw", 8]
        waited = ryw_cell["async/round-robin/read_your_writes+wait"]["offload"]
        assert waited is not None, scenario
        unwaited = ryw_cell["async/round-robin/read_your_writes"]["offload"] or 0
        if unwaited > 0.9:
            assert waited > 0.9, (scenario, waited, unwaited)
        else:
            assert waited > unwaited, (scenario, waited, unwaited)
    # The stale-read check can see a stale read: with replica1 0.2 s behind, the naive split's
    # read-backs that land there show the version before the write.
    assert cells["delay-0.2s", "ryw", 8]["naive-split"]["stale_reads"] > 0
    # Everything the bench started is gone.
    for node in env["nodes"]:
        assert _refused(node["address"]), node


@pytest.mark.faults
def test_a_replica_killed_and_paused_mid_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each run kills (or pauses) replica1 at 1/3 of its window and brings it back at 2/3;
    the next run starts with it streaming and caught up. The router rides through it."""
    subjects = "async/round-robin/read_your_writes,async/round-robin/eventual,raw-asyncpg"
    argv = ["bench", "--scenarios", "replica-killed,replay-paused", "--workloads", "ryw"]
    argv += ["--subjects", subjects, "--concurrency", "2", "--rows", "200", "--rounds", "2"]
    argv += ["--duration", "0.6", "--warmup", "0.1", "--json-only", "--out", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    result = read_result(tmp_path / "bench.json")
    cells = _by_cell(result)
    assert sorted(cells) == [("replay-paused", "ryw", 2), ("replica-killed", "ryw", 2)]
    for (scenario, _, _), subjects_ in cells.items():
        for name, cell in subjects_.items():
            where = f"{scenario}/{name}"
            assert len(cell["rounds"]) == 2, where
            assert all(r["ops"] > 0 for r in cell["rounds"]), where
            assert cell["errors"] == 0, (where, cell["error_samples"])
            if name.endswith("read_your_writes"):
                assert cell["stale_reads"] == 0, where
    for node in result["environment"]["nodes"]:
        assert _refused(node["address"]), node


def _url(db: ClusterDatabase) -> str:
    cluster = db.cluster
    # Replicas first: roles are discovered, not taken from the order.
    hosts = ",".join(f"{n.host}:{n.port}" for n in [*cluster.replicas, cluster.primary])
    return f"postgresql://{cluster.primary.user}@{hosts}/{db.name}"


def _bench(db: ClusterDatabase, out: Path, *extra: str) -> int:
    return main(
        [
            "bench",
            _url(db),
            "--subjects",
            "async/round-robin/read_your_writes,async/random/eventual,raw-asyncpg,naive-split",
            "--duration",
            "0.2",
            "--warmup",
            "0.05",
            "--rounds",
            "1",
            "--concurrency",
            "2",
            "--json-only",
            "--out",
            str(out),
            *extra,
        ]
    )


def _rows(db: ClusterDatabase, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(db.primary_dsn, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def _bench_sessions(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'router-bench'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_cluster_given_by_url_keeps_its_data(
    cluster_db: ClusterDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(cluster_db.primary_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO orders SELECT i, 'order ' || i FROM generate_series(1, 50) i")
    before = _rows(cluster_db, "SELECT * FROM orders ORDER BY id")

    assert (
        _bench(cluster_db, tmp_path / "one", "--workloads", "read-only,ryw", "--rows", "300") == 0
    )
    first = read_result(tmp_path / "one" / "bench.json")
    assert first["environment"]["embedded"] is False
    assert {n["role"] for n in first["environment"]["nodes"]} == {"primary", "replica"}
    assert {c["scenario"] for c in first["cells"]} == {"no-lag"}
    assert any("embedded cluster" in note for note in first["notes"])
    assert not any("reused" in note for note in first["notes"])
    for cell in first["cells"]:
        assert cell["errors"] == 0, cell["error_samples"]
        assert cell["rounds"][0]["ops"] > 0
        if cell["workload"] == "ryw" and "/read_your_writes" in cell["subject"]:
            assert cell["stale_reads"] == 0
        if cell["subject"] == "naive-split":
            assert cell["offload"] == 1.0  # replicas found whatever the URL's order

    again = ("--workloads", "read-only", "--rows", "300", "--pool-sizes", "1,2")
    assert _bench(cluster_db, tmp_path / "two", *again) == 0
    second = read_result(tmp_path / "two" / "bench.json")
    assert any("reused the existing table router_bench_items_300" in n for n in second["notes"])
    sweep = second["pool_sweep"]
    assert sweep is not None
    assert [(p["pool_size"], p["concurrency"]) for p in sweep["points"]] == [(1, 4), (2, 4)]
    assert all(p["ops_per_s"] > 0 for p in sweep["points"])
    assert sweep["points"][0]["acquire_wait_ms_per_op"] > 0  # 4 workers, 1 connection a node
    assert sweep["knee"] in {1, 2}

    assert _rows(cluster_db, "SELECT * FROM orders ORDER BY id") == before
    # Every subject closed its connections (they all say application_name=router-bench).
    for node in cluster_db.cluster.nodes:

        def ended(node: Node = node) -> bool:
            return _bench_sessions(cluster_db.dsn(node)) == 0

        wait_until(
            ended,
            timeout=10,
            what=f"the bench's sessions on {node.name} to end",
        )
    assert _rows(
        cluster_db,
        "SELECT count(*), obj_description('router_bench_items_300'::regclass, 'pg_class')"
        " FROM router_bench_items_300",
    ) == [(300, DATASET_MARK)]


def test_a_table_by_the_benchs_name_it_did_not_make_is_left_alone(
    cluster_db: ClusterDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(cluster_db.primary_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE router_bench_items_400"
            " (id int PRIMARY KEY, version int NOT NULL, payload text, category int)"
        )
        conn.execute("INSERT INTO router_bench_items_400 VALUES (1, 41, 'mine', 0)")
    capsys.readouterr()
    assert _bench(cluster_db, tmp_path / "out", "--workloads", "mixed", "--rows", "400") == 1
    err = capsys.readouterr().err
    assert "router_bench_items_400 exists and was not made by router bench" in err
    assert not (tmp_path / "out").exists()
    assert _rows(cluster_db, "SELECT * FROM router_bench_items_400") == [(1, 41, "mine", 0)]


def test_an_interrupted_bench_removes_its_cluster(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) or SIGTERM mid-run: exit 130, servers stopped, directory gone."""
    argv = [sys.executable, "-m", "router.cli", "bench", "--subjects", "raw-asyncpg"]
    argv += ["--workloads", "mixed", "--scenarios", "no-lag", "--concurrency", "2"]
    argv += ["--rows", "200", "--duration", "60", "--out", str(tmp_path / "out")]
    for signum in (signal.SIGINT, signal.SIGTERM):
        base = None
        with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as bench:
            try:
                assert bench.stderr is not None
                for line in bench.stderr:
                    found = re.search(r"local cluster up in (\S+)", line)
                    if found:
                        base = Path(found.group(1))
                    if "no-lag mixed c=2" in line:
                        break
                assert base is not None
                assert base.is_dir()
                bench.send_signal(signum)
                assert bench.wait(timeout=60) == 130
            finally:
                if bench.poll() is None:
                    bench.kill()
        assert not base.exists()
        running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
        assert str(base) not in running.stdout
        assert not (tmp_path / "out").exists()


def test_a_bench_stopped_midway_keeps_the_cells_it_finished(tmp_path: Path) -> None:
    """Ctrl-C in the second cell: the first cell's results are written, marked incomplete."""
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "router.cli", "bench", "--subjects", "raw-asyncpg"]
    argv += ["--workloads", "mixed,ryw", "--scenarios", "no-lag", "--concurrency", "2"]
    argv += ["--rows", "200", "--duration", "2", "--warmup", "0.1", "--out", str(out)]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as bench:
        try:
            assert bench.stderr is not None
            for line in bench.stderr:
                if "no-lag ryw c=2" in line:
                    break
            bench.send_signal(signal.SIGINT)
            rest = bench.stderr.read()
            assert bench.wait(timeout=60) == 130
        finally:
            if bench.poll() is None:
                bench.kill()
    assert "1 finished cell(s) kept in" in rest, rest
    result = read_result(out / "bench.json")
    assert [(c["workload"], c["subject"]) for c in result["cells"]] == [("mixed", "raw-asyncpg")]
    assert result["cells"][0]["rounds"][0]["ops"] > 0
    assert any("incomplete: the run stopped after 1 of 2 cells" in n for n in result["notes"])
    assert (out / "report.html").is_file()


SECRET = "pw-BENCH-SECRET-93be1f"


@pytest.fixture(scope="module")
def password_cluster() -> Iterator[LocalCluster]:
    """A primary and one replica of this module's own, with a password."""
    with LocalCluster(replicas=1, password=SECRET) as cluster:
        yield cluster


def _tiny(url: str, out: Path, *extra: str) -> list[str]:
    return [
        "bench",
        url,
        "--subjects",
        "async/round-robin/read_your_writes,sync/round-robin/eventual,naive-split,pgpool",
        "--with-pgpool",
        "--workloads",
        "ryw",
        "--duration",
        "0.2",
        "--warmup",
        "0.05",
        "--rounds",
        "1",
        "--concurrency",
        "2",
        "--rows",
        "100",
        "--out",
        str(out),
        *extra,
    ]


def test_a_password_reaches_every_subject_and_no_output(
    password_cluster: LocalCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosts = ",".join(f"{n.host}:{n.port}" for n in password_cluster.nodes)
    in_url = f"postgresql://postgres:{SECRET}@{hosts}/postgres"
    assert main(_tiny(in_url, tmp_path / "url")) == 0
    monkeypatch.setenv("PGPASSWORD", SECRET)
    assert main(_tiny(f"postgresql://postgres@{hosts}/postgres", tmp_path / "env")) == 0
    monkeypatch.delenv("PGPASSWORD")
    wrong = f"postgresql://postgres:not-{SECRET}@{hosts}/postgres"
    assert main(_tiny(wrong, tmp_path / "wrong")) == 1
    captured = capsys.readouterr()
    assert "router bench: cannot connect to 127.0.0.1:" in captured.err
    assert "password authentication failed" in captured.err
    for run in ("url", "env"):
        result = read_result(tmp_path / run / "bench.json")
        assert {c["subject"] for c in result["cells"]} == {
            "async/round-robin/read_your_writes",
            "sync/round-robin/eventual",
            "naive-split",
            "pgpool",
        }
        for cell in result["cells"]:
            assert cell["errors"] == 0, (run, cell["subject"], cell["error_samples"])
            assert cell["reads"] > 0
    texts = [captured.out, captured.err]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for text in texts:
        assert SECRET not in text
        assert SECRET[3:-3] not in text
