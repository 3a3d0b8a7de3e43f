"""Replica choice policies: distributions with a seeded rng, weights, registry, EWMA."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from random import Random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core._policies import (
    POLICY_NAMES,
    Candidate,
    Ewma,
    LatencyPolicy,
    LeastOutstandingPolicy,
    Policy,
    RandomPolicy,
    RoundRobinPolicy,
    as_policy,
    policy_from_name,
    primary_only,
)

THREE = [Candidate("a"), Candidate("b"), Candidate("c")]


def tally(policy: Policy, candidates: Sequence[Candidate], n: int, seed: int = 7) -> Counter[str]:
    rng = Random(seed)
    counts: Counter[str] = Counter()
    for _ in range(n):
        choice = policy(candidates, rng)
        assert choice is not None
        counts[choice.name] += 1
    return counts


def test_registry() -> None:
    assert POLICY_NAMES == ("primary-only", "round-robin", "random", "least-outstanding", "latency")
    assert policy_from_name("primary-only") is primary_only
    assert isinstance(policy_from_name("round-robin"), RoundRobinPolicy)
    assert policy_from_name("round-robin") is not policy_from_name("round-robin")
    with pytest.raises(ValueError, match="unknown policy 'fastest'; choose one of primary-only"):
        policy_from_name("fastest")


def test_primary_only_never_picks_a_replica() -> None:
    policy: Policy = primary_only
    assert policy(THREE, Random(1)) is None


def test_round_robin_is_exact() -> None:
    policy = RoundRobinPolicy()
    picks = [policy(THREE, Random(0)).name for _ in range(9)]
    assert picks == ["a", "b", "c"] * 3


def test_round_robin_skips_weight_zero_unless_all_are() -> None:
    policy = RoundRobinPolicy()
    cands = [Candidate("a"), Candidate("p", weight=0.0), Candidate("b")]
    assert [policy(cands, Random(0)).name for _ in range(6)] == ["a", "b"] * 3
    zeros = [Candidate("x", weight=0.0), Candidate("y", weight=0.0)]
    assert {policy(zeros, Random(0)).name for _ in range(4)} == {"x", "y"}


def test_round_robin_is_thread_safe() -> None:
    policy = RoundRobinPolicy()
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def work() -> None:
        local = Counter(policy(THREE, Random(0)).name for _ in range(3000))
        with lock:
            counts.update(local)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == {"a": 4000, "b": 4000, "c": 4000}


def test_random_is_weighted() -> None:
    cands = [Candidate("a", weight=1.0), Candidate("b", weight=2.0), Candidate("c", weight=5.0)]
    counts = tally(RandomPolicy(), cands, 16_000)
    for name, share in (("a", 1 / 8), ("b", 2 / 8), ("c", 5 / 8)):
        assert counts[name] / 16_000 == pytest.approx(share, abs=0.015)


def test_random_uniform_and_zero_weights() -> None:
    counts = tally(RandomPolicy(), THREE, 9000)
    assert all(abs(counts[n] - 3000) < 200 for n in "abc")
    cands = [Candidate("a"), Candidate("p", weight=0.0)]
    assert tally(RandomPolicy(), cands, 500) == {"a": 500}
    zeros = [Candidate("x", weight=0.0), Candidate("y", weight=0.0)]
    assert set(tally(RandomPolicy(), zeros, 100)) == {"x", "y"}


def test_random_is_reproducible_with_a_seed() -> None:
    assert tally(RandomPolicy(), THREE, 50, seed=3) == tally(RandomPolicy(), THREE, 50, seed=3)


def test_least_outstanding_picks_the_minimum() -> None:
    cands = [
        Candidate("a", outstanding=3),
        Candidate("b", outstanding=1),
        Candidate("c", outstanding=2),
    ]
    assert tally(LeastOutstandingPolicy(), cands, 100) == {"b": 100}


def test_least_outstanding_breaks_ties_at_random() -> None:
    cands = [
        Candidate("a", outstanding=1),
        Candidate("b", outstanding=5),
        Candidate("c", outstanding=1),
    ]
    counts = tally(LeastOutstandingPolicy(), cands, 4000)
    assert set(counts) == {"a", "c"}
    assert abs(counts["a"] - 2000) < 200


def test_least_outstanding_divides_by_weight() -> None:
    # (4 + 1) / 4 < (1 + 1) / 1: the heavier node takes more in flight.
    cands = [Candidate("small", outstanding=1), Candidate("big", weight=4.0, outstanding=4)]
    assert tally(LeastOutstandingPolicy(), cands, 10) == {"big": 10}
    cands = [Candidate("p", weight=0.0), Candidate("r", outstanding=50)]
    assert tally(LeastOutstandingPolicy(), cands, 10) == {"r": 10}


def test_latency_prefers_the_fast_node_but_samples_the_others() -> None:
    cands = [
        Candidate("fast", ewma_latency=0.001),
        Candidate("mid", ewma_latency=0.002),
        Candidate("slow", ewma_latency=0.010),
    ]
    counts = tally(LatencyPolicy(), cands, 30_000)
    # P2C over 3: fast wins 2 of 3 pairs, mid 1 of 3, slow none; exploration (2 %) spreads a bit.
    assert counts["fast"] / 30_000 == pytest.approx(2 / 3 * 0.98 + 0.02 / 3, abs=0.015)
    assert counts["mid"] / 30_000 == pytest.approx(1 / 3 * 0.98 + 0.02 / 3, abs=0.015)
    assert 0 < counts["slow"] / 30_000 < 0.015
    assert tally(LatencyPolicy(explore=0.0), cands, 3000)["slow"] == 0


def test_latency_weighs_load() -> None:
    # MaxScale's score: 1 ms * (9 + 1) = 10 > 3 ms * (0 + 1) = 3.
    cands = [
        Candidate("busy", ewma_latency=0.001, outstanding=9),
        Candidate("idle", ewma_latency=0.003),
    ]
    assert tally(LatencyPolicy(explore=0.0), cands, 200) == {"idle": 200}


def test_latency_tries_a_new_node() -> None:
    cands = [Candidate("known", ewma_latency=0.002), Candidate("new")]
    counts = tally(LatencyPolicy(explore=0.0), cands, 2000)
    # Unknown latency borrows the other's: equal cost, a coin toss; load decides ...
    assert 800 < counts["new"] < 1200
    cands = [Candidate("known", ewma_latency=0.002), Candidate("new", outstanding=3)]
    assert tally(LatencyPolicy(explore=0.0), cands, 200) == {"known": 200}  # ... so no flood
    both_new = [Candidate("x"), Candidate("y")]
    assert set(tally(LatencyPolicy(explore=0.0), both_new, 200)) == {"x", "y"}


def test_latency_respects_zero_weight() -> None:
    cands = [
        Candidate("p", weight=0.0, ewma_latency=0.0001),
        Candidate("q", weight=0.0),
        Candidate("r"),
    ]
    assert tally(LatencyPolicy(explore=0.5), cands, 2000) == {"r": 2000}
    assert tally(LatencyPolicy(), [Candidate("solo", weight=0.0)], 3) == {"solo": 3}


def test_plain_callable_is_a_policy() -> None:
    def first(candidates: Sequence[Any], rng: Random) -> Any:
        return candidates[0]

    policy: Policy = first
    assert tally(policy, THREE, 3) == {"a": 3}


def test_policies_take_any_candidate_shaped_object() -> None:
    @dataclass
    class Stats:  # what a shell might keep per node, mutated in place
        name: str
        weight: float = 1.0
        outstanding: int = 0
        ewma_latency: float | None = None

    stats = [Stats("a", outstanding=2), Stats("b")]
    for name in POLICY_NAMES[1:]:
        choice = policy_from_name(name)(stats, Random(1))
        assert choice in stats
    assert LeastOutstandingPolicy()(stats, Random(1)) is stats[1]


@given(
    st.lists(
        st.builds(
            Candidate,
            name=st.text(min_size=1, max_size=3),
            weight=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
            outstanding=st.integers(0, 20),
            ewma_latency=st.none() | st.floats(0, 1),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(POLICY_NAMES[1:]),
    st.integers(0, 2**32),
)
def test_every_policy_returns_a_candidate_with_weight_if_any(
    cands: list[Candidate], name: str, seed: int
) -> None:
    choice = policy_from_name(name)(cands, Random(seed))
    assert choice is not None
    assert any(choice is c for c in cands)
    if any(c.weight > 0 for c in cands):
        assert choice.weight > 0


def test_candidate_validation() -> None:
    with pytest.raises(ValueError, match="weight"):
        Candidate("a", weight=-1.0)
    with pytest.raises(ValueError, match="weight"):
        Candidate("a", weight=float("nan"))
    with pytest.raises(ValueError, match="explore"):
        LatencyPolicy(explore=2.0)


def test_ewma() -> None:
    avg = Ewma(alpha=0.5)
    assert avg.value is None
    assert avg.update(4.0) == 4.0  # the first sample is taken as is
    assert avg.update(2.0) == 3.0
    assert avg.update(3.0) == 3.0
    assert repr(avg) == "Ewma(alpha=0.5, value=3.0)"
    half = Ewma.from_half_life(10)
    half.update(0.0)
    for _ in range(10):
        half.update(1.0)
    assert half.value == pytest.approx(0.5)
    with pytest.raises(ValueError, match="alpha"):
        Ewma(alpha=0.0)
    with pytest.raises(ValueError, match="half-life"):
        Ewma.from_half_life(0)


@given(st.lists(st.floats(min_value=0, max_value=10), min_size=1, max_size=50), st.floats(0.01, 1))
def test_ewma_stays_within_the_samples(samples: list[float], alpha: float) -> None:
    avg = Ewma(alpha)
    for s in samples:
        avg.update(s)
    assert avg.value is not None
    assert min(samples) - 1e-9 <= avg.value <= max(samples) + 1e-9


def test_as_policy_takes_callables_and_choosers() -> None:
    class Chooser:
        def choose(self, candidates: Sequence[Any], rng: Random) -> Any:
            return candidates[-1]

    assert as_policy(Chooser())(THREE, Random(0)) is THREE[-1]
    rr = RoundRobinPolicy()
    assert as_policy(rr) == rr.choose
    assert as_policy(primary_only) is primary_only
    assert tally(as_policy(rr), THREE, 3) == {"a": 1, "b": 1, "c": 1}
    with pytest.raises(TypeError, match="a policy must be callable"):
        as_policy("round-robin")
