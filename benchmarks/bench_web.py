"""Read-your-writes across web requests: the marketplace example under real servers, driven by
simulated users over HTTP, with replicas lagging behind.

    .venv/bin/python benchmarks/bench_web.py [--duration 10] [--users 16] [--workers 3]
        [--delays 0,0.2,1] [--servers fastapi,flask] [--subjects router,none,rails,multidb,primary]
        [--json benchmarks/results/web/web.json] [--chart benchmarks/results/web/web.png] [--quick]

A :class:`router.testing.LocalCluster` (a primary and two streaming replicas) is started and the
marketplace's schema seeded. Per server (``fastapi``: the FastAPI + SQLAlchemy async app under
uvicorn with ``--workers`` worker processes; ``flask``: the Flask + SQLAlchemy sync app under
gunicorn with as many sync workers) and subject, the app is started once with that subject's
``MARKET_MODE`` (see ``examples/marketplace/baselines.py``):

- ``router``: :class:`router.web.ASGIMiddleware` / ``WSGIMiddleware`` (the commit position in a
  signed cookie);
- ``none``: no carrier, each request reads wherever the router sends it;
- ``rails``: Rails' database selector: a user's reads go to the primary for 2 s after a non-GET
  request;
- ``multidb``: django-multidb-router: a cookie pins a user's reads to the primary for 15 s
  after a non-GET request;
- ``primary``: every read on the primary.

then run once per replica apply delay (``--delays``, set on both replicas with
``recovery_min_apply_delay``) for ``--duration`` seconds. ``--users`` simulated users, each
with a cookie jar of its own, loop: with probability ``--write-share`` a write (create a
project, or mark the next notification read), answered 303 and followed by a GET of the
redirect; else a browse GET (projects list, a project, rankings, their notifications, a
project of their own). Every request opens a new connection, so consecutive requests of one
user land on any worker process. Between requests a user thinks for an exponential time of
mean ``--think`` seconds.

Per request, the server says which PostgreSQL server ran its read (``inet_server_port()``) and
which worker served it. A read is *stale* when it does not show the user's own earlier write:
their new project is 404, or their unread count is above what their mark-as-read requests
left. Reported per cell: stale reads, reads on replicas (all, and those that do not follow
the same user's own write within the lag, i.e. ``delay + monitor_interval``: the router learns
replicas' positions every ``monitor_interval``), p50/p99 latency over all requests, requests/s,
and the share of write→read pairs served by two different worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.marketplace.models import create_schema  # noqa: E402
from examples.marketplace.serving import router_url, serve  # noqa: E402

from router.config import DEFAULT_MONITOR_INTERVAL  # noqa: E402
from router.testing import LocalCluster, router_config  # noqa: E402

SUBJECTS = ("router", "none", "rails", "multidb", "primary")
NOTIFICATIONS = 400  # unread notifications per seeded user
CLOSE = {"Connection": "close"}


@dataclass
class Cell:
    server: str
    subject: str
    delay: float
    seconds: float = 0.0
    requests: int = 0
    errors: int = 0
    reads: int = 0
    replica_reads: int = 0
    checked_reads: int = 0
    stale: int = 0
    stale_follow: int = 0
    outside_reads: int = 0  # reads not within delay + monitor_interval of the user's write
    outside_replica: int = 0
    pairs: int = 0
    cross_worker_pairs: int = 0
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def pct(q: float) -> float:
            return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0

        data = asdict(self)
        del data["latencies_ms"]
        data.update(
            p50_ms=round(pct(0.5), 2),
            p99_ms=round(pct(0.99), 2),
            requests_per_s=round(self.requests / self.seconds, 1) if self.seconds else 0,
            replica_share=self.replica_reads / self.reads if self.reads else 0,
            outside_replica_share=(
                self.outside_replica / self.outside_reads if self.outside_reads else 0
            ),
            cross_worker_share=self.cross_worker_pairs / self.pairs if self.pairs else 0,
        )
        return data


class User:
    """One simulated user: a cookie jar, their own writes, and what a fresh read must show."""

    def __init__(self, uid: int, base: str, cell: Cell, replicas: set[int], window: float) -> None:
        self.uid = uid
        self.cell = cell
        self.replicas = replicas
        self.window = window
        self.client = httpx.AsyncClient(
            base_url=base,
            headers={"X-User": str(uid), **CLOSE},
            timeout=30,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self.rng = random.Random(uid)
        self.next_notification = 0
        self.marked = 0
        self.projects: list[int] = []
        self.last_write = -1e9

    async def start(self) -> None:
        reply = await self.client.get("/notifications")
        self.next_notification = reply.json()["first_unread"]

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            reply = await self.client.request(method, path, **kw)
        except httpx.HTTPError:
            self.cell.errors += 1
            return None
        self.cell.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.cell.requests += 1
        if reply.status_code >= 500:
            self.cell.errors += 1
        return reply

    def saw(self, reply: httpx.Response, fresh: bool | None, *, follow: bool) -> None:
        """Count a read: where it ran, and whether it showed the user's own writes."""
        cell = self.cell
        cell.reads += 1
        # Every answer names the server its read ran on, a 404 included.
        on_replica = reply.json().get("port") in self.replicas
        cell.replica_reads += on_replica
        if time.monotonic() - self.last_write > self.window:
            cell.outside_reads += 1
            cell.outside_replica += on_replica
        if fresh is not None:
            cell.checked_reads += 1
            if not fresh:
                cell.stale += 1
                cell.stale_follow += follow

    async def write(self) -> None:
        if self.rng.random() < 0.5:
            posted = await self.request("POST", "/projects", data={"title": f"u{self.uid}"})
            if posted is None or posted.status_code != 303:
                return
            self.last_write = time.monotonic()
            project = int(posted.headers["location"].rsplit("/", 1)[1])
            self.projects.append(project)
            read = await self.request("GET", posted.headers["location"])
            if read is None:
                return
            self.saw(read, read.status_code == 200, follow=True)
        else:
            target = self.next_notification
            posted = await self.request("POST", f"/notifications/{target}/read")
            if posted is None or posted.status_code != 303:
                return
            self.last_write = time.monotonic()
            self.marked += 1
            self.next_notification += 1
            read = await self.request("GET", posted.headers["location"])
            if read is None:
                return
            self.saw(read, read.json()["unread"] <= NOTIFICATIONS - self.marked, follow=True)
        self.cell.pairs += 1
        self.cell.cross_worker_pairs += posted.headers.get("x-pid") != read.headers.get("x-pid")

    async def browse(self) -> None:
        choice = self.rng.random()
        if choice < 0.25:
            reply = await self.request("GET", "/projects")
            fresh = None
        elif choice < 0.45:
            reply = await self.request("GET", f"/projects/{self.rng.randint(1, 2000)}")
            fresh = None
        elif choice < 0.6:
            reply = await self.request("GET", "/rankings")
            fresh = None
        elif choice < 0.85 or not self.projects:
            reply = await self.request("GET", "/notifications")
            fresh = None if reply is None else reply.json()["unread"] <= NOTIFICATIONS - self.marked
        else:
            reply = await self.request("GET", f"/projects/{self.rng.choice(self.projects)}")
            fresh = None if reply is None else reply.status_code == 200
        if reply is not None:
            self.saw(reply, fresh, follow=False)

    async def run(self, until: float, write_share: float, think: float) -> None:
        while time.monotonic() < until:
            if self.rng.random() < write_share:
                await self.write()
            else:
                await self.browse()
            await asyncio.sleep(self.rng.expovariate(1 / think))

    async def close(self) -> None:
        await self.client.aclose()


async def run_cell(
    cell: Cell, base: str, uids: range, replicas: set[int], args: argparse.Namespace
) -> None:
    window = cell.delay + DEFAULT_MONITOR_INTERVAL
    users = [User(uid, base, cell, replicas, window) for uid in uids]
    try:
        await asyncio.gather(*(u.start() for u in users))
        started = time.monotonic()
        until = started + args.duration
        await asyncio.gather(*(u.run(until, args.write_share, args.think) for u in users))
        cell.seconds = time.monotonic() - started
    finally:
        await asyncio.gather(*(u.close() for u in users))


def set_delay(cluster: LocalCluster, seconds: float) -> None:
    for replica in cluster.replicas:
        cluster.set_apply_delay(replica, seconds)
    if seconds == 0:
        for replica in cluster.replicas:
            cluster.wait_caught_up(replica, timeout=30)


def chart(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 (only for the chart)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    servers = sorted({r["server"] for r in results})
    subjects = [s for s in SUBJECTS if any(r["subject"] == s for r in results)]
    delays = sorted({r["delay"] for r in results})
    fig, axes = plt.subplots(2, len(servers), figsize=(6 * len(servers), 7), squeeze=False)
    width = 0.8 / len(subjects)
    for col, server in enumerate(servers):
        for row, (metric, label) in enumerate(
            [("stale", "stale reads (own writes not shown)"),
             ("outside_replica_share", "reads on replicas, outside own-write window")]
        ):  # fmt: skip
            ax = axes[row][col]
            for i, subject in enumerate(subjects):
                values = []
                for delay in delays:
                    found = [
                        r for r in results
                        if r["server"] == server and r["subject"] == subject and r["delay"] == delay
                    ]  # fmt: skip
                    value = found[0][metric] if found else 0
                    values.append(value * 100 if metric.endswith("share") else value)
                xs = [d + (i - len(subjects) / 2 + 0.5) * width for d in range(len(delays))]
                ax.bar(xs, values, width, label=subject)
            ax.set_xticks(range(len(delays)), [f"{d:g} s" for d in delays])
            ax.set_xlabel("replica apply delay")
            ax.set_title(f"{server}: {label}")
            if metric.endswith("share"):
                ax.set_ylim(0, 100)
                ax.set_ylabel("%")
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| server | delay | subject | stale reads (follow / later) | checked reads | reads on"
        " replicas | of those outside own-write window | p50 ms | p99 ms | req/s |"
        " write→read on another worker |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['server']} | {r['delay']:g} s | {r['subject']} | **{r['stale']}**"
            f" ({r['stale_follow']} / {r['stale'] - r['stale_follow']}) | {r['checked_reads']}"
            f" | {r['replica_share']:.0%} | {r['outside_replica_share']:.0%}"
            f" ({r['outside_reads']}) | {r['p50_ms']:.1f} | {r['p99_ms']:.1f}"
            f" | {r['requests_per_s']:.0f} | {r['cross_worker_share']:.0%} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--think", type=float, default=0.1)
    parser.add_argument("--write-share", type=float, default=0.1)
    parser.add_argument("--delays", default="0,0.2,1")
    parser.add_argument("--servers", default="fastapi,flask")
    parser.add_argument("--subjects", default=",".join(SUBJECTS))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/web/web.json")
    parser.add_argument("--chart", type=Path, default=ROOT / "benchmarks/results/web/web.png")
    parser.add_argument("--quick", action="store_true", help="3 s cells, 8 users")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.users = 3.0, 8
    delays = [float(d) for d in args.delays.split(",")]
    servers = args.servers.split(",")
    subjects = args.subjects.split(",")
    cells = len(delays) * len(servers) * len(subjects)
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    with LocalCluster(replicas=2) as cluster:
        cluster.create_database("web_bench")
        config = router_config(cluster, "web_bench")
        create_schema(
            config, users=cells * args.users + 1, projects=2000, notifications=NOTIFICATIONS
        )
        for replica in cluster.replicas:
            cluster.wait_caught_up(replica, timeout=60)
        url = router_url(cluster, "web_bench")
        replicas = {r.port for r in cluster.replicas}
        next_uid = 1
        for server in servers:
            for subject in subjects:
                with serve(server, url, workers=args.workers, mode=subject) as base:
                    for delay in delays:
                        set_delay(cluster, delay)
                        cell = Cell(server, subject, delay)
                        uids = range(next_uid, next_uid + args.users)
                        next_uid += args.users
                        asyncio.run(run_cell(cell, base, uids, replicas, args))
                        summary = cell.summary()
                        results.append(summary)
                        print(
                            f"{server:8} {subject:8} delay {delay:<4g} stale {cell.stale:4d}"
                            f" / {cell.checked_reads:5d}  replicas {summary['replica_share']:.0%}"
                            f" (outside window {summary['outside_replica_share']:.0%})"
                            f"  p50 {summary['p50_ms']:.1f} ms  p99 {summary['p99_ms']:.1f} ms"
                            f"  {summary['requests_per_s']:.0f} req/s  errors {cell.errors}",
                            flush=True,
                        )
                set_delay(cluster, 0)
    meta = {
        "command": " ".join(["benchmarks/bench_web.py", *sys.argv[1:]]),
        "duration_per_cell_s": args.duration,
        "users": args.users,
        "workers": args.workers,
        "think_s": args.think,
        "write_share": args.write_share,
        "monitor_interval_s": DEFAULT_MONITOR_INTERVAL,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "wall_s": round(time.monotonic() - started, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "cells": results}, indent=2) + "\n")
    chart(results, args.chart)
    print()
    print(table(results))
    print(f"\n{meta}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
