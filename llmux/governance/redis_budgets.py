"""`RedisBudgetLedger`: the budget ledger shared by every replica through Redis (distributed mode).

Same semantics as `LocalBudgetLedger` (see `llmux.governance.budgets`): a reservation is
checked and made on all lines in one Lua script, and a settle is one more, so a request costs
two round trips whatever the number of lines, and replicas can never admit the same budget
headroom twice.

Layout: one hash per line and period, fields `s` (spent), `r` (reserved), `a` (soft budget
reported), all integer micro-dollars, so HINCRBY keeps sums exact. Every key starts with the
hash tag ``{<prefix>budget}``: a request's lines live in one cluster slot, as a multi-key script
requires. A key expires a day after its period ends when `period` is an ISO timestamp (the
`budget_reset_at`), else `IDLE_TTL` after its last write; the grace leaves time for requests
that reserved before the reset to settle.

Errors from Redis (`redis.exceptions.RedisError`) propagate: whether a budget check fails open
or closed when Redis is down is the caller's policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, final
from urllib.parse import quote

import redis.asyncio as aioredis

from llmux.governance.budgets import (
    MICROS_PER_USD,
    BudgetLine,
    Hold,
    SoftBudgetCrossing,
    finish_hold,
    optional_micros,
    refusal,
    start_hold,
    to_micros,
)

__all__ = ["IDLE_TTL", "PERIOD_GRACE", "RedisBudgetLedger"]

IDLE_TTL: Final = timedelta(days=400)
"""Lifetime after the last write of a line whose period end is unknown (e.g. never resets)."""
PERIOD_GRACE: Final = timedelta(days=1)
"""How long a period's counters outlive its end, for requests still in flight at the reset."""

_RESERVE = """
-- KEYS: one hash per budget line and period.
-- ARGV[1]: the estimate; then per line i: ARGV[2i] max budget (-1: none), ARGV[2i+1] expiry (ms).
-- Checks every line first and writes only if all have room: returns {0}, or {i, spent,
-- reserved} for the first line that refuses.
local estimate = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local max = tonumber(ARGV[2 * i])
  if max >= 0 then
    local v = redis.call('HMGET', key, 's', 'r')
    local spent, reserved = tonumber(v[1]) or 0, tonumber(v[2]) or 0
    local used = spent + reserved
    if used >= max or used + estimate > max then return {i, spent, reserved} end
  end
end
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'r', ARGV[1])
  redis.call('PEXPIREAT', key, ARGV[2 * i + 1])
end
return {0}
"""

_SETTLE = """
-- ARGV[1]: minus the estimate, ARGV[2]: the actual cost; per line i: ARGV[2i+1] soft budget
-- (-1: none), ARGV[2i+2] expiry (ms). Returns {i, spent, ...} for lines whose soft budget is
-- reached for the first time in the period (field `a` records that it was reported).
local crossed = {}
for i, key in ipairs(KEYS) do
  if redis.call('HINCRBY', key, 'r', ARGV[1]) < 0 then redis.call('HSET', key, 'r', 0) end
  local spent = redis.call('HINCRBY', key, 's', ARGV[2])
  local soft = tonumber(ARGV[2 * i + 1])
  if soft >= 0 and spent >= soft and redis.call('HSETNX', key, 'a', 1) == 1 then
    crossed[#crossed + 1] = i
    crossed[#crossed + 1] = spent
  end
  redis.call('PEXPIREAT', key, ARGV[2 * i + 2])
end
return crossed
"""

_SEED = """
-- KEYS[1]: the line's hash. ARGV: persisted spend, soft budget (-1: none), expiry (ms).
-- Keeps the larger of the persisted and the counted spend; marks a passed soft budget reported.
local spent = tonumber(redis.call('HGET', KEYS[1], 's')) or 0
if tonumber(ARGV[1]) > spent then
  redis.call('HSET', KEYS[1], 's', ARGV[1])
  spent = tonumber(ARGV[1])
end
local soft = tonumber(ARGV[2])
if soft >= 0 and spent >= soft then redis.call('HSETNX', KEYS[1], 'a', 1) end
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return spent
"""


@final
class RedisBudgetLedger:
    """A `BudgetLedger` whose counters live in Redis, exact across replicas.

    Args:
        client: the Redis client (either `decode_responses` setting works).
        prefix: prepended to every key, e.g. "llmux:".
        clock: seconds since the epoch; only used to compute key expiry.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "llmux:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._tag = "{" + prefix + "budget}"
        self._clock = clock
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._seed = client.register_script(_SEED)

    async def reserve(self, lines: Sequence[BudgetLine], estimate: float) -> Hold:
        """Reserve `estimate` USD on every line, or raise `BudgetExceeded` and reserve nothing."""
        hold = start_hold(lines, estimate)
        if not hold.lines:
            return hold  # no budget applies: no round trip
        args: list[int | str] = [hold.estimate]
        for line in hold.lines:
            args += [_or_none(optional_micros(line.max_budget)), self._expiry_ms(line)]
        reply = await self._reserve(keys=self._keys(hold.lines), args=args)
        refused = int(reply[0])
        if refused:
            line = hold.lines[refused - 1]
            raise refusal(line, int(reply[1]), int(reply[2]), hold.estimate)
        return hold

    async def settle(self, hold: Hold, actual: float) -> list[SoftBudgetCrossing]:
        """Release `hold`, add `actual` USD to every line; report first soft-budget crossings."""
        return (await self.settle_many([(hold, actual)]))[0]

    async def settle_many(
        self, items: Sequence[tuple[Hold, float]]
    ) -> list[list[SoftBudgetCrossing]]:
        """Settle many holds in one pipelined round trip; crossings per hold, in order."""
        pending = []
        for hold, actual in items:
            finish_hold(hold)
            if hold.lines:
                args: list[int | str] = [-hold.estimate, to_micros(actual)]
                for line in hold.lines:
                    args += [_or_none(optional_micros(line.soft_budget)), self._expiry_ms(line)]
                pending.append((hold, args))
        replies: list[Any] = []
        if pending:
            pipe = self._client.pipeline(transaction=False)
            for hold, args in pending:
                await self._settle(keys=self._keys(hold.lines), args=args, client=pipe)
            replies = await pipe.execute()
        crossings = iter(
            [
                SoftBudgetCrossing(
                    hold.lines[int(reply[i]) - 1], int(reply[i + 1]) / MICROS_PER_USD
                )
                for i in range(0, len(reply), 2)
            ]
            for (hold, _), reply in zip(pending, replies, strict=True)
        )
        return [next(crossings) if hold.lines else [] for hold, _ in items]

    async def seed(self, line: BudgetLine, spent: float) -> None:
        """Load persisted spend; keeps the larger of it and what the replicas counted."""
        args = [
            to_micros(spent),
            _or_none(optional_micros(line.soft_budget)),
            self._expiry_ms(line),
        ]
        await self._seed(keys=[self._key(line)], args=args)

    async def spent(self, line: BudgetLine) -> float:
        """USD settled on `line` in its period so far."""
        value = await self._client.hget(self._key(line), "s")
        return 0.0 if value is None else int(value) / MICROS_PER_USD

    def _keys(self, lines: Sequence[BudgetLine]) -> list[str]:
        return [self._key(line) for line in lines]

    def _key(self, line: BudgetLine) -> str:
        parts = (line.level, line.subject, line.model or "", line.period)
        return ":".join((self._tag, *(_part(part) for part in parts)))

    def _expiry_ms(self, line: BudgetLine) -> int:
        now = datetime.fromtimestamp(self._clock(), UTC)
        end = _period_end(line.period)
        # Never in the past: PEXPIREAT in the past deletes the key and its reservations with it.
        expiry = now + IDLE_TTL if end is None else max(end, now) + PERIOD_GRACE
        return int(expiry.timestamp() * 1000)


def _period_end(period: str) -> datetime | None:
    if not period:
        return None
    try:
        end = datetime.fromisoformat(period)
    except ValueError:
        return None
    return end if end.tzinfo is not None else end.replace(tzinfo=UTC)


def _or_none(micros: int | None) -> int:
    return -1 if micros is None else micros


def _part(text: str) -> str:
    # Percent-encoding keeps ':' inside ids from making two lines share a key.
    return quote(text, safe="")
