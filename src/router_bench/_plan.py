"""What ``router bench`` runs: subjects, cells, rounds and their order. Pure: no I/O.

A *cell* is one (scenario, workload, concurrency) with the subjects measured in it. Every
subject of a cell runs once per round, in an order rotated from round to round, so that a
drift of the machine (another process, a checkpoint, thermal throttling) falls on all of them
alike. :func:`build_plan` turns the command line's options into a :class:`Plan`, or raises
:class:`PlanError` saying which option is wrong.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeVar

from router_bench._schema import (
    SCENARIOS,
    WORKLOADS,
    Api,
    ScenarioName,
    Settings,
    Subject,
    SubjectKind,
    WorkloadName,
)

__all__ = [
    "APIS",
    "BASELINE",
    "CONSISTENCIES",
    "FAULT_SCENARIOS",
    "POLICIES",
    "SWEEP_SUBJECT",
    "CellPlan",
    "Plan",
    "PlanError",
    "PlanOptions",
    "PLANS",
    "PREPARED_BASELINES",
    "RYW_WAIT_SECONDS",
    "SubjectSpec",
    "SweepPlan",
    "build_plan",
    "estimate_seconds",
    "prepared_subjects",
    "round_order",
    "subject_name",
]

T = TypeVar("T")

APIS: Final[tuple[Api, ...]] = ("async", "sync", "sqlalchemy")
#: ``router.PolicyName`` values, in the order the report lists them.
POLICIES: Final = ("primary-only", "round-robin", "random", "least-outstanding", "latency")
#: The ``router.Consistency`` levels compared (``strong`` is primary-only by definition).
CONSISTENCIES: Final = ("read_your_writes", "bounded", "eventual")
#: The lag budget of the ``bounded`` subjects (the router's default is 5 s).
BOUNDED_MAX_LAG_SECONDS: Final = 0.5
#: ``ryw_wait`` of the one read_your_writes subject that waits on a replica for a session's
#: own write (every other subject has the router's default, 0): a read-back may then leave
#: the primary without ever being stale. Its name ends in :data:`WAIT_SUFFIX`.
RYW_WAIT_SECONDS: Final = 0.01
WAIT_SUFFIX: Final = "+wait"
BASELINE: Final = "raw-asyncpg"
BaselineName = Literal[
    "raw-asyncpg",
    "naive-split",
    "pgpool",
    "raw-asyncpg+unprepared",
    "raw-psycopg",
    "raw-psycopg+unprepared",
]
PoolerName = Literal["session", "transaction"]
PlanName = Literal["default", "prepared"]
#: ``--plan``: the default matrix of policies and consistency levels, or ``prepared``: what
#: the drivers' statement caches are worth and what ``pooler_mode="transaction"`` costs.
PLANS: Final[tuple[PlanName, ...]] = ("default", "prepared")
#: The suffix of a subject whose driver prepares nothing (asyncpg ``statement_cache_size=0``,
#: psycopg ``prepare_threshold=None``), and of one that runs with ``pooler_mode="transaction"``
#: but no pooler in between (what transaction mode costs the client by itself).
UNPREPARED_SUFFIX: Final = "+unprepared"
TXMODE_SUFFIX: Final = "+txmode"
#: ``--with-pgbouncer``: PgBouncer's pool modes, and the APIs measured through it.
POOLERS: Final[tuple[PoolerName, ...]] = ("session", "transaction")
PGBOUNCER_APIS: Final[tuple[Api, ...]] = ("async", "sync")
BASELINES: Final[tuple[BaselineName, ...]] = ("raw-asyncpg", "naive-split", "pgpool")
#: ``--plan prepared``: the bare drivers' pools on the primary, statement caches on and off.
PREPARED_BASELINES: Final[tuple[BaselineName, ...]] = (
    "raw-asyncpg",
    "raw-asyncpg+unprepared",
    "raw-psycopg",
    "raw-psycopg+unprepared",
)
#: ``--plan prepared``: the APIs compared (each has its own driver and statement cache), the
#: workloads and concurrency levels it runs by default (``--quick``: 8 only).
PREPARED_APIS: Final[tuple[Api, ...]] = ("async", "sync")
PREPARED_WORKLOADS: Final[tuple[WorkloadName, ...]] = ("read-only", "mixed")
PREPARED_CONCURRENCY: Final = (1, 8)
FAULT_SCENARIOS: Final[tuple[ScenarioName, ...]] = tuple(s for s in SCENARIOS if s != "no-lag")
#: Workloads the fault scenarios run by default (lag matters to reads after writes).
FAULT_WORKLOADS: Final[tuple[WorkloadName, ...]] = ("mixed", "ryw")
SWEEP_SUBJECT: Final = "async/round-robin/read_your_writes"
SWEEP_WORKLOAD: Final[WorkloadName] = "mixed"
MIN_ROWS: Final = 100

_API_TEXT: Final[dict[Api, str]] = {
    "async": "router.AsyncRouter (asyncpg), one router.session() per operation",
    "sync": "router.Router (psycopg 3) on worker threads, one router.session() per operation",
    "sqlalchemy": "router.sqlalchemy.async_sessionmaker (SQLAlchemy 2 + asyncpg), "
    "one session per operation",
}
_BASELINE_TEXT: Final[dict[BaselineName, str]] = {
    "raw-asyncpg": "one asyncpg pool on the primary, asyncpg's defaults: the bare driver "
    "(vs_baseline is against it)",
    "naive-split": "asyncpg pools: writes on the primary, reads round-robin over the replicas; "
    "no health, lag or consistency checks",
    "pgpool": "pgpool-II in front of the same cluster (load balancing, streaming replication "
    "check), an asyncpg pool through it",
    "raw-asyncpg+unprepared": "one asyncpg pool on the primary, asyncpg's defaults but "
    "statement_cache_size=0: every statement parsed and described anew",
    "raw-psycopg": "one psycopg_pool.ConnectionPool on the primary, autocommit, psycopg's "
    "defaults (prepare_threshold=5): the bare sync driver",
    "raw-psycopg+unprepared": "one psycopg_pool.ConnectionPool on the primary, autocommit, "
    "prepare_threshold=None: nothing prepared server-side",
}
_UNPREPARED_TEXT: Final[dict[Api, str]] = {
    "async": "asyncpg statement_cache_size=0",
    "sync": "psycopg prepare_threshold=None",
    "sqlalchemy": "asyncpg statement_cache_size=0",
}


@dataclass(frozen=True, slots=True)
class Profile:
    """The defaults of ``--quick`` or of a full run."""

    rows: int
    duration: float
    warmup: float
    rounds: int
    workloads: tuple[WorkloadName, ...]
    scenarios: tuple[ScenarioName, ...]


QUICK: Final = Profile(
    rows=2_000,
    duration=0.4,
    warmup=0.15,
    rounds=1,
    workloads=("mixed", "ryw"),
    scenarios=("no-lag", "delay-0.2s"),
)
FULL: Final = Profile(
    rows=100_000,
    duration=1.5,
    warmup=0.3,
    rounds=3,
    workloads=WORKLOADS,
    scenarios=SCENARIOS,
)
#: Full runs: concurrency levels of the (no-lag, mixed) cell; every other cell runs at 8.
FULL_MIXED_CONCURRENCY: Final = (1, 8, 32)
DEFAULT_CONCURRENCY: Final = 8


class PlanError(ValueError):
    """An option of ``router bench`` is out of range or contradicts another one."""


@dataclass(frozen=True, slots=True)
class SubjectSpec:
    """One subject: a router configuration (API x policy x consistency) or a baseline."""

    name: str
    kind: SubjectKind
    api: Api | None = None
    policy: str | None = None
    consistency: str | None = None
    #: The router's ``ryw_wait`` (seconds) for this subject.
    ryw_wait: float = 0.0
    #: Through a PgBouncer per node in this pool mode (the router's ``pooler_mode`` too).
    pooler: PoolerName | None = None
    #: The router's ``pooler_mode`` when no PgBouncer is in between (``None``: session, or
    #: the PgBouncer's mode): ``transaction`` measures what that mode costs the client alone.
    pooler_mode: PoolerName | None = None
    #: The driver prepares nothing: asyncpg ``statement_cache_size=0``, psycopg
    #: ``prepare_threshold=None`` (a baseline's name says the same with its suffix).
    unprepared: bool = False

    @property
    def router_pooler_mode(self) -> PoolerName:
        """The ``pooler_mode`` the subject's router runs with."""
        return self.pooler or self.pooler_mode or "session"

    @property
    def description(self) -> str:
        if self.api is None:
            return _BASELINE_TEXT[self.name]  # type: ignore[index]
        text = f"{_API_TEXT[self.api]}; policy {self.policy}, consistency {self.consistency}"
        if self.pooler is not None:
            text += (
                f"; through a PgBouncer per node in {self.pooler} mode"
                f' (pooler_mode="{self.pooler}")'
            )
        elif self.pooler_mode == "transaction":
            text += (
                '; pooler_mode="transaction" with no pooler in between (what the mode costs '
                "the client: no statement cache, nothing set per session, reads under "
                'read_timeout="auto"\'s 30 s deadline)'
            )
        if self.unprepared:
            text += f"; driver statement cache off ({_UNPREPARED_TEXT[self.api]})"
        if self.consistency == "bounded":
            text += f" (max_lag_seconds {BOUNDED_MAX_LAG_SECONDS:g})"
        if self.ryw_wait:
            text += (
                f" (ryw_wait {self.ryw_wait * 1000:g} ms: a read after the session's own write"
                " waits that long on the chosen replica for it, then reads on the primary)"
            )
        return text

    def to_schema(self) -> Subject:
        subject = Subject(
            name=self.name,
            kind=self.kind,
            api=self.api,
            policy=self.policy,
            consistency=self.consistency,
            description=self.description,
        )
        if self.kind == "router":
            subject["ryw_wait"] = self.ryw_wait
        return subject


def subject_name(
    api: Api,
    policy: str,
    consistency: str,
    ryw_wait: float = 0.0,
    pooler: PoolerName | None = None,
    *,
    pooler_mode: PoolerName | None = None,
    unprepared: bool = False,
) -> str:
    """``"async/round-robin/read_your_writes"``, with :data:`WAIT_SUFFIX` when the subject
    has a ``ryw_wait``, :data:`TXMODE_SUFFIX` for ``pooler_mode="transaction"`` with no
    pooler, :data:`UNPREPARED_SUFFIX` with the driver's statement cache off, and
    ``pgbouncer-<mode>:`` in front through PgBouncer."""
    name = f"{api}/{policy}/{consistency}{WAIT_SUFFIX if ryw_wait else ''}"
    if pooler is None and pooler_mode == "transaction":
        name += TXMODE_SUFFIX
    if unprepared:
        name += UNPREPARED_SUFFIX
    return name if pooler is None else f"pgbouncer-{pooler}:{name}"


def router_subject(
    api: Api,
    policy: str,
    consistency: str,
    *,
    ryw_wait: float = 0.0,
    pooler: PoolerName | None = None,
    pooler_mode: PoolerName | None = None,
    unprepared: bool = False,
) -> SubjectSpec:
    if api not in APIS or policy not in POLICIES or consistency not in CONSISTENCIES:
        raise PlanError(f"no such router subject: {api}/{policy}/{consistency}")
    if ryw_wait and consistency != "read_your_writes":
        raise PlanError(f"ryw_wait applies to read_your_writes only, not {consistency}")
    if pooler is not None and pooler_mode not in (None, pooler):
        raise PlanError(f"through a {pooler}-mode PgBouncer the router's pooler_mode is {pooler}")
    mode = None if pooler is not None or pooler_mode == "session" else pooler_mode
    name = subject_name(
        api, policy, consistency, ryw_wait, pooler, pooler_mode=mode, unprepared=unprepared
    )
    return SubjectSpec(name, "router", api, policy, consistency, ryw_wait, pooler, mode, unprepared)


def baseline_subject(name: BaselineName) -> SubjectSpec:
    return SubjectSpec(name, "baseline", unprepared=name.endswith(UNPREPARED_SUFFIX))


def default_subjects(
    *, all_apis: bool = False, with_pgpool: bool = False, with_pgbouncer: bool = False
) -> list[SubjectSpec]:
    """The default matrix: the async API with every policy x consistency, and round-robin
    read_your_writes with a ``ryw_wait`` of :data:`RYW_WAIT_SECONDS`; the sync API and
    SQLAlchemy with round-robin x every consistency (replica choice is core code shared by
    every API), or every combination for all three with *all_apis*; with *with_pgbouncer*
    the async and sync round-robin read_your_writes subjects again through a PgBouncer per
    node, in session and in transaction mode; then the baselines."""
    subjects = [router_subject("async", p, c) for p in POLICIES for c in CONSISTENCIES]
    subjects.append(
        router_subject("async", "round-robin", "read_your_writes", ryw_wait=RYW_WAIT_SECONDS)
    )
    for api in APIS[1:]:
        policies = POLICIES if all_apis else ("round-robin",)
        subjects += [router_subject(api, p, c) for p in policies for c in CONSISTENCIES]
    if with_pgbouncer:
        subjects += [
            router_subject(api, "round-robin", "read_your_writes", pooler=mode)
            for mode in POOLERS
            for api in PGBOUNCER_APIS
        ]
    subjects += [baseline_subject(b) for b in BASELINES if b != "pgpool" or with_pgpool]
    return subjects


def prepared_subjects(
    *, with_pgbouncer: bool = True, with_pgpool: bool = False
) -> list[SubjectSpec]:
    """``--plan prepared``: for the async (asyncpg) and the sync (psycopg) router, round-robin
    read_your_writes with the driver's statement cache as configured by default, with it off
    (``+unprepared``), with ``pooler_mode="transaction"`` and no pooler (``+txmode``), and
    with *with_pgbouncer* through a PgBouncer per node in session and in transaction mode;
    each API followed by its bare driver's pool with the cache on and off; then pgpool with
    *with_pgpool*."""
    subjects: list[SubjectSpec] = []
    raw = {"async": "raw-asyncpg", "sync": "raw-psycopg"}
    for api in PREPARED_APIS:
        args = (api, "round-robin", "read_your_writes")
        subjects.append(router_subject(*args))
        subjects.append(router_subject(*args, unprepared=True))
        subjects.append(router_subject(*args, pooler_mode="transaction"))
        if with_pgbouncer:
            subjects += [router_subject(*args, pooler=mode) for mode in POOLERS]
        subjects += [baseline_subject(b) for b in PREPARED_BASELINES if b.startswith(raw[api])]
    if with_pgpool:
        subjects.append(baseline_subject("pgpool"))
    return subjects


@dataclass(frozen=True, slots=True)
class CellPlan:
    scenario: ScenarioName
    workload: WorkloadName
    concurrency: int
    pool_size: int
    subjects: tuple[SubjectSpec, ...]


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """``--pool-sizes``: one subject, one workload, no lag, a concurrency above every size."""

    subject: SubjectSpec
    workload: WorkloadName
    sizes: tuple[int, ...]
    concurrency: int


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """The command line's choices; ``None`` takes the default of the quick or full profile."""

    quick: bool = False
    embedded: bool = True
    workloads: tuple[str, ...] | None = None
    scenarios: tuple[str, ...] | None = None
    concurrency: tuple[int, ...] | None = None
    duration: float | None = None
    warmup: float | None = None
    rounds: int | None = None
    rows: int | None = None
    pool_size: int | None = None
    pool_sizes: tuple[int, ...] | None = None
    with_pgpool: bool = False
    with_pgbouncer: bool = False
    all_apis: bool = False
    subjects: tuple[str, ...] | None = None  # glob patterns over subject names
    seed: int = 0
    plan: str = "default"  # one of PLANS


@dataclass(frozen=True, slots=True)
class Plan:
    quick: bool
    embedded: bool
    rows: int
    duration: float
    warmup: float
    rounds: int
    workloads: tuple[WorkloadName, ...]
    scenarios: tuple[ScenarioName, ...]
    pool_size: int | None
    with_pgpool: bool
    seed: int
    subjects: tuple[SubjectSpec, ...]
    cells: tuple[CellPlan, ...]
    sweep: SweepPlan | None
    notes: tuple[str, ...] = field(default=())
    name: PlanName = "default"

    @property
    def runs(self) -> int:
        """Timed runs of a subject, over every cell and round (and the sweep)."""
        runs = sum(len(c.subjects) for c in self.cells) * self.rounds
        if self.sweep is not None:
            runs += len(self.sweep.sizes) * self.rounds
        return runs

    def settings(self) -> Settings:
        levels = sorted({c.concurrency for c in self.cells})
        return Settings(
            quick=self.quick,
            duration=self.duration,
            warmup=self.warmup,
            rounds=self.rounds,
            concurrency=levels,
            rows=self.rows,
            workloads=list(self.workloads),
            scenarios=list(self.scenarios),
            pool_size=self.pool_size,
            with_pgpool=self.with_pgpool,
            plan=self.name,
        )


def round_order(items: Sequence[T], round_index: int, rounds: int) -> list[T]:
    """*items* in the order of round *round_index* of *rounds*: rotated so that over the
    rounds every item takes evenly spread places (A B C, B C A, C A B for three)."""
    n = len(items)
    if n == 0:
        return []
    step = max(1, n // max(1, rounds))
    offset = (round_index * step) % n
    return [*items[offset:], *items[:offset]]


def _names(
    given: tuple[str, ...] | None, known: tuple[T, ...], option: str
) -> tuple[T, ...] | None:
    if given is None:
        return None
    if not given:
        raise PlanError(f"{option}: give at least one of {', '.join(map(str, known))}")
    found: list[T] = []
    for name in given:
        match = next((k for k in known if k == name), None)
        if match is None:
            raise PlanError(f"{option}: unknown {name!r}; choose from {', '.join(map(str, known))}")
        if match not in found:
            found.append(match)
    return tuple(found)


def _positive_ints(values: tuple[int, ...] | None, option: str) -> tuple[int, ...] | None:
    if values is None:
        return None
    if not values:
        raise PlanError(f"{option}: give at least one number")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise PlanError(f"{option}: {v!r} is not a whole number >= 1")
    return tuple(dict.fromkeys(values))


def _select(subjects: list[SubjectSpec], patterns: tuple[str, ...] | None) -> list[SubjectSpec]:
    if patterns is None:
        return subjects
    chosen: list[SubjectSpec] = []
    for pattern in patterns:
        hits = [s for s in subjects if fnmatch.fnmatchcase(s.name, pattern)]
        if not hits:
            names = ", ".join(s.name for s in subjects)
            raise PlanError(f"--subjects: {pattern!r} matches no subject; subjects: {names}")
        chosen += [s for s in hits if s not in chosen]
    return [s for s in subjects if s in chosen]  # the matrix's order, not the patterns'


def _prepared_profile(profile: Profile) -> Profile:
    """``--plan prepared``: the profile's timings, no fault (a statement cache does not
    care about lag), the workloads where a cache shows (point reads; a mix with writes)."""
    return Profile(
        rows=profile.rows,
        duration=profile.duration,
        warmup=profile.warmup,
        rounds=profile.rounds,
        workloads=PREPARED_WORKLOADS,
        scenarios=("no-lag",),
    )


def build_plan(options: PlanOptions) -> Plan:
    """The plan for *options*; :class:`PlanError` names the first option that is wrong."""
    o = options
    profile = QUICK if o.quick else FULL
    notes: list[str] = []
    plan_name = _names((o.plan,), PLANS, "--plan")
    prepared = plan_name == ("prepared",)
    if prepared:
        if o.all_apis:
            raise PlanError("--all-apis: widens the default plan's matrix, not --plan prepared")
        if o.pool_sizes is not None:
            raise PlanError("--pool-sizes: sweeps the default plan's router, not --plan prepared")
        profile = _prepared_profile(profile)
    workloads = _names(o.workloads, WORKLOADS, "--workloads")
    scenarios = _names(o.scenarios, SCENARIOS, "--scenarios")
    concurrency = _positive_ints(o.concurrency, "--concurrency")
    pool_sizes = _positive_ints(o.pool_sizes, "--pool-sizes")
    duration = profile.duration if o.duration is None else o.duration
    warmup = profile.warmup if o.warmup is None else o.warmup
    rounds = profile.rounds if o.rounds is None else o.rounds
    rows = profile.rows if o.rows is None else o.rows
    if not duration > 0:
        raise PlanError(f"--duration: must be > 0 seconds, not {duration!r}")
    if not warmup >= 0:
        raise PlanError(f"--warmup: must be >= 0 seconds, not {warmup!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise PlanError(f"--rounds: must be a whole number >= 1, not {rounds!r}")
    if o.pool_size is not None and (isinstance(o.pool_size, bool) or o.pool_size < 1):
        raise PlanError(f"--pool-size: must be a whole number >= 1, not {o.pool_size!r}")

    if scenarios is None:
        scenarios = profile.scenarios
        if not o.embedded:
            scenarios = ("no-lag",)
            notes.append(
                "only the no-lag scenario ran: lag, kill and pause faults need the embedded "
                "cluster (run router bench without a URL)"
            )
    elif not o.embedded:
        faults = [s for s in scenarios if s != "no-lag"]
        if faults:
            raise PlanError(
                f"--scenarios: {', '.join(faults)} need the embedded cluster, whose faults the "
                "bench can switch; against given URLs only no-lag is possible"
            )
    workloads_given = workloads is not None
    if workloads is None:
        workloads = profile.workloads

    if o.with_pgbouncer and not o.embedded:
        raise PlanError(
            "--with-pgbouncer: the bench puts PgBouncers in front of the embedded cluster's "
            "nodes (run router bench without a URL)"
        )
    if prepared:
        all_subjects = prepared_subjects(with_pgbouncer=o.embedded, with_pgpool=o.with_pgpool)
        if not o.embedded:
            notes.append(
                "--plan prepared: the PgBouncer subjects need the embedded cluster (the bench "
                "puts a PgBouncer in front of each of its nodes); left out"
            )
    else:
        all_subjects = default_subjects(
            all_apis=o.all_apis, with_pgpool=o.with_pgpool, with_pgbouncer=o.with_pgbouncer
        )
    subjects = _select(all_subjects, o.subjects)
    faults_trimmed = not o.quick and o.subjects is None and not prepared
    cells: list[CellPlan] = []
    for scenario in scenarios:
        cell_workloads = workloads
        if scenario != "no-lag" and not o.quick and not workloads_given:
            cell_workloads = tuple(w for w in workloads if w in FAULT_WORKLOADS)
        scenario_subjects = tuple(subjects)
        if scenario != "no-lag" and faults_trimmed:
            scenario_subjects = tuple(s for s in subjects if s.api in (None, "async"))
        for workload in cell_workloads:
            cell_subjects = scenario_subjects
            if workload != "ryw" and o.subjects is None:
                # Only ryw reads a session's own write back: elsewhere a ryw_wait subject
                # would do just what its twin without one does.
                cell_subjects = tuple(s for s in cell_subjects if not s.ryw_wait)
            if concurrency is not None:
                levels: tuple[int, ...] = concurrency
            elif prepared:
                levels = (DEFAULT_CONCURRENCY,) if o.quick else PREPARED_CONCURRENCY
            elif not o.quick and (scenario, workload) == ("no-lag", "mixed"):
                levels = FULL_MIXED_CONCURRENCY
            else:
                levels = (DEFAULT_CONCURRENCY,)
            for c in levels:
                k = o.pool_size if o.pool_size is not None else c
                cells.append(CellPlan(scenario, workload, c, k, cell_subjects))
    if faults_trimmed and any(c.scenario != "no-lag" for c in cells):
        notes.append(
            "fault scenarios ran the async router subjects and the baselines only; the sync "
            "and SQLAlchemy APIs share the async one's routing core (their no-lag cells "
            "measure what the API itself costs)"
        )

    sweep = None
    if pool_sizes is not None:
        spec = router_subject("async", "round-robin", "read_your_writes")
        sweep = SweepPlan(spec, SWEEP_WORKLOAD, tuple(sorted(pool_sizes)), 2 * max(pool_sizes))
    if not cells and sweep is None:
        raise PlanError("nothing to run: no cell has a subject")

    most = max([c.concurrency for c in cells] + ([sweep.concurrency] if sweep else []))
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < max(MIN_ROWS, most):
        raise PlanError(
            f"--rows: must be a whole number >= {max(MIN_ROWS, most)} (at least {MIN_ROWS}, "
            f"and one row per worker for ryw's key ranges), not {rows!r}"
        )
    if o.with_pgpool and "pgpool" not in [s.name for s in subjects]:
        notes.append("--with-pgpool: pgpool is not among the --subjects chosen; not started")
    if rounds < 3 or duration < 1.0:
        notes.append(
            f"{rounds} round(s) of {float(duration):g} s per cell: a smoke test, not a "
            "measurement (single rounds vary 2-3x on a busy machine); compare subjects with "
            "3 or more rounds of 1 s or more"
        )
    return Plan(
        quick=o.quick,
        embedded=o.embedded,
        rows=rows,
        duration=float(duration),
        warmup=float(warmup),
        rounds=rounds,
        workloads=tuple(dict.fromkeys(c.workload for c in cells)) or workloads,
        scenarios=tuple(dict.fromkeys(c.scenario for c in cells)) or scenarios,
        pool_size=o.pool_size,
        with_pgpool=any(s.name == "pgpool" for s in subjects),
        seed=o.seed,
        subjects=tuple(subjects),
        cells=tuple(cells),
        sweep=sweep,
        notes=tuple(notes),
        name="prepared" if prepared else "default",
    )


#: Seconds to open and close one subject's pools around a run (measured: ~0.1 s for three
#: pools of 8-32 connections), and the fixed costs of a run of the whole bench.
OPEN_CLOSE_SECONDS: Final = 0.15
CLUSTER_START_SECONDS: Final = 4.0
ROWS_PER_SECOND: Final = 100_000.0
RESTART_SECONDS: Final = 1.0  # replica-killed: crash recovery and catch-up after each run
CELL_FAULT_SECONDS: Final = 1.0  # switching a delay on and off, waiting for catch-up


def estimate_seconds(plan: Plan) -> float:
    """A rough wall-clock estimate for *plan* on a small machine."""
    per_run = plan.warmup + plan.duration + OPEN_CLOSE_SECONDS
    total = plan.runs * per_run + plan.rows / ROWS_PER_SECOND
    if plan.embedded:
        total += CLUSTER_START_SECONDS
    for cell in plan.cells:
        if cell.scenario == "replica-killed":
            total += len(cell.subjects) * plan.rounds * RESTART_SECONDS
        elif cell.scenario != "no-lag":
            total += CELL_FAULT_SECONDS
    return total
