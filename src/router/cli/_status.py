"""``router status URL...``: every node of any cluster as a router would see it now.

The nodes are checked by the router's own monitor (the same query, the same health and lag
transitions), and the pure core's :func:`~router.core.eligible` says, for the configuration
given (``router_*`` URL options, ``ROUTER_*`` variables, ``--consistency``), which replicas a
read may go to and why the others may not. One more query per node adds what an operator
wants beside it: the timeline and the connection count against ``max_connections``.

Passwords come from the URL, ``ROUTER_PASSWORD`` or libpq's ``PGPASSWORD``; none is ever
printed: every message a server or driver writes is redacted before it is shown.

The JSON document (``--json``; one per line with ``--watch``) is described in
``docs/reference/status.md``; :data:`SCHEMA` names its version.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Container, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from router._sync import _driver as driver
from router._sync._monitor import Monitor
from router.config import Consistency, NodeConfig, RouterConfig, redact
from router.core import Cause, Eligibility, NodeHealth, Role, Topology, eligible
from router.errors import ConfigurationError

__all__ = [
    "SCHEMA",
    "NodeReport",
    "StatusReport",
    "collect",
    "format_table",
    "register",
    "render",
]

SCHEMA: Final = "router.status/1"

#: What the monitor's check does not say. ``pg_walfile_name`` (the timeline of the WAL being
#: written) is refused during recovery: a replica's timeline is the one it receives, or that of
#: its last restart point when its WAL receiver is not visible to this user.
EXTRA_QUERY: Final = """
SELECT CASE WHEN pg_is_in_recovery()
            THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver),
                          (SELECT timeline_id FROM pg_control_checkpoint()))
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int,
       current_setting('max_connections')::int
"""
#: Without the timeline, for a user who may not call ``pg_control_checkpoint()``.
FALLBACK_QUERY: Final = """
SELECT NULL::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int,
       current_setting('max_connections')::int
"""

# What a check of a node may fail with: it then says nothing more.
_FAILURES: Final[tuple[type[BaseException], ...]] = (TimeoutError, *driver.DATABASE_ERRORS)


@dataclass(frozen=True, slots=True)
class NodeReport:
    """One row of ``router status``; ``None`` where the node did not say."""

    name: str
    host: str
    port: int
    reachable: bool
    error: str | None
    role: str
    timeline: int | None
    replay_lag_bytes: int | None
    replay_lag_seconds: float | None
    replay_paused: bool | None
    connections: int | None
    max_connections: int | None
    eligible: bool
    decision: str
    #: Patroni's word on the member at this address (``role/state``, e.g. ``leader/running``),
    #: with ``--patroni`` or ``patroni_urls``; ``None`` otherwise or when no URL answered.
    patroni: str | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Every node, and what is wrong with the cluster as a whole (``problems``)."""

    schema: str
    checked_at: str
    consistency: str
    primary: str | None
    split_brain: bool
    ok: bool
    problems: list[str]
    nodes: list[NodeReport]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="each node of any cluster: role, lag, connections, and the router's decision",
        description=(
            "Check every node of a cluster as a router would and show, per node, its role, "
            "timeline, replay lag, whether replay is paused, its connections against "
            "max_connections, and whether a router with this configuration would send it "
            "reads now (or why not). Exit status: 0 all is well, 1 a node could not be checked "
            "or there is not exactly one primary, 2 bad usage or configuration."
        ),
    )
    parser.add_argument(
        "urls",
        nargs="*",
        metavar="URL",
        help="libpq URLs (multi-host allowed, router_* options honoured); default: ROUTER_URL "
        "and the other ROUTER_* variables. Password: in the URL, ROUTER_PASSWORD or PGPASSWORD",
    )
    parser.add_argument(
        "--consistency",
        choices=[level.value for level in Consistency],
        help="decide for this consistency level instead of the configured one",
    )
    parser.add_argument(
        "--patroni",
        action="append",
        metavar="REST_URL",
        help="learn the nodes from Patroni's GET /cluster (repeatable: the first that answers); "
        "URL is then one DSN template without a host (postgresql://app@/appdb), or ROUTER_URL",
    )
    parser.add_argument("--json", action="store_true", help="print JSON (schema router.status/1)")
    parser.add_argument(
        "--watch",
        type=_seconds_or_url,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="check again every SECONDS (2) and refresh in place, until Ctrl-C",
    )
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)  # --watch: stop after N
    parser.set_defaults(func=_main)


def _seconds_or_url(text: str) -> float | str:
    """``--watch``'s optional value: seconds, or (``router status --watch URL``) the first
    URL, which argparse would otherwise take for the seconds."""
    try:
        return float(text)
    except ValueError:
        if "://" in text or "=" in text:
            return text
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None


def _with(node: NodeConfig, password: str) -> NodeConfig:
    """*node* with ``ROUTER_PASSWORD``, unless its URL has a password of its own."""
    try:
        return node if node.password else node.replace(password=password)
    except ConfigurationError:  # the password is in the URL: that one counts
        return node


def _config(args: argparse.Namespace) -> RouterConfig:
    if args.patroni:
        template = args.urls or [os.environ.get("ROUTER_URL", "")]
        if len(template) != 1 or not template[0]:
            raise ConfigurationError(
                "URL", "with --patroni, give one DSN template (postgresql://user@/dbname)"
            )
        config = RouterConfig.from_patroni(args.patroni, template[0])
    elif not args.urls:
        config = RouterConfig.from_env()
    else:
        # Options (router_* parameters) come from the first URL; every URL adds its hosts.
        configs = [RouterConfig.from_url(url) for url in args.urls]
        config = configs[0]
        if len(configs) > 1:
            config = config.replace(nodes=[n for c in configs for n in c.all_nodes])
        password = os.environ.get("ROUTER_PASSWORD")
        if password:
            config = config.replace(nodes=[_with(node, password) for node in config.all_nodes])
    if args.consistency:
        config = config.replace(consistency=args.consistency)
    return config


def _extra(dsn: str, timeout: float, application_name: str) -> tuple[Any, ...] | None:
    """Timeline, connections and ``max_connections`` of one node, or ``None``."""
    try:
        conn = driver.connect_monitor(dsn, timeout, application_name)
    except _FAILURES:
        return None
    try:
        for query in (EXTRA_QUERY, FALLBACK_QUERY):
            try:
                row = driver.fetchrow(conn, query, timeout)
            except _FAILURES:
                continue
            return None if row is None else tuple(row)
        return None
    finally:
        driver.terminate(conn)


def _error(node: NodeHealth) -> str:
    """Why a node could not be checked, on one line, redacted, with a hint for a password."""
    text = " ".join(redact(node.last_error or node.reason).split())
    if "password" in text and "PGPASSWORD" not in text:
        text += " (give the password in the URL, ROUTER_PASSWORD or PGPASSWORD)"
    return text


def _reachable(node: NodeHealth) -> bool:
    return node.up and not node.failures and node.role is not Role.UNKNOWN


def _decision(node: NodeHealth, topology: Topology, chosen: Eligibility, weight: float) -> str:
    if not _reachable(node):
        return f"unreachable: {node.reason}"
    if node.role is Role.PRIMARY:
        if topology.split_brain:
            return "split brain: writes refused (TopologyError)"
        return "primary: writes" + (", and reads by weight" if weight > 0 else "")
    if node.name in chosen.replicas:
        return "eligible for reads"
    for exclusion in chosen.excluded:
        if exclusion.name == node.name:
            return f"not eligible: {exclusion.reason}"
    return chosen.reason or "not eligible"


def collect(config: RouterConfig, monitor: Monitor) -> StatusReport:
    """One round of checks through *monitor* (which keeps the lag gate's hysteresis across
    rounds, as a router's does), plus each node's timeline and connection count."""
    monitor.check(patient=True)
    # A second round: a standby seen replaying past a later position of the primary is on
    # another history (Topology.off_timeline), which one round cannot show.
    topology = monitor.check(patient=True)
    members = topology.ha.members if topology.ha is not None else {}
    consistency = Consistency(str(config.consistency))
    chosen = eligible(topology, consistency)
    app = f"{config.application_name} status"
    reports = []
    for spec in config.all_nodes:
        node = topology.node(spec.name)
        reachable = _reachable(node)
        extra = (
            _extra(driver.dsn(spec.connect_dsn), config.monitor_timeout, app) if reachable else None
        )
        timeline, connections, max_connections = extra or (None, None, None)
        replica = node.role is Role.REPLICA
        reports.append(
            NodeReport(
                name=spec.name,
                host=spec.host,
                port=spec.port,
                reachable=reachable,
                error=None if reachable else _error(node),
                role=str(node.role),
                timeline=timeline,
                replay_lag_bytes=node.lag_bytes if reachable else None,
                replay_lag_seconds=node.lag_seconds if reachable else None,
                replay_paused=node.replay_paused if reachable and replica else None,
                connections=connections,
                max_connections=max_connections,
                eligible=spec.name in chosen.replicas,
                decision=redact(_decision(node, topology, chosen, config.primary_read_weight)),
                patroni=(
                    f"{members[spec.name].role}/{members[spec.name].state}"
                    if spec.name in members
                    else None
                ),
            )
        )
    problems = [f"{r.name}: cannot be checked: {r.error}" for r in reports if not r.reachable]
    problems += [
        f"{e.name}: on another history than the primary's ({e.reason}): it serves no read "
        "until it is rewound or rebuilt"
        for e in chosen.excluded
        if e.cause is Cause.TIMELINE
    ]
    replicas = [n for n in topology.nodes if n.name != topology.primary]
    if topology.primary is not None and replicas and not chosen.replicas:
        # Lagging is the router's business while another replica serves; with none, every
        # read lands on the primary, which was sized for the writes.
        problems.append(
            f"no replica is eligible ({chosen.reason or 'see each node'}): every read goes"
            " to the primary"
        )
    if topology.split_brain:
        problems.append("more than one node is a primary: a router refuses writes")
    elif topology.primary is None:
        problems.append("no primary: a router fails writes fast (PrimaryUnavailable)")
    return StatusReport(
        schema=SCHEMA,
        checked_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        consistency=str(consistency),
        primary=topology.primary,
        split_brain=topology.split_brain,
        ok=not problems,
        problems=problems,
        nodes=reports,
    )


def _cell(value: object, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Container[int] = ()
) -> list[str]:
    """Lines of a plain-text table: columns as wide as their widest cell (the last one free),
    the columns in *right* aligned right. ``router cluster status`` prints with it too."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


def render(report: StatusReport) -> str:
    """The report as a table, for people."""
    patroni = any(node.patroni is not None for node in report.nodes)
    header: tuple[str, ...] = ("node", "role", "tl", "lag bytes", "lag s", "replay", "conns")
    header += ("patroni", "decision") if patroni else ("decision",)
    rows = []
    for node in report.nodes:
        replay = "-" if node.replay_paused is None else "paused" if node.replay_paused else "live"
        conns = (
            "-" if node.connections is None else f"{node.connections}/{_cell(node.max_connections)}"
        )
        rows.append(
            (
                node.name,
                node.role,
                _cell(node.timeline),
                _cell(node.replay_lag_bytes),
                _cell(node.replay_lag_seconds, 3),
                replay,
                conns,
                *((_cell(node.patroni),) if patroni else ()),
                node.decision,
            )
        )
    lines = format_table(header, rows, right={2, 3, 4})
    lines.append(f"consistency {report.consistency}, checked {report.checked_at}")
    lines.extend(f"problem: {problem}" for problem in report.problems)
    return "\n".join(lines)


def _main(args: argparse.Namespace) -> int:
    if isinstance(args.watch, str):  # `--watch URL`: a URL, and the default interval
        args.urls = [args.watch, *args.urls]
        args.watch = 2.0
    try:
        config = _config(args)
    except ConfigurationError as exc:
        print(f"router: {redact(str(exc))}", file=sys.stderr)
        return 2
    if args.watch is not None and args.watch <= 0:
        print("router: --watch needs a number of seconds > 0", file=sys.stderr)
        return 2
    monitor = Monitor(
        {n.name: driver.dsn(n.connect_dsn) for n in config.all_nodes},
        config.gate_params(),
        interval=config.monitor_interval,
        timeout=config.monitor_timeout,
        application_name=f"{config.application_name} status",
        patroni_urls=config.patroni_urls,
        addresses={n.address: n.name for n in config.all_nodes},
    )
    in_place = args.watch is not None and not args.json and sys.stdout.isatty()
    rounds = 0
    try:
        while True:
            report = collect(config, monitor)
            rounds += 1
            if args.json:
                print(json.dumps(asdict(report), indent=None if args.watch else 2), flush=True)
            else:
                # In place: home the cursor and clear the screen before each table.
                prefix = "\x1b[H\x1b[2J" if in_place else ("\n" if rounds > 1 else "")
                print(prefix + render(report), flush=True)
            if args.watch is None or (args.count is not None and rounds >= args.count):
                return 0 if report.ok else 1
            time.sleep(args.watch)
    finally:
        monitor.close()
