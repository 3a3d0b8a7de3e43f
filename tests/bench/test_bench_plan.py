"""The bench's plan: subjects, cells, rotation, validation (no database)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pytest

from router import Consistency, PolicyName
from router_bench._plan import (
    CONSISTENCIES,
    POLICIES,
    RYW_WAIT_SECONDS,
    PlanError,
    PlanOptions,
    SubjectSpec,
    build_plan,
    default_subjects,
    estimate_seconds,
    round_order,
    router_subject,
    subject_name,
)
from router_bench._schema import SCENARIOS, WORKLOADS


def _names(subjects: Iterable[SubjectSpec]) -> list[str]:
    return [s.name for s in subjects]


def test_policies_and_consistencies_are_the_routers_own() -> None:
    assert set(POLICIES) == {p.value for p in PolicyName}
    assert set(CONSISTENCIES) <= {c.value for c in Consistency}
    assert "strong" not in CONSISTENCIES  # primary-only by definition: nothing to compare


def test_subject_names() -> None:
    assert subject_name("async", "round-robin", "read_your_writes") == (
        "async/round-robin/read_your_writes"
    )
    subjects = default_subjects()
    names = _names(subjects)
    assert len(names) == len(set(names))
    assert names[-2:] == ["raw-asyncpg", "naive-split"]
    for s in subjects:
        if s.kind == "router":
            assert s.api is not None
            assert s.policy is not None
            assert s.consistency is not None
            assert s.name == subject_name(s.api, s.policy, s.consistency, s.ryw_wait)
        else:
            assert (s.api, s.policy, s.consistency) == (None, None, None)


def test_default_matrix_all_async_combinations_one_policy_for_the_other_apis() -> None:
    subjects = default_subjects()
    by_api = Counter(s.api for s in subjects)
    assert by_api == {"async": 16, "sync": 3, "sqlalchemy": 3, None: 2}
    waiting = [s for s in subjects if s.ryw_wait]
    assert [(s.name, s.ryw_wait) for s in waiting] == [
        ("async/round-robin/read_your_writes+wait", RYW_WAIT_SECONDS)
    ]
    assert {s.policy for s in subjects if s.api == "sync"} == {"round-robin"}
    assert {s.consistency for s in subjects if s.api == "sqlalchemy"} == set(CONSISTENCIES)
    full = default_subjects(all_apis=True, with_pgpool=True)
    assert Counter(s.api for s in full) == {"async": 16, "sync": 15, "sqlalchemy": 15, None: 3}
    assert _names(full)[-1] == "pgpool"


def test_descriptions_say_what_each_subject_is() -> None:
    subjects = {s.name: s.to_schema() for s in default_subjects(with_pgpool=True)}
    assert "max_lag_seconds 0.5" in subjects["async/random/bounded"]["description"]
    assert "threads" in subjects["sync/round-robin/eventual"]["description"]
    assert "pgpool-II" in subjects["pgpool"]["description"]
    assert subjects["raw-asyncpg"]["kind"] == "baseline"
    assert "ryw_wait" not in subjects["raw-asyncpg"]
    assert subjects["async/random/bounded"]["ryw_wait"] == 0
    waiting = subjects["async/round-robin/read_your_writes+wait"]
    assert (waiting["consistency"], waiting["ryw_wait"]) == ("read_your_writes", 0.01)
    assert "ryw_wait 10 ms" in waiting["description"]


def test_ryw_wait_only_with_read_your_writes() -> None:
    with pytest.raises(PlanError, match="read_your_writes only"):
        router_subject("async", "random", "eventual", ryw_wait=0.01)


def test_quick_plan() -> None:
    plan = build_plan(PlanOptions(quick=True))
    assert (plan.rows, plan.duration, plan.warmup, plan.rounds) == (2000, 0.4, 0.15, 1)
    cells = [(c.scenario, c.workload, c.concurrency) for c in plan.cells]
    assert cells == [
        ("no-lag", "mixed", 8),
        ("no-lag", "ryw", 8),
        ("delay-0.2s", "mixed", 8),
        ("delay-0.2s", "ryw", 8),
    ]
    everyone = _names(default_subjects())
    waiting = "async/round-robin/read_your_writes+wait"
    for cell in plan.cells:
        # The ryw_wait subject only where a session reads its own write back.
        expected = everyone if cell.workload == "ryw" else [n for n in everyone if n != waiting]
        assert _names(cell.subjects) == expected
        assert cell.pool_size == cell.concurrency
    assert plan.runs == 4 * len(everyone) - 2
    assert plan.sweep is None
    assert not plan.with_pgpool
    assert plan.settings()["concurrency"] == [8]


def test_quick_plan_with_pgpool_has_it_in_every_cell() -> None:
    plan = build_plan(PlanOptions(quick=True, with_pgpool=True))
    assert plan.with_pgpool
    assert all(cell.subjects[-1].name == "pgpool" for cell in plan.cells)


def test_full_plan() -> None:
    plan = build_plan(PlanOptions())
    assert (plan.rows, plan.rounds) == (100_000, 3)
    no_lag = [(c.workload, c.concurrency) for c in plan.cells if c.scenario == "no-lag"]
    assert no_lag == [
        ("mixed", 1),
        ("mixed", 8),
        ("mixed", 32),
        ("read-only", 8),
        ("write-heavy", 8),
        ("ryw", 8),
    ]
    faults = [(c.scenario, c.workload) for c in plan.cells if c.scenario != "no-lag"]
    assert faults == [(s, w) for s in SCENARIOS[1:] for w in ("mixed", "ryw")]
    for cell in plan.cells:
        apis = {s.api for s in cell.subjects}
        if cell.scenario == "no-lag":
            assert apis == {"async", "sync", "sqlalchemy", None}
        else:
            assert apis == {"async", None}
            assert cell.concurrency == 8
    assert any("fault scenarios ran the async" in note for note in plan.notes)
    assert plan.settings()["concurrency"] == [1, 8, 32]
    assert plan.settings()["workloads"] == list(WORKLOADS)
    # Aimed at half an hour or less on a 2-core box.
    assert estimate_seconds(plan) <= 30 * 60


def test_explicit_options_replace_the_profiles_choices() -> None:
    plan = build_plan(
        PlanOptions(
            workloads=("read-only",),
            scenarios=("no-lag", "delay-1s"),
            concurrency=(2, 4),
            pool_size=3,
            rounds=2,
            duration=0.25,
            warmup=0,
            rows=500,
        )
    )
    assert [(c.scenario, c.workload, c.concurrency, c.pool_size) for c in plan.cells] == [
        ("no-lag", "read-only", 2, 3),
        ("no-lag", "read-only", 4, 3),
        ("delay-1s", "read-only", 2, 3),
        ("delay-1s", "read-only", 4, 3),
    ]
    assert (plan.rounds, plan.duration, plan.warmup, plan.rows) == (2, 0.25, 0.0, 500)


def test_subject_globs_pick_in_matrix_order() -> None:
    plan = build_plan(PlanOptions(quick=True, subjects=("raw-asyncpg", "async/latency/*")))
    assert _names(plan.subjects) == [
        "async/latency/read_your_writes",
        "async/latency/bounded",
        "async/latency/eventual",
        "raw-asyncpg",
    ]
    with pytest.raises(PlanError, match=r"--subjects: 'nope\*' matches no subject"):
        build_plan(PlanOptions(subjects=("nope*",)))


def test_urls_run_no_lag_only_with_a_note() -> None:
    plan = build_plan(PlanOptions(quick=True, embedded=False))
    assert {c.scenario for c in plan.cells} == {"no-lag"}
    assert any("embedded cluster" in note for note in plan.notes)
    with pytest.raises(PlanError, match=r"--scenarios: delay-1s need the embedded cluster"):
        build_plan(PlanOptions(embedded=False, scenarios=("no-lag", "delay-1s")))


def test_pool_sweep_plan() -> None:
    plan = build_plan(PlanOptions(quick=True, pool_sizes=(8, 2, 4, 16, 4)))
    assert plan.sweep is not None
    assert plan.sweep.sizes == (2, 4, 8, 16)
    assert plan.sweep.concurrency == 32
    assert plan.sweep.subject.name == "async/round-robin/read_your_writes"
    assert plan.sweep.workload == "mixed"
    assert plan.runs == sum(len(c.subjects) for c in plan.cells) + 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (PlanOptions(workloads=("mixed", "oltp")), r"--workloads: unknown 'oltp'"),
        (PlanOptions(scenarios=("lag",)), r"--scenarios: unknown 'lag'"),
        (PlanOptions(concurrency=(8, 0)), r"--concurrency: 0 is not a whole number >= 1"),
        (PlanOptions(pool_sizes=(-2,)), r"--pool-sizes: -2"),
        (PlanOptions(duration=0), r"--duration: must be > 0"),
        (PlanOptions(warmup=-1), r"--warmup: must be >= 0"),
        (PlanOptions(rounds=0), r"--rounds: must be a whole number >= 1"),
        (PlanOptions(pool_size=0), r"--pool-size: must be a whole number >= 1"),
        (PlanOptions(rows=50), r"--rows: must be a whole number >= 100"),
        (PlanOptions(quick=True, rows=200, concurrency=(500,)), r"--rows: .* >= 500"),
        (PlanOptions(quick=True, rows=100, pool_sizes=(64,)), r"--rows: .* >= 128"),
        (PlanOptions(workloads=()), r"--workloads: give at least one"),
    ],
)
def test_bad_options_are_named(options: PlanOptions, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        build_plan(options)


def test_round_order_rotates_so_every_subject_takes_every_place() -> None:
    items = ["A", "B", "C"]
    assert [round_order(items, r, 3) for r in range(3)] == [
        ["A", "B", "C"],
        ["B", "C", "A"],
        ["C", "A", "B"],
    ]
    assert round_order(items, 0, 1) == items
    assert round_order([], 2, 3) == []


def test_round_order_spreads_the_places_over_few_rounds() -> None:
    items = list(range(12))
    orders = [round_order(items, r, 3) for r in range(3)]
    for order in orders:
        assert sorted(order) == items
    # Each subject's places over the rounds are a third of the list apart: early, middle, late.
    places = {i: sorted(order.index(i) for order in orders) for i in items}
    assert places[0] == [0, 4, 8]
    assert all(max(p) - min(p) == 8 for p in places.values())


def test_a_ryw_wait_subject_asked_for_by_name_runs_in_every_workload() -> None:
    plan = build_plan(PlanOptions(quick=True, subjects=("*+wait",)))
    assert {c.workload for c in plan.cells} == {"mixed", "ryw"}
    for cell in plan.cells:
        assert _names(cell.subjects) == ["async/round-robin/read_your_writes+wait"]


def test_bench_subjects_through_pgbouncer() -> None:
    plan = build_plan(PlanOptions(quick=True, with_pgbouncer=True))
    through = [s for s in plan.subjects if s.pooler is not None]
    assert [s.name for s in through] == [
        "pgbouncer-session:async/round-robin/read_your_writes",
        "pgbouncer-session:sync/round-robin/read_your_writes",
        "pgbouncer-transaction:async/round-robin/read_your_writes",
        "pgbouncer-transaction:sync/round-robin/read_your_writes",
    ]
    assert all("PgBouncer" in s.description for s in through)
    assert not [s for s in build_plan(PlanOptions(quick=True)).subjects if s.pooler]
    with pytest.raises(PlanError, match="--with-pgbouncer"):
        build_plan(PlanOptions(quick=True, embedded=False, with_pgbouncer=True))


PREPARED_NAMES = [
    "async/round-robin/read_your_writes",
    "async/round-robin/read_your_writes+unprepared",
    "async/round-robin/read_your_writes+txmode",
    "pgbouncer-session:async/round-robin/read_your_writes",
    "pgbouncer-transaction:async/round-robin/read_your_writes",
    "raw-asyncpg",
    "raw-asyncpg+unprepared",
    "sync/round-robin/read_your_writes",
    "sync/round-robin/read_your_writes+unprepared",
    "sync/round-robin/read_your_writes+txmode",
    "pgbouncer-session:sync/round-robin/read_your_writes",
    "pgbouncer-transaction:sync/round-robin/read_your_writes",
    "raw-psycopg",
    "raw-psycopg+unprepared",
]


def test_the_prepared_plan() -> None:
    plan = build_plan(PlanOptions(plan="prepared"))
    assert plan.name == "prepared"
    assert plan.settings()["plan"] == "prepared"
    assert _names(plan.subjects) == PREPARED_NAMES
    assert {(c.scenario, c.workload, c.concurrency) for c in plan.cells} == {
        ("no-lag", w, c) for w in ("read-only", "mixed") for c in (1, 8)
    }
    assert all(_names(c.subjects) == PREPARED_NAMES for c in plan.cells)
    by_name = {s.name: s for s in plan.subjects}
    # Each subject differs from the first of its API in one thing only.
    off = by_name["async/round-robin/read_your_writes+unprepared"]
    assert (off.unprepared, off.router_pooler_mode, off.pooler) == (True, "session", None)
    assert "statement_cache_size=0" in off.description
    assert (
        "prepare_threshold=None"
        in by_name["sync/round-robin/read_your_writes+unprepared"].description
    )
    tx = by_name["sync/round-robin/read_your_writes+txmode"]
    assert (tx.unprepared, tx.router_pooler_mode, tx.pooler) == (False, "transaction", None)
    assert "no pooler in between" in tx.description
    through = by_name["pgbouncer-transaction:async/round-robin/read_your_writes"]
    assert (through.router_pooler_mode, through.pooler) == ("transaction", "transaction")
    assert by_name["pgbouncer-session:sync/round-robin/read_your_writes"].router_pooler_mode == (
        "session"
    )
    assert by_name["raw-psycopg+unprepared"].unprepared
    assert not by_name["raw-psycopg"].unprepared
    assert "prepare_threshold=None" in by_name["raw-psycopg+unprepared"].description
    assert "statement_cache_size=0" in by_name["raw-asyncpg+unprepared"].description
    # The default plan is what it was.
    assert build_plan(PlanOptions()).name == "default"
    assert not any(s.unprepared or s.pooler_mode for s in default_subjects(with_pgbouncer=True))


def test_the_prepared_plan_quick_on_urls_and_narrowed() -> None:
    quick = build_plan(PlanOptions(plan="prepared", quick=True))
    assert {(c.workload, c.concurrency) for c in quick.cells} == {("read-only", 8), ("mixed", 8)}
    # Against given URLs the bench cannot put PgBouncers in front of the nodes.
    urls = build_plan(PlanOptions(plan="prepared", quick=True, embedded=False))
    assert _names(urls.subjects) == [n for n in PREPARED_NAMES if not n.startswith("pgbouncer")]
    assert any("PgBouncer" in note for note in urls.notes)
    narrowed = build_plan(
        PlanOptions(plan="prepared", quick=True, subjects=("raw-*", "*+txmode"), with_pgpool=True)
    )
    assert _names(narrowed.subjects) == [
        "async/round-robin/read_your_writes+txmode",
        "raw-asyncpg",
        "raw-asyncpg+unprepared",
        "sync/round-robin/read_your_writes+txmode",
        "raw-psycopg",
        "raw-psycopg+unprepared",
    ]
    assert "pgpool" in _names(build_plan(PlanOptions(plan="prepared", with_pgpool=True)).subjects)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (PlanOptions(plan="fast"), "--plan: unknown 'fast'"),
        (PlanOptions(plan="prepared", all_apis=True), "--all-apis"),
        (PlanOptions(plan="prepared", pool_sizes=(2, 4)), "--pool-sizes"),
    ],
)
def test_bad_plan_options_are_named(options: PlanOptions, message: str) -> None:
    with pytest.raises(PlanError, match=message.replace("+", r"\+")):
        build_plan(options)


def test_prepared_subject_names() -> None:
    assert subject_name("sync", "round-robin", "eventual", unprepared=True) == (
        "sync/round-robin/eventual+unprepared"
    )
    assert subject_name("async", "random", "bounded", pooler_mode="transaction") == (
        "async/random/bounded+txmode"
    )
    # Through a PgBouncer its mode is in the prefix already.
    assert router_subject(
        "async", "round-robin", "eventual", pooler="transaction", pooler_mode="transaction"
    ).name == ("pgbouncer-transaction:async/round-robin/eventual")
    assert router_subject("async", "round-robin", "eventual", pooler_mode="session").name == (
        "async/round-robin/eventual"
    )
    with pytest.raises(PlanError, match="pooler_mode"):
        router_subject(
            "async", "round-robin", "eventual", pooler="session", pooler_mode="transaction"
        )
