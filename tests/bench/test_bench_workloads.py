"""The workloads' operation mix, keys and SQL (no database)."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy.dialects import postgresql

import router
from router.config import NodeConfig, RouterConfig
from router_bench._plan import SubjectSpec, prepared_subjects
from router_bench._schema import WORKLOADS, WorkloadName
from router_bench._subjects import SqlalchemyClient, router_config
from router_bench._target import Target, TargetNode
from router_bench._workloads import (
    MIXES,
    Op,
    OpPicker,
    categories,
    key_range,
    statements,
    table_name,
    worker_rng,
)

N = 20_000


def _ops(
    workload: WorkloadName, seed: int = 1, worker: int = 0, workers: int = 4, rows: int = 1000
) -> list[tuple[Op, int]]:
    pick = OpPicker(
        workload,
        worker_rng(seed, 0, 0, worker),
        worker=worker,
        workers=workers,
        rows=rows,
    )
    return [pick() for _ in range(N)]


def test_every_workload_has_a_mix_summing_to_one() -> None:
    assert set(MIXES) == set(WORKLOADS)
    for mix in MIXES.values():
        assert sum(share for _, share in mix) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("workload", "expected"),
    [
        ("mixed", {Op.POINT: 0.85 * 2 / 3, Op.LIST: 0.85 / 3, Op.WRITE: 0.15}),
        ("read-only", {Op.POINT: 2 / 3, Op.LIST: 1 / 3}),
        ("write-heavy", {Op.POINT: 1 / 3, Op.LIST: 1 / 6, Op.WRITE: 0.5}),
        ("ryw", {Op.RYW: 1.0}),
    ],
)
def test_operation_shares(workload: WorkloadName, expected: dict[Op, float]) -> None:
    counts = Counter(op for op, _ in _ops(workload))
    assert set(counts) == set(expected)
    for op, share in expected.items():
        assert counts[op] / N == pytest.approx(share, abs=0.015)


def test_keys_are_in_range_and_ryw_keys_are_the_workers_own() -> None:
    rows = 1000
    for op, key in _ops("mixed", rows=rows):
        if op is Op.LIST:
            assert 0 <= key < categories(rows)
        else:
            assert 1 <= key <= rows
    lo, hi = key_range(2, 4, rows)
    keys = {key for _, key in _ops("ryw", worker=2, workers=4, rows=rows)}
    assert min(keys) == lo == 501
    assert max(keys) == hi == 750


def test_key_ranges_partition_the_rows() -> None:
    for workers, rows in [(1, 100), (3, 100), (8, 2000), (32, 100), (7, 7)]:
        ranges = [key_range(w, workers, rows) for w in range(workers)]
        covered = [i for lo, hi in ranges for i in range(lo, hi + 1)]
        assert covered == list(range(1, rows + 1))
        assert all(lo <= hi for lo, hi in ranges)
    with pytest.raises(ValueError, match="cannot own rows"):
        key_range(0, 10, 5)


def test_same_seed_same_operations_another_seed_others() -> None:
    assert _ops("mixed", seed=5)[:500] == _ops("mixed", seed=5)[:500]
    assert _ops("mixed", seed=5)[:500] != _ops("mixed", seed=6)[:500]
    assert _ops("mixed", worker=0)[:500] != _ops("mixed", worker=1)[:500]


def test_categories() -> None:
    assert categories(100_000) == 100
    assert categories(40) == 40
    assert table_name(2000) == "router_bench_items_2000"


@pytest.mark.parametrize("style", ["asyncpg", "psycopg"])
def test_the_classifier_routes_reads_to_replicas_and_writes_to_the_primary(style: str) -> None:
    sql = statements("router_bench_items_2000", style)  # type: ignore[arg-type]
    assert router.classify(sql.point).route is router.Route.READ
    assert router.classify(sql.list).route is router.Route.READ
    assert router.classify(sql.write).route is router.Route.WRITE
    for text in (sql.point, sql.list):
        assert "inet_server_port()" in text
        assert "inet_server_addr()" in text


def _target() -> Target:
    config = RouterConfig(
        nodes=["postgresql://u:pw@127.0.0.1:5432/db", "postgresql://u:pw@127.0.0.1:5433/db"]
    )
    a, b = config.all_nodes
    nodes = (
        TargetNode(a.name, "primary", a, ("127.0.0.1", 5432)),
        TargetNode(b.name, "replica", b, ("127.0.0.1", 5433)),
    )
    return Target(False, nodes, config, "15")


def test_the_sqlalchemy_statements_are_classified_alike() -> None:
    spec = SubjectSpec("sqlalchemy/round-robin/eventual", "router", "sqlalchemy")
    client = SqlalchemyClient(spec, _target().base_config, "router_bench_items_2000")
    dialect = postgresql.asyncpg.dialect()
    for statement, route in [
        (client._point, router.Route.READ),
        (client._list, router.Route.READ),
        (client._write, router.Route.WRITE),
    ]:
        text = str(statement.compile(dialect=dialect))
        assert router.classify(text).route is route, text


def test_router_subject_configuration() -> None:
    target = _target()
    bounded = router_config(
        target, SubjectSpec("async/random/bounded", "router", "async", "random", "bounded"), 8
    )
    assert (bounded.policy, bounded.consistency) == ("random", "bounded")
    assert bounded.max_lag_seconds == 0.5
    assert (bounded.pool.min_size, bounded.pool.max_size) == (8, 8)
    assert bounded.application_name == "router-bench"
    eventual = router_config(
        target, SubjectSpec("sync/latency/eventual", "router", "sync", "latency", "eventual"), 3
    )
    assert eventual.max_lag_seconds == RouterConfig(primary="postgresql://h/db").max_lag_seconds
    assert isinstance(eventual.all_nodes[0], NodeConfig)


def test_replica_identities_leave_out_nodes_that_cannot_be_told_apart() -> None:
    target = _target()
    assert target.replica_idents() == {("127.0.0.1", 5432): False, ("127.0.0.1", 5433): True}
    assert target.ambiguous() == []
    a, b = target.nodes
    same = Target(
        False,
        (a, TargetNode(b.name, "replica", b.config, a.ident)),
        target.base_config,
        "15",
    )
    assert same.replica_idents() == {}
    assert same.ambiguous() == [a.name, b.name]
    assert target.secrets == ("pw",)
    assert target.credentials() == ("u", "pw", "db")


def test_prepared_subjects_configuration() -> None:
    """What ``--plan prepared`` varies reaches the router's configuration, and through it the
    drivers' settings (``pool_settings()``, what both routers open their pools with)."""
    target = _target()
    by_name = {s.name: s for s in prepared_subjects()}
    default = router_config(target, by_name["async/round-robin/read_your_writes"], 4)
    base = RouterConfig(primary="postgresql://h/db")
    assert default.pooler_mode == "session"
    settings = default.pool_settings()
    assert (settings.statement_cache_size, settings.prepare_threshold) == (
        base.statement_cache_size,
        base.prepare_threshold,
    )
    assert settings.statement_cache_size > 0
    assert settings.prepare_threshold is not None
    for name in (
        "async/round-robin/read_your_writes+unprepared",
        "sync/round-robin/read_your_writes+unprepared",
    ):
        off = router_config(target, by_name[name], 4)
        assert off.pooler_mode == "session", name
        assert (off.statement_cache_size, off.prepare_threshold) == (0, None), name
    tx = router_config(target, by_name["sync/round-robin/read_your_writes+txmode"], 4)
    assert tx.pooler_mode == "transaction"
    # The mode turns the caches off by itself: the configured values are left as they were.
    assert (tx.statement_cache_size, tx.prepare_threshold) == (
        base.statement_cache_size,
        base.prepare_threshold,
    )
    assert (tx.pool_settings().statement_cache_size, tx.pool_settings().prepare_threshold) == (
        0,
        None,
    )
    through = router_config(
        target, by_name["pgbouncer-transaction:async/round-robin/read_your_writes"], 4
    )
    assert through.pooler_mode == "transaction"
