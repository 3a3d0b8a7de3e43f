"""The shape of a ``router bench`` result: the JSON file it writes, and what the report reads.

The runner produces one :class:`BenchResult`; the terminal table, the plots and the HTML report
are pure functions of it (they can be rebuilt from the JSON file alone). Bump
:data:`SCHEMA_VERSION` on any incompatible change.

Times are seconds unless a name says ``_ms``. Counts are totals over all rounds of a cell.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

SCHEMA_VERSION = 1

Api = Literal["async", "sync", "sqlalchemy"]
SubjectKind = Literal["router", "baseline"]
WorkloadName = Literal["mixed", "read-only", "write-heavy", "ryw"]
ScenarioName = Literal["no-lag", "delay-0.2s", "delay-1s", "replica-killed", "replay-paused"]

WORKLOADS: tuple[WorkloadName, ...] = ("mixed", "read-only", "write-heavy", "ryw")
SCENARIOS: tuple[ScenarioName, ...] = (
    "no-lag",
    "delay-0.2s",
    "delay-1s",
    "replica-killed",
    "replay-paused",
)


class Subject(TypedDict):
    """One thing being measured: a router configuration or a baseline."""

    name: str  # unique, e.g. "async/round-robin/read_your_writes", "raw-asyncpg", "pgpool"
    kind: SubjectKind
    api: Api | None  # None for baselines
    policy: str | None  # a router.PolicyName value; None for baselines
    consistency: str | None  # a router.Consistency value; None for baselines
    description: str  # one line, for the report
    ryw_wait: NotRequired[float]  # router subjects: the router's ryw_wait, seconds


class Round(TypedDict):
    """One timed run of one subject in one cell (after its warmup)."""

    seconds: float
    ops: int
    ops_per_s: float
    reads: int
    writes: int
    replica_reads: int  # reads served by a replica (ground truth: the node that ran them)
    stale_reads: int  # ryw only: a read-back older than the write just acknowledged
    fallbacks: int  # reads the router sent to the primary for lack of a usable replica
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    # The bench process's CPU time (every thread: the workers, the event loop, the router's
    # monitor; not the servers' or a pooler's) over the window, per operation; None: no op.
    cpu_us_per_op: NotRequired[float | None]


class Cell(TypedDict):
    """All rounds of one subject in one (scenario, workload, concurrency)."""

    scenario: ScenarioName
    workload: WorkloadName
    subject: str  # Subject.name
    concurrency: int
    pool_size: int
    rounds: list[Round]
    # Summaries over the rounds: medians for rates and percentiles, totals for counts.
    ops_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    reads: int
    writes: int
    replica_reads: int
    offload: float | None  # replica_reads / reads; None when there were no reads
    stale_reads: int
    fallbacks: int
    errors: int
    error_samples: list[str]  # up to 5 distinct "ExceptionType: message" lines
    latency_cdf: list[tuple[float, float]]  # (ms, fraction <= ms), at most 100 points
    cpu_us_per_op: NotRequired[float | None]  # median over the rounds' (see Round)
    vs_baseline: NotRequired[float | None]  # ops_per_s / the raw-asyncpg cell's (same cell)


class PoolPoint(TypedDict):
    """One pool size of the ``--pool-sizes`` sweep."""

    subject: str
    pool_size: int
    concurrency: int
    ops_per_s: float
    p99_ms: float
    acquire_wait_ms_per_op: float  # the router's pools' acquire wait, averaged per operation


class PoolSweep(TypedDict):
    workload: WorkloadName
    points: list[PoolPoint]
    knee: int | None  # the smallest pool size reaching 95 % of the sweep's best throughput


class Settings(TypedDict):
    quick: bool
    duration: float  # timed seconds per round of a subject
    warmup: float
    rounds: int
    concurrency: list[int]
    rows: int  # dataset size
    workloads: list[WorkloadName]
    scenarios: list[ScenarioName]
    pool_size: int | None  # None: one connection per worker (K = concurrency)
    with_pgpool: bool
    plan: NotRequired[str]  # "default" or "prepared" (--plan); absent: default


class NodeInfo(TypedDict):
    name: str
    role: str  # "primary" | "replica"
    address: str  # host:port, never a password


class Environment(TypedDict):
    embedded: bool  # True: a LocalCluster started (and removed) by the bench
    nodes: list[NodeInfo]
    postgres: str  # server_version
    python: str
    platform: str
    cpus: int
    router: str  # router.__version__
    pgpool: str | None  # pgpool's version when it was used


class BenchResult(TypedDict):
    schema: int  # SCHEMA_VERSION
    command: str  # the command line that produced it (no password)
    started_at: str  # ISO 8601, UTC
    finished_at: str
    environment: Environment
    settings: Settings
    subjects: list[Subject]
    cells: list[Cell]
    pool_sweep: PoolSweep | None
    notes: list[str]  # what was skipped and why (no pgpool, faults need an embedded cluster...)
