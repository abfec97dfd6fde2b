"""The six strategies and the capacity filter, over hand-fed stats with a seeded random source.

Distributions are checked over thousands of seeded draws with generous bounds.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

from llmux.config.schema import RoutingStrategy, WeightBy
from llmux.errors import DeploymentCapacityExceeded
from llmux.routing import (
    Deployment,
    GroupPolicy,
    LocalRouterStats,
    RequestEstimate,
    admit,
    order,
)
from tests.routing.helpers import group

CHAT = RequestEstimate(input_tokens=100, output_tokens=100, stream=False)
STREAM = RequestEstimate(input_tokens=100, output_tokens=100, stream=True)
DRAWS = 4000


def firsts(
    policy: GroupPolicy,
    deployments: Sequence[Deployment],
    stats: LocalRouterStats | None = None,
    estimate: RequestEstimate = CHAT,
    draws: int = DRAWS,
) -> Counter[str]:
    """How often each deployment id came first over `draws` seeded orders."""
    rng = random.Random(7)
    seen = stats or LocalRouterStats()
    return Counter(order(policy, deployments, seen, estimate, rng, 0.0)[0].id for _ in range(draws))


def share(counts: Counter[str], deployment_id: str) -> float:
    """The fraction of draws `deployment_id` won."""
    return counts[deployment_id] / sum(counts.values())


def shuffle(weight_by: WeightBy = "auto") -> GroupPolicy:
    """A simple-shuffle policy weighing by `weight_by`."""
    return GroupPolicy("simple-shuffle", weight_by)


def timed(*latencies: float | None) -> LocalRouterStats:
    """Stats where deployment `p{i}/m` has average latency `latencies[i]` (None: unsampled)."""
    stats = LocalRouterStats()
    for index, latency in enumerate(latencies):
        if latency is not None:
            stats.start(f"p{index}/m", 0.0, 0)
            stats.end(f"p{index}/m", 0.0, elapsed=latency, failed=False, timed_out=False)
    return stats


def policy(strategy: RoutingStrategy, latency_buffer: float = 0.1) -> GroupPolicy:
    """A policy for `strategy`."""
    return GroupPolicy(strategy, "auto", latency_buffer)


class TestSimpleShuffle:
    """Weighted random by weight, rpm or tpm; missing keys count as the group's mean."""

    def test_weights_set_the_shares(self) -> None:
        """Weights 3 and 1 win about 75% and 25% of first picks."""
        counts = firsts(shuffle(), group("weight: 3", "weight: 1"))
        assert 0.70 < share(counts, "p0/m") < 0.80

    def test_missing_weight_is_the_mean_never_zero(self) -> None:
        """A deployment without `weight` beside one with weight 3 counts as 3: about half."""
        counts = firsts(shuffle(), group("weight: 3", ""))
        assert 0.45 < share(counts, "p1/m") < 0.55

    def test_auto_uses_rpm_when_no_weight_is_set(self) -> None:
        """With no weights, rpm 100 and 300 give shares of about 25% and 75%."""
        counts = firsts(shuffle(), group("rpm: 100", "rpm: 300"))
        assert 0.70 < share(counts, "p1/m") < 0.80

    def test_explicit_mode_ignores_other_keys(self) -> None:
        """`weight_by: tpm` weighs by tpm even when weights are set."""
        deployments = group("weight: 9, tpm: 1000", "weight: 1, tpm: 3000")
        counts = firsts(shuffle("tpm"), deployments)
        assert 0.70 < share(counts, "p1/m") < 0.80

    def test_mode_does_not_depend_on_list_order(self) -> None:
        """Auto mode looks at the whole group: weight set only on the second still counts."""
        counts = firsts(shuffle(), group("rpm: 100", "weight: 3, rpm: 900"))
        assert 0.45 < share(counts, "p0/m") < 0.55

    def test_uniform_without_keys(self) -> None:
        """No weight, rpm or tpm anywhere: every deployment is equally likely."""
        counts = firsts(shuffle(), group("", "", ""))
        assert all(0.28 < share(counts, f"p{i}/m") < 0.39 for i in range(3))

    def test_zero_weight_goes_last(self) -> None:
        """An explicit weight 0 is never picked first while another deployment is there."""
        counts = firsts(shuffle(), group("weight: 0", "weight: 1"))
        assert counts["p0/m"] == 0


class TestRoundRobin:
    """A strict rotation per group."""

    def test_rotates_strictly(self) -> None:
        """Six picks over three deployments go p0, p1, p2, p0, p1, p2."""
        deployments, stats = group("", "", ""), LocalRouterStats()
        picks = [
            order(policy("round-robin"), deployments, stats, CHAT, random.Random(1), 0.0)[0].id
            for _ in range(6)
        ]
        assert picks == ["p0/m", "p1/m", "p2/m", "p0/m", "p1/m", "p2/m"]

    def test_retries_follow_the_rotation(self) -> None:
        """The order after the pick is the rest of the rotation."""
        deployments, stats = group("", "", ""), LocalRouterStats()
        stats.next_turn("m")
        ranked = order(policy("round-robin"), deployments, stats, CHAT, random.Random(1), 0.0)
        assert [d.id for d in ranked] == ["p1/m", "p2/m", "p0/m"]

    def test_filtered_turn_goes_to_the_next_in_line(self) -> None:
        """When p1 was filtered out, its turn goes to p2 and the rotation keeps its place."""
        p0, _, p2 = group("", "", "")
        stats = LocalRouterStats()
        picks = [
            order(policy("round-robin"), [p0, p2], stats, CHAT, random.Random(1), 0.0)[0].id
            for _ in range(3)
        ]
        assert picks == ["p0/m", "p2/m", "p2/m"]


class TestLowestLatency:
    """EWMA latency (TTFT for streams), exploration first, random within the buffer."""

    def test_unsampled_deployment_is_explored_first(self) -> None:
        """A deployment never measured is picked before a fast, measured one."""
        counts = firsts(policy("lowest-latency"), group("", ""), timed(0.01, None))
        assert counts == Counter({"p1/m": DRAWS})

    def test_random_within_the_buffer(self) -> None:
        """Latencies 1.0 and 1.05 are both within 10% of the best and share first picks."""
        counts = firsts(policy("lowest-latency"), group("", "", ""), timed(1.0, 1.05, 2.0))
        assert 0.40 < share(counts, "p0/m") < 0.60
        assert counts["p2/m"] == 0

    def test_slow_deployment_is_tried_last(self) -> None:
        """The retry order ranks the slow deployment last."""
        ranked = order(
            policy("lowest-latency"),
            group("", "", ""),
            timed(1.0, 1.05, 2.0),
            CHAT,
            random.Random(3),
            0.0,
        )
        assert ranked[-1].id == "p2/m"

    def test_zero_buffer_always_takes_the_fastest(self) -> None:
        """With `latency_buffer: 0`, 1.05 loses to 1.0 every time."""
        counts = firsts(policy("lowest-latency", 0.0), group("", ""), timed(1.0, 1.05))
        assert counts == Counter({"p0/m": DRAWS})

    def test_streams_rank_by_time_to_first_token(self) -> None:
        """A stream prefers the lower TTFT even where total latency says otherwise."""
        stats = timed(2.0, 1.0)
        stats.first_token("p0/m", 0.1)
        stats.first_token("p1/m", 0.9)
        deployments = group("", "")
        assert firsts(policy("lowest-latency"), deployments, stats, STREAM)["p0/m"] == DRAWS
        assert firsts(policy("lowest-latency"), deployments, stats, CHAT)["p1/m"] == DRAWS


class TestLeastBusy:
    """Fewest in flight; ties random."""

    def test_fewest_in_flight_wins(self) -> None:
        """Two in flight on p0 and one on p1: p1 is picked."""
        stats = LocalRouterStats()
        for deployment in ("p0/m", "p0/m", "p1/m"):
            stats.start(deployment, 0.0, 0)
        assert firsts(policy("least-busy"), group("", ""), stats)["p1/m"] == DRAWS

    def test_ties_are_random(self) -> None:
        """With nothing in flight both deployments share first picks."""
        counts = firsts(policy("least-busy"), group("", ""))
        assert 0.45 < share(counts, "p0/m") < 0.55


class TestLowestTpmRpm:
    """Least used relative to its limits."""

    def test_least_used_share_wins(self) -> None:
        """50 of 100 rpm used loses to 100 of 1000 used."""
        stats = LocalRouterStats()
        for _ in range(50):
            stats.start("p0/m", 0.0, 0)
        for _ in range(100):
            stats.start("p1/m", 0.0, 0)
        counts = firsts(policy("lowest-tpm-rpm"), group("rpm: 100", "rpm: 1000"), stats)
        assert counts == Counter({"p1/m": DRAWS})

    def test_would_exceed_is_skipped(self) -> None:
        """Strict admission drops a deployment this request's tokens would push over tpm."""
        stats = LocalRouterStats()
        stats.start("p0/m", 0.0, 950)
        kept = admit(group("tpm: 1000", "tpm: 1000"), stats, CHAT, 1.0, strict=True)
        assert [d.id for d in kept] == ["p1/m"]


class TestLowestCost:
    """The expected cost of this request at each deployment's prices."""

    def test_long_prompt_prefers_cheap_input(self) -> None:
        """A 100k-token prompt with a short answer goes to the cheap-input deployment."""
        deployments = group(
            "input_cost_per_million: 1, output_cost_per_million: 100",
            "input_cost_per_million: 10, output_cost_per_million: 10",
        )
        estimate = RequestEstimate(input_tokens=100_000, output_tokens=10, stream=False)
        assert firsts(policy("lowest-cost"), deployments, estimate=estimate)["p0/m"] == DRAWS

    def test_long_answer_prefers_cheap_output(self) -> None:
        """A short prompt with a 10k-token cap goes to the cheap-output deployment."""
        deployments = group(
            "input_cost_per_million: 1, output_cost_per_million: 100",
            "input_cost_per_million: 10, output_cost_per_million: 10",
        )
        estimate = RequestEstimate(input_tokens=10, output_tokens=10_000, stream=False)
        assert firsts(policy("lowest-cost"), deployments, estimate=estimate)["p1/m"] == DRAWS

    def test_missing_price_is_the_group_mean(self) -> None:
        """Unpriced between prices 1 and 3 ranks in the middle, not first as free."""
        deployments = group(
            "input_cost_per_million: 3, output_cost_per_million: 3",
            "",
            "input_cost_per_million: 1, output_cost_per_million: 1",
        )
        ranked = order(
            policy("lowest-cost"), deployments, LocalRouterStats(), CHAT, random.Random(1), 0.0
        )
        assert [d.id for d in ranked] == ["p2/m", "p1/m", "p0/m"]

    def test_ties_are_balanced(self) -> None:
        """Equal prices share first picks."""
        prices = "input_cost_per_million: 2, output_cost_per_million: 8"
        counts = firsts(policy("lowest-cost"), group(prices, prices))
        assert 0.45 < share(counts, "p0/m") < 0.55


class TestAdmit:
    """Deployments at their max_concurrent, rpm or tpm are dropped before any strategy."""

    def test_full_deployment_is_dropped(self) -> None:
        """A deployment with max_concurrent in flight is left out."""
        stats = LocalRouterStats()
        stats.start("p0/m", 0.0, 0)
        kept = admit(group("max_concurrent: 1", "max_concurrent: 1"), stats, CHAT, 0.0)
        assert [d.id for d in kept] == ["p1/m"]

    def test_rpm_reached_is_dropped(self) -> None:
        """A deployment whose window holds `rpm` requests is left out."""
        stats = LocalRouterStats()
        for _ in range(2):
            stats.start("p0/m", 0.0, 0)
        kept = admit(group("rpm: 2", "rpm: 2"), stats, CHAT, 1.0)
        assert [d.id for d in kept] == ["p1/m"]

    def test_none_left_is_429_with_retry_after(self) -> None:
        """When every deployment is full the error is a 429 with a Retry-After header."""
        stats = LocalRouterStats()
        stats.start("p0/m", 0.0, 0)
        with pytest.raises(DeploymentCapacityExceeded) as caught:
            admit(group("max_concurrent: 1"), stats, CHAT, 0.0)
        error = caught.value
        assert (error.http_status, error.code) == (429, "deployment_capacity_exceeded")
        assert error.headers == {"retry-after": "1"}

    @pytest.mark.parametrize(
        "strategy",
        ["simple-shuffle", "round-robin", "lowest-latency", "least-busy", "lowest-tpm-rpm"],
    )
    def test_every_strategy_orders_every_candidate_once(self, strategy: RoutingStrategy) -> None:
        """Each strategy returns a permutation of its candidates (retries see them all)."""
        deployments = group("", "", "")
        ranked = order(policy(strategy), deployments, timed(1, 2, 3), CHAT, random.Random(1), 0.0)
        assert sorted(d.id for d in ranked) == ["p0/m", "p1/m", "p2/m"]
