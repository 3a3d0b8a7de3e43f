"""``router bench --plan prepared`` on the real cluster: the plan runs end to end (through a
PgBouncer per node too), and each subject prepares statements on the servers, or not, as its
name says (``pg_prepared_statements`` of the very connections the subject used)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from router import AsyncRouter, Router
from router.cli import main
from router.testing.pytest_plugin import ClusterDatabase
from router_bench._output import read_result
from router_bench._plan import PlanOptions, SubjectSpec, build_plan, prepared_subjects
from router_bench._subjects import RawClient, RawPsycopgClient, make_client, router_config
from router_bench._target import Target, config_from_urls, discover, ensure_dataset, wait_replayed
from router_bench._workloads import statements, table_name

pytestmark = pytest.mark.integration

ROWS = 200
#: Point reads per connection: past psycopg's prepare_threshold (5), so that its default
#: prepares them; asyncpg prepares (names) a statement at its first run.
READS = 8
_PREPARED = "SELECT statement FROM pg_prepared_statements"


@pytest.mark.timeout(240)
def test_the_prepared_plan_runs_on_the_embedded_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--plan", "prepared", "--quick", "--workloads", "read-only"]
    argv += ["--concurrency", "2", "--rows", "200", "--duration", "0.3", "--warmup", "0.05"]
    argv += ["--json-only", "--out", str(tmp_path)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = read_result(tmp_path / "bench.json")
    assert "\u00b5s/op" in printed  # the table's CPU column
    assert result["command"].startswith("router bench --plan prepared --quick")
    assert result["settings"].get("plan") == "prepared"
    expected = [s.name for s in prepared_subjects()]
    assert [s.name for s in build_plan(PlanOptions(plan="prepared", quick=True)).subjects] == (
        expected
    )
    assert [s["name"] for s in result["subjects"]] == expected
    assert sorted(c["subject"] for c in result["cells"]) == sorted(expected)
    for cell in result["cells"]:
        name = cell["subject"]
        assert (cell["scenario"], cell["workload"], cell["concurrency"]) == (
            "no-lag",
            "read-only",
            2,
        ), name
        assert cell["errors"] == 0, (name, cell["error_samples"])
        assert cell["ops_per_s"] > 0, name
        cpu = cell.get("cpu_us_per_op")
        assert cpu is not None, name
        assert cpu > 0, name
        if name.startswith("raw-"):
            assert cell["offload"] == 0.0, name  # the bare drivers' pools are on the primary
        else:
            # Through the PgBouncers too, reads leave the primary.
            assert cell["offload"] is not None, name
            assert cell["offload"] > 0, name


# -- what the servers saw ---------------------------------------------------------------------


def _url(db: ClusterDatabase) -> str:
    cluster = db.cluster
    hosts = ",".join(f"{n.host}:{n.port}" for n in cluster.nodes)
    return f"postgresql://{cluster.primary.user}@{hosts}/{db.name}"


@pytest.fixture(scope="module")
def target(cluster_db: ClusterDatabase) -> Target:
    async def prepare() -> Target:
        found = await discover(config_from_urls([_url(cluster_db)]), embedded=False)
        await ensure_dataset(found, table_name(ROWS), ROWS)
        await wait_replayed(found)
        return found

    return asyncio.run(prepare())


def _spec(name: str) -> SubjectSpec:
    return next(s for s in prepared_subjects(with_pgbouncer=False) if s.name == name)


def _ours(rows: list[Any], table: str) -> bool:
    """Whether the bench's point read is among a connection's prepared statements."""
    return any(table in str(row[0]) for row in rows)


async def _async_router_prepared(target: Target, spec: SubjectSpec) -> bool:
    table = table_name(ROWS)
    sql = statements(table)
    # One connection per node: every replica read of the session lands on one of the two.
    async with AsyncRouter(router_config(target, spec, 1)) as router:
        seen: list[Any] = []
        for key in range(1, 2 * READS + 1):
            await router.fetchrow(sql.point, key)
        for _ in range(4):  # round-robin: each replica's one connection, twice
            seen += await router.fetch(_PREPARED)
    return _ours(seen, table)


def _sync_router_prepared(target: Target, spec: SubjectSpec) -> bool:
    table = table_name(ROWS)
    sql = statements(table, "psycopg")
    with Router(router_config(target, spec, 1)) as router:
        seen: list[Any] = []
        for key in range(1, 2 * READS + 1):
            router.fetchrow(sql.point, (key,))
        for _ in range(4):
            seen += router.fetch(_PREPARED)
    return _ours(seen, table)


async def _raw_asyncpg_prepared(target: Target, spec: SubjectSpec) -> bool:
    table = table_name(ROWS)
    client = make_client(spec, target, table, 1)
    assert isinstance(client, RawClient)
    await client.open()
    try:
        for key in range(1, READS + 1):
            await client.unit().point(key)
        pool: Any = client._pool
        return _ours(await pool.fetch(_PREPARED), table)
    finally:
        await client.close()


async def _raw_psycopg_prepared(target: Target, spec: SubjectSpec) -> bool:
    table = table_name(ROWS)
    client = make_client(spec, target, table, 1)
    assert isinstance(client, RawPsycopgClient)
    await client.open()
    try:

        def run() -> bool:
            for key in range(1, READS + 1):
                client.unit().point(key)
            pool: Any = client._pool
            with pool.connection() as conn:  # the pool's one connection, the one used above
                return _ours(conn.execute(_PREPARED).fetchall(), table)

        return await asyncio.to_thread(run)
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("name", "prepares"),
    [
        ("async/round-robin/read_your_writes", True),
        ("async/round-robin/read_your_writes+unprepared", False),
        ("async/round-robin/read_your_writes+txmode", False),
        ("sync/round-robin/read_your_writes", True),
        ("sync/round-robin/read_your_writes+unprepared", False),
        ("sync/round-robin/read_your_writes+txmode", False),
        ("raw-asyncpg", True),
        ("raw-asyncpg+unprepared", False),
        ("raw-psycopg", True),
        ("raw-psycopg+unprepared", False),
    ],
)
def test_each_subject_prepares_as_its_name_says(target: Target, name: str, prepares: bool) -> None:
    spec = _spec(name)
    if name.startswith("async/"):
        found = asyncio.run(_async_router_prepared(target, spec))
    elif name.startswith("sync/"):
        found = _sync_router_prepared(target, spec)
    elif name.startswith("raw-asyncpg"):
        found = asyncio.run(_raw_asyncpg_prepared(target, spec))
    else:
        found = asyncio.run(_raw_psycopg_prepared(target, spec))
    assert found is prepares
