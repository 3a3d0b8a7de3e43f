"""``router bench`` from plan to result: set up the cluster, the dataset and pgpool, run every
cell round by round, summarise, and tear everything down again (also on errors and Ctrl-C).

Each run opens its subject's pools just before its warmup and closes them after its window:
only the subject being measured holds connections (and runs a monitor), so idle subjects
neither load the servers nor exhaust ``max_connections`` on a real cluster.

Before each run the garbage of the runs before it is collected and everything alive is frozen
(``gc.freeze``): a subject pays for collecting its own objects, not for scanning the harness's
heap (results so far, the plotting library, or a test session's hundreds of thousands of
objects when the bench runs inside one; an unfrozen full collection there stalled a 0.4 s
window for its whole length).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import platform
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from router import __version__
from router.config import DEFAULT_MAX_LAG_BYTES, RouterConfig
from router.testing import LocalCluster, PgBouncers
from router_bench._drive import During, RunSpec, measure
from router_bench._errors import describe_error
from router_bench._measure import (
    RawRound,
    cell_summary,
    merge_samples,
    pool_sweep,
    with_baseline,
)
from router_bench._pgpool import Pgpool
from router_bench._plan import BASELINE, CellPlan, Plan, SubjectSpec, SweepPlan, round_order
from router_bench._scenarios import scenario
from router_bench._schema import (
    SCHEMA_VERSION,
    BenchResult,
    Cell,
    Environment,
    PoolSweep,
)
from router_bench._subjects import Client, make_client
from router_bench._target import (
    Target,
    config_from_urls,
    discover,
    embedded_config,
    ensure_dataset,
    wait_replayed,
)
from router_bench._workloads import table_name

__all__ = ["Finished", "Progress", "run_bench"]

EMBEDDED_REPLICAS: Final = 2
CLOSE_TIMEOUT: Final = 20.0
#: The unmeasured warm-up run before the first cell lasts a window, 1 s at least, this at most.
WARM_UP_MAX: Final = 2.0
RYW_NOTE: Final = (
    "ryw: read_your_writes subjects run with the default ryw_wait = 0, so a read-back goes to "
    "a replica only when the router already knows it has replayed the write, else to the "
    "primary (counted as a fallback); those named '+wait' wait up to their ryw_wait on the "
    "replica first; eventual and bounded read from any (admitted) replica"
)


class Progress(Protocol):
    """Where the runner reports what it does (the CLI draws a progress bar)."""

    def status(self, text: str) -> None:
        """A setup or teardown step."""

    def start(self, total: int) -> None:
        """The timed runs begin: *total* of them."""

    def running(self, label: str) -> None:
        """A run begins (*label*: its cell and subject)."""

    def advance(self) -> None:
        """A run finished."""


class _Silent:
    def status(self, text: str) -> None:
        pass

    def start(self, total: int) -> None:
        pass

    def running(self, label: str) -> None:
        pass

    def advance(self) -> None:
        pass


@dataclass(slots=True)
class Finished:
    """The cells a run has finished so far, as a result marked incomplete in its notes
    (``None`` before the first one). A caller that hands one to :func:`run_bench` keeps
    them when the run stops midway (an error, Ctrl-C): hours of a long run are not lost
    to its last cell."""

    result: BenchResult | None = None


@dataclass(frozen=True, slots=True)
class _Context:
    plan: Plan
    target: Target
    table: str
    cluster: LocalCluster | None
    pgpool: Pgpool | None
    progress: Progress
    #: ``--with-pgbouncer``: a PgBouncer per node, by pool mode.
    bouncers: Mapping[str, PgBouncers] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_bench(
    plan: Plan,
    *,
    urls: Sequence[str] = (),
    command: str = "router bench",
    progress: Progress | None = None,
    env_password: str | None = None,
    finished: Finished | None = None,
) -> BenchResult:
    """Run *plan* on an embedded cluster (``plan.embedded``) or on the cluster of *urls*.

    Raises :class:`BenchError` (or ``ClusterError`` / ``PgpoolError`` / ``ConfigurationError``)
    when the cluster, a node or pgpool cannot be set up; a subject's failures during a run are
    results (``errors``), not exceptions. *env_password* is ``PGPASSWORD``, which the drivers
    use by themselves and pgpool needs to be told.
    """
    progress = progress or _Silent()
    bench = functools.partial(
        _bench,
        plan=plan,
        progress=progress,
        command=command,
        started=_now(),
        finished=finished or Finished(),
    )
    try:
        if not plan.embedded:
            run = bench(config=config_from_urls(urls), cluster=None, env_password=env_password)
            return asyncio.run(run)
        return _on_embedded_cluster(bench, progress)
    finally:
        gc.unfreeze()  # what the runs froze (see the module's docstring)


def _on_embedded_cluster(
    bench: Callable[..., Coroutine[Any, Any, BenchResult]], progress: Progress
) -> BenchResult:
    progress.status(f"starting a local cluster (a primary and {EMBEDDED_REPLICAS} replicas)")
    cluster = LocalCluster(replicas=EMBEDDED_REPLICAS)
    try:
        cluster.start()
        progress.status(f"local cluster up in {cluster.base_dir}")
        config = embedded_config({n.name: n.dsn for n in cluster.nodes})
        return asyncio.run(bench(config=config, cluster=cluster, env_password=None))
    finally:
        progress.status("removing the local cluster")
        cluster.close()


async def _bench(
    *,
    plan: Plan,
    config: RouterConfig,
    cluster: LocalCluster | None,
    progress: Progress,
    command: str,
    started: str,
    env_password: str | None,
    finished: Finished,
) -> BenchResult:
    target = await discover(config, embedded=plan.embedded, env_password=env_password)
    table = table_name(plan.rows)
    progress.status(f"preparing {table} ({plan.rows} rows)")
    created = await ensure_dataset(target, table, plan.rows)
    await wait_replayed(target)
    notes = list(plan.notes)
    if not created:
        notes.append(f"dataset: reused the existing table {table}")
    ambiguous = target.ambiguous()
    if ambiguous:
        notes.append(
            f"nodes {', '.join(ambiguous)} report the same address and port: their reads "
            "count as served by the primary (offload is a lower bound)"
        )
    if any(c.workload == "ryw" for c in plan.cells):
        notes.append(RYW_NOTE)
    async with (
        _pgpool(plan, target, progress) as pgpool,
        _pgbouncers(plan, cluster, progress) as bouncers,
    ):
        pgpool_version = pgpool.version if pgpool is not None else None

        def assemble(cells: list[Cell], sweep: PoolSweep | None, *extra: str) -> BenchResult:
            return _result(
                plan,
                target,
                cells,
                sweep,
                [*notes, *extra],
                command=command,
                started=started,
                pgpool_version=pgpool_version,
            )

        ctx = _Context(plan, target, table, cluster, pgpool, progress, bouncers)
        progress.start(plan.runs)
        cells: list[Cell] = []
        if plan.cells:
            await _warm_up(ctx, plan.cells[0])
        for index, cell in enumerate(plan.cells):
            if pgpool is not None:
                await _reattach(pgpool, progress)
            for each in bouncers.values():
                # A fault of the last cell may have restarted a node behind them.
                await asyncio.to_thread(each.reset)
            cells += await _run_cell(ctx, index, cell)
            finished.result = assemble(
                list(cells),
                None,
                f"incomplete: the run stopped after {index + 1} of {len(plan.cells)} cells"
                + (" and before the pool sweep" if plan.sweep is not None else ""),
            )
        sweep = await _run_sweep(ctx, plan.sweep) if plan.sweep is not None else None
    return assemble(cells, sweep)


def _result(
    plan: Plan,
    target: Target,
    cells: list[Cell],
    sweep: PoolSweep | None,
    notes: list[str],
    *,
    command: str,
    started: str,
    pgpool_version: str | None,
) -> BenchResult:
    with_baseline(cells, BASELINE)
    subjects = list(plan.subjects)
    if plan.sweep is not None and plan.sweep.subject not in subjects:
        subjects.append(plan.sweep.subject)
    environment = Environment(
        embedded=plan.embedded,
        nodes=target.node_infos(),
        postgres=target.server_version,
        python=platform.python_version(),
        platform=platform.platform(),
        cpus=os.cpu_count() or 1,
        router=__version__,
        pgpool=pgpool_version,
    )
    return BenchResult(
        schema=SCHEMA_VERSION,
        command=command,
        started_at=started,
        finished_at=_now(),
        environment=environment,
        settings=plan.settings(),
        subjects=[s.to_schema() for s in subjects],
        cells=cells,
        pool_sweep=sweep,
        notes=notes,
    )


@contextlib.asynccontextmanager
async def _pgpool(plan: Plan, target: Target, progress: Progress) -> AsyncIterator[Pgpool | None]:
    if not plan.with_pgpool:
        yield None
        return
    user, password, database = target.credentials()
    workdir = Path(tempfile.mkdtemp(prefix="router-bench-pgpool-"))
    pgpool = Pgpool(
        primary=(target.primary.config.host, target.primary.config.port),
        replicas=[(r.config.host, r.config.port) for r in target.replicas],
        user=user,
        password=password,
        database=database,
        workdir=workdir,
        max_lag_bytes=DEFAULT_MAX_LAG_BYTES,
    )
    progress.status("starting pgpool-II")
    try:
        await asyncio.to_thread(pgpool.start)
        yield pgpool
    finally:
        progress.status("stopping pgpool-II")
        await asyncio.to_thread(pgpool.stop)
        await asyncio.to_thread(_remove_tree, workdir)


#: Server connections a PgBouncer has beyond the router's pool size.
_POOLER_SPARE: Final = 4


@contextlib.asynccontextmanager
async def _pgbouncers(
    plan: Plan, cluster: LocalCluster | None, progress: Progress
) -> AsyncIterator[dict[str, PgBouncers]]:
    modes = sorted({s.pooler for s in plan.subjects if s.pooler is not None})
    if not modes or cluster is None:
        yield {}
        return
    started: dict[str, PgBouncers] = {}
    try:
        for mode in modes:
            progress.status(f"starting a PgBouncer per node ({mode} mode)")
            # As many server connections as the router may ask for (its pool, its monitor,
            # its catalog query): the bench measures the pooler's cost, not its queue. In
            # session mode a client holds its server connection until it disconnects.
            size = max(c.pool_size for c in plan.cells) if plan.cells else 20
            bouncers = PgBouncers(cluster, mode, pool_size=size + _POOLER_SPARE)
            started[mode] = bouncers
            await asyncio.to_thread(bouncers.start)
        yield started
    finally:
        for bouncers in started.values():
            await asyncio.to_thread(bouncers.close)


def _through_pgbouncer(config: RouterConfig, bouncers: PgBouncers, mode: str) -> RouterConfig:
    """*config* with every node reached through its PgBouncer (names kept)."""

    def through(node: Any) -> Any:
        return node.replace(dsn=bouncers.dsn_for(node.name, node.dbname))

    changes: dict[str, Any] = {"pooler_mode": mode}
    if config.nodes:
        changes["nodes"] = [through(n) for n in config.all_nodes]
    else:
        changes["primary"] = through(config.primary_node)
        changes["replicas"] = [through(n) for n in config.replica_nodes]
    return config.replace(**changes)


async def _reattach(pgpool: Pgpool, progress: Progress) -> None:
    """pgpool-II never takes back by itself a backend it detached (a replica killed in a
    ``replica-killed`` run stays out until an operator attaches it): restart it, so that
    every cell starts with all nodes in pgpool as in the routers. Within a cell, what pgpool
    does after a fault is what is measured."""
    nodes = await asyncio.to_thread(pgpool.pool_nodes)
    if all(node.get("status") in ("up", "waiting") for node in nodes):
        return
    progress.status("restarting pgpool-II: it detached a node and does not take it back")
    await asyncio.to_thread(pgpool.stop)
    await asyncio.to_thread(pgpool.start)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


async def _one_run(ctx: _Context, client: Client, spec: RunSpec, during: During | None) -> RawRound:
    """Open *client*, measure it, close it. A subject that cannot open is a result: one
    error, no operations."""
    secrets = ctx.target.secrets
    gc.collect()
    gc.freeze()
    try:
        await client.open()
    except Exception as exc:
        await _close(client, secrets)
        raw = RawRound(seconds=spec.duration, errors=1)
        raw.error_samples.append(describe_error(exc, secrets))
        return raw
    try:
        raw = await measure(client, spec, ctx.target.replica_idents(), secrets, during)
    except BaseException:
        await _close(client, secrets)
        raise
    failure = await _close(client, secrets)
    if failure is not None:
        raw.errors += 1
        merge_samples(raw.error_samples, [failure])
    return raw


async def _close(client: Client, secrets: Sequence[str]) -> str | None:
    """Close *client*: its failure to close as an error line, or ``None``. Closing takes at
    most :data:`CLOSE_TIMEOUT`, then its connections are aborted; a client that does not
    close even then is abandoned, and that is one more error line of its run."""
    closing = asyncio.create_task(client.close(), name=f"close {client.spec.name}")
    done, _ = await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT)
    if not done:
        client.abort()
        done, _ = await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT)
    if not done:
        # Still not closed after its connections were aborted: a result of this subject (its
        # leftovers are abandoned), not a reason to lose the whole run.
        closing.cancel()
        return f"{client.spec.name} did not close within {2 * CLOSE_TIMEOUT:g} s (abandoned)"
    failure = closing.exception()
    return None if failure is None else describe_error(failure, secrets)


async def _warm_up(ctx: _Context, cell: CellPlan) -> None:
    """One unmeasured run (1 to :data:`WARM_UP_MAX` s) of the first cell's first subject: the
    dataset's pages, the servers' caches and their first backends are cold after set-up, and
    in a short timed window (``--quick``) the first subject would measure only that. Its
    result is dropped."""
    plan = ctx.plan
    subject = cell.subjects[0]
    spec = RunSpec(
        cell.workload,
        cell.concurrency,
        plan.rows,
        plan.warmup,
        min(max(plan.duration, 1.0), WARM_UP_MAX),
        plan.seed,
        0,
        0,
    )
    ctx.progress.running(f"warming up with {subject.name}")
    await _one_run(ctx, _client(ctx, subject, cell.pool_size), spec, None)


async def _run_cell(ctx: _Context, index: int, cell: CellPlan) -> list[Cell]:
    plan = ctx.plan
    hooks = scenario(cell.scenario, ctx.cluster)
    raws: dict[str, list[RawRound]] = {s.name: [] for s in cell.subjects}
    label = f"{cell.scenario} {cell.workload} c={cell.concurrency}"
    ctx.progress.status(label)
    await hooks.begin_cell()
    try:
        for r in range(plan.rounds):
            for subject in round_order(cell.subjects, r, plan.rounds):
                spec = RunSpec(
                    cell.workload,
                    cell.concurrency,
                    plan.rows,
                    plan.warmup,
                    plan.duration,
                    plan.seed,
                    index,
                    r,
                )
                ctx.progress.running(f"{label} {subject.name}")
                client = _client(ctx, subject, cell.pool_size)
                raws[subject.name].append(await _one_run(ctx, client, spec, hooks.during))
                await hooks.after_run()
                ctx.progress.advance()
    finally:
        await hooks.end_cell()
    return [
        cell_summary(
            scenario=cell.scenario,
            workload=cell.workload,
            subject=s.name,
            concurrency=cell.concurrency,
            pool_size=cell.pool_size,
            raws=raws[s.name],
        )
        for s in cell.subjects
    ]


def _client(ctx: _Context, subject: SubjectSpec, pool_size: int) -> Client:
    target = ctx.target
    if subject.pooler is not None:
        bouncers = ctx.bouncers[subject.pooler]
        config = _through_pgbouncer(target.base_config, bouncers, subject.pooler)
        target = replace(target, base_config=config)
    return make_client(subject, target, ctx.table, pool_size, ctx.pgpool)


async def _run_sweep(ctx: _Context, sweep: SweepPlan) -> PoolSweep:
    plan = ctx.plan
    by_size: dict[int, list[RawRound]] = {size: [] for size in sweep.sizes}
    ctx.progress.status(f"pool sweep c={sweep.concurrency}")
    cell_index = len(plan.cells)
    for r in range(plan.rounds):
        for size in round_order(sweep.sizes, r, plan.rounds):
            spec = RunSpec(
                sweep.workload,
                sweep.concurrency,
                plan.rows,
                plan.warmup,
                plan.duration,
                plan.seed,
                cell_index,
                r,
            )
            ctx.progress.running(f"pool sweep {sweep.subject.name} pool={size}")
            client = _client(ctx, sweep.subject, size)
            by_size[size].append(await _one_run(ctx, client, spec, None))
            ctx.progress.advance()
    return pool_sweep(sweep.subject.name, sweep.workload, sweep.concurrency, by_size)
