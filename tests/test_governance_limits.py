"""Rate limits at the network edge: RPM, TPM and parallel requests per key, team and model.

A refusal is a 429 `rate_limit_error` / `rate_limit_exceeded` naming the level, with
`Retry-After` and the OpenAI `x-ratelimit-*` headers; admitted responses carry the headers too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from llmux.governance.keys import hash_key
from llmux.serve import Gateway
from llmux.store.records import Key
from tests.helpers.edge import assert_openai_error, eventually_async
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import (
    add_key,
    add_team,
    chat,
    chat_body,
    governance_of,
    governed_config,
    store_of,
)
from tests.helpers.upstream import FakeUpstream, Reply


@pytest.fixture
async def governed(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """A gateway with virtual keys on (standalone: limits counted in process)."""
    async with running_gateway(governed_config(upstream.url)) as running:
        yield running


async def test_fourth_request_over_rpm_3_is_429(governed: Gateway, upstream: FakeUpstream) -> None:
    """With `rpm_limit: 3` the 4th request in the minute is a 429 with Retry-After and quotas."""
    key = await add_key(governed, rpm_limit=3)
    for _ in range(3):
        assert (await chat(governed, key)).status == 200
    reply = await chat(governed, key)
    assert reply.status == 429
    assert_openai_error(
        reply.json,
        type="rate_limit_error",
        code="rate_limit_exceeded",
        param=None,
        mentions=("key", "3 requests per minute"),
    )
    assert int(reply.headers["retry-after"]) >= 1
    assert reply.headers["x-ratelimit-limit-requests"] == "3"
    assert reply.headers["x-ratelimit-remaining-requests"] == "0"
    assert reply.headers["x-ratelimit-reset-requests"]
    assert len(upstream.received) == 3


async def test_admitted_responses_carry_rate_limit_headers(governed: Gateway) -> None:
    """Each admitted response shows the limit and what remains of it after this request."""
    key = await add_key(governed, rpm_limit=5)
    remaining = []
    for _ in range(2):
        reply = await chat(governed, key)
        assert reply.status == 200
        assert reply.headers["x-ratelimit-limit-requests"] == "5"
        assert reply.headers["x-ratelimit-reset-requests"]
        remaining.append(reply.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["4", "3"]


async def test_team_rpm_is_shared_by_its_keys(governed: Gateway) -> None:
    """A team `rpm_limit: 2` counts the requests of both its keys together; the 429 names it."""
    await add_team(governed, "team-rpm", rpm_limit=2)
    first = await add_key(governed, team_id="team-rpm")
    second = await add_key(governed, team_id="team-rpm")
    assert (await chat(governed, first)).status == 200
    assert (await chat(governed, second)).status == 200
    reply = await chat(governed, first)
    assert reply.status == 429
    assert_openai_error(
        reply.json,
        type="rate_limit_error",
        code="rate_limit_exceeded",
        param=None,
        mentions=("team", "2 requests per minute"),
    )


async def test_tpm_limit_refuses_once_tokens_are_used(governed: Gateway) -> None:
    """With `tpm_limit: 40`, a second capped call no longer fits the tokens left in the minute."""
    key = await add_key(governed, tpm_limit=40)
    first = await chat(governed, key, max_tokens=10)
    assert first.status == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "40"
    reply = await chat(governed, key, max_tokens=10)
    assert reply.status == 429
    assert_openai_error(
        reply.json,
        type="rate_limit_error",
        code="rate_limit_exceeded",
        param=None,
        mentions=("40 tokens per minute",),
    )
    assert reply.headers["x-ratelimit-limit-tokens"] == "40"
    assert "retry-after" in reply.headers


async def test_request_larger_than_tpm_limit_is_never_retryable(governed: Gateway) -> None:
    """A call whose own reservation beats the TPM limit is refused with `x-should-retry: false`."""
    key = await add_key(governed, tpm_limit=40)
    reply = await chat(governed, key, max_tokens=1000)
    assert reply.status == 429
    assert reply.headers["x-should-retry"] == "false"
    assert "can never fit" in reply.json["error"]["message"]


async def test_parallel_limit_refuses_while_a_stream_is_open(
    governed: Gateway, upstream: FakeUpstream
) -> None:
    """`max_parallel_requests: 1`: a second call while a slow stream runs is a 429."""
    upstream.stream_delay = 0.1
    key = await add_key(governed, max_parallel_requests=1)
    url = f"http://127.0.0.1:{governed.port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=chat_body(stream=True), headers=headers) as streaming,
    ):
        assert streaming.status == 200
        await streaming.content.readline()  # the stream is under way
        reply = await chat(governed, key)
        assert reply.status == 429
        assert_openai_error(
            reply.json,
            type="rate_limit_error",
            code="rate_limit_exceeded",
            param=None,
            mentions=("1 parallel requests",),
        )
        await streaming.read()

    async def slot_freed() -> bool:
        return (await chat(governed, key)).status == 200

    assert await eventually_async(slot_freed)


async def test_model_rpm_limit_applies_to_that_model_only(governed: Gateway) -> None:
    """`model_rpm_limit: {smart: 1}` refuses a second `smart` call and leaves gpt-4o-mini alone."""
    key = await add_key(governed, model_rpm_limit={"smart": 1})
    assert (await chat(governed, key, "smart")).status == 200
    reply = await chat(governed, key, "smart")
    assert reply.status == 429
    assert_openai_error(
        reply.json,
        type="rate_limit_error",
        code="rate_limit_exceeded",
        param=None,
        mentions=("on model smart", "1 requests per minute"),
    )
    assert (await chat(governed, key, "gpt-4o-mini")).status == 200


async def test_concurrent_burst_admits_exactly_the_limit(governed: Gateway) -> None:
    """20 concurrent calls on `rpm_limit: 7` get exactly 7 answers and 13 refusals."""
    key = await add_key(governed, rpm_limit=7)
    replies = await asyncio.gather(*(chat(governed, key) for _ in range(20)))
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200] * 7 + [429] * 13


async def test_streamed_responses_carry_rate_limit_headers(governed: Gateway) -> None:
    """A streamed call shows its limit and what remains in the response headers."""
    key = await add_key(governed, rpm_limit=4)
    reply = await chat(governed, key, stream=True)
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.headers["x-ratelimit-limit-requests"] == "4"
    assert reply.headers["x-ratelimit-remaining-requests"] == "3"


async def test_failed_upstream_call_frees_its_parallel_slot(
    governed: Gateway, upstream: FakeUpstream
) -> None:
    """A call that the upstream fails still gives back its `max_parallel_requests` slot."""
    upstream.enqueue(Reply(500, b'{"error":{"message":"boom","type":"server_error"}}'))
    key = await add_key(governed, max_parallel_requests=1)
    assert (await chat(governed, key)).status >= 500

    async def slot_freed() -> bool:
        return (await chat(governed, key)).status == 200

    assert await eventually_async(slot_freed)


async def test_raised_key_limit_applies_after_invalidation(governed: Gateway) -> None:
    """Raising a key's `rpm_limit` in the store and invalidating it admits the next call."""
    key = await add_key(governed, rpm_limit=1)
    assert (await chat(governed, key)).status == 200
    assert (await chat(governed, key)).status == 429
    token = hash_key(key)
    await store_of(governed).update(Key, token, {"rpm_limit": 5})
    await governance_of(governed).invalidate_key(token)
    reply = await chat(governed, key)
    assert reply.status == 200
    assert reply.headers["x-ratelimit-limit-requests"] == "5"
