"""The circuit breaker, unit by unit, on an injected clock (no sleeping, no timing)."""

from __future__ import annotations

import pytest

from llmux.cooldown import Breaker, CooldownPolicy, State, counts_as_failure

A = "p/a"
POLICY = CooldownPolicy(period=60.0, max_period=300.0, failure_rate=0.5, min_samples=5)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A manual clock starting at t=1000."""
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> Breaker:
    """A breaker with a 60 s period, 300 s cap, 50% over 5 samples."""
    return Breaker(POLICY, clock)


@pytest.mark.parametrize("status", [429, 401, 403, 404])
def test_immediate_cooldown_statuses(breaker: Breaker, status: int) -> None:
    """429, 401, 403 and 404 cool a deployment at once when its group has another one."""
    assert breaker.record_failure(A, status) is not None
    assert breaker.state(A) is State.COOLING
    assert not breaker.available(A)


def test_no_cooldown_without_alternatives(breaker: Breaker) -> None:
    """A group's only deployment never cools down, whatever the errors."""
    for _ in range(10):
        assert breaker.record_failure(A, 429, alternatives=False) is None
        assert breaker.record_failure(A, 503, alternatives=False) is None
    assert breaker.available(A)


def test_client_errors_do_not_count() -> None:
    """400, 413 and 422 are the client's mistakes; 5xx, timeouts and 429 are failures."""
    assert not counts_as_failure(400)
    assert not counts_as_failure(422)
    assert counts_as_failure(503)
    assert counts_as_failure(504)
    assert counts_as_failure(408)


def test_failure_rate_waits_for_min_samples(breaker: Breaker) -> None:
    """Four 5xx in a row stay below `min_samples`; the fifth trips the failure-rate cooldown."""
    for _ in range(4):
        assert breaker.record_failure(A, 503) is None
    assert breaker.available(A)
    assert breaker.record_failure(A, 503) == "failure_rate"
    assert breaker.state(A) is State.COOLING


def test_failure_rate_below_threshold_stays_healthy(breaker: Breaker) -> None:
    """Two failures among six outcomes (33%) do not trip a 50% threshold."""
    for _ in range(4):
        breaker.record_success(A)
    assert breaker.record_failure(A, 503) is None
    assert breaker.record_failure(A, 500) is None
    assert breaker.available(A)


def test_failures_age_out_of_the_window(breaker: Breaker, clock: Clock) -> None:
    """Failures older than the window no longer count toward the rate."""
    for _ in range(4):
        breaker.record_failure(A, 503)
    clock.now += 120.0
    assert breaker.record_failure(A, 503) is None
    assert breaker.available(A)


def test_cooldown_length_is_the_period(breaker: Breaker, clock: Clock) -> None:
    """Without Retry-After the cooldown lasts `period`, then the deployment is half-open."""
    breaker.record_failure(A, 401)
    clock.now += 59.0
    assert breaker.state(A) is State.COOLING
    assert breaker.retry_in([A]) == pytest.approx(1.0)
    clock.now += 1.0
    assert breaker.state(A) is State.HALF_OPEN


def test_cooldown_length_is_retry_after(breaker: Breaker, clock: Clock) -> None:
    """An upstream Retry-After sets the cooldown length instead of `period`."""
    assert breaker.record_failure(A, 429, retry_after=5.0) == "rate_limited"
    clock.now += 4.9
    assert not breaker.available(A)
    clock.now += 0.1
    assert breaker.available(A)


def test_retry_after_is_capped(breaker: Breaker, clock: Clock) -> None:
    """A Retry-After beyond `max_period` is cut to it."""
    breaker.record_failure(A, 429, retry_after=10_000.0)
    assert breaker.retry_in([A]) == pytest.approx(300.0)


def test_half_open_lets_exactly_one_trial_through(breaker: Breaker, clock: Clock) -> None:
    """After the cooldown one request becomes the trial; others see the deployment as busy."""
    breaker.record_failure(A, 403)
    clock.now += 60.0
    assert breaker.available(A)
    breaker.begin(A)
    assert not breaker.available(A)
    assert breaker.state(A) is State.HALF_OPEN


def test_successful_trial_makes_it_healthy(breaker: Breaker, clock: Clock) -> None:
    """A successful trial closes the breaker."""
    breaker.record_failure(A, 403)
    clock.now += 60.0
    breaker.begin(A)
    breaker.record_success(A)
    assert breaker.state(A) is State.HEALTHY
    assert breaker.available(A)


def test_failed_trial_doubles_the_cooldown(breaker: Breaker, clock: Clock) -> None:
    """A failed trial starts a cooldown twice as long as the last, capped at `max_period`."""
    breaker.record_failure(A, 403)
    lengths = []
    for _ in range(4):
        clock.now += 1000.0
        breaker.begin(A)
        assert breaker.record_failure(A, 503) == "trial_failed"
        lengths.append(breaker.retry_in([A]))
    assert lengths == pytest.approx([120.0, 240.0, 300.0, 300.0])


def test_abandoned_trial_frees_the_slot(breaker: Breaker, clock: Clock) -> None:
    """A trial that ended without an outcome (client gone) lets the next request try."""
    breaker.record_failure(A, 403)
    clock.now += 60.0
    breaker.begin(A)
    breaker.abandon(A)
    assert breaker.available(A)


def test_retry_in_is_the_soonest_recovery(breaker: Breaker) -> None:
    """With several deployments cooling, `retry_in` is the shortest remaining wait."""
    breaker.record_failure(A, 429, retry_after=30.0)
    breaker.record_failure("p/b", 429, retry_after=7.0)
    assert breaker.retry_in([A, "p/b"]) == pytest.approx(7.0)
    assert breaker.retry_in([A, "p/c"]) == 0.0


def test_state_changes_are_reported(clock: Clock) -> None:
    """`on_change` hears every transition, for the deployment-state gauge."""
    seen: list[tuple[str, State]] = []
    breaker = Breaker(POLICY, clock, on_change=lambda d, s: seen.append((d, s)))
    breaker.record_failure(A, 404)
    clock.now += 60.0
    breaker.available(A)
    breaker.begin(A)
    breaker.record_success(A)
    assert seen == [(A, State.COOLING), (A, State.HALF_OPEN), (A, State.HEALTHY)]


def test_disabled_policy_never_cools(clock: Clock) -> None:
    """`enabled: false` turns every trigger off."""
    breaker = Breaker(CooldownPolicy(enabled=False), clock)
    for _ in range(10):
        assert breaker.record_failure(A, 429) is None
    assert breaker.available(A)


def test_manual_cooldown_lasts_its_seconds_then_half_opens(breaker: Breaker, clock: Clock) -> None:
    """`force_cooldown` cools a healthy deployment for exactly the given seconds."""
    breaker.force_cooldown(A, 30.0)
    assert breaker.state(A) is State.COOLING
    assert breaker.cooling_left(A) == 30.0
    clock.now += 30.0
    assert breaker.state(A) is State.HALF_OPEN
    assert breaker.cooling_left(A) is None


def test_clear_ends_a_cooldown_at_once(breaker: Breaker) -> None:
    """`clear` makes a cooling deployment healthy and available, failure window emptied."""
    for _ in range(4):
        breaker.record_failure(A, 503)
    breaker.record_failure(A, 429)
    breaker.clear(A)
    assert breaker.state(A) is State.HEALTHY
    assert breaker.available(A)
    assert breaker.record_failure(A, 503) is None


def test_manual_cooldown_works_with_the_policy_disabled(clock: Clock) -> None:
    """An operator's cooldown applies even when automatic cooldowns are off."""
    breaker = Breaker(CooldownPolicy(enabled=False), clock)
    breaker.force_cooldown(A, 5.0)
    assert not breaker.available(A)
