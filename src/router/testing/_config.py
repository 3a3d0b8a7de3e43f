"""A router configuration for a local cluster: the bridge between the harness and the router."""

from __future__ import annotations

from typing import Any

from router.config import NodeConfig, RouterConfig
from router.testing._cluster import LocalCluster

__all__ = ["router_config"]


def router_config(
    cluster: LocalCluster, database: str | None = None, **options: Any
) -> RouterConfig:
    """A :class:`RouterConfig` for *cluster*'s current primary and replicas, nodes named as in
    the cluster (``primary``, ``replica1``, ...), connecting to *database* (default: the
    nodes' default database). *options* are any other ``RouterConfig`` fields."""

    def node(n: Any) -> NodeConfig:
        return NodeConfig(dsn=n.dsn_for(database or n.database), name=n.name)

    return RouterConfig(
        primary=node(cluster.primary),
        replicas=[node(r) for r in cluster.replicas],
        **options,
    )
