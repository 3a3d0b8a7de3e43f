"""``router cluster up | down | status | smoke``: a local primary + replicas for people."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict

from router.cli._status import format_table
from router.config import redact
from router.testing import ClusterError, LocalCluster

__all__ = ["default_dir", "register"]


def default_dir() -> Path:
    """Where ``router cluster`` keeps its cluster unless ``--dir`` says otherwise."""
    return Path(tempfile.gettempdir()) / f"router-cluster-{getpass.getuser()}"


def _directory(text: str) -> Path:
    """``--dir``: a path, and not a connection string (``Path`` would fold its ``//`` and hide
    the password from redaction in every message that shows the directory)."""
    if "://" in text or "password=" in text.lower():
        raise argparse.ArgumentTypeError(
            "expects the cluster's directory, not a connection string (not shown)"
        )
    return Path(text)


def register(subparsers: Any) -> None:
    cluster = subparsers.add_parser(
        "cluster",
        help="a local primary + streaming replicas (needs the PostgreSQL server binaries)",
        description="Run a real primary + streaming replicas on loopback ports.",
    )
    commands = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        parser.add_argument(
            "--dir", type=_directory, default=default_dir(), help="cluster directory (%(default)s)"
        )
        parser.add_argument("--json", action="store_true", help="print JSON")
        return parser

    up = add("up", "start a cluster and print its DSNs; it runs until `router cluster down`")
    up.add_argument("--replicas", type=int, default=2, help="streaming replicas (2)")
    up.add_argument(
        "--foreground",
        action="store_true",
        help="stay in the foreground and remove the cluster on Ctrl-C / SIGTERM",
    )
    up.set_defaults(func=_up)
    add("down", "stop the cluster and remove its files").set_defaults(func=_down)
    add(
        "url", "one multi-host URL of every node, for ROUTER_URL / RouterConfig.from_url"
    ).set_defaults(func=_url)
    add("status", "each node's role, port and replay lag").set_defaults(func=_status)
    add("smoke", "write a row on the primary and time its arrival on every replica").set_defaults(
        func=_smoke
    )


def _fail(message: str) -> int:
    print(f"router: {redact(message)}", file=sys.stderr)
    return 1


def cluster_url(cluster: LocalCluster) -> str:
    """``postgresql://user@host:port,host:port,.../dbname``: every node, roles left for the
    router to discover. Never a password (give it as ``ROUTER_PASSWORD`` or ``PGPASSWORD``)."""
    params = conninfo_to_dict(cluster.primary.dsn)
    user = quote(str(params.get("user") or ""), safe="")
    hosts = ",".join(f"{n.host}:{n.port}" for n in cluster.nodes)
    dbname = quote(str(params.get("dbname") or "postgres"), safe="")
    return f"postgresql://{user}@{hosts}/{dbname}"


def _describe(cluster: LocalCluster) -> dict[str, Any]:
    return {
        "dir": str(cluster.base_dir),
        "url": cluster_url(cluster),
        "nodes": [
            {"name": n.name, "role": n.role, "port": n.port, "dsn": n.dsn} for n in cluster.nodes
        ],
    }


def _print_nodes(cluster: LocalCluster, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_describe(cluster), indent=2))
        return
    for n in cluster.nodes:
        print(f"{n.name:<10} {n.role:<8} {n.dsn}")
    print(f"ROUTER_URL={cluster_url(cluster)}")


def _url(args: argparse.Namespace) -> int:
    try:
        cluster = LocalCluster.attach(args.dir)
    except ClusterError as exc:
        return _fail(f"no cluster: {exc} (start one with: router cluster up)")
    url = cluster_url(cluster)
    print(json.dumps({"url": url}) if args.json else url)
    return 0


def _up(args: argparse.Namespace) -> int:
    if args.replicas < 0:
        return _fail(f"--replicas must be >= 0, not {args.replicas}")
    try:
        existing = LocalCluster.attach(args.dir)
    except ClusterError:
        existing = None
    if existing is not None and all(n.is_running() for n in existing.nodes):
        if not args.json:
            print(f"already up in {args.dir}")
        _print_nodes(existing, args.json)
        return 0
    if existing is not None:
        return _fail(f"{args.dir} holds a cluster that is not fully running: router cluster down")
    started = time.monotonic()
    try:
        cluster = LocalCluster(replicas=args.replicas, base_dir=args.dir).start()
    except ClusterError as exc:
        return _fail(str(exc))
    if not args.json:
        print(f"cluster up in {cluster.base_dir} ({time.monotonic() - started:.1f} s)")
    _print_nodes(cluster, args.json)
    if not args.foreground:
        cluster.detach()
        if not args.json:
            print("stop it with: router cluster down" + _dir_flag(args.dir))
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        print("running; Ctrl-C stops and removes it", flush=True)
        stop.wait()
    finally:
        cluster.close()
    return 0


def _dir_flag(path: Path) -> str:
    return "" if path == default_dir() else f" --dir {path}"


def _down(args: argparse.Namespace) -> int:
    try:
        cluster = LocalCluster.attach(args.dir)
    except ClusterError as exc:
        print(f"router: nothing to stop: {exc}", file=sys.stderr)
        return 0
    cluster.close()
    if not args.json:
        print(f"stopped and removed the cluster in {args.dir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        cluster = LocalCluster.attach(args.dir)
    except ClusterError as exc:
        return _fail(str(exc))
    rows = cluster.status()
    if args.json:
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
        return 0 if all(row.running and row.error is None for row in rows) else 1
    table = []
    for row in rows:
        state = "down" if not row.running else "paused" if row.replay_paused else "up"
        if row.error is not None:
            state = "no answer"
        elif row.running and row.role == "replica" and not row.streaming:
            state = "not streaming"
        lag_b = "-" if row.replay_lag_bytes is None else str(row.replay_lag_bytes)
        lag_s = "-" if row.replay_lag_seconds is None else f"{row.replay_lag_seconds:.3f}"
        role = row.role or cluster.node(row.name).role
        table.append((row.name, role, str(row.port), state, lag_b, lag_s))
    header = ("node", "role", "port", "state", "lag bytes", "lag s")
    print("\n".join(format_table(header, table, right={2, 4, 5})))
    for row in rows:
        if row.error is not None:
            hint = " (set PGPASSWORD)" if "password" in row.error else ""
            print(f"{row.name}: running, but not answering: {row.error}{hint}", file=sys.stderr)
    return 0 if all(row.running and row.error is None for row in rows) else 1


def _smoke(args: argparse.Namespace) -> int:
    """Write on the primary, then read the row back on every replica."""
    try:
        cluster = LocalCluster.attach(args.dir)
    except ClusterError as exc:
        return _fail(str(exc))
    marker = uuid.uuid4().hex
    with cluster.primary.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS router_smoke (marker text, at timestamptz)")
        conn.execute("INSERT INTO router_smoke VALUES (%s, clock_timestamp())", (marker,))
    written = time.monotonic()
    result: dict[str, Any] = {"marker": marker, "replicas": {}}
    for replica in cluster.replicas:
        try:
            cluster.wait_caught_up(replica, timeout=10.0)
        except ClusterError as exc:
            return _fail(str(exc))
        with replica.connect() as conn:
            row = conn.execute("SELECT count(*) FROM router_smoke WHERE marker = %s", (marker,))
            if row.fetchone() != (1,):
                return _fail(f"{replica.name} replayed the write but does not show the row")
        result["replicas"][replica.name] = round((time.monotonic() - written) * 1000, 2)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"wrote row {marker} on {cluster.primary.name}")
        for name, ms in result["replicas"].items():
            print(f"  visible on {name} after {ms} ms")
    return 0
