"""Budgets at the network edge: hard budgets refuse before the call, soft ones alert once.

Calls go to `smart` (upstream model gpt-4o: $2.50 in, $10 out per million tokens). A chat of
"Hello" capped at 10 output tokens reserves about $0.00016 and costs $0.0001475 (19 in, 10 out),
so a $0.0002 budget admits exactly one such call. A refusal is a 429 `insufficient_quota` /
`budget_exceeded` naming the level, with `x-should-retry: false`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmux.governance.keys import hash_key
from llmux.serve import Gateway
from llmux.store.records import Key
from tests.helpers.edge import assert_openai_error, eventually_async, metric_samples
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import (
    add_key,
    add_team,
    chat,
    governance_of,
    governed_config,
    store_of,
)
from tests.helpers.manage import admin_call
from tests.helpers.upstream import FakeUpstream

NO_RESET_LOOP = "governance:\n  budgets:\n    reset_check_interval: 1h\n"
"""Keeps the background reset loop out of the way: tests call `reset_due_budgets` themselves."""


@pytest.fixture
async def governed(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """A gateway with virtual keys on; budget resets only when a test asks."""
    async with running_gateway(governed_config(upstream.url, extra=NO_RESET_LOOP)) as running:
        yield running


async def test_call_is_admitted_while_its_reservation_fits(governed: Gateway) -> None:
    """A capped call whose estimate fits a $0.0002 key budget is served."""
    key = await add_key(governed, max_budget=0.0002)
    reply = await chat(governed, key, "smart", max_tokens=10)
    assert reply.status == 200, reply.body


async def test_uncapped_call_is_refused_when_its_reservation_does_not_fit(
    governed: Gateway, upstream: FakeUpstream
) -> None:
    """Without an output cap the call reserves 4096 output tokens and cannot fit $0.0002."""
    key = await add_key(governed, max_budget=0.0002)
    reply = await chat(governed, key, "smart")
    assert reply.status == 429
    assert_openai_error(
        reply.json,
        type="insufficient_quota",
        code="budget_exceeded",
        param=None,
        mentions=("Budget exceeded for key", "may cost up to"),
    )
    assert reply.headers["x-should-retry"] == "false"
    assert upstream.received == []


async def test_spent_key_budget_refuses_the_next_call(governed: Gateway) -> None:
    """After a call spent most of the key budget, the next one is refused, naming the key."""
    key = await add_key(governed, max_budget=0.0002)
    assert (await chat(governed, key, "smart", max_tokens=10)).status == 200
    reply = await chat(governed, key, "smart", max_tokens=10)
    assert reply.status == 429
    assert_openai_error(
        reply.json,
        type="insufficient_quota",
        code="budget_exceeded",
        param=None,
        mentions=("Budget exceeded for key", "spent $0.0001"),
    )
    assert reply.headers["x-should-retry"] == "false"


async def test_team_budget_is_shared_by_its_keys(governed: Gateway) -> None:
    """A team budget spent through one key refuses the team's other key, naming the team."""
    await add_team(governed, "team-budget", max_budget=0.0002)
    first = await add_key(governed, team_id="team-budget")
    second = await add_key(governed, team_id="team-budget")
    assert (await chat(governed, first, "smart", max_tokens=10)).status == 200
    reply = await chat(governed, second, "smart", max_tokens=10)
    assert reply.status == 429
    assert_openai_error(
        reply.json,
        type="insufficient_quota",
        code="budget_exceeded",
        param=None,
        mentions=("Budget exceeded for team",),
    )


async def _soft_alerts(gateway: Gateway) -> float:
    samples = await metric_samples(gateway)
    return sum(
        value
        for name, labels, value in samples
        if name == "llmux_soft_budget_alerts_total" and labels.get("level") == "key"
    )


async def test_soft_budget_alerts_once(governed: Gateway) -> None:
    """Crossing a key's soft budget counts one alert, and later calls in the period add none."""
    key = await add_key(governed, soft_budget=0.0001)
    assert (await chat(governed, key, "smart", max_tokens=10)).status == 200

    async def alerted() -> bool:
        return await _soft_alerts(governed) == 1

    assert await eventually_async(alerted)
    for _ in range(2):
        assert (await chat(governed, key, "smart", max_tokens=10)).status == 200
    await governance_of(governed).gate.close()  # every settlement done
    assert await _soft_alerts(governed) == 1


async def test_due_budget_reset_lets_the_key_work_again(governed: Gateway) -> None:
    """A key at its budget whose period ended works again once `reset_due_budgets` runs."""
    now = datetime.now(UTC)
    key = await add_key(
        governed,
        max_budget=0.0002,
        spend=0.0002,
        budget_duration="1d",
        budget_reset_at=now - timedelta(minutes=1),
    )
    assert (await chat(governed, key, "smart", max_tokens=10)).status == 429
    assert await governance_of(governed).reset_due_budgets(now) == 1
    stored = await store_of(governed).get(Key, hash_key(key))
    assert stored is not None
    assert stored.spend == 0
    assert stored.budget_reset_at is not None and stored.budget_reset_at > now
    reply = await chat(governed, key, "smart", max_tokens=10)
    assert reply.status == 200, reply.body


async def test_due_team_budget_reset_lets_its_keys_work_again(governed: Gateway) -> None:
    """A team at its budget whose period ended is usable again once `reset_due_budgets` runs."""
    now = datetime.now(UTC)
    await add_team(
        governed,
        "team-reset",
        max_budget=0.0002,
        spend=0.0002,
        budget_duration="7d",
        budget_reset_at=now - timedelta(seconds=1),
    )
    key = await add_key(governed, team_id="team-reset")
    refused = await chat(governed, key, "smart", max_tokens=10)
    assert refused.status == 429
    assert "team" in refused.json["error"]["message"]
    assert await governance_of(governed).reset_due_budgets(now) == 1
    assert (await chat(governed, key, "smart", max_tokens=10)).status == 200


async def _budget_events(gateway: Gateway) -> list[dict[str, Any]]:
    """The `budget_exceeded` entries of the audit log, as the admin API lists them."""
    await governance_of(gateway).budget_events.close()  # every event written
    reply = await admin_call(gateway, "GET", "/audit/logs", query={"action": "budget_exceeded"})
    assert reply.status == 200, reply.body
    entries: list[dict[str, Any]] = reply.json["audit_logs"]
    return entries


async def test_refusal_is_recorded_in_the_audit_log(governed: Gateway) -> None:
    """A hard-budget refusal appends a `budget_exceeded` event naming the key and the amounts."""
    key = await add_key(governed, max_budget=0.0002)
    assert (await chat(governed, key, "smart", max_tokens=10)).status == 200
    refused = await chat(governed, key, "smart", max_tokens=10)
    (event,) = await _budget_events(governed)
    assert (event["actor"], event["object_type"], event["object_id"]) == (
        "gateway",
        "key",
        hash_key(key),
    )
    assert event["request_id"] == refused.headers["x-request-id"]
    assert event["after"]["max_budget"] == 0.0002
    assert event["after"]["spent"] == pytest.approx(0.000148)  # whole micro-dollars


async def test_repeated_refusals_in_one_period_are_recorded_once(governed: Gateway) -> None:
    """A client retrying against an exhausted budget adds one audit event, not one per call."""
    key = await add_key(governed, max_budget=0.0002, spend=0.0002)
    statuses = [(await chat(governed, key, "smart", max_tokens=10)).status for _ in range(5)]
    assert statuses == [429] * 5
    assert len(await _budget_events(governed)) == 1


async def test_each_refusing_level_is_recorded_separately(governed: Gateway) -> None:
    """Refusals by a team budget and by another key's budget are two events."""
    await add_team(governed, "team-spent", max_budget=0.0001, spend=0.0001)
    team_key = await add_key(governed, team_id="team-spent")
    own_key = await add_key(governed, max_budget=0.0001, spend=0.0001)
    assert (await chat(governed, team_key, "smart", max_tokens=10)).status == 429
    assert (await chat(governed, own_key, "smart", max_tokens=10)).status == 429
    events = await _budget_events(governed)
    assert sorted((e["object_type"], e["object_id"]) for e in events) == [
        ("key", hash_key(own_key)),
        ("team", "team-spent"),
    ]
