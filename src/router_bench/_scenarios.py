"""The scenarios: what happens to the embedded cluster around and during each run.

- ``no-lag``: nothing.
- ``delay-0.2s`` / ``delay-1s``: ``recovery_min_apply_delay`` on ``replica1`` for the whole
  cell (every subject of it runs with that replica behind).
- ``replica-killed``: in every run, ``replica1`` is SIGKILLed at 1/3 of the timed window and
  started again at 2/3; before the next run it is streaming and has caught up.
- ``replay-paused``: in every run, ``replica1`` stops replaying at 1/3 and resumes at 2/3.

The fault switches are :class:`~router.testing.LocalCluster` calls, which block: they run on
a thread, never on the event loop the workers share. After a cell the cluster is reset to
its original state (every node up, replay resumed, no delay, replicas caught up).
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Final

from router.testing import LocalCluster
from router_bench._schema import ScenarioName

__all__ = ["FAULTED_REPLICA", "Scenario", "scenario"]

FAULTED_REPLICA: Final = "replica1"
CATCH_UP_TIMEOUT: Final = 60.0
DELAYS: Final[dict[ScenarioName, float]] = {"delay-0.2s": 0.2, "delay-1s": 1.0}


async def _until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - perf_counter()))


class Scenario:
    """``no-lag``; the base of the others. Each hook is awaited by the runner."""

    needs_cluster = False

    def __init__(self, name: ScenarioName, cluster: LocalCluster | None) -> None:
        if self.needs_cluster and cluster is None:
            raise ValueError(f"scenario {name} needs the embedded cluster")
        self.name = name
        self._cluster = cluster

    @property
    def cluster(self) -> LocalCluster:
        assert self._cluster is not None
        return self._cluster

    async def begin_cell(self) -> None:
        """Before the first run of a cell."""

    async def during(self, t0: float, duration: float) -> None:
        """From the opening of a run's timed window (``t0``, a ``perf_counter`` time)."""

    async def after_run(self) -> None:
        """After a run's workers ended, before the next subject opens."""

    async def end_cell(self) -> None:
        """After the last run of a cell (also when it failed)."""


class _Fault(Scenario):
    needs_cluster = True

    async def end_cell(self) -> None:
        await asyncio.to_thread(self.cluster.reset)


class _Delay(_Fault):
    async def begin_cell(self) -> None:
        await asyncio.to_thread(self.cluster.set_apply_delay, FAULTED_REPLICA, DELAYS[self.name])


class _Killed(_Fault):
    async def during(self, t0: float, duration: float) -> None:
        await _until(t0 + duration / 3)
        await asyncio.to_thread(self.cluster.kill, FAULTED_REPLICA)
        await _until(t0 + 2 * duration / 3)
        # Returns once the replica streams again (crash recovery first): often after the
        # window has closed; the runner waits for it before the next run.
        await asyncio.to_thread(self.cluster.start_node, FAULTED_REPLICA)

    async def after_run(self) -> None:
        await asyncio.to_thread(self.cluster.wait_caught_up, FAULTED_REPLICA, CATCH_UP_TIMEOUT)


class _Paused(_Fault):
    async def during(self, t0: float, duration: float) -> None:
        await _until(t0 + duration / 3)
        await asyncio.to_thread(self.cluster.pause_replay, FAULTED_REPLICA)
        await _until(t0 + 2 * duration / 3)
        await asyncio.to_thread(self.cluster.resume_replay, FAULTED_REPLICA)

    async def after_run(self) -> None:
        await asyncio.to_thread(self.cluster.wait_caught_up, FAULTED_REPLICA, CATCH_UP_TIMEOUT)


_KINDS: Final[dict[ScenarioName, type[Scenario]]] = {
    "no-lag": Scenario,
    "delay-0.2s": _Delay,
    "delay-1s": _Delay,
    "replica-killed": _Killed,
    "replay-paused": _Paused,
}


def scenario(name: ScenarioName, cluster: LocalCluster | None) -> Scenario:
    """The hooks of scenario *name*; every one but ``no-lag`` needs *cluster*."""
    return _KINDS[name](name, cluster)
