"""The cluster under test: its nodes and their roles, and the bench's dataset on it.

Roles are discovered (``pg_is_in_recovery()``), whatever the URLs' order. Each node is also
asked who it is (``inet_server_addr()``, ``inet_server_port()``), so that a read's answer tells
which node served it. The dataset is a table of the bench's own (marked by a comment), created
in one transaction when missing, reused when present; a table of that name without the mark is
never touched.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import asyncpg
from psycopg.conninfo import conninfo_to_dict

from router._async._dsn import asyncpg_dsn
from router.config import NodeConfig, RouterConfig
from router.errors import ConfigurationError
from router_bench._errors import BenchError, describe_error
from router_bench._schema import NodeInfo
from router_bench._workloads import categories

__all__ = [
    "DATASET_MARK",
    "Ident",
    "Target",
    "TargetNode",
    "config_from_urls",
    "discover",
    "ensure_dataset",
    "wait_replayed",
]

Ident = tuple[str | None, int | None]
#: The comment that makes a table the bench's own (it may update its rows, never drop it).
DATASET_MARK: Final = "router bench dataset"
CONNECT_TIMEOUT: Final = 10.0
REPLAY_TIMEOUT: Final = 120.0
APPLICATION_NAME: Final = "router-bench"
_WHO: Final = (
    "SELECT pg_is_in_recovery(), host(inet_server_addr()), inet_server_port(),"
    " current_setting('server_version')"
)


@dataclass(frozen=True, slots=True)
class TargetNode:
    name: str
    role: Literal["primary", "replica"]
    config: NodeConfig
    ident: Ident  # what the server says it is (address, port)

    @property
    def address(self) -> str:
        host = self.config.host
        return f"[{host}]:{self.config.port}" if ":" in host else f"{host}:{self.config.port}"

    @property
    def dsn(self) -> str:
        """For asyncpg; holds the password if there is one: never show it."""
        return asyncpg_dsn(self.config.connect_dsn)


@dataclass(frozen=True, slots=True)
class Target:
    """The cluster the bench measures, its roles discovered."""

    embedded: bool
    nodes: tuple[TargetNode, ...]
    base_config: RouterConfig
    server_version: str
    env_password: str | None = field(default=None, repr=False)

    @property
    def primary(self) -> TargetNode:
        return next(n for n in self.nodes if n.role == "primary")

    @property
    def replicas(self) -> tuple[TargetNode, ...]:
        return tuple(n for n in self.nodes if n.role == "replica")

    @property
    def secrets(self) -> tuple[str, ...]:
        found = [self.env_password] + [_password(n.config) for n in self.nodes]
        return tuple(dict.fromkeys(s for s in found if s))

    def replica_idents(self) -> dict[Ident, bool]:
        """``{(address, port): served by a replica}`` for every node that can be told apart
        (two nodes reporting the same identity are left out: their reads count as primary)."""
        seen: dict[Ident, list[TargetNode]] = {}
        for node in self.nodes:
            seen.setdefault(node.ident, []).append(node)
        return {
            ident: nodes[0].role == "replica" for ident, nodes in seen.items() if len(nodes) == 1
        }

    def ambiguous(self) -> list[str]:
        """Names of nodes whose reads cannot be told apart from another node's."""
        counts: dict[Ident, int] = {}
        for node in self.nodes:
            counts[node.ident] = counts.get(node.ident, 0) + 1
        return [n.name for n in self.nodes if counts[n.ident] > 1]

    def credentials(self) -> tuple[str, str | None, str]:
        """``(user, password, database)`` of the primary's connection (for pgpool)."""
        config = self.primary.config
        params = conninfo_to_dict(config.connect_dsn)
        user = str(params.get("user") or getpass.getuser())
        password = _password(config) or self.env_password
        return user, password, config.dbname

    def node_infos(self) -> list[NodeInfo]:
        return [NodeInfo(name=n.name, role=n.role, address=n.address) for n in self.nodes]


def _password(config: NodeConfig) -> str | None:
    if config.password is not None:
        return config.password
    value = conninfo_to_dict(config.dsn).get("password")
    return None if value is None else str(value)


def config_from_urls(urls: Sequence[str]) -> RouterConfig:
    """One configuration for every node of *urls* (each a libpq URL, possibly multi-host;
    ``router_*`` options of a single URL are kept). Raises ``ConfigurationError``."""
    if not urls:
        raise ConfigurationError("url", "give at least one URL")
    if len(urls) == 1:
        return RouterConfig.from_url(urls[0])
    nodes: list[NodeConfig] = []
    for index, url in enumerate(urls):
        try:
            nodes += RouterConfig.from_url(url).all_nodes
        except ConfigurationError as exc:
            raise ConfigurationError(f"URL {index + 1}: {exc.field}", exc.problem) from None
    return RouterConfig(nodes=nodes)


async def _who(config: NodeConfig, secrets: Sequence[str | None]) -> tuple[Any, ...]:
    try:
        conn = await asyncpg.connect(
            asyncpg_dsn(config.connect_dsn),
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": APPLICATION_NAME},
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise BenchError(
            f"cannot connect to {config.name}: {describe_error(exc, secrets)}"
        ) from None
    try:
        row = await conn.fetchrow(_WHO)
    finally:
        await conn.close()
    assert row is not None
    return tuple(row)


async def discover(
    config: RouterConfig, *, embedded: bool, env_password: str | None = None
) -> Target:
    """Connect to every node of *config*, learn its role and identity. Raises
    :class:`BenchError` naming an unreachable node, or when there is not exactly one primary
    and at least one replica."""
    nodes = config.all_nodes
    secrets = [env_password, *(_password(n) for n in nodes)]
    answers = await asyncio.gather(*(_who(n, secrets) for n in nodes))
    found: list[TargetNode] = []
    version = ""
    for node, (in_recovery, addr, port, server_version) in zip(nodes, answers, strict=True):
        role: Literal["primary", "replica"] = "replica" if in_recovery else "primary"
        found.append(TargetNode(node.name, role, node, (addr, port)))
        if role == "primary":
            version = str(server_version)
    primaries = [n.name for n in found if n.role == "primary"]
    if len(primaries) != 1:
        what = "no primary" if not primaries else f"{len(primaries)} primaries ({primaries})"
        raise BenchError(f"the cluster has {what}: router bench needs exactly one")
    if not any(n.role == "replica" for n in found):
        raise BenchError(
            f"{primaries[0]} has no replica among the nodes given: router bench compares "
            "reads on replicas, give every node's URL"
        )
    return Target(embedded, tuple(found), config, version, env_password)


async def ensure_dataset(target: Target, table: str, rows: int) -> bool:
    """Make sure *table* holds the bench's *rows* rows on the primary; ``True`` if it was
    created now. Raises :class:`BenchError` for a table of that name that is not the bench's
    or holds another number of rows."""
    conn = await asyncpg.connect(target.primary.dsn, timeout=CONNECT_TIMEOUT)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
        if exists:
            mark = await conn.fetchval("SELECT obj_description($1::regclass, 'pg_class')", table)
            if mark != DATASET_MARK:
                raise BenchError(
                    f"table {table} exists and was not made by router bench: it is left alone; "
                    "give another --rows, or rename that table"
                )
            count = await conn.fetchval(f"SELECT count(*) FROM {table}")
            if count != rows:
                raise BenchError(
                    f"table {table} (router bench's) holds {count} rows, not {rows}: drop it "
                    "and run again to rebuild it"
                )
            return False
        async with conn.transaction():
            await conn.execute(
                f"CREATE TABLE {table} (id int PRIMARY KEY, version int NOT NULL,"
                " payload text, category int)"
            )
            await conn.execute(
                f"INSERT INTO {table} SELECT i, 0, repeat(md5(i::text), 3),"
                f" i % {categories(rows)} FROM generate_series(1, {rows}) AS i"
            )
            await conn.execute(f"CREATE INDEX {table}_category ON {table} (category, id)")
            await conn.execute(f"COMMENT ON TABLE {table} IS '{DATASET_MARK}'")
        await conn.execute(f"ANALYZE {table}")
        return True
    finally:
        await conn.close()


async def wait_replayed(target: Target, timeout: float = REPLAY_TIMEOUT) -> None:
    """Wait until every replica has replayed the primary's current WAL position."""
    conn = await asyncpg.connect(target.primary.dsn, timeout=CONNECT_TIMEOUT)
    try:
        lsn = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
    finally:
        await conn.close()
    for replica in target.replicas:
        await _wait_node(replica, lsn, timeout, target.secrets)


async def _wait_node(node: TargetNode, lsn: str, timeout: float, secrets: Sequence[str]) -> None:
    deadline = time.monotonic() + timeout
    try:
        conn = await asyncpg.connect(node.dsn, timeout=CONNECT_TIMEOUT)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise BenchError(f"cannot connect to {node.name}: {describe_error(exc, secrets)}") from None
    try:
        query = "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn"
        while not await conn.fetchval(query, lsn):
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{node.name} has not replayed the dataset ({lsn}) after {timeout:g} s: "
                    "is it streaming from the primary?"
                )
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def embedded_config(nodes: Mapping[str, str]) -> RouterConfig:
    """A configuration of the embedded cluster's nodes (name -> DSN), roles discovered."""
    return RouterConfig(nodes=[NodeConfig(dsn=dsn, name=name) for name, dsn in nodes.items()])
