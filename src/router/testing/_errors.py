"""Errors of the local cluster harness."""

from __future__ import annotations

__all__ = ["ClusterError"]


class ClusterError(RuntimeError):
    """The local cluster could not be built, started or changed as asked.

    The message names the node and, where a server said why, the tail of its log.
    """
