"""Where a read goes: the one decision every read makes, pure.

The shells ask :func:`choose_read` with the current topology, the caller's consistency level
and floor, and the node statistics the policy needs; they get back a :class:`Decision`
naming the node and *why*. Writes need no choice (the primary, or an error when there is
none or there are two) and are decided by :func:`choose_write`.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from random import Random

from router.core._eligibility import Cause, Consistency, Eligibility, eligible
from router.core._lsn import Lsn
from router.core._policies import Candidate, CandidateLike, Policy
from router.core._topology import Topology

__all__ = [
    "Decision",
    "Reason",
    "choose_read",
    "choose_write",
    "pick_read",
    "plain_read",
    "read_of",
]


class Reason(StrEnum):
    """Why a statement went where it did: :attr:`Decision.reason`, also the ``router.reason``
    telemetry attribute and the key of the decision counts in ``stats()``. A ``str`` enum: its
    values (``"classifier"``, ``"lag-gate"``, ...) compare equal to the strings."""

    CLASSIFIER = "classifier"  # a READ on a replica, a WRITE on the primary
    HINT = "hint"  # a /* router:primary */ comment
    PINNED = "pinned"  # session state or a write earlier in the session's transaction
    TRANSACTION = "transaction"  # the node the transaction started on
    LAG_GATE = "lag-gate"  # replicas too far behind: the primary serves
    CONSISTENCY = "consistency"  # strong, or no replica at the session's floor yet
    FALLBACK = "fallback"  # no replica at all (down, none configured)
    RETRY = "retry"  # a retried read, or a write retried after rediscovery
    SHADOW = "shadow"  # shadow mode: would have gone elsewhere


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a statement goes, and why: what the ``last_decision`` property of a router (or
    of a SQLAlchemy session) holds for the latest statement of the current task (async) or
    thread (sync).

    - ``node``: the node's name (:attr:`NodeConfig.name <router.NodeConfig.name>`), or ``None``
      when nothing can serve the statement; then ``detail`` says why;
    - ``primary``: whether that node is (or would be) the primary;
    - ``reason``: the kind of reason (:class:`Reason`), ``detail``: the reason in words
      (``"read"``, ``"write"``, which replicas were excluded and why, ...);
    - ``wait_for``: wait on the chosen replica until it has replayed this position before
      running the read (``ryw_wait``); ``None`` for no wait;
    - ``ask``: with ``wait_for``, the replica missed a wait just now: first ask it (one
      query, no wait) whether it has caught up with the position it missed, and wait only if
      it has (see :class:`~router.core.WaitMisses`).

    Frozen: a decision is a value, safe to keep and compare."""

    node: str | None
    primary: bool
    reason: Reason
    detail: str
    wait_for: Lsn | None = None
    ask: bool = False


# The everyday decisions, made once per node: reads and writes allocate nothing to decide.
_PLAIN_READS: dict[str, Decision] = {}
_PLAIN_WRITES: dict[str, Decision] = {}


def plain_read(node: str) -> Decision:
    """The everyday read on replica *node* (reason ``classifier``): one value per node."""
    decision = _PLAIN_READS.get(node)
    if decision is None:
        decision = _PLAIN_READS[node] = Decision(node, False, Reason.CLASSIFIER, "read")
    return decision


def choose_write(topology: Topology) -> Decision:
    """The primary, or a decision with ``node=None`` saying why there is none usable."""
    primary = topology.primary
    if primary is None:
        why = "two nodes claim to be primary" if topology.split_brain else "no primary is reachable"
        return Decision(None, True, Reason.CLASSIFIER, why)
    decision = _PLAIN_WRITES.get(primary)
    if decision is None:
        decision = _PLAIN_WRITES[primary] = Decision(primary, True, Reason.CLASSIFIER, "write")
    return decision


def choose_read(
    topology: Topology,
    consistency: Consistency,
    policy: Policy,
    stats: Mapping[str, CandidateLike],
    rng: Random,
    *,
    floor: Lsn | None = None,
    wait: bool = False,
    wait_within: float | None = None,
    no_wait: Container[str] = (),
    ask: Container[str] = (),
    exclude: Container[str] = (),
    fallback_to_primary: bool = True,
    primary_weight: float = 0.0,
) -> Decision:
    """Choose the node for a read.

    Only eligible replicas (healthy, in recovery, admitted by the lag gate, at or past
    *floor*) are offered to *policy*; nodes in *exclude* (failed on this call) are skipped.
    With *wait*, a replica that is eligible but for the floor may be chosen, with
    ``wait_for`` set; with *wait_within* (the wait's length, seconds) only one whose last
    measured lag is within it (or unknown): a replica a known 0.2 s behind is not worth
    10 ms of waiting, every such read would wait in vain and then go to the primary; and
    none in *no_wait* (those that recently missed a wait). When no replica can be waited on,
    one in *no_wait* and in *ask* (due to be asked whether it has caught up since) is, the one
    known to have replayed the most, with ``ask`` set.
    Otherwise the primary serves, or, with ``fallback_to_primary`` false,
    the decision has ``node=None`` and the reason why no replica qualifies. With a positive
    *primary_weight* the primary is offered to the policy beside the eligible replicas, with
    that weight (it is past every floor).
    """
    primary = topology.primary
    if consistency is Consistency.STRONG:
        return _on_primary(primary, Reason.CONSISTENCY, "consistency strong")
    found = eligible(topology, consistency, floor=floor)
    names = [n for n in found.replicas if n not in exclude] if exclude else found.replicas
    if names:
        candidates: list[CandidateLike] = [stats[n] for n in names]
        if primary_weight > 0 and primary is not None and primary not in exclude:
            own = stats[primary]
            candidates.append(Candidate(primary, primary_weight, own.outstanding, own.ewma_latency))
        return pick_read(primary, candidates, policy, rng)
    passed_over: list[str] = []
    if wait and floor is not None:
        waiting = []
        asking = []
        for n in found.behind_floor:
            if n in exclude:
                continue
            if not _may_catch_up(topology, n, wait_within):
                passed_over.append(f"{n} is too far behind to wait on")
            elif n not in no_wait:
                waiting.append(n)
            elif n in ask:
                asking.append(n)
            else:
                passed_over.append(f"{n} missed a wait just now")
        if waiting:
            choice = policy([stats[n] for n in waiting], rng)
            if choice is not None:
                return Decision(
                    choice.name, False, Reason.CONSISTENCY, f"wait for {floor}", wait_for=floor
                )
        if asking and policy([stats[n] for n in asking], rng) is not None:
            # The policy may serve replicas at all; the one most likely caught up is asked.
            name = max(asking, key=lambda n: _replay_of(topology, n))
            detail = f"ask {name}, which missed a wait just now, then wait for {floor}"
            return Decision(name, False, Reason.CONSISTENCY, detail, wait_for=floor, ask=True)
        passed_over.extend(f"{n} missed a wait just now" for n in asking)
    reason, detail = _why_none(found, exclude)
    if passed_over:
        detail = f"{detail}; not waited on: {', '.join(passed_over)}"
    if not fallback_to_primary:
        return Decision(None, False, reason, detail)
    return _on_primary(primary, reason, detail)


def pick_read(
    primary: str | None, candidates: Sequence[CandidateLike], policy: Policy, rng: Random
) -> Decision:
    """The decision among *candidates* (eligible replicas, and the primary when it is offered
    with ``primary_read_weight``) that *policy* picks: the one step of :func:`choose_read`
    that the routing engine's precomputed read path (``RoutingEngine.read_decision``) shares."""
    return read_of(primary, policy(candidates, rng))


def read_of(primary: str | None, choice: CandidateLike | None) -> Decision:
    """The decision for the candidate a policy picked (``None``: the primary-only policy's
    answer): the second half of :func:`pick_read`, for a caller that asked the policy itself
    (``RoutingEngine.read_decision``'s precomputed plan)."""
    if choice is None:
        return _on_primary(primary, Reason.CLASSIFIER, "policy primary-only")
    if choice.name == primary:
        return Decision(primary, True, Reason.CLASSIFIER, "read (primary_read_weight)")
    return plain_read(choice.name)


def _may_catch_up(topology: Topology, name: str, within: float | None) -> bool:
    if within is None:
        return True
    node = topology.by_name.get(name)
    lag = node.lag_seconds if node is not None else None
    return lag is None or lag <= within


def _replay_of(topology: Topology, name: str) -> int:
    node = topology.by_name.get(name)
    replay = node.replay_lsn if node is not None else None
    return -1 if replay is None else int(replay)


def _on_primary(primary: str | None, reason: Reason, detail: str) -> Decision:
    if primary is None:
        return Decision(None, True, reason, f"{detail}; no primary is reachable")
    return Decision(primary, True, reason, detail)


def _why_none(found: Eligibility, exclude: Container[str]) -> tuple[Reason, str]:
    if found.replicas:  # there were some, and every one of them failed on this call
        return Reason.RETRY, "every eligible replica failed on this call"
    causes = {e.cause for e in found.excluded if e.name not in exclude}
    if Cause.FLOOR in causes:
        return Reason.CONSISTENCY, found.reason
    if Cause.LAG_GATE in causes or Cause.STALENESS in causes:
        return Reason.LAG_GATE, found.reason
    return Reason.FALLBACK, found.reason
