"""What only the Redis budget ledger does: shared state across instances, key layout, expiry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from llmux.errors import BudgetExceeded
from llmux.governance.budgets import BudgetLine, Hold
from llmux.governance.redis_budgets import IDLE_TTL, PERIOD_GRACE, RedisBudgetLedger

REDIS_URL = "redis://127.0.0.1:6379/0"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def team(period: str = "2026-04-01T00:00:00+00:00", subject: str = "t-1") -> BudgetLine:
    """Team `subject`'s $10 budget line."""
    return BudgetLine("team", subject, None, 10.0, 5.0, period)


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    """A client of the local Redis."""
    redis = aioredis.Redis.from_url(REDIS_URL)
    yield redis
    await redis.aclose()


@pytest.fixture
async def prefix(client: aioredis.Redis) -> AsyncIterator[str]:
    """A unique key prefix; its keys are deleted after the test."""
    prefix = f"test-budgets-{uuid.uuid4().hex}:"
    yield prefix
    async for key in client.scan_iter(match="{" + prefix + "*"):
        await client.delete(key)


async def keys(client: aioredis.Redis, prefix: str) -> list[str]:
    """Every key under `prefix`."""
    return [bytes(key).decode() async for key in client.scan_iter(match="{" + prefix + "*")]


async def test_two_instances_share_reservations(client: aioredis.Redis, prefix: str) -> None:
    """A reservation made through one replica's ledger fills the budget for the other."""
    one, two = RedisBudgetLedger(client, prefix), RedisBudgetLedger(client, prefix)
    await one.reserve([team()], 10.0)
    with pytest.raises(BudgetExceeded):
        await two.reserve([team()], 0.01)


async def test_two_instances_share_spend(client: aioredis.Redis, prefix: str) -> None:
    """Spend settled through one ledger is what the other reads."""
    one, two = RedisBudgetLedger(client, prefix), RedisBudgetLedger(client, prefix)
    await one.settle(await one.reserve([team()], 3.0), 2.5)
    assert await two.spent(team()) == 2.5


async def test_two_instances_admit_exactly_the_budget(client: aioredis.Redis, prefix: str) -> None:
    """50 concurrent $1 reservations split over two replicas admit exactly 10 in total."""
    ledgers = [RedisBudgetLedger(client, prefix), RedisBudgetLedger(client, prefix)]
    results = await asyncio.gather(
        *(ledgers[i % 2].reserve([team()], 1.0) for i in range(50)), return_exceptions=True
    )
    assert sum(isinstance(r, Hold) for r in results) == 10


async def test_soft_budget_is_reported_by_one_replica_only(
    client: aioredis.Redis, prefix: str
) -> None:
    """Both replicas crossing the soft budget in turn report it once between them."""
    one, two = RedisBudgetLedger(client, prefix), RedisBudgetLedger(client, prefix)
    first = await one.settle(await one.reserve([team()], 3.0), 3.0)
    second = await two.settle(await two.reserve([team()], 3.0), 3.0)
    third = await one.settle(await one.reserve([team()], 1.0), 1.0)
    assert [len(first), len(second), len(third)] == [0, 1, 0]


async def test_one_key_per_line_and_period(client: aioredis.Redis, prefix: str) -> None:
    """Each (line, period) pair has its own hash under the shared hash tag."""
    ledger = RedisBudgetLedger(client, prefix)
    lines = [team(), team(period="2026-05-01T00:00:00+00:00"), team(subject="t-2")]
    await ledger.reserve(lines, 1.0)
    found = await keys(client, prefix)
    assert len(found) == 3
    assert all(key.startswith("{" + prefix + "budget}:team:") for key in found)


async def test_colons_in_ids_do_not_merge_lines(client: aioredis.Redis, prefix: str) -> None:
    """Subjects "a:b" and "a" with model "b" are different budgets."""
    ledger = RedisBudgetLedger(client, prefix)
    colon = BudgetLine("key", "a:b", None, 1.0, None, "")
    model = BudgetLine("key", "a", "b", 1.0, None, "")
    await ledger.reserve([colon], 1.0)
    await ledger.reserve([model], 1.0)
    assert len(await keys(client, prefix)) == 2


async def test_key_expires_a_grace_period_after_its_period_ends(
    client: aioredis.Redis, prefix: str
) -> None:
    """A period named by its ISO end time expires one grace period after that end."""
    ledger = RedisBudgetLedger(client, prefix, clock=NOW.timestamp)
    end = datetime(2099, 1, 1, tzinfo=UTC)
    await ledger.reserve([team(period=end.isoformat())], 1.0)
    [key] = await keys(client, prefix)
    assert await client.pexpiretime(key) == int((end + PERIOD_GRACE).timestamp() * 1000)


async def test_key_of_an_ended_period_is_not_deleted(client: aioredis.Redis, prefix: str) -> None:
    """A period that ended already (by the clock) keeps its reservations for the grace time."""
    ledger = RedisBudgetLedger(client, prefix)
    await ledger.reserve([team(period="2001-01-01T00:00:00+00:00")], 10.0)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve([team(period="2001-01-01T00:00:00+00:00")], 1.0)


async def test_key_without_period_end_lives_for_the_idle_ttl(
    client: aioredis.Redis, prefix: str
) -> None:
    """A never-resetting line expires IDLE_TTL after its last write."""
    ledger = RedisBudgetLedger(client, prefix, clock=NOW.timestamp)
    await ledger.reserve([team(period="")], 1.0)
    [key] = await keys(client, prefix)
    expected = int((NOW + IDLE_TTL).timestamp() * 1000)
    assert await client.pexpiretime(key) == expected


async def test_settle_refreshes_the_idle_ttl(client: aioredis.Redis, prefix: str) -> None:
    """Each write pushes the idle expiry forward."""
    clock = [NOW.timestamp()]
    ledger = RedisBudgetLedger(client, prefix, clock=lambda: clock[0])
    hold = await ledger.reserve([team(period="")], 1.0)
    clock[0] += timedelta(days=3).total_seconds()
    await ledger.settle(hold, 1.0)
    [key] = await keys(client, prefix)
    later = NOW + timedelta(days=3) + IDLE_TTL
    assert await client.pexpiretime(key) == int(later.timestamp() * 1000)


async def test_works_with_decoded_responses(prefix: str) -> None:
    """A client with `decode_responses=True` gives the same results."""
    redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        ledger = RedisBudgetLedger(redis, prefix)
        await ledger.seed(team(), 9.0)
        with pytest.raises(BudgetExceeded, match="spent \\$9.0000"):
            await ledger.reserve([team()], 2.0)
        assert await ledger.spent(team()) == 9.0
    finally:
        await redis.aclose()
