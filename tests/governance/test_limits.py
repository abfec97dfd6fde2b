"""`LocalRateLimiter`: exact sliding windows for RPM and TPM, parallel slots, headers, refusals.

Time is injected through `now`; nothing sleeps. T is the start of a bucket, so T + 0.5 is
mid-bucket and the window boundaries are easy to read off: a request admitted at T + x counts
until the start of bucket T + 61.
"""

from __future__ import annotations

import random

import pytest

from llmux.errors import RateLimited
from llmux.governance.limits import (
    SWEEP_SECONDS,
    Lease,
    Limit,
    LocalRateLimiter,
    applicable_limits,
    format_duration,
)

T = 1_000.0


def key_limit(rpm: int | None = None, tpm: int | None = None, parallel: int | None = None) -> Limit:
    """A limit on the virtual key `k1`, for all models."""
    return Limit("key", "k1", None, rpm, tpm, parallel)


async def admit_many(limiter: LocalRateLimiter, limits: list[Limit], count: int, now: float) -> int:
    """Acquire `count` times at `now`; how many were admitted."""
    admitted = 0
    for _ in range(count):
        try:
            await limiter.acquire(limits, 0, now)
        except RateLimited:
            continue
        admitted += 1
    return admitted


async def refused(limiter: LocalRateLimiter, limits: list[Limit], tokens: int, now: float) -> bool:
    """Whether one acquire is refused (an admitted one stays counted)."""
    try:
        await limiter.acquire(limits, tokens, now)
    except RateLimited:
        return True
    return False


async def test_rpm_admits_exactly_the_limit_then_refuses() -> None:
    """100 RPM admits 100 requests and refuses the 101st."""
    limiter = LocalRateLimiter()
    assert await admit_many(limiter, [key_limit(rpm=100)], 101, T + 0.5) == 100


async def test_rpm_capacity_returns_only_as_the_window_slides() -> None:
    """Requests admitted in bucket T count until bucket T + 61 starts, not a moment less."""
    limiter = LocalRateLimiter()
    limits = [key_limit(rpm=100)]
    assert await admit_many(limiter, limits, 100, T + 0.5) == 100
    assert await refused(limiter, limits, 0, T + 30)
    assert await refused(limiter, limits, 0, T + 60.999)
    assert await admit_many(limiter, limits, 101, T + 61) == 100


async def test_no_double_burst_across_the_window_edge() -> None:
    """A burst at the end of one minute leaves no room for another at the start of the next."""
    limiter = LocalRateLimiter()
    limits = [key_limit(rpm=100)]
    assert await admit_many(limiter, limits, 100, T + 59.9) == 100
    assert await admit_many(limiter, limits, 100, T + 60.1) == 0
    assert await admit_many(limiter, limits, 100, T + 119.5) == 0
    assert await admit_many(limiter, limits, 100, T + 120) == 100


async def test_no_60_second_interval_ever_holds_more_than_the_limit() -> None:
    """Under random arrivals, every interval [t, t + 60] holds at most `rpm` admissions."""
    rng = random.Random(6)
    limiter = LocalRateLimiter()
    limits = [key_limit(rpm=20)]
    admitted: list[float] = []
    now = T
    for _ in range(3_000):
        now += rng.expovariate(1.0)
        if not await refused(limiter, limits, 0, now):
            admitted.append(now)
    for i, start in enumerate(admitted):
        assert sum(1 for t in admitted[i:] if t <= start + 60) <= 20
    assert len(admitted) > 20 * (now - T) / 61 - 20


@pytest.mark.parametrize(
    ("level", "name"),
    [
        ("key", "key"),
        ("user", "user"),
        ("team", "team"),
        ("organization", "organization"),
        ("end_user", "end user"),
    ],
)
async def test_each_level_refuses_naming_itself(level: str, name: str) -> None:
    """The tightest of five levels refuses, and the message names that level and its limit."""
    limiter = LocalRateLimiter()
    levels = ["key", "user", "team", "organization", "end_user"]
    limits = [Limit(lv, f"{lv}-1", None, 2 if lv == level else 50, None, None) for lv in levels]
    assert await admit_many(limiter, limits, 2, T) == 2
    with pytest.raises(RateLimited) as refusal:
        await limiter.acquire(limits, 0, T)
    assert refusal.value.message == f"Rate limit exceeded for {name}: 2 requests per minute."
    assert refusal.value.http_status == 429


async def test_per_model_limit_applies_only_to_its_model() -> None:
    """A key's limit for gpt-4o refuses gpt-4o once spent while other models go on."""
    limiter = LocalRateLimiter()
    everything = [key_limit(rpm=10), Limit("key", "k1", "gpt-4o", 1, None, None)]
    await limiter.acquire(applicable_limits(everything, "gpt-4o"), 0, T)
    with pytest.raises(RateLimited, match="for key on model gpt-4o: 1 requests per minute"):
        await limiter.acquire(applicable_limits(everything, "gpt-4o"), 0, T)
    await limiter.acquire(applicable_limits(everything, "claude"), 0, T)


async def test_all_models_limit_counts_every_model() -> None:
    """The key's all-models limit counts requests for every model together."""
    limiter = LocalRateLimiter()
    everything = [key_limit(rpm=2), Limit("key", "k1", "gpt-4o", 10, None, None)]
    await limiter.acquire(applicable_limits(everything, "gpt-4o"), 0, T)
    await limiter.acquire(applicable_limits(everything, "claude"), 0, T)
    with pytest.raises(RateLimited, match="for key: 2 requests per minute"):
        await limiter.acquire(applicable_limits(everything, "gpt-4o"), 0, T)


async def test_refused_request_consumes_nothing_at_any_level() -> None:
    """When the team refuses, the key's requests, tokens and parallel slots are untouched."""
    limiter = LocalRateLimiter()
    key = key_limit(rpm=1, tpm=100, parallel=1)
    team = Limit("team", "t1", None, None, 10, None)
    with pytest.raises(RateLimited, match="for team: 10 tokens per minute"):
        await limiter.acquire([key, team], 100, T)
    lease = await limiter.acquire([key], 100, T)
    assert lease.headers()["x-ratelimit-remaining-requests"] == "0"
    assert lease.headers()["x-ratelimit-remaining-tokens"] == "0"


async def test_tpm_refuses_a_reservation_that_does_not_fit() -> None:
    """With 700 of 1000 tokens reserved, a 400-token reservation is refused and 300 fits."""
    limiter = LocalRateLimiter()
    limits = [key_limit(tpm=1000)]
    await limiter.acquire(limits, 700, T)
    assert await refused(limiter, limits, 400, T)
    assert not await refused(limiter, limits, 300, T)


async def test_settle_lowers_tpm_so_later_requests_fit() -> None:
    """Settling a 900-token reservation at 100 actual tokens makes room for 900 more."""
    limiter = LocalRateLimiter()
    limits = [key_limit(tpm=1000)]
    lease = await limiter.acquire(limits, 900, T)
    assert await refused(limiter, limits, 900, T + 1)
    await limiter.settle(lease, 100, T + 2)
    assert not await refused(limiter, limits, 900, T + 3)


async def test_settle_above_the_reservation_counts_actual_usage() -> None:
    """A call that used more than it reserved is counted at what it used."""
    limiter = LocalRateLimiter()
    limits = [key_limit(tpm=1000)]
    lease = await limiter.acquire(limits, 100, T)
    await limiter.settle(lease, 950, T + 1)
    assert await refused(limiter, limits, 100, T + 2)
    assert not await refused(limiter, limits, 50, T + 2)


async def test_settle_after_the_reservation_left_the_window_changes_nothing() -> None:
    """A reservation that has already dropped out is not subtracted a second time."""
    limiter = LocalRateLimiter()
    limits = [key_limit(tpm=1000)]
    old = await limiter.acquire(limits, 900, T)
    await limiter.acquire(limits, 900, T + 61)
    await limiter.settle(old, 0, T + 62)
    assert await refused(limiter, limits, 200, T + 62)


async def test_parallel_slot_is_freed_on_settle() -> None:
    """With 2 parallel slots a third call waits until one of the two settles."""
    limiter = LocalRateLimiter()
    limits = [key_limit(parallel=2)]
    first = await limiter.acquire(limits, 0, T)
    await limiter.acquire(limits, 0, T)
    with pytest.raises(RateLimited, match="for key: 2 parallel requests") as refusal:
        await limiter.acquire(limits, 0, T)
    assert refusal.value.headers["retry-after"] == "1"
    await limiter.settle(first, 0, T)
    await limiter.acquire(limits, 0, T)


async def test_settling_twice_frees_one_slot_only() -> None:
    """A second settle of the same lease does nothing."""
    limiter = LocalRateLimiter()
    limits = [key_limit(parallel=1)]
    first = await limiter.acquire(limits, 0, T)
    await limiter.settle(first, 0, T)
    await limiter.acquire(limits, 0, T)
    await limiter.settle(first, 0, T)
    assert await refused(limiter, limits, 0, T)


async def test_success_headers_show_the_most_constraining_limits() -> None:
    """Requests headers come from the limit with fewest requests left, tokens from its own."""
    limiter = LocalRateLimiter()
    limits = [key_limit(rpm=100, tpm=5000), Limit("team", "t1", None, 3, 100_000, None)]
    await limiter.acquire(limits, 1000, T + 0.25)
    lease = await limiter.acquire(limits, 1000, T + 10.5)
    assert lease.headers() == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "1m0.5s",
        "x-ratelimit-limit-tokens": "5000",
        "x-ratelimit-remaining-tokens": "3000",
        "x-ratelimit-reset-tokens": "1m0.5s",
    }


async def test_refusal_headers_give_retry_after_and_the_refusing_limit() -> None:
    """An RPM refusal says when the oldest request drops out, and shows the refusing limit."""
    limiter = LocalRateLimiter()
    limits = [key_limit(rpm=2, tpm=1000), Limit("team", "t1", None, 50, None, None)]
    await limiter.acquire(limits, 100, T + 0.5)
    await limiter.acquire(limits, 100, T + 20.5)
    with pytest.raises(RateLimited) as refusal:
        await limiter.acquire(limits, 100, T + 40)
    assert refusal.value.headers == {
        "retry-after": "21",
        "retry-after-ms": "21000",
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "41s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "800",
        "x-ratelimit-reset-tokens": "41s",
    }


async def test_tpm_refusal_waits_until_enough_tokens_drop_out() -> None:
    """Retry-After for tokens is when enough older reservations leave the window."""
    limiter = LocalRateLimiter()
    limits = [key_limit(tpm=1000)]
    await limiter.acquire(limits, 300, T)
    await limiter.acquire(limits, 300, T + 10)
    await limiter.acquire(limits, 300, T + 20)
    with pytest.raises(RateLimited) as refusal:
        await limiter.acquire(limits, 500, T + 30)
    assert refusal.value.headers["retry-after"] == "41"
    assert refusal.value.headers["x-ratelimit-remaining-tokens"] == "100"
    assert await refused(limiter, limits, 500, T + 70.9)
    assert not await refused(limiter, limits, 500, T + 71)


async def test_request_larger_than_the_tpm_limit_is_told_not_to_retry() -> None:
    """A reservation above the limit itself can never fit: no Retry-After, x-should-retry false."""
    limiter = LocalRateLimiter()
    with pytest.raises(RateLimited) as refusal:
        await limiter.acquire([key_limit(tpm=1000)], 5000, T)
    assert refusal.value.message == (
        "Rate limit exceeded for key: 1000 tokens per minute. "
        "This request alone reserves 5000 tokens, so it can never fit."
    )
    assert refusal.value.headers["x-should-retry"] == "false"
    assert "retry-after" not in refusal.value.headers


async def test_zero_limit_refuses_everything() -> None:
    """rpm 0 admits nothing (None is the way to say "no limit")."""
    limiter = LocalRateLimiter()
    assert await admit_many(limiter, [key_limit(rpm=0)], 3, T) == 0


async def test_idle_subjects_are_forgotten() -> None:
    """Subjects with empty windows and nothing in flight are dropped, bounding memory."""
    limiter = LocalRateLimiter()
    held = await limiter.acquire([Limit("user", "busy", None, None, None, 5)], 0, T)
    for n in range(50):
        await limiter.acquire([Limit("user", f"u{n}", None, 10, 100, None)], 1, T)
    assert len(limiter) == 51
    await limiter.acquire([key_limit(rpm=10)], 0, T + 61 + SWEEP_SECONDS)
    assert len(limiter) == 2
    await limiter.settle(held, 0, T + 62 + SWEEP_SECONDS)


async def test_no_limits_admits_with_no_headers() -> None:
    """A principal with no limits is admitted and its responses carry no rate-limit headers."""
    lease = await LocalRateLimiter().acquire([], 100, T)
    assert lease.headers() == {}


async def test_a_lease_of_another_limiter_is_rejected() -> None:
    """Settling a lease the limiter did not issue is a programming error."""
    with pytest.raises(TypeError):
        await LocalRateLimiter().settle(Lease(0, None, None), 0, T)


@pytest.mark.parametrize(
    ("level", "rpm"),
    [pytest.param("tenant", 1, id="unknown-level"), pytest.param("key", -1, id="negative")],
)
def test_invalid_limits_are_rejected(level: str, rpm: int) -> None:
    """A limit on an unknown level or with a negative value cannot be built."""
    with pytest.raises(ValueError, match=level if rpm >= 0 else "rpm limit must be >= 0"):
        Limit(level, "s", None, rpm, None, None)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (-3.0, "0s"), (0.0201, "21ms"), (1.5, "1.5s"), (59.0, "59s"), (60.5, "1m0.5s")],
)
def test_reset_durations_are_written_the_openai_way(seconds: float, text: str) -> None:
    """x-ratelimit-reset-* values look like OpenAI's ("20ms", "1.5s", "1m0.5s")."""
    assert format_duration(seconds) == text
