"""Test support: a real local primary + streaming replicas, and a pytest plugin.

``LocalCluster`` starts PostgreSQL from the server binaries on this machine::

    from router.testing import LocalCluster

    with LocalCluster(replicas=2) as cluster:
        print(cluster.primary.dsn, [r.dsn for r in cluster.replicas])
        cluster.pause_replay(cluster.replicas[0])

``PgBouncers(cluster, "transaction")`` puts a PgBouncer in front of every node.

The pytest plugin (registered automatically when router is installed) provides the
``local_cluster``, ``cluster``, ``cluster_db`` and ``pgbouncers`` fixtures; see
:mod:`router.testing.pytest_plugin`.
"""

from __future__ import annotations

from router.testing._binaries import find_bindir, server_version
from router.testing._cleanup import reap_orphans
from router.testing._cluster import LocalCluster, NodeStatus
from router.testing._config import router_config
from router.testing._errors import ClusterError
from router.testing._node import Node, NodeRole, StopMode
from router.testing._patroni import PatroniCluster
from router.testing._patroni_parts import Member, find_etcd, find_patroni
from router.testing._pgbouncer import Bouncer, PgBouncers, find_pgbouncer

__all__ = [
    "Bouncer",
    "ClusterError",
    "LocalCluster",
    "Member",
    "Node",
    "NodeRole",
    "NodeStatus",
    "PatroniCluster",
    "PgBouncers",
    "StopMode",
    "find_bindir",
    "find_etcd",
    "find_patroni",
    "find_pgbouncer",
    "reap_orphans",
    "router_config",
    "server_version",
]
