"""A second look at a replica whose time lag rests on its last replayed commit alone.

``now() - pg_last_xact_replay_timestamp()`` is the age of the last commit a replica replayed:
an upper bound of its time lag, and a loose one on an idle primary. WAL without commits (a
checkpoint, a standby snapshot, a WAL switch) moves the primary's position, and for the moment a
caught-up replica needs to receive and replay it (PostgreSQL 18 was measured at 0.2 s after a
``CHECKPOINT``: such records reach the standby when the WAL writer flushes them) a check sees
the replica behind, priced at its last commit's age: "lag 39.9 s" for a replica a few bytes and
milliseconds behind. From the second round on the primary's :class:`WalHistory` bounds it (a
replica that has replayed the position the primary had at ``t`` is at most ``now - t`` behind),
but a router that just started, or ``router status``, has one sample: the one the replica is
behind.

The second look, taken by the monitor within the same round: check the primary and those
replicas again a moment later (:func:`confirm_pauses`) and fold them in with
:func:`~router.core._topology.tick`. A replica that has by then replayed the primary's position
of that look is caught up; one that has replayed its position of the first look is at most the
time since that look behind; one that has not keeps the verdict it has. Both bounds are upper
bounds and the gate takes the smaller, so the time lag is never understated; no privilege is
needed. (The primary's ``pg_stat_replication`` would not do: its ``replay_lag`` turns NULL once
a standby has caught up on an idle primary, its LSN and lag columns are NULL to a user without
``pg_read_all_stats``, and its rows cannot be matched to a configured replica reliably: two
replicas on one host share ``client_addr``, an ``application_name`` is often just
``walreceiver``, a cascaded standby is not there at all. Knowing that the WAL between a
replica's position and the primary's holds no commit would take reading it: ``pg_walinspect``,
an extension with privileges of its own.)

A second look is taken only where it can change a verdict: a replica on its first check (which
is admitted at once when its lag is low) or an admitted one (which the round would drop), up,
replay not paused, not on another history (:meth:`Topology.off_timeline`), whose byte lag is
low and whose time lag, from its last commit alone (the history has no sample it has replayed)
or unknown (no commit replayed since the replica started), is above the re-admit mark; within
:data:`CONFIRM_WITHIN` seconds of the round.
"""

from __future__ import annotations

from typing import Final

from router.core._health import GateParams
from router.core._topology import Topology

__all__ = ["CONFIRM_WITHIN", "confirm_pauses", "unconfirmed"]

#: How long a round may spend on second looks, by default (seconds).
CONFIRM_WITHIN: Final = 1.0

#: The first pause before a second look, doubled for each further one. A caught-up replica
#: replays a new record within the WAL writer's delay (200 ms by default) and a round trip.
FIRST_PAUSE: Final = 0.05


def confirm_pauses(params: GateParams, within: float = CONFIRM_WITHIN) -> tuple[float, ...]:
    """The pauses before each second look of a round, in seconds, at most *within* in all:
    ``(0.05, 0.1, 0.2, 0.4)`` by default; none without a time budget. (Each look samples the
    primary afresh: a replica that has replayed that position is caught up, however late the
    look.)"""
    if params.max_lag_seconds is None:
        return ()
    pauses: list[float] = []
    pause, spent = FIRST_PAUSE, 0.0
    while spent + pause <= within:
        pauses.append(pause)
        spent += pause
        pause *= 2
    return tuple(pauses)


def unconfirmed(before: Topology, after: Topology, params: GateParams) -> tuple[str, ...]:
    """Replicas of *after* worth a second look (see the module's docstring).

    *after* is the topology after a round of checks (or a second look) folded into *before*,
    the topology as the round found it. Pure; config order.
    """
    budget = params.max_lag_seconds
    latest = after.primary_lsn
    if budget is None or latest is None:
        return ()
    mark = budget * params.readmit_fraction
    history = after.wal
    names = []
    for node in after.replicas:
        replay = node.replay_lsn
        if node.admitted or node.replay_paused or replay is None or replay >= latest:
            continue
        if node.lag_bytes is None or node.checked_at is None or after.off_timeline(node):
            continue  # lag unknown; or on another history, where positions say nothing
        if params.max_lag_bytes is not None and (
            node.lag_bytes > params.max_lag_bytes * params.readmit_fraction
        ):
            continue  # the bytes keep it out whatever the time says
        if node.lag_seconds is not None and node.lag_seconds <= mark:
            continue  # not the time lag that holds it out (a re-admit hold)
        if history.seconds_behind(replay, node.checked_at) is not None:
            continue  # the history bounds it (above the mark): its next rounds tighten that
        old = before.by_name.get(node.name)
        if old is not None and (old.admitted or (old.checked_at is None and not old.failures)):
            names.append(node.name)
    return tuple(names)
