"""Routing through a real gateway in front of two fake upstreams serving one group `m`.

Upstream `a` is provider `a`, upstream `b` provider `b`; both serve `m`. Streams are slowed
(`stream_delay`) so that one can be held open while other requests are routed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from llmux.appkeys import RUNTIME
from llmux.routing import RouterStats
from llmux.serve import Gateway
from tests.helpers.edge import eventually, raw_request
from tests.helpers.gateway import running_gateway
from tests.helpers.ports import free_port
from tests.helpers.upstream import FakeUpstream

CHAT: dict[str, object] = {"model": "m", "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture
async def second() -> AsyncIterator[FakeUpstream]:
    """A second fake OpenAI upstream."""
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.stop()


def two_upstreams(a: FakeUpstream, b: FakeUpstream, routing: str, model: str = "m") -> str:
    """A config whose group `m` has deployments `a/m` and `b/m`; `model` is each entry."""
    providers = "".join(
        f"""
  - name: {name}
    type: openai-compatible
    base_url: {fake.url}
    api_key: sk-{name}
    models: [{model}]
    timeouts: {{connect: 1s, first_byte: 2s, idle: 2s, total: 3s}}"""
        for name, fake in (("a", a), ("b", b))
    )
    return f"""
server:
  host: 127.0.0.1
  port: 0
  admin_port: {free_port()}
providers:{providers}
routing:
  retry_count: 0
{routing}
"""


def stats(gateway: Gateway) -> RouterStats:
    """The router stats of the gateway's current runtime."""
    return gateway._runners[0].app[RUNTIME].current.dispatcher.stats


async def chat(gateway: Gateway, body: dict[str, object] = CHAT) -> int:
    """One non-streaming chat; its status."""
    reply = await raw_request(
        "POST",
        f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    return reply.status


@asynccontextmanager
async def held_stream(gateway: Gateway) -> AsyncIterator[aiohttp.ClientResponse]:
    """A streamed chat read up to its first bytes and held open; closed (client gone) on exit."""
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
            json={**CHAT, "stream": True},
        )
        assert response.status == 200
        assert await response.content.readany()
        try:
            yield response
        finally:
            response.close()


async def test_round_robin_alternates_strictly(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    """Six calls under round-robin land on a, b, a, b, a, b."""
    config = two_upstreams(upstream, second, "  strategy: round-robin")
    hits = []
    async with running_gateway(config) as gateway:
        for _ in range(6):
            before = len(upstream.received)
            assert await chat(gateway) == 200
            hits.append("a" if len(upstream.received) > before else "b")
    assert hits == ["a", "b", "a", "b", "a", "b"]


async def test_least_busy_avoids_a_held_stream(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    """While one deployment holds a slow stream, new calls go to the other one."""
    upstream.stream_delay = second.stream_delay = 0.3
    config = two_upstreams(upstream, second, "  strategy: least-busy")
    async with running_gateway(config) as gateway, held_stream(gateway):
        busy, idle = (upstream, second) if upstream.received else (second, upstream)
        for _ in range(4):
            assert await chat(gateway) == 200
        assert (len(busy.received), len(idle.received)) == (1, 4)


async def test_in_flight_returns_to_zero_after_client_disconnect(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    """A client that drops a stream mid-way leaves no in-flight count behind."""
    upstream.stream_delay = second.stream_delay = 0.3
    config = two_upstreams(upstream, second, "  strategy: least-busy")
    async with running_gateway(config) as gateway:
        router = stats(gateway)
        async with held_stream(gateway):
            assert router.in_flight("a/m") + router.in_flight("b/m") == 1
        assert await eventually(lambda: router.in_flight("a/m") + router.in_flight("b/m") == 0)


async def test_in_flight_returns_to_zero_after_stream_end(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    """A stream read to its end and a plain call both leave nothing in flight."""
    config = two_upstreams(upstream, second, "")
    async with running_gateway(config) as gateway:
        reply = await raw_request(
            "POST",
            f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
            data=json.dumps({**CHAT, "stream": True}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert reply.status == 200
        assert await chat(gateway) == 200
        router = stats(gateway)
        assert await eventually(lambda: router.in_flight("a/m") + router.in_flight("b/m") == 0)


async def test_max_concurrent_full_is_429(upstream: FakeUpstream, second: FakeUpstream) -> None:
    """With both deployments at max_concurrent 1 and one stream each, a call gets 429."""
    upstream.stream_delay = second.stream_delay = 0.3
    config = two_upstreams(upstream, second, "", model="{name: m, max_concurrent: 1}")
    async with running_gateway(config) as gateway:
        async with held_stream(gateway), held_stream(gateway):
            reply = await raw_request(
                "POST",
                f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
                data=json.dumps(CHAT).encode(),
                headers={"Content-Type": "application/json"},
            )
        assert reply.status == 429
        assert json.loads(reply.body)["error"]["code"] == "deployment_capacity_exceeded"
        assert reply.headers["retry-after"] == "1"
        router = stats(gateway)
        assert await eventually(lambda: router.in_flight("a/m") + router.in_flight("b/m") == 0)
        assert await chat(gateway) == 200


async def test_alias_routes_to_its_group(upstream: FakeUpstream, second: FakeUpstream) -> None:
    """A name in `routing.aliases` is served by the group it maps to."""
    config = two_upstreams(upstream, second, "  aliases: {fast: m}")
    async with running_gateway(config) as gateway:
        assert await chat(gateway, {**CHAT, "model": "fast"}) == 200
    assert len(upstream.received) + len(second.received) == 1
