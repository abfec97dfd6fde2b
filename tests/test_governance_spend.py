"""The spend ledger at the network edge: one priced row per request, and the cost headers.

Rows land through the background writer, so tests poll the store for them. `smart` runs on
gpt-4o ($2.50 in, $10 out per million tokens); the recorded chat answer used 19 prompt and 10
completion tokens, which cost $0.0001475.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from llmux.governance.keys import hash_key
from llmux.serve import Gateway
from tests.helpers.edge import eventually_async, metric_samples
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import (
    add_key,
    add_team,
    chat,
    chat_body,
    governed_config,
    spend_row,
)
from tests.helpers.upstream import FakeUpstream, Reply, Stream, fixture_bytes, sse_frames

GPT_4O_CHAT_COST = 19 * 2.50 / 1e6 + 10 * 10.00 / 1e6


@pytest.fixture
async def governed(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """A gateway with virtual keys on and the spend writer running."""
    async with running_gateway(governed_config(upstream.url)) as running:
        yield running


async def test_priced_call_writes_a_complete_spend_row(governed: Gateway) -> None:
    """A call on `smart` leaves a row with its request id, key, team, model, tokens and cost."""
    await add_team(governed, "team-spend")
    key = await add_key(governed, team_id="team-spend", tags=["billing"])
    reply = await chat(governed, key, "smart")
    assert reply.status == 200
    row = await spend_row(governed, reply.headers["x-request-id"])
    assert row.token == hash_key(key)
    assert row.team_id == "team-spend"
    assert row.model_group == "smart"
    assert row.deployment == reply.headers["x-llmux-deployment"]
    assert row.provider == "upstream"
    assert (row.input_tokens, row.output_tokens) == (19, 10)
    assert row.cost == pytest.approx(GPT_4O_CHAT_COST, rel=1e-9)
    assert row.status == 200
    assert row.tags == ["billing"]


async def test_cost_header_equals_the_rows_cost(governed: Gateway) -> None:
    """`x-llmux-response-cost` is exactly the cost the ledger recorded for the call."""
    key = await add_key(governed)
    reply = await chat(governed, key, "smart")
    row = await spend_row(governed, reply.headers["x-request-id"])
    assert float(reply.headers["x-llmux-response-cost"]) == row.cost


async def test_cheap_call_cost_header_is_not_rounded_away(governed: Gateway) -> None:
    """A gpt-4o-mini chat ($0.00000885) shows its cost, not a rounded 0.000009."""
    key = await add_key(governed)
    reply = await chat(governed, key, "gpt-4o-mini")
    expected = 19 * 0.15 / 1e6 + 10 * 0.60 / 1e6
    assert float(reply.headers["x-llmux-response-cost"]) == pytest.approx(expected, rel=1e-9)


async def test_key_spend_header_adds_the_call_to_the_loaded_spend(governed: Gateway) -> None:
    """`x-llmux-key-spend` is the key's spend as loaded plus this call's cost."""
    key = await add_key(governed, spend=0.5)
    reply = await chat(governed, key, "smart")
    cost = float(reply.headers["x-llmux-response-cost"])
    assert float(reply.headers["x-llmux-key-spend"]) == pytest.approx(0.5 + cost, rel=1e-9)


def _stream_with_usage(prompt: int, completion: int) -> list[bytes]:
    """The recorded chat stream with its usage chunk rewritten to these token counts."""
    frames = []
    for frame in sse_frames("chat_stream.sse"):
        if frame.startswith(b"data: {") and b'"usage"' in frame:
            chunk = json.loads(frame[6:])
            if chunk.get("usage"):
                chunk["usage"].update(
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    total_tokens=prompt + completion,
                )
            frame = b"data: " + json.dumps(chunk).encode() + b"\n\n"
        frames.append(frame)
    return frames


async def test_stream_and_non_stream_of_the_same_usage_cost_the_same(
    governed: Gateway, upstream: FakeUpstream
) -> None:
    """A streamed call and a plain one that used 19 + 10 tokens are billed exactly alike."""
    key = await add_key(governed)
    upstream.enqueue(Reply(200, fixture_bytes("chat.json")), Stream(_stream_with_usage(19, 10)))
    plain = await chat(governed, key, "smart")
    streamed = await chat(governed, key, "smart", stream=True)
    assert (plain.status, streamed.status) == (200, 200)
    plain_row = await spend_row(governed, plain.headers["x-request-id"])
    streamed_row = await spend_row(governed, streamed.headers["x-request-id"])
    assert (streamed_row.input_tokens, streamed_row.output_tokens) == (19, 10)
    assert streamed_row.cost == plain_row.cost
    assert plain_row.cost == pytest.approx(GPT_4O_CHAT_COST, rel=1e-9)


async def _unpriced(gateway: Gateway) -> float:
    return sum(
        value
        for name, labels, value in await metric_samples(gateway)
        if name == "llmux_unpriced_requests_total" and labels.get("model_group") == "mock-gpt"
    )


async def test_unpriced_model_costs_zero_and_is_counted(governed: Gateway) -> None:
    """A model with no price is served, recorded at cost 0 and counted as unpriced."""
    key = await add_key(governed)
    reply = await chat(governed, key, "mock-gpt")
    assert reply.status == 200, reply.body
    assert float(reply.headers["x-llmux-response-cost"]) == 0
    row = await spend_row(governed, reply.headers["x-request-id"])
    assert row.cost == 0
    assert row.model_group == "mock-gpt"

    async def counted() -> bool:
        return await _unpriced(governed) == 1

    assert await eventually_async(counted)


async def _drop_stream_after_first_frame(gateway: Gateway, key: str) -> str:
    """Start a streamed `smart` call, read one line, hang up; the call's request id."""
    url = f"http://127.0.0.1:{gateway.port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = chat_body("smart", stream=True, stream_options={"include_usage": True})
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as streaming,
    ):
        assert streaming.status == 200
        await streaming.content.readline()
        streaming.close()
        return streaming.headers["x-request-id"]


async def test_client_gone_mid_stream_still_leaves_a_spend_row(
    governed: Gateway, upstream: FakeUpstream
) -> None:
    """A client that drops a stream after its first frame still gets a row with status 499."""
    upstream.stream_delay = 0.05
    key = await add_key(governed)
    request_id = await _drop_stream_after_first_frame(governed, key)
    row = await spend_row(governed, request_id)
    assert row.status == 499
    assert row.token == hash_key(key)
    assert row.model_group == "smart"


async def test_client_gone_mid_stream_is_charged_for_the_upstream_usage(
    governed: Gateway, upstream: FakeUpstream
) -> None:
    """A stream dropped after its first frame is billed for the tokens the upstream reported."""
    upstream.stream_delay = 0.05
    key = await add_key(governed)
    request_id = await _drop_stream_after_first_frame(governed, key)
    row = await spend_row(governed, request_id)
    assert (row.input_tokens, row.output_tokens) == (19, 6)
    assert row.cost > 0


async def test_client_gone_without_drain_is_charged_an_estimate(upstream: FakeUpstream) -> None:
    """With `abandoned_stream_drain: 0`, a dropped stream bills one token per frame produced."""
    upstream.stream_delay = 0.05
    config = governed_config(upstream.url).replace(
        "server:\n", "server:\n  abandoned_stream_drain: 0s\n", 1
    )
    async with running_gateway(config) as gateway:
        key = await add_key(gateway)
        request_id = await _drop_stream_after_first_frame(gateway, key)
        row = await spend_row(gateway, request_id)
    assert row.status == 499
    assert row.input_tokens > 0
    assert row.output_tokens >= 1
    assert row.cost > 0
