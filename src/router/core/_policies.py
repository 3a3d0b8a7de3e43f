"""Replica choice: small policies that pick one candidate among the eligible ones.

A policy is any callable ``(candidates, rng) -> candidate | None``, or an object whose
``choose`` method is one (:func:`as_policy` resolves either; the classes here are both).
``candidates`` is a non-empty sequence of objects with ``name``, ``weight``, ``outstanding``
and ``ewma_latency`` (:class:`Candidate`, or the shell's own per-node stats object, so that
nothing is allocated per call); ``rng`` is the caller's ``random.Random``. ``None`` means
"not a replica: use the primary"; :func:`primary_only` always says so, and a shell can test
``policy is primary_only`` once and skip eligibility altogether.

Weights: ``random`` picks in proportion to them; ``least-outstanding`` and ``latency`` divide
their cost by them; ``round-robin`` ignores them except that a weight of 0 is skipped. Every
policy picks a weight-0 candidate only when all candidates weigh 0 (so a primary offered with
weight 0 serves reads only when nothing else can).

These run once per routed read: no allocation, no sorting, a handful of comparisons.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from random import Random
from typing import Any, Final, Protocol, TypeVar, cast

__all__ = [
    "POLICY_NAMES",
    "Candidate",
    "CandidateLike",
    "Ewma",
    "LatencyPolicy",
    "LeastOutstandingPolicy",
    "Policy",
    "RandomPolicy",
    "RoundRobinPolicy",
    "as_policy",
    "policy_from_name",
    "primary_only",
]


class CandidateLike(Protocol):
    """What a policy reads from a candidate."""

    @property
    def name(self) -> str: ...
    @property
    def weight(self) -> float: ...
    @property
    def outstanding(self) -> int: ...
    @property
    def ewma_latency(self) -> float | None: ...


C = TypeVar("C", bound=CandidateLike)


class Policy(Protocol):
    """Picks one of ``candidates`` (never empty) and returns it, or ``None`` for the primary.

    Generic, so a shell passing its own stats objects gets one of them back. A hand-written
    policy type-checks as ``def pick(candidates: Sequence[Any], rng: Random) -> Any``.
    """

    def __call__(self, candidates: Sequence[C], rng: Random, /) -> C | None: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """A replica offered to a policy: ``weight`` >= 0, ``outstanding`` requests in flight,
    ``ewma_latency`` in seconds (``None``: no sample yet). Raises ``ValueError`` for a negative
    or non-finite weight."""

    name: str
    weight: float = 1.0
    outstanding: int = 0
    ewma_latency: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.weight < math.inf:
            raise ValueError(f"weight must be a finite number >= 0, not {self.weight}")


def primary_only(candidates: Sequence[Any], rng: Random, /) -> None:
    """Never a replica."""


class RoundRobinPolicy:
    """Each candidate in turn. ``itertools.count`` is atomic under the GIL, so threads share one
    without a lock; when the candidate set changes the rotation simply continues over the new
    one."""

    __slots__ = ("_counter",)

    def __init__(self) -> None:
        self._counter = itertools.count()

    def __call__(self, candidates: Sequence[C], rng: Random, /) -> C:
        n = len(candidates)
        candidate = candidates[next(self._counter) % n]
        if candidate.weight > 0:
            return candidate
        # Skipping by drawing further counter values (not by stepping to the neighbour) keeps
        # the rotation fair: the node after a weight-0 one does not get its turn too.
        for _ in range(1, n):
            other = candidates[next(self._counter) % n]
            if other.weight > 0:
                return other
        return candidates[next(self._counter) % n]  # all weigh 0: rotate over them all

    choose = __call__


class RandomPolicy:
    """A random candidate, in proportion to ``weight`` (uniform when all weigh the same)."""

    __slots__ = ()

    def __call__(self, candidates: Sequence[C], rng: Random, /) -> C:
        total = 0.0
        for candidate in candidates:
            total += candidate.weight
        if total <= 0:
            return candidates[int(rng.random() * len(candidates))]
        point = rng.random() * total
        for candidate in candidates:
            point -= candidate.weight
            if point < 0:
                return candidate
        # Rounding left `point` a hair above zero: the last candidate with weight owns the top.
        for candidate in reversed(candidates):  # pragma: no cover - float rounding only
            if candidate.weight > 0:
                return candidate
        raise AssertionError("unreachable")  # pragma: no cover

    choose = __call__


class LeastOutstandingPolicy:
    """The candidate with the fewest requests in flight per unit of weight,
    ``(outstanding + 1) / weight``; ties broken at random (reservoir sampling, no list)."""

    __slots__ = ()

    def __call__(self, candidates: Sequence[C], rng: Random, /) -> C:
        best = candidates[0]
        best_cost = _load(best)
        ties = 1
        for candidate in candidates[1:]:
            cost = _load(candidate)
            if cost < best_cost:
                best, best_cost, ties = candidate, cost, 1
            elif cost == best_cost:
                ties += 1
                if rng.random() * ties < 1:
                    best = candidate
        return best

    choose = __call__


def _load(candidate: CandidateLike) -> float:
    weight = candidate.weight
    return (candidate.outstanding + 1) / weight if weight > 0 else math.inf


class LatencyPolicy:
    """Power of two choices on MaxScale's ``ewma_latency * (outstanding + 1) / weight``.

    Two distinct candidates are drawn at random and the cheaper one wins (ties: the first
    drawn, itself random). A candidate with no latency sample yet borrows the other's, so it
    competes on load alone and a new node gets tried without being flooded. With probability
    ``explore`` (default 2 %) the draw is a plain uniform pick instead: the slowest node still
    gets some traffic, so its average follows reality once it recovers. Feeding the monitor's
    check round trips into the same averages keeps them fresh too.
    """

    __slots__ = ("explore",)

    def __init__(self, explore: float = 0.02) -> None:
        if not 0 <= explore <= 1:
            raise ValueError(f"explore must be between 0 and 1, not {explore}")
        self.explore = explore

    def __call__(self, candidates: Sequence[C], rng: Random, /) -> C:
        n = len(candidates)
        if n == 1:
            return candidates[0]
        r = rng.random()
        if r < self.explore:
            return _weighted(candidates[int(r / self.explore * n) % n], candidates)
        i = int(rng.random() * n)
        j = int(rng.random() * (n - 1))
        if j >= i:
            j += 1
        a, b = candidates[i], candidates[j]
        la, lb = a.ewma_latency, b.ewma_latency
        if la is None:
            la = 0.0 if lb is None else lb
        if lb is None:
            lb = la
        cost_a = la * (a.outstanding + 1) / a.weight if a.weight > 0 else math.inf
        cost_b = lb * (b.outstanding + 1) / b.weight if b.weight > 0 else math.inf
        return _weighted(b if cost_b < cost_a else a, candidates)

    choose = __call__


def _weighted(choice: C, candidates: Sequence[C]) -> C:
    """``choice``, unless it weighs 0 and another candidate does not."""
    if choice.weight > 0:
        return choice
    for candidate in candidates:
        if candidate.weight > 0:
            return candidate
    return choice


class Ewma:
    """An exponentially weighted moving average, for per-node response times.

    ``alpha`` is the weight of each new sample; :meth:`from_half_life` gives the ``alpha``
    under which a sample's weight halves after ``samples`` further samples. The first sample
    is taken as is. Not locked: two racing updates may lose one sample, which an average
    shrugs off.
    """

    __slots__ = ("alpha", "value")

    def __init__(self, alpha: float = 0.2, value: float | None = None) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], not {alpha}")
        self.alpha = alpha
        self.value = value

    @classmethod
    def from_half_life(cls, samples: float) -> Ewma:
        if not samples > 0:
            raise ValueError(f"half-life must be > 0 samples, not {samples}")
        return cls(1 - 0.5 ** (1 / samples))

    def update(self, sample: float) -> float:
        """Fold in one sample; returns the new average."""
        value = self.value
        value = sample if value is None else value + self.alpha * (sample - value)
        self.value = value
        return value

    def __repr__(self) -> str:
        return f"Ewma(alpha={self.alpha:g}, value={self.value!r})"


_FACTORIES: Final[dict[str, Callable[[], Policy]]] = {
    "primary-only": lambda: primary_only,
    "round-robin": RoundRobinPolicy,
    "random": RandomPolicy,
    "least-outstanding": LeastOutstandingPolicy,
    "latency": LatencyPolicy,
}

POLICY_NAMES: Final = tuple(_FACTORIES)


def as_policy(policy: object) -> Policy:
    """The callable to use for ``policy``: its ``choose`` method when it has one (the policies
    here do, and so may users' objects), else ``policy`` itself if callable. ``TypeError``
    otherwise. Resolve once, at construction, not per read."""
    choose = getattr(policy, "choose", None)
    if callable(choose):
        return cast("Policy", choose)
    if callable(policy):
        return cast("Policy", policy)
    raise TypeError(
        f"a policy must be callable or have a choose() method, not {type(policy).__name__}"
    )


def policy_from_name(name: str) -> Policy:
    """A fresh policy for one of :data:`POLICY_NAMES` (round-robin keeps its own counter).

    Raises ``ValueError`` naming the choices for any other name.
    """
    try:
        factory = _FACTORIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}"
        ) from None
    return factory()
