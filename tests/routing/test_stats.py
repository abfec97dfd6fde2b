"""LocalRouterStats: in-flight counts, latency averages and penalties, sliding usage windows.

The clock is the `now` argument, so window edges are exact.
"""

from __future__ import annotations

import pytest

from llmux.routing import LocalRouterStats
from llmux.routing.stats import EWMA_ALPHA, FAILURE_PENALTY, TIMEOUT_PENALTY, WINDOW_SECONDS

D = "p/m"


def ok(stats: LocalRouterStats, elapsed: float) -> None:
    """One successful attempt of `elapsed` seconds on D."""
    stats.start(D, 0.0, 0)
    stats.end(D, 0.0, elapsed=elapsed, failed=False, timed_out=False)


class TestInFlight:
    """Exact counts: up on start, down on every end."""

    def test_start_and_end_balance(self) -> None:
        """Two starts and one end leave one in flight."""
        stats = LocalRouterStats()
        stats.start(D, 0.0, 0)
        stats.start(D, 0.0, 0)
        stats.end(D, 0.0, elapsed=None, failed=False, timed_out=False)
        assert stats.in_flight(D) == 1

    def test_never_negative(self) -> None:
        """An end without a start does not go below zero."""
        stats = LocalRouterStats()
        stats.end(D, 0.0, elapsed=None, failed=False, timed_out=False)
        assert stats.in_flight(D) == 0

    def test_unknown_deployment_is_idle(self) -> None:
        """A deployment never seen has nothing in flight and no latency."""
        stats = LocalRouterStats()
        assert (stats.in_flight(D), stats.latency(D, stream=False)) == (0, None)


class TestLatency:
    """EWMA of latency and of TTFT; failures and timeouts count as slow."""

    def test_first_sample_sets_the_average(self) -> None:
        """The first latency is the average as is."""
        stats = LocalRouterStats()
        ok(stats, 2.0)
        assert stats.latency(D, stream=False) == 2.0

    def test_ewma_moves_by_alpha(self) -> None:
        """A second sample moves the average by EWMA_ALPHA of the difference."""
        stats = LocalRouterStats()
        ok(stats, 2.0)
        ok(stats, 4.0)
        assert stats.latency(D, stream=False) == pytest.approx(2.0 + EWMA_ALPHA * 2.0)

    def test_streams_use_ttft_when_sampled(self) -> None:
        """A stream reads the TTFT average; a non-stream reads latency."""
        stats = LocalRouterStats()
        ok(stats, 3.0)
        stats.first_token(D, 0.5)
        assert (stats.latency(D, stream=True), stats.latency(D, stream=False)) == (0.5, 3.0)

    def test_failure_penalises(self) -> None:
        """A fast failure counts as FAILURE_PENALTY times the current average."""
        stats = LocalRouterStats()
        ok(stats, 1.0)
        stats.start(D, 0.0, 0)
        stats.end(D, 0.0, elapsed=0.01, failed=True, timed_out=False)
        expected = 1.0 + EWMA_ALPHA * (FAILURE_PENALTY - 1.0)
        assert stats.latency(D, stream=False) == pytest.approx(expected)

    def test_timeout_penalises_more(self) -> None:
        """A timeout counts as TIMEOUT_PENALTY times its duration or the average."""
        stats = LocalRouterStats()
        ok(stats, 1.0)
        stats.start(D, 0.0, 0)
        stats.end(D, 0.0, elapsed=2.0, failed=True, timed_out=True)
        expected = 1.0 + EWMA_ALPHA * (2.0 * TIMEOUT_PENALTY - 1.0)
        assert stats.latency(D, stream=False) == pytest.approx(expected)

    def test_failure_marks_an_unsampled_deployment_sampled(self) -> None:
        """A first attempt that fails gives a (penalised) average, so it is not re-explored."""
        stats = LocalRouterStats()
        stats.start(D, 0.0, 0)
        stats.end(D, 0.0, elapsed=0.01, failed=True, timed_out=False)
        latency = stats.latency(D, stream=False)
        assert latency is not None and latency >= FAILURE_PENALTY

    def test_abandoned_attempt_is_no_sample(self) -> None:
        """An end without `elapsed` (client gone) leaves the average alone."""
        stats = LocalRouterStats()
        ok(stats, 1.0)
        stats.start(D, 0.0, 0)
        stats.end(D, 0.0, elapsed=None, failed=False, timed_out=False)
        assert stats.latency(D, stream=False) == 1.0


class TestWindow:
    """Requests and tokens over the last 60 s, without a double burst at the edge."""

    def test_counts_requests_and_tokens(self) -> None:
        """Starts add one request and their estimated tokens; add_tokens corrects the count."""
        stats = LocalRouterStats()
        stats.start(D, 0.0, 100)
        stats.start(D, 1.0, 50)
        stats.add_tokens(D, 2.0, 30)
        usage = stats.usage(D, 2.0)
        assert (usage.requests, usage.tokens) == (2.0, 180.0)

    def test_no_double_burst_across_the_edge(self) -> None:
        """100 requests just before a window boundary still count just after it."""
        stats = LocalRouterStats()
        stats.start(D, 0.0, 0)
        for _ in range(99):
            stats.start(D, WINDOW_SECONDS - 0.1, 0)
        assert stats.usage(D, WINDOW_SECONDS + 0.1).requests > 99.0

    def test_previous_window_fades_linearly(self) -> None:
        """Half way into the next window, the previous one counts half."""
        stats = LocalRouterStats()
        for _ in range(100):
            stats.start(D, 0.0, 0)
        assert stats.usage(D, WINDOW_SECONDS * 1.5).requests == pytest.approx(50.0)

    def test_old_traffic_expires(self) -> None:
        """Two windows later nothing is left."""
        stats = LocalRouterStats()
        stats.start(D, 0.0, 500)
        usage = stats.usage(D, 2 * WINDOW_SECONDS + 1)
        assert (usage.requests, usage.tokens) == (0.0, 0.0)

    def test_negative_correction_never_goes_below_zero(self) -> None:
        """An over-estimate corrected in a later window reads as zero, not negative."""
        stats = LocalRouterStats()
        stats.start(D, 0.0, 10)
        stats.add_tokens(D, WINDOW_SECONDS * 1.9, -500)
        assert stats.usage(D, WINDOW_SECONDS * 1.9).tokens == 0.0


class TestTurns:
    """Round-robin counters per group."""

    def test_each_group_counts_on_its_own(self) -> None:
        """Turns go 0, 1, 2 per group, independently."""
        stats = LocalRouterStats()
        turns = [stats.next_turn("a"), stats.next_turn("a"), stats.next_turn("b")]
        assert turns == [0, 1, 0]
