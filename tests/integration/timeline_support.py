"""A former primary back as a standby on the history the cluster left (issue 17), staged on a
:class:`~router.testing.LocalCluster` of its own with one replica: the primary writes WAL its
stopped replica never receives and crashes, the replica is promoted (timeline 2), and the
former primary is started as its standby without ``pg_rewind``. It replays its own WAL, past
the new timeline's fork, and cannot stream."""

from __future__ import annotations

import psycopg

from router.testing import LocalCluster, Node

#: WAL the replica never receives: 20,000 rows of 200 bytes (about 4 MB).
FILLER = (
    "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) AS g"
)


def diverge(cluster: LocalCluster) -> tuple[Node, Node]:
    """Stop the replica, have the primary write :data:`FILLER` and crash, promote the replica.
    Returns ``(former, promoted)``; the former primary stays stopped (see :func:`rejoin`)."""
    former, promoted = cluster.primary, cluster.replicas[0]
    cluster.stop(promoted)
    with psycopg.connect(former.dsn, autocommit=True) as conn:
        conn.execute(FILLER)
    cluster.kill(former)
    cluster.start_node(promoted, streaming=False)
    cluster.promote(promoted)
    return former, promoted


def rejoin(cluster: LocalCluster, former: Node, promoted: Node) -> None:
    """Start *former* as a standby of *promoted*, as it is (no rewind)."""
    cluster.follow(former, promoted)
