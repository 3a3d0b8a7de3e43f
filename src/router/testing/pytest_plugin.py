"""pytest plugin: a real primary + streaming replicas for the whole test session.

Registered through the ``pytest11`` entry point, so installing router makes it available;
disable it with ``-p no:router``. Fixtures:

``local_cluster`` (session)
    A started :class:`~router.testing.LocalCluster` (``--router-replicas``, default 2),
    closed at the end of the session.
``cluster`` (function)
    The same cluster, for a test that throws its fault switches.
``patroni_cluster`` (session)
    A started :class:`~router.testing.PatroniCluster` (etcd + 3 Patroni members), for
    tests of HA failovers; its fault switches are undone after each test that threw one
    (:meth:`~router.testing.PatroniCluster.reset`: the leader may have moved).
``cluster_db`` (module)
    A :class:`ClusterDatabase`: a database of this test module's own, created on the
    primary and already replicated; dropped after the module.
``pgbouncers`` (function; the PgBouncers live for the session)
    :class:`~router.testing.PgBouncers`: a PgBouncer in ``transaction`` mode in front of
    every node of the session's cluster (``bouncers.router_config(db)`` routes through them,
    with ``pooler_mode="transaction"``). PgBouncers a test killed are started again after it.

After every test that used the cluster, fault switches thrown through its methods (stop,
kill, pause, apply delay, promote) are undone: the next test starts from the original
topology with every replica streaming and caught up. A missing PostgreSQL installation is
an error, never a skip.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

import pytest

from router.config import RouterConfig
from router.testing._binaries import find_bindir, server_version
from router.testing._cluster import LocalCluster
from router.testing._config import router_config
from router.testing._errors import ClusterError
from router.testing._node import Node
from router.testing._patroni import PatroniCluster
from router.testing._pgbouncer import PgBouncers

__all__ = ["ClusterDatabase"]

_CLUSTER_FIXTURES = frozenset({"local_cluster", "cluster", "cluster_db", "pgbouncers"})
_db_numbers = count(1)


@dataclass(frozen=True)
class ClusterDatabase:
    """A database of one test module on every node of the local cluster."""

    name: str
    cluster: LocalCluster

    @property
    def primary_dsn(self) -> str:
        return self.cluster.primary.dsn_for(self.name)

    @property
    def replica_dsns(self) -> list[str]:
        return [r.dsn_for(self.name) for r in self.cluster.replicas]

    def dsn(self, node: Node | str) -> str:
        n = self.cluster.node(node) if isinstance(node, str) else node
        return n.dsn_for(self.name)

    def router_config(self, **options: Any) -> RouterConfig:
        """A :class:`~router.RouterConfig` for this database on the cluster's current nodes."""
        return router_config(self.cluster, self.name, **options)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("router", "router local PostgreSQL cluster")
    group.addoption(
        "--router-replicas",
        type=int,
        default=2,
        help="streaming replicas in the session's local cluster (default: 2)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    """Which PostgreSQL the session's cluster will run: the CI log shows each version's pass."""
    try:
        bindir = find_bindir()
        return f"router: PostgreSQL {server_version(bindir)} from {bindir}"
    except (ClusterError, OSError, subprocess.SubprocessError) as exc:
        return f"router: no usable PostgreSQL server binaries ({exc})"


@pytest.fixture(scope="session")
def local_cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """The session's running primary + streaming replicas."""
    replicas: int = request.config.getoption("--router-replicas")
    with LocalCluster(replicas=replicas) as cluster:
        yield cluster


@pytest.fixture
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The session's cluster, for tests that throw fault switches (undone afterwards)."""
    return local_cluster


@pytest.fixture(scope="session")
def _router_pgbouncers(local_cluster: LocalCluster) -> Iterator[PgBouncers]:
    # A short query_wait_timeout: a test whose server is gone behind a PgBouncer should hear
    # so in seconds, not PgBouncer's default two minutes.
    with PgBouncers(local_cluster, "transaction", query_wait_timeout=10) as bouncers:
        yield bouncers


@pytest.fixture
def pgbouncers(_router_pgbouncers: PgBouncers, local_cluster: LocalCluster) -> Iterator[PgBouncers]:
    """A PgBouncer in transaction mode in front of every node of the session's cluster."""
    bouncers = _router_pgbouncers
    before = bouncers.faults_used
    yield bouncers
    if bouncers.faults_used != before:
        bouncers.reset()


@pytest.fixture(scope="session")
def patroni_cluster() -> Iterator[PatroniCluster]:
    """The session's etcd + 3 Patroni members (one leader, two streaming replicas)."""
    with PatroniCluster(members=3) as cluster:
        yield cluster


def _database_name(module: str) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "_", module.rsplit(".", 1)[-1].lower()).strip("_")
    return f"t{next(_db_numbers)}_{slug}"[:63]


@pytest.fixture(scope="module")
def cluster_db(
    request: pytest.FixtureRequest, local_cluster: LocalCluster
) -> Iterator[ClusterDatabase]:
    """A database of this module's own, on the primary and already on every replica."""
    name = _database_name(request.module.__name__)
    local_cluster.create_database(name)
    try:
        yield ClusterDatabase(name, local_cluster)
    finally:
        local_cluster.reset()
        local_cluster.drop_database(name)


@pytest.fixture(autouse=True)
def _router_undo_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    if "patroni_cluster" in request.fixturenames:
        patroni: PatroniCluster = request.getfixturevalue("patroni_cluster")
        used = patroni.faults_used
        yield
        if patroni.faults_used != used:
            patroni.reset()
        return
    if _CLUSTER_FIXTURES.isdisjoint(request.fixturenames):
        yield
        return
    local: LocalCluster = request.getfixturevalue("local_cluster")
    before = local.faults_used
    yield
    if local.faults_used != before:
        local.reset()
