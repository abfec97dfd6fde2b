"""Fault scenarios through a real gateway: cooldowns, half-open recovery and fallback groups.

Three fake upstreams: `one` and `two` both serve the group `gpt-4o-mini`, `one` alone serves
`big`, and `spare` serves `backup`. Cooldowns are 200 ms so recovery is reached by bounded
polling; nothing asserts on time.
"""

from __future__ import annotations

import json

from llmux.serve import Gateway
from tests.helpers.edge import (
    RawReply,
    data_payloads,
    eventually_async,
    metric_samples,
    raw_request,
)
from tests.helpers.gateway import running_gateway
from tests.helpers.ports import free_port
from tests.helpers.upstream import FakeUpstream, Reply, Stream, fixture_bytes, sse_frames

MIXED = "gpt-4o-mini"
ONE = "one/gpt-4o-mini"
TWO = "two/gpt-4o-mini"
FRAMES = sse_frames("chat_stream.sse")


def failure(status: int, message: str = "overloaded", code: str | None = None) -> Reply:
    """An OpenAI-shaped upstream error reply."""
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
    return Reply(status, json.dumps(body).encode())


def config(one: str, two: str, spare: str, routing: str = "", retry_count: int = 1) -> str:
    """Three providers (see the module docstring); `routing` adds indented `routing:` keys."""
    return f"""
server:
  host: 127.0.0.1
  port: 0
  admin_port: {free_port()}
providers:
  - name: one
    type: openai-compatible
    base_url: {one}
    api_key: sk-one
    models:
      - gpt-4o-mini
      - name: big
        upstream_model: gpt-4o
    timeouts: {{connect: 1s, first_byte: 2s, idle: 1s, total: 3s}}
  - name: two
    type: openai-compatible
    base_url: {two}
    api_key: sk-two
    models: [gpt-4o-mini]
  - name: spare
    type: openai-compatible
    base_url: {spare}
    api_key: sk-spare
    models: [backup]
routing:
  retry_count: {retry_count}
  cooldown: {{period: 200ms, max_period: 400ms, min_samples: 3, failure_rate: 0.5}}
{routing}
"""


async def chat(
    gateway: Gateway, model: str, *, stream: bool = False, headers: dict[str, str] | None = None
) -> RawReply:
    """One chat completion through the gateway, read whole."""
    body = {"model": model, "messages": [{"role": "user", "content": "Hello"}], "stream": stream}
    return await raw_request(
        "POST",
        f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


async def metric(gateway: Gateway, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sum(
        value
        for sample, sample_labels, value in await metric_samples(gateway)
        if sample == name and labels.items() <= sample_labels.items()
    )


async def test_503_burst_cools_down_then_half_open_recovers(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """A failing deployment trips the failure rate, traffic moves to the other, then it returns."""
    one, two, spare = fakes
    one.enqueue(*[failure(503)] * 200)
    async with running_gateway(config(one.url, two.url, spare.url)) as gateway:
        for _ in range(40):
            if await metric(gateway, "llmux_cooldowns_total", deployment=ONE):
                break
            assert (await chat(gateway, MIXED)).status == 200
        assert await metric(gateway, "llmux_cooldowns_total", deployment=ONE, reason="failure_rate")
        # While `one` still fails, every answer comes from `two` (a half-open trial that fails
        # is retried there).
        for _ in range(10):
            reply = await chat(gateway, MIXED)
            assert reply.status == 200
            assert reply.headers["x-llmux-deployment"] == TWO
        one.script.clear()
        recovered: list[RawReply] = []

        async def served_by_one() -> bool:
            reply = await chat(gateway, MIXED)
            recovered.append(reply)
            return reply.headers.get("x-llmux-deployment") == ONE

        assert await eventually_async(served_by_one, within=10.0)
        assert all(reply.status == 200 for reply in recovered)
        assert await metric(gateway, "llmux_deployment_state", deployment=ONE) == 0


async def test_429_with_retry_after_cools_only_that_deployment(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """A 429 with Retry-After: 30 sends all later traffic to the other deployment."""
    one, two, spare = fakes
    one.enqueue(Reply(429, fixture_bytes("error_429.json"), {"retry-after": "30"}))
    async with running_gateway(config(one.url, two.url, spare.url)) as gateway:
        for _ in range(50):
            if one.received:
                break
            assert (await chat(gateway, MIXED)).status == 200
        assert len(one.received) == 1
        for _ in range(10):
            reply = await chat(gateway, MIXED)
            assert reply.status == 200
            assert reply.headers["x-llmux-deployment"] == TWO
        assert len(one.received) == 1
        assert await metric(gateway, "llmux_cooldowns_total", deployment=ONE) == 1
        assert await metric(gateway, "llmux_cooldowns_total", deployment=TWO) == 0
        assert await metric(gateway, "llmux_deployment_state", deployment=ONE) == 1


async def test_retry_lands_on_the_other_deployment(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """The retry after a 503 re-plans and prefers the deployment not tried yet."""
    one, two, spare = fakes
    one.enqueue(failure(503))
    async with running_gateway(config(one.url, two.url, spare.url)) as gateway:
        for _ in range(50):
            reply = await chat(gateway, MIXED)
            assert reply.status == 200
            if one.received:
                break
    assert len(one.received) == 1
    assert reply.headers["x-llmux-attempts"] == "2"
    assert reply.headers["x-llmux-deployment"] == TWO


def with_cooldown(text: str, cooldown: str) -> str:
    """`text` with its `routing.cooldown` mapping replaced by `cooldown`."""
    default = "  cooldown: {period: 200ms, max_period: 400ms, min_samples: 3, failure_rate: 0.5}\n"
    assert default in text
    return text.replace(default, f"  cooldown: {cooldown}\n")


async def test_all_deployments_cooling_down_is_503_with_retry_after(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """With both deployments cooling, the next call gets a 503 at once, without upstream calls."""
    one, two, spare = fakes
    limited = Reply(429, fixture_bytes("error_429.json"), {"retry-after": "30"})
    one.enqueue(limited)
    two.enqueue(limited)
    text = with_cooldown(config(one.url, two.url, spare.url), "{period: 200ms, max_period: 1m}")
    async with running_gateway(text) as gateway:
        first = await chat(gateway, MIXED)
        assert first.status == 429
        reply = await chat(gateway, MIXED)
    assert reply.status == 503
    assert reply.json["error"]["code"] == "all_deployments_cooling_down"
    assert 1 <= int(reply.headers["retry-after"]) <= 30
    assert "x-should-retry" not in reply.headers
    assert len(one.received) + len(two.received) == 2


async def test_all_cooling_down_waits_for_recovery_within_max_wait(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """With `max_wait` set, a call arriving while every deployment cools waits and succeeds."""
    one, two, spare = fakes
    limited = Reply(429, fixture_bytes("error_429.json"), {"retry-after": "0.3"})
    one.enqueue(limited)
    two.enqueue(limited)
    cooldown = "{period: 300ms, max_period: 1s, max_wait: 5s}"
    text = with_cooldown(config(one.url, two.url, spare.url), cooldown)
    async with running_gateway(text) as gateway:
        first = await chat(gateway, MIXED)
        assert first.status == 429
        reply = await chat(gateway, MIXED)
    assert reply.status == 200
    assert len(one.received) + len(two.received) == 3


async def test_group_fails_over_to_its_fallback_group(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """`big` out of attempts moves to `backup`; the headers say so and the metric counts it."""
    one, two, spare = fakes
    one.enqueue(failure(503), failure(503))
    routing = "  fallbacks: {big: [backup]}"
    async with running_gateway(config(one.url, two.url, spare.url, routing)) as gateway:
        reply = await chat(gateway, "big")
        assert reply.status == 200
        assert reply.headers["x-llmux-fallback-from"] == "big"
        assert reply.headers["x-llmux-deployment"] == "spare/backup"
        assert reply.headers["x-llmux-attempts"] == "3"
        counted = await metric(
            gateway, "llmux_fallbacks_total", from_group="big", to_group="backup"
        )
    assert counted == 1
    assert len(one.received) == 2
    assert len(spare.received) == 1


async def test_star_fallback_applies_to_any_group(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """A `"*"` entry catches groups that have none of their own."""
    one, two, spare = fakes
    one.enqueue(failure(500), failure(500))
    routing = '  fallbacks: {"*": [backup]}'
    async with running_gateway(config(one.url, two.url, spare.url, routing)) as gateway:
        reply = await chat(gateway, "big")
    assert reply.status == 200
    assert reply.headers["x-llmux-fallback-from"] == "big"


async def test_no_fallback_header_is_absent_without_fallback(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """A plain success names its deployment and one attempt, and no fallback."""
    one, two, spare = fakes
    async with running_gateway(config(one.url, two.url, spare.url)) as gateway:
        reply = await chat(gateway, "big")
    assert reply.headers["x-llmux-deployment"] == "one/big"
    assert reply.headers["x-llmux-attempts"] == "1"
    assert "x-llmux-fallback-from" not in reply.headers


async def test_context_length_exceeded_uses_context_window_fallbacks(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """A 400 `context_length_exceeded` moves to the context-window fallback without retries."""
    one, two, spare = fakes
    one.enqueue(Reply(400, fixture_bytes("error_400_context.json")))
    routing = "  context_window_fallbacks: {big: [backup]}"
    text = config(one.url, two.url, spare.url, routing, retry_count=2)
    async with running_gateway(text) as gateway:
        reply = await chat(gateway, "big")
    assert reply.status == 200
    assert reply.headers["x-llmux-fallback-from"] == "big"
    assert len(one.received) == 1
    assert len(spare.received) == 1


async def test_content_policy_refusal_uses_content_policy_fallbacks(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """A refusal with code `content_policy_violation` moves to the content-policy fallback."""
    one, two, spare = fakes
    one.enqueue(failure(400, "refused", code="content_policy_violation"))
    routing = "  content_policy_fallbacks: {big: [backup]}"
    async with running_gateway(config(one.url, two.url, spare.url, routing)) as gateway:
        reply = await chat(gateway, "big")
    assert reply.status == 200
    assert reply.headers["x-llmux-deployment"] == "spare/backup"


async def test_client_error_does_not_fall_back(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """Any other 400 goes back to the client; general fallbacks are for retryable failures."""
    one, two, spare = fakes
    one.enqueue(failure(400, "bad request", code="invalid_value"))
    routing = "  fallbacks: {big: [backup]}"
    async with running_gateway(config(one.url, two.url, spare.url, routing)) as gateway:
        reply = await chat(gateway, "big")
    assert reply.status == 400
    assert spare.received == []


async def test_opt_out_header_disables_fallback(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """`x-llmux-no-fallback: true` keeps the call in its group: the group's error comes back."""
    one, two, spare = fakes
    one.enqueue(failure(503), failure(503))
    routing = "  fallbacks: {big: [backup]}"
    async with running_gateway(config(one.url, two.url, spare.url, routing)) as gateway:
        reply = await chat(gateway, "big", headers={"x-llmux-no-fallback": "true"})
    assert reply.status == 503
    assert spare.received == []


async def test_fallback_enabled_false_disables_fallback(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """`routing.fallback_enabled: false` switches every fallback map off."""
    one, two, spare = fakes
    one.enqueue(failure(503), failure(503))
    routing = "  fallback_enabled: false\n  fallbacks: {big: [backup]}"
    async with running_gateway(config(one.url, two.url, spare.url, routing)) as gateway:
        reply = await chat(gateway, "big")
    assert reply.status == 503
    assert spare.received == []


async def test_stream_failing_before_first_byte_falls_back(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """A stream whose upstream fails before its first byte is served by the fallback group."""
    one, two, spare = fakes
    one.enqueue(failure(502), failure(502))
    routing = "  fallbacks: {big: [backup]}"
    async with running_gateway(config(one.url, two.url, spare.url, routing)) as gateway:
        reply = await chat(gateway, "big", stream=True)
    assert reply.status == 200
    assert reply.headers["x-llmux-fallback-from"] == "big"
    assert reply.headers["x-llmux-deployment"] == "spare/backup"
    assert reply.body.endswith(b"data: [DONE]\n\n")


async def test_stream_cut_before_first_byte_falls_back(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """A stream whose connection drops before any frame falls back too."""
    one, two, spare = fakes
    one.enqueue(Stream([], cut=True), Stream([], cut=True))
    routing = "  fallbacks: {big: [backup]}"
    async with running_gateway(config(one.url, two.url, spare.url, routing)) as gateway:
        reply = await chat(gateway, "big", stream=True)
    assert reply.status == 200
    assert reply.headers["x-llmux-fallback-from"] == "big"
    assert reply.body.endswith(b"data: [DONE]\n\n")


async def test_stream_cut_after_first_byte_ends_with_error_event(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """After the first byte there is no fallback: the stream ends with a final error event."""
    one, two, spare = fakes
    one.enqueue(Stream(FRAMES[:2], cut=True))
    routing = "  fallbacks: {big: [backup]}"
    async with running_gateway(config(one.url, two.url, spare.url, routing)) as gateway:
        reply = await chat(gateway, "big", stream=True)
    assert reply.status == 200
    assert reply.headers["x-llmux-deployment"] == "one/big"
    last = json.loads(data_payloads(reply.body)[-1])
    assert set(last) == {"error"}
    assert spare.received == []
