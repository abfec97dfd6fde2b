"""Hard and soft budgets at every level: reserve an estimate before a call, settle the cost after.

One request is checked against every budget line that applies to it (key, user, team,
organization, end user, and the per-model budgets of each) in one atomic step: either every hard
budget has room and the estimate is reserved on all lines, or nothing is reserved and
`BudgetExceeded` names the level that refused. After the call, `settle` releases the
reservation and adds the actual cost. This module holds the shared types, the `BudgetLedger`
Protocol and `LocalBudgetLedger` (in-process); `llmux.governance.redis_budgets` holds the one
shared across replicas. Imports `llmux.errors` only.

Semantics shared by both ledgers:

* Amounts are counted in whole micro-dollars (`to_micros`, rounded to nearest), so sums are
  exact and both ledgers agree to the last unit; per request that rounds away less than half a
  micro-dollar. Persisted spend rows keep the exact float cost.
* A request is refused when its line has nothing left (``spent + reserved >= max_budget``) or
  when ``spent + reserved + estimate > max_budget``.
* Overshoot bound: a hard budget can be exceeded only by the requests already admitted, and by
  at most ``sum(max(actual - estimate, 0))`` over them, because every admitted request's
  estimate is reserved before the next one is checked. When estimates are upper bounds (all
  input uncached, the full output cap: `PriceBook.estimate`) there is no overshoot at all.
* Periods: a line's `period` names its current budget period; each period has its own counters,
  so a new period starts from zero (or from what `seed` loads). A request is charged to the
  period it reserved in.
* Soft budgets: `settle` reports a line the first time its spend reaches `soft_budget` in a
  period (once across all replicas for the Redis ledger). `seed` with a spend already past the
  soft budget marks it reported, so a restart does not report it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, final

from llmux.errors import BudgetExceeded

__all__ = [
    "MICROS_PER_USD",
    "BudgetLedger",
    "BudgetLine",
    "Hold",
    "LocalBudgetLedger",
    "SoftBudgetCrossing",
    "finish_hold",
    "optional_micros",
    "refusal",
    "refuses",
    "start_hold",
    "to_micros",
]

MICROS_PER_USD: Final = 1_000_000
_PERIODS_KEPT: Final = 2
"""Periods of one budget the local ledger keeps: the current one and the one before it, so a
request that reserved just before a reset can still settle against it."""


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One budget that applies to a request.

    `level` is "key", "user", "team", "organization", "end_user" or a per-model variant such as
    "key_model"; `subject` is the id at that level; `model` is set for per-model budgets
    (`model_max_budget`). `period` identifies the current budget period (e.g. the ISO
    `budget_reset_at`, or "" for a budget that never resets).
    """

    level: str
    subject: str
    model: str | None
    max_budget: float | None
    soft_budget: float | None
    period: str


@dataclass(frozen=True, slots=True)
class SoftBudgetCrossing:
    """A line whose soft budget was reached for the first time in its period."""

    line: BudgetLine
    spent: float
    """USD spent in the period, this request included."""


@final
@dataclass(slots=True)
class Hold:
    """A reservation made by `BudgetLedger.reserve`; settle it exactly once."""

    lines: tuple[BudgetLine, ...]
    estimate: int
    """The reserved amount on every line, in micro-dollars."""
    settled: bool = field(default=False)


class BudgetLedger(Protocol):
    """Budget counters: reserve before a call, settle after, seed persisted spend."""

    async def reserve(self, lines: Sequence[BudgetLine], estimate: float) -> Hold:
        """Reserve `estimate` USD on every line, atomically; `BudgetExceeded` if any is full."""
        ...

    async def settle(self, hold: Hold, actual: float) -> list[SoftBudgetCrossing]:
        """Release `hold` and add `actual` USD; returns the lines whose soft budget it crossed."""
        ...

    async def settle_many(
        self, items: Sequence[tuple[Hold, float]]
    ) -> list[list[SoftBudgetCrossing]]:
        """`settle` for many holds at once (one Redis round trip); crossings per hold."""
        ...

    async def seed(self, line: BudgetLine, spent: float) -> None:
        """Load persisted spend for `line`'s period; keeps the larger of it and the counter."""
        ...

    async def spent(self, line: BudgetLine) -> float:
        """USD settled on `line` in its period so far."""
        ...


def to_micros(usd: float) -> int:
    """USD as whole micro-dollars, rounded to nearest; negative amounts count as zero."""
    return max(round(usd * MICROS_PER_USD), 0)


def refusal(line: BudgetLine, spent: int, reserved: int, estimate: int) -> BudgetExceeded:
    """The error for a request refused by `line`; names the level, never the subject id."""
    level = line.level if line.model is None else f"{line.level} (model {line.model})"
    limit = line.max_budget or 0.0
    message = (
        f"Budget exceeded for {level}: "
        f"spent ${spent / MICROS_PER_USD:.4f} of the ${limit:.4f} budget"
    )
    if reserved:
        message += f", ${reserved / MICROS_PER_USD:.4f} more is held by requests in progress"
    if estimate:
        message += f"; this request may cost up to ${estimate / MICROS_PER_USD:.4f}"
    event = {
        "level": line.level,
        "subject": line.subject,
        "model": line.model,
        "period": line.period,
        "max_budget": line.max_budget,
        "spent": spent / MICROS_PER_USD,
        "reserved": reserved / MICROS_PER_USD,
        "estimate": estimate / MICROS_PER_USD,
    }
    return BudgetExceeded(message + ".", level=line.level, event=event)


def start_hold(lines: Sequence[BudgetLine], estimate: float) -> Hold:
    """A new, unsettled hold of `estimate` USD on `lines`."""
    return Hold(tuple(lines), to_micros(estimate))


def finish_hold(hold: Hold) -> None:
    """Mark `hold` settled; a second settle is a bug that would release the estimate twice."""
    if hold.settled:
        raise ValueError("this budget hold was already settled")
    hold.settled = True


def refuses(max_micros: int | None, spent: int, reserved: int, estimate: int) -> bool:
    """Whether a hard budget of `max_micros` refuses a request estimated at `estimate`."""
    if max_micros is None:
        return False
    used = spent + reserved
    return used >= max_micros or used + estimate > max_micros


def optional_micros(usd: float | None) -> int | None:
    """`to_micros`, keeping `None` (no budget) as `None`."""
    return None if usd is None else to_micros(usd)


_Slot = tuple[str, str, str | None]
"""A budget regardless of period: (level, subject, model)."""


@dataclass(slots=True)
class _Counter:
    spent: int = 0
    reserved: int = 0
    soft_reported: bool = False


@final
class LocalBudgetLedger:
    """The in-process ledger (standalone and development modes).

    Every method runs without awaiting anything inside, so on one event loop each call is
    atomic: concurrent reservations are checked one after another against the reserved total.
    """

    def __init__(self) -> None:
        self._counters: dict[tuple[_Slot, str], _Counter] = {}
        self._periods: dict[_Slot, list[str]] = {}

    async def reserve(self, lines: Sequence[BudgetLine], estimate: float) -> Hold:
        """Reserve `estimate` USD on every line, or raise `BudgetExceeded` and reserve nothing."""
        hold = start_hold(lines, estimate)
        counters = [self._counter(line) for line in hold.lines]
        for line, counter in zip(hold.lines, counters, strict=True):
            if refuses(
                optional_micros(line.max_budget), counter.spent, counter.reserved, hold.estimate
            ):
                raise refusal(line, counter.spent, counter.reserved, hold.estimate)
        for counter in counters:
            counter.reserved += hold.estimate
        return hold

    async def settle(self, hold: Hold, actual: float) -> list[SoftBudgetCrossing]:
        """Release `hold`, add `actual` USD to every line; report first soft-budget crossings."""
        finish_hold(hold)
        cost = to_micros(actual)
        crossed: list[SoftBudgetCrossing] = []
        for line in hold.lines:
            counter = self._counters.get((_slot(line), line.period))
            if counter is None:
                continue  # its period is two resets old and was dropped; nothing to charge
            counter.reserved = max(counter.reserved - hold.estimate, 0)
            counter.spent += cost
            if self._crosses_soft(line, counter):
                crossed.append(SoftBudgetCrossing(line, counter.spent / MICROS_PER_USD))
        return crossed

    async def settle_many(
        self, items: Sequence[tuple[Hold, float]]
    ) -> list[list[SoftBudgetCrossing]]:
        """Settle each hold in turn (in process, nothing to batch)."""
        return [await self.settle(hold, actual) for hold, actual in items]

    async def seed(self, line: BudgetLine, spent: float) -> None:
        """Load persisted spend; keeps the larger of it and what this process counted."""
        counter = self._counter(line)
        counter.spent = max(counter.spent, to_micros(spent))
        self._crosses_soft(line, counter)

    async def spent(self, line: BudgetLine) -> float:
        """USD settled on `line` in its period so far."""
        counter = self._counters.get((_slot(line), line.period))
        return 0.0 if counter is None else counter.spent / MICROS_PER_USD

    def _counter(self, line: BudgetLine) -> _Counter:
        slot = _slot(line)
        counter = self._counters.get((slot, line.period))
        if counter is None:
            counter = self._counters[(slot, line.period)] = _Counter()
            self._remember_period(slot, line.period)
        return counter

    def _remember_period(self, slot: _Slot, period: str) -> None:
        periods = self._periods.setdefault(slot, [])
        periods.append(period)
        while len(periods) > _PERIODS_KEPT:
            del self._counters[(slot, periods.pop(0))]

    @staticmethod
    def _crosses_soft(line: BudgetLine, counter: _Counter) -> bool:
        soft = optional_micros(line.soft_budget)
        if soft is None or counter.soft_reported or counter.spent < soft:
            return False
        counter.soft_reported = True
        return True


def _slot(line: BudgetLine) -> _Slot:
    return (line.level, line.subject, line.model)
