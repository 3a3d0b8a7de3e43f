"""``router bench``: routing policies, consistency levels and baselines compared on a real
primary + replicas (an embedded local cluster, or the cluster of the URLs given)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

from router.config import redact

if TYPE_CHECKING:
    from router_bench._runner import Finished
    from router_bench._schema import BenchResult

__all__ = ["register"]

T = TypeVar("T")

DEFAULT_OUT: Final = Path("router-bench")
#: Loggers quietened while a bench runs (faults make the router warn, by design), unless -v.
_NOISY: Final = ("router", "asyncpg")


def _list(kind: Callable[[str], T], what: str) -> Callable[[str], tuple[T, ...]]:
    def parse(text: str) -> tuple[T, ...]:
        items = [part.strip() for part in text.split(",") if part.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"give one or more {what}, comma-separated")
        try:
            return tuple(kind(item) for item in items)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a list of {what}: {text!r}") from None

    return parse


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench",
        help="compare routing policies, consistency levels and baselines on a real cluster",
        description=(
            "Measure throughput, latency, replica offload, stale reads, fallbacks and errors "
            "of the router (async, sync, SQLAlchemy; every policy and consistency level) beside "
            "raw asyncpg, a naive read/write split and pgpool-II, interleaved in one run. With "
            "no URL a local primary + 2 replicas is started (and removed afterwards); with "
            "URLs that cluster is measured on a table of the bench's own (never dropped)."
        ),
    )
    p.add_argument(
        "urls",
        nargs="*",
        metavar="URL",
        help="libpq URLs of the nodes (one multi-host URL, or one per node); password from "
        "the URL or PGPASSWORD",
    )
    p.add_argument("--quick", action="store_true", help="a smaller plan: about a minute")
    p.add_argument(
        "--plan",
        choices=("default", "prepared"),
        default="default",
        help="default: policies x consistency levels beside the baselines; prepared: what the "
        "drivers' statement caches are worth (asyncpg statement_cache_size, psycopg "
        'prepare_threshold) and what pooler_mode="transaction" costs, direct and through a '
        "PgBouncer per node (%(default)s)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (%(default)s)")
    p.add_argument("--workloads", type=_list(str, "workloads"), help="mixed,read-only,...")
    p.add_argument("--scenarios", type=_list(str, "scenarios"), help="no-lag,delay-1s,...")
    p.add_argument("--concurrency", type=_list(int, "numbers"), help="workers per run, e.g. 1,8,32")
    p.add_argument("--duration", type=float, help="timed seconds per run")
    p.add_argument("--warmup", type=float, help="seconds before each timed window")
    p.add_argument("--rounds", type=int, help="runs of every subject per cell")
    p.add_argument("--rows", type=int, help="dataset rows")
    p.add_argument("--pool-size", type=int, help="connections per pool (default: concurrency)")
    p.add_argument(
        "--pool-sizes",
        type=_list(int, "numbers"),
        help="also sweep the async router's pool size, e.g. 2,4,8,16",
    )
    p.add_argument("--with-pgpool", action="store_true", help="add pgpool-II as a baseline")
    p.add_argument(
        "--with-pgbouncer",
        action="store_true",
        help="add the async and sync routers through a PgBouncer per node, in session and "
        "transaction mode",
    )
    p.add_argument(
        "--all-apis",
        action="store_true",
        help="every policy x consistency for the sync and SQLAlchemy APIs too",
    )
    p.add_argument(
        "--subjects",
        type=_list(str, "patterns"),
        help="only subjects matching these globs, e.g. 'async/round-robin/*,raw-asyncpg'",
    )
    p.add_argument(
        "--json-only", action="store_true", help="write bench.json only (no charts, no HTML)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the keys chosen (%(default)s)")
    p.set_defaults(func=_bench)


def _fail(message: str, code: int = 1) -> int:
    print(f"router bench: {message}", file=sys.stderr)
    return code


def _command(args: argparse.Namespace) -> str:
    """The command line, rebuilt from the options (URLs without passwords)."""
    parts = ["router", "bench", *(redact(u) for u in args.urls)]
    if args.plan != "default":
        parts += ["--plan", args.plan]
    for flag in ("quick", "with_pgpool", "with_pgbouncer", "all_apis", "json_only"):
        if getattr(args, flag):
            parts.append("--" + flag.replace("_", "-"))
    for flag in ("workloads", "scenarios", "concurrency", "pool_sizes", "subjects"):
        value = getattr(args, flag)
        if value is not None:
            parts += ["--" + flag.replace("_", "-"), ",".join(map(str, value))]
    for flag in ("duration", "warmup", "rounds", "rows", "pool_size"):
        value = getattr(args, flag)
        if value is not None:
            parts += ["--" + flag.replace("_", "-"), f"{value:g}"]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.out != DEFAULT_OUT:
        parts += ["--out", str(args.out)]
    return shlex.join(parts)


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 600 else f"{seconds / 60:.0f} min"


class _PlainProgress:
    """Progress for a log (stderr not a terminal): a line per cell, none per run."""

    def __init__(self) -> None:
        self._total = 0
        self._done = 0

    def status(self, text: str) -> None:
        where = f"[{self._done}/{self._total}] " if self._total else ""
        print(f"router bench: {where}{text}", file=sys.stderr, flush=True)

    def start(self, total: int) -> None:
        self._total = total

    def running(self, label: str) -> None:
        pass

    def advance(self) -> None:
        self._done += 1

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _BarProgress:
    """A rich progress bar on stderr (a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console  # noqa: PLC0415 - the bench extra, only when drawing
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("setting up", total=None)

    def status(self, text: str) -> None:
        self._progress.update(self._task, description=text)

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total, completed=0)

    def running(self, label: str) -> None:
        self._progress.update(self._task, description=label)

    def advance(self) -> None:
        self._progress.update(self._task, advance=1)

    def __enter__(self) -> _BarProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """Keep the router's expected warnings (a killed replica, a lagging one) out of the
    progress display, unless the user asked for them."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in _NOISY]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI timeout, ``kill``) stops the bench as Ctrl-C does: the servers and
    pgpool it started are stopped and removed on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def as_interrupt(signum: int, frame: FrameType | None) -> None:
        # Whatever Ctrl-C does now: inside asyncio.run, its handler cancels the main task.
        # Raising KeyboardInterrupt here instead could land inside a driver's C code (asyncpg
        # crashes on that).
        handler = signal.getsignal(signal.SIGINT)
        if not callable(handler):
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    previous = signal.signal(signal.SIGTERM, as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write(result: BenchResult, out: Path, *, json_only: bool) -> list[Path]:
    from router_bench._output import dumps_result, write_outputs  # noqa: PLC0415

    if not json_only:
        return write_outputs(result, out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench.json"
    path.write_text(dumps_result(result), encoding="utf-8")
    return [path]


def _keep_finished(finished: Finished, out: Path, *, json_only: bool) -> None:
    """A run that stopped midway: write the cells it finished, and say so."""
    result = finished.result
    if result is None:
        return
    cells = len({(c["scenario"], c["workload"], c["concurrency"]) for c in result["cells"]})
    try:
        written = _write(result, out, json_only=json_only)
    except Exception as exc:  # the run's own failure is the one to report
        print(f"router bench: could not keep the finished cells: {exc}", file=sys.stderr)
        return
    print(f"router bench stopped: {cells} finished cell(s) kept in {written[0]}", file=sys.stderr)


def _bench(args: argparse.Namespace) -> int:
    # Imported here: `router classify` and `router cluster` should not pay for the bench.
    from router.errors import ConfigurationError  # noqa: PLC0415
    from router.testing import ClusterError, find_pgbouncer  # noqa: PLC0415
    from router_bench._errors import BenchError  # noqa: PLC0415
    from router_bench._pgpool import PgpoolError, find_pgpool  # noqa: PLC0415
    from router_bench._plan import PlanError, PlanOptions, build_plan, estimate_seconds  # noqa: PLC0415
    from router_bench._runner import Finished, run_bench  # noqa: PLC0415

    try:
        # The charts and the table need the bench extra (matplotlib, rich): fail early.
        import router_bench._output  # noqa: F401, PLC0415
        from router_bench._table import render_table  # noqa: PLC0415
    except ImportError as exc:
        return _fail(f"needs the bench extra ({exc.name} is missing): pip install 'router[bench]'")

    options = PlanOptions(
        quick=args.quick,
        embedded=not args.urls,
        workloads=args.workloads,
        scenarios=args.scenarios,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        rounds=args.rounds,
        rows=args.rows,
        pool_size=args.pool_size,
        pool_sizes=args.pool_sizes,
        with_pgpool=args.with_pgpool,
        with_pgbouncer=args.with_pgbouncer,
        all_apis=args.all_apis,
        subjects=args.subjects,
        seed=args.seed,
        plan=args.plan,
    )
    try:
        plan = build_plan(options)
    except PlanError as exc:
        return _fail(str(exc), code=2)
    if plan.with_pgpool and find_pgpool() is None:
        return _fail(
            "--with-pgpool: pgpool-II is not installed (Debian/Ubuntu: apt-get install pgpool2)"
        )
    if any(s.pooler for s in plan.subjects):
        try:
            find_pgbouncer()
        except ClusterError as exc:
            flag = "--plan prepared" if plan.name == "prepared" else "--with-pgbouncer"
            return _fail(f"{flag}: {exc}")
    where = "a local cluster" if plan.embedded else f"{len(args.urls)} URL(s)"
    cells = len(plan.cells) + (1 if plan.sweep else 0)
    print(
        f"router bench: {plan.runs} runs in {cells} cells on {where}, "
        f"about {_minutes(estimate_seconds(plan))}",
        file=sys.stderr,
        flush=True,
    )
    progress = _BarProgress() if sys.stderr.isatty() else _PlainProgress()
    started = time.monotonic()
    finished = Finished()
    out: Path = args.out
    try:
        with _quiet(args.verbose), _terminate_as_interrupt(), progress:
            result = run_bench(
                plan,
                urls=args.urls,
                command=_command(args),
                progress=progress,
                env_password=os.environ.get("PGPASSWORD"),
                finished=finished,
            )
    except (BenchError, ClusterError, PgpoolError, ConfigurationError) as exc:
        _keep_finished(finished, out, json_only=args.json_only)
        return _fail(str(exc))
    except KeyboardInterrupt:
        _keep_finished(finished, out, json_only=args.json_only)
        raise
    print(render_table(result))
    written = _write(result, out, json_only=args.json_only)
    elapsed = time.monotonic() - started
    print(f"\nrouter bench took {_minutes(elapsed)}; it wrote:")
    for path in written:
        print(f"  {path}")
    return 0
