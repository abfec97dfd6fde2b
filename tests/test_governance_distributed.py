"""Governance across replicas: two gateways sharing real Redis and Postgres stay exact.

Each test gets its own Redis key prefix and Postgres schema, removed afterwards. A key made
through gateway A's store is seen by gateway B through Postgres; limits and budgets are counted
in Redis, so they hold cluster-wide, and a revocation published by A reaches B's key cache.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import pytest
import redis.asyncio as aioredis

from llmux.governance.keys import hash_key
from llmux.serve import Gateway
from llmux.store.records import Key
from tests.governance._outage import TcpProxy
from tests.helpers.edge import eventually_async
from tests.helpers.gateway import gateway_from, running_gateway
from tests.helpers.governance import (
    MASTER_KEY,
    add_key,
    chat,
    distributed_config,
    governance_of,
    spend_row,
    store_of,
)
from tests.helpers.manage import admin_call
from tests.helpers.upstream import FakeUpstream

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"llmux-gov-test-{uuid.uuid4().hex}:"
    yield prefix
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        for pattern in (prefix + "*", "{" + prefix + "*"):
            keys = [key async for key in client.scan_iter(match=pattern)]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A Postgres schema of this test's own (created by the store's migrations), dropped after."""
    schema = f"llmux_gov_{uuid.uuid4().hex}"
    yield schema
    connection = await asyncpg.connect(PG_URL)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@pytest.fixture
async def pair(
    upstream: FakeUpstream, redis_prefix: str, pg_schema: str
) -> AsyncIterator[tuple[Gateway, Gateway]]:
    """Gateways A and B in distributed mode over the same Redis prefix and Postgres schema."""
    async with AsyncExitStack() as stack:
        a, b = [
            await stack.enter_async_context(
                running_gateway(
                    distributed_config(upstream.url, redis_prefix=redis_prefix, pg_schema=pg_schema)
                )
            )
            for _ in range(2)
        ]
        yield a, b


async def test_rpm_limit_is_exact_across_two_gateways(
    pair: tuple[Gateway, Gateway], upstream: FakeUpstream
) -> None:
    """30 concurrent calls spread over both gateways on `rpm_limit: 10`: exactly 10 succeed."""
    a, b = pair
    key = await add_key(a, rpm_limit=10)
    replies = await asyncio.gather(*(chat((a, b)[n % 2], key) for n in range(30)))
    statuses = [reply.status for reply in replies]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 20
    assert len(upstream.received) == 10


async def test_key_blocked_on_a_is_refused_on_b_within_a_second(
    pair: tuple[Gateway, Gateway],
) -> None:
    """Blocking a key through A's store and A's invalidation makes B refuse it within 1 s."""
    a, b = pair
    key = await add_key(a)
    assert (await chat(b, key)).status == 200  # B now has the key cached
    token = hash_key(key)
    await store_of(a).update(Key, token, {"blocked": True})
    await governance_of(a).invalidate_key(token)

    async def refused_on_b() -> bool:
        reply = await chat(b, key)
        return reply.status == 401 and reply.json["error"]["code"] == "key_blocked"

    assert await eventually_async(refused_on_b, within=1.0)


async def test_budget_is_shared_across_two_gateways(pair: tuple[Gateway, Gateway]) -> None:
    """A key budget spent through A refuses the next call on B with `budget_exceeded`."""
    a, b = pair
    key = await add_key(a, max_budget=0.0002)
    assert (await chat(a, key, "smart", max_tokens=10)).status == 200
    reply = await chat(b, key, "smart", max_tokens=10)
    assert reply.status == 429
    assert reply.json["error"]["code"] == "budget_exceeded"
    assert reply.headers["x-should-retry"] == "false"


async def test_spend_rows_of_both_gateways_land_in_the_shared_store(
    pair: tuple[Gateway, Gateway],
) -> None:
    """A call through each gateway leaves one spend row each in the shared Postgres store."""
    a, b = pair
    key = await add_key(a)
    ids = [(await chat(gateway, key, "smart")).headers["x-request-id"] for gateway in (a, b)]
    rows = [await spend_row(a, request_id) for request_id in ids]
    assert [row.token for row in rows] == [hash_key(key)] * 2
    assert rows[0].cost == rows[1].cost > 0


async def test_concurrent_calls_never_overshoot_a_shared_budget(
    pair: tuple[Gateway, Gateway],
) -> None:
    """20 concurrent capped calls over both gateways on a $0.001 budget spend at most $0.001.

    The long prompt makes each reservation (about $0.00019) exceed the call's real cost
    ($0.0001475), so the ledger's atomic reservations alone must keep the budget whole.
    """
    a, b = pair
    key = await add_key(a, max_budget=0.001)
    long_prompt = [{"role": "user", "content": "Hello " * 20}]
    replies = await asyncio.gather(
        *(chat((a, b)[n % 2], key, "smart", max_tokens=10, messages=long_prompt) for n in range(20))
    )
    served = [reply for reply in replies if reply.status == 200]
    refused = [reply for reply in replies if reply.status != 200]
    assert served
    assert {reply.json["error"]["code"] for reply in refused} == {"budget_exceeded"}
    rows = [await spend_row(a, reply.headers["x-request-id"]) for reply in served]
    assert sum(row.cost for row in rows) <= 0.001


async def test_budget_reset_on_a_frees_the_key_on_b(pair: tuple[Gateway, Gateway]) -> None:
    """A spent key whose period ended works on B once A runs `reset_due_budgets`."""
    a, b = pair
    now = datetime.now(UTC)
    key = await add_key(
        a,
        max_budget=0.0002,
        spend=0.0002,
        budget_duration="1d",
        budget_reset_at=now - timedelta(minutes=1),
    )
    assert (await chat(b, key, "smart", max_tokens=10)).status == 429
    assert await governance_of(a).reset_due_budgets(now) == 1

    async def served_on_b() -> bool:
        return (await chat(b, key, "smart", max_tokens=10)).status == 200

    assert await eventually_async(served_on_b, within=1.0)


async def _through_cut_redis(
    upstream: FakeUpstream, redis_prefix: str, pg_schema: str, *, fail_open: bool
) -> int:
    """The status of a governed call (limits and a budget) made while Redis is unreachable."""
    relay = TcpProxy("127.0.0.1", 6379)
    await relay.start()
    config = distributed_config(upstream.url, redis_prefix=redis_prefix, pg_schema=pg_schema)
    config = config.replace("redis://127.0.0.1:6379/0", f"redis://127.0.0.1:{relay.port}/0")
    config += f"governance:\n  rate_limits:\n    fail_open: {str(fail_open).lower()}\n"
    try:
        async with running_gateway(config) as gateway:
            key = await add_key(gateway, rpm_limit=100, max_budget=5.0)
            await relay.cut()
            return (await chat(gateway, key)).status
    finally:
        await relay.close()


async def test_redis_down_fails_open_for_limits_and_budgets(
    upstream: FakeUpstream, redis_prefix: str, pg_schema: str
) -> None:
    """With `fail_open: true` a governed call is served while Redis is unreachable."""
    assert await _through_cut_redis(upstream, redis_prefix, pg_schema, fail_open=True) == 200


async def test_redis_down_fails_closed_with_503(
    upstream: FakeUpstream, redis_prefix: str, pg_schema: str
) -> None:
    """With `fail_open: false` a governed call is refused with 503 while Redis is down."""
    assert await _through_cut_redis(upstream, redis_prefix, pg_schema, fail_open=False) == 503


async def test_reload_through_a_reloads_b_from_its_own_file(
    upstream: FakeUpstream, redis_prefix: str, pg_schema: str, tmp_path: Path
) -> None:
    """A config reload asked of A is announced over Redis: B reloads its own file within
    seconds and serves the model the new file adds."""
    paths = [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    for path in paths:  # one text each: each picks its own admin port
        path.write_text(
            distributed_config(upstream.url, redis_prefix=redis_prefix, pg_schema=pg_schema)
        )
    async with AsyncExitStack() as stack:
        a, b = [await stack.enter_async_context(gateway_from(path)) for path in paths]
        before = (await chat(b, MASTER_KEY, "gpt-4.1-nano")).status
        for path in paths:
            path.write_text(path.read_text().replace(_MINI, _MINI + "      - gpt-4.1-nano\n"))
        reloaded = await admin_call(a, "POST", "/control/config/reload", {})

        async def b_serves_it() -> bool:
            return (await chat(b, MASTER_KEY, "gpt-4.1-nano")).status == 200

        served = await eventually_async(b_serves_it, within=3.0)
    assert (before, reloaded.status, served) == (404, 200, True)


_MINI = "      - gpt-4o-mini\n"
