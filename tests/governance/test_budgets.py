"""The budget ledger contract, run against the in-process ledger and the Redis one alike."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from llmux.errors import BudgetExceeded
from llmux.governance.budgets import BudgetLedger, BudgetLine, Hold, LocalBudgetLedger
from llmux.governance.redis_budgets import RedisBudgetLedger

REDIS_URL = "redis://127.0.0.1:6379/0"


def line(
    level: str = "team",
    max_budget: float | None = 10.0,
    soft_budget: float | None = None,
    period: str = "2026-04-01T00:00:00+00:00",
    model: str | None = None,
    subject: str = "t-1",
) -> BudgetLine:
    """A budget line with test defaults: team t-1, $10 hard budget."""
    return BudgetLine(level, subject, model, max_budget, soft_budget, period)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A unique key prefix; its keys are deleted after the test."""
    prefix = f"test-budgets-{uuid.uuid4().hex}:"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    async for key in client.scan_iter(match="{" + prefix + "*"):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    """A client of the local Redis."""
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture(params=["local", "redis"])
def ledger(
    request: pytest.FixtureRequest, redis_client: aioredis.Redis, redis_prefix: str
) -> BudgetLedger:
    """Each ledger implementation, fresh."""
    if request.param == "local":
        return LocalBudgetLedger()
    return RedisBudgetLedger(redis_client, prefix=redis_prefix)


async def test_refusal_names_the_level(ledger: BudgetLedger) -> None:
    """A full budget refuses with a message naming its level and amounts."""
    await ledger.seed(line(), 10.0)
    with pytest.raises(BudgetExceeded) as info:
        await ledger.reserve([line()], 0.0)
    assert info.value.message == "Budget exceeded for team: spent $10.0000 of the $10.0000 budget."


async def test_refusal_is_a_429_sdks_do_not_retry(ledger: BudgetLedger) -> None:
    """The refusal is HTTP 429 insufficient_quota with `x-should-retry: false`."""
    await ledger.seed(line(), 10.0)
    with pytest.raises(BudgetExceeded) as info:
        await ledger.reserve([line()], 0.5)
    assert (info.value.http_status, info.value.error_type) == (429, "insufficient_quota")
    assert info.value.headers["x-should-retry"] == "false"


async def test_refusal_names_the_first_full_level(ledger: BudgetLedger) -> None:
    """With several lines, the message names the one that has no room."""
    lines = [line("key", 100.0, subject="k"), line("organization", 1.0, subject="o")]
    with pytest.raises(BudgetExceeded, match="for organization: spent \\$0.0000 of the \\$1.00"):
        await ledger.reserve(lines, 2.0)


async def test_per_model_refusal_names_the_model(ledger: BudgetLedger) -> None:
    """A per-model budget names its model in the refusal."""
    model_line = line("key_model", 1.0, model="gpt-4o", subject="k")
    with pytest.raises(BudgetExceeded, match="for key_model \\(model gpt-4o\\)"):
        await ledger.reserve([model_line], 1.5)


async def test_refusal_mentions_the_estimate_and_holds_in_progress(ledger: BudgetLedger) -> None:
    """When reservations and the estimate make the difference, the message says so."""
    await ledger.reserve([line()], 6.0)
    with pytest.raises(BudgetExceeded) as info:
        await ledger.reserve([line()], 5.0)
    assert info.value.message == (
        "Budget exceeded for team: spent $0.0000 of the $10.0000 budget, $6.0000 more is held by "
        "requests in progress; this request may cost up to $5.0000."
    )


async def test_refused_request_reserves_nothing_on_any_line(ledger: BudgetLedger) -> None:
    """A refusal by one line leaves every other line untouched."""
    key = line("key", 10.0, subject="k")
    with pytest.raises(BudgetExceeded):
        await ledger.reserve([key, line("team", 1.0)], 5.0)
    await ledger.reserve([key], 10.0)


async def test_estimate_that_fits_exactly_is_admitted(ledger: BudgetLedger) -> None:
    """spent + reserved + estimate == max_budget is still within the budget."""
    await ledger.seed(line(), 4.0)
    hold = await ledger.reserve([line()], 6.0)
    assert hold.lines == (line(),)


async def test_line_without_hard_budget_never_refuses(ledger: BudgetLedger) -> None:
    """A line with only a soft budget (or none) tracks spend but admits everything."""
    await ledger.seed(line(max_budget=None), 1_000.0)
    hold = await ledger.reserve([line(max_budget=None)], 1_000.0)
    await ledger.settle(hold, 1.0)
    assert await ledger.spent(line(max_budget=None)) == 1_001.0


async def test_reservations_block_concurrent_overshoot(ledger: BudgetLedger) -> None:
    """50 concurrent $1 reservations against a $10 budget: exactly 10 are admitted."""
    results = await asyncio.gather(
        *(ledger.reserve([line()], 1.0) for _ in range(50)), return_exceptions=True
    )
    admitted = [r for r in results if isinstance(r, Hold)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert (len(admitted), len(refused)) == (10, 40)


async def test_settle_releases_the_estimate_and_adds_the_cost(ledger: BudgetLedger) -> None:
    """After settling $2 of a $5 estimate, $8 of the $10 budget is left."""
    hold = await ledger.reserve([line()], 5.0)
    await ledger.settle(hold, 2.0)
    assert await ledger.spent(line()) == 2.0
    await ledger.reserve([line()], 8.0)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve([line()], 0.01)


async def test_settle_charges_every_line(ledger: BudgetLedger) -> None:
    """The actual cost is added to each line of the hold."""
    lines = [line("key", None, subject="k"), line("team", None), line("user", None, subject="u")]
    await ledger.settle(await ledger.reserve(lines, 1.0), 0.25)
    assert [await ledger.spent(each) for each in lines] == [0.25, 0.25, 0.25]


async def test_overshoot_is_bounded_by_underestimates_in_flight(ledger: BudgetLedger) -> None:
    """Ten admitted $1 estimates that cost $1.50 overshoot $10 by exactly 10 x $0.50, no more."""
    holds = [await ledger.reserve([line()], 1.0) for _ in range(10)]
    with pytest.raises(BudgetExceeded):
        await ledger.reserve([line()], 0.01)
    for hold in holds:
        await ledger.settle(hold, 1.5)
    assert await ledger.spent(line()) == 15.0
    with pytest.raises(BudgetExceeded):
        await ledger.reserve([line()], 0.0)


async def test_spend_is_exact_in_micro_dollars(ledger: BudgetLedger) -> None:
    """Ten settles of $0.10 add up to exactly $1.00 (no float drift)."""
    for _ in range(10):
        await ledger.settle(await ledger.reserve([line()], 0.1), 0.1)
    assert await ledger.spent(line()) == 1.0


async def test_settling_twice_is_refused(ledger: BudgetLedger) -> None:
    """A second settle of the same hold would release its estimate twice, so it raises."""
    hold = await ledger.reserve([line()], 1.0)
    await ledger.settle(hold, 1.0)
    with pytest.raises(ValueError, match="already settled"):
        await ledger.settle(hold, 1.0)


async def test_soft_budget_crossing_is_reported_once(ledger: BudgetLedger) -> None:
    """Only the settle that first reaches the soft budget reports it."""
    soft = line(soft_budget=1.0)
    reports = [await ledger.settle(await ledger.reserve([soft], 0.6), 0.6) for _ in range(3)]
    assert [[(c.line, c.spent) for c in r] for r in reports] == [[], [(soft, 1.2)], []]


async def test_soft_crossing_names_only_the_crossed_line(ledger: BudgetLedger) -> None:
    """Of several lines, only the one whose soft budget was reached is reported."""
    lines = [line("key", None, soft_budget=5.0, subject="k"), line("team", None, soft_budget=1.0)]
    crossed = await ledger.settle(await ledger.reserve(lines, 2.0), 2.0)
    assert [c.line.level for c in crossed] == ["team"]


async def test_new_period_starts_from_zero(ledger: BudgetLedger) -> None:
    """A full budget has room again once its period changes."""
    march, april = (
        line(period="2026-03-01T00:00:00+00:00"),
        line(period="2026-04-01T00:00:00+00:00"),
    )
    await ledger.seed(march, 10.0)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve([march], 1.0)
    await ledger.reserve([april], 10.0)
    assert await ledger.spent(april) == 0.0


async def test_soft_budget_is_reported_again_in_a_new_period(ledger: BudgetLedger) -> None:
    """The once-per-period soft report happens once in each period."""
    march = line(soft_budget=1.0, period="2026-03-01T00:00:00+00:00")
    april = line(soft_budget=1.0, period="2026-04-01T00:00:00+00:00")
    first = await ledger.settle(await ledger.reserve([march], 2.0), 2.0)
    second = await ledger.settle(await ledger.reserve([april], 2.0), 2.0)
    assert (len(first), len(second)) == (1, 1)


async def test_request_settles_in_the_period_it_reserved_in(ledger: BudgetLedger) -> None:
    """A hold made before a reset charges the old period, not the new one."""
    march, april = (
        line(period="2026-03-01T00:00:00+00:00"),
        line(period="2026-04-01T00:00:00+00:00"),
    )
    hold = await ledger.reserve([march], 1.0)
    await ledger.reserve([april], 1.0)
    await ledger.settle(hold, 1.0)
    assert (await ledger.spent(march), await ledger.spent(april)) == (1.0, 0.0)


async def test_never_resetting_budget_uses_an_empty_period(ledger: BudgetLedger) -> None:
    """A budget without `budget_duration` uses period "" and counts forever."""
    forever = line(period="")
    await ledger.settle(await ledger.reserve([forever], 3.0), 3.0)
    assert await ledger.spent(forever) == 3.0


async def test_seed_loads_persisted_spend(ledger: BudgetLedger) -> None:
    """Seeded spend counts against the budget."""
    await ledger.seed(line(), 7.0)
    with pytest.raises(BudgetExceeded, match="spent \\$7.0000"):
        await ledger.reserve([line()], 3.5)


async def test_seed_keeps_the_larger_spend(ledger: BudgetLedger) -> None:
    """A stale (smaller) persisted spend never lowers what was counted."""
    await ledger.settle(await ledger.reserve([line()], 5.0), 5.0)
    await ledger.seed(line(), 3.0)
    assert await ledger.spent(line()) == 5.0


async def test_seed_past_the_soft_budget_is_not_reported_again(ledger: BudgetLedger) -> None:
    """Spend already past the soft budget at seed time was reported before the restart."""
    soft = line(soft_budget=1.0)
    await ledger.seed(soft, 5.0)
    assert await ledger.settle(await ledger.reserve([soft], 1.0), 1.0) == []


async def test_unknown_line_has_spent_nothing(ledger: BudgetLedger) -> None:
    """A line never reserved, settled or seeded reports $0 spent."""
    assert await ledger.spent(line(subject="nobody")) == 0.0


async def test_no_lines_reserve_and_settle_nothing(ledger: BudgetLedger) -> None:
    """A request no budget applies to gets an empty hold that settles to no crossings."""
    hold = await ledger.reserve([], 5.0)
    assert await ledger.settle(hold, 5.0) == []
