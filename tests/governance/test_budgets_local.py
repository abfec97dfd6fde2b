"""What only the in-process budget ledger does: bounded memory across budget periods."""

from __future__ import annotations

from llmux.governance.budgets import BudgetLine, LocalBudgetLedger


def team(period: str) -> BudgetLine:
    """Team t-1's $10 budget line in `period`."""
    return BudgetLine("team", "t-1", None, 10.0, None, period)


async def test_periods_older_than_the_previous_one_are_forgotten() -> None:
    """Only the current and the previous period of a budget are kept in memory."""
    ledger = LocalBudgetLedger()
    for period in ("2026-01", "2026-02", "2026-03"):
        await ledger.seed(team(period), 1.0)
    spent = [await ledger.spent(team(p)) for p in ("2026-01", "2026-02", "2026-03")]
    assert spent == [0.0, 1.0, 1.0]


async def test_settling_a_forgotten_period_charges_nothing() -> None:
    """A hold from a period two resets old settles without error and without charge."""
    ledger = LocalBudgetLedger()
    hold = await ledger.reserve([team("2026-01")], 1.0)
    await ledger.reserve([team("2026-02")], 1.0)
    await ledger.reserve([team("2026-03")], 1.0)
    assert await ledger.settle(hold, 1.0) == []
    assert await ledger.spent(team("2026-03")) == 0.0
