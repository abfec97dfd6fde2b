"""`routing.distributed`: two gateways sharing one Redis route as one.

Each test uses its own key prefix in the Redis at 127.0.0.1:6379 (CI starts it) and deletes its
keys at the end; the outage test runs a private `redis-server` it can kill and restart.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager

import pytest
import redis.asyncio as aioredis

from llmux.config import ConfigError, parse_config
from llmux.config.schema import RedisConfig
from llmux.metrics import Metrics
from llmux.routing import Deployment, GroupPolicy, build_table
from llmux.serve import Gateway
from llmux.state import RedisLink, RedisRouterStats, open_link
from tests.helpers.gateway import running_gateway
from tests.helpers.ports import free_port
from tests.helpers.upstream import FakeUpstream, Reply
from tests.test_routing_gateway import chat, held_stream, stats, two_upstreams

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


@pytest.fixture
async def second() -> AsyncIterator[FakeUpstream]:
    """A second fake OpenAI upstream."""
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"llmux-test-{uuid.uuid4().hex}:"
    yield name
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = [key async for key in client.scan_iter(match="{" + name + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def shared(a: FakeUpstream, b: FakeUpstream, strategy: str, prefix: str, port: int = 6379) -> str:
    """Group `m` on upstreams a and b, routed by `strategy` through the Redis at `port`."""
    routing = f"  strategy: {strategy}\n  distributed: true"
    redis = f'redis:\n  url: redis://127.0.0.1:{port}/0\n  key_prefix: "{prefix}"\n'
    return two_upstreams(a, b, routing) + redis


async def gateways(stack: AsyncExitStack, config: Callable[[], str]) -> list[Gateway]:
    """Two gateways, each on its own `config()` (its own admin port)."""
    return [await stack.enter_async_context(running_gateway(config())) for _ in range(2)]


def hit(a: FakeUpstream, before: int) -> str:
    """`a` when upstream a received a request since it had `before`, else `b`."""
    return "a" if len(a.received) > before else "b"


async def test_round_robin_is_strict_across_gateways(
    upstream: FakeUpstream, second: FakeUpstream, prefix: str
) -> None:
    """Calls alternating between two gateways still land on a, b, a, b, a, b."""
    async with AsyncExitStack() as stack:
        one, two = await gateways(stack, lambda: shared(upstream, second, "round-robin", prefix))
        hits = []
        for gateway in (one, two, one, two, one, two):
            before = len(upstream.received)
            assert await chat(gateway) == 200
            hits.append(hit(upstream, before))
    assert hits == ["a", "b", "a", "b", "a", "b"]


async def test_in_flight_is_shared(
    upstream: FakeUpstream, second: FakeUpstream, prefix: str
) -> None:
    """A stream held through gateway 1 makes least-busy on gateway 2 pick the other deployment."""
    upstream.stream_delay = second.stream_delay = 0.3
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(client.aclose)
        one, two = await gateways(stack, lambda: shared(upstream, second, "least-busy", prefix))
        async with held_stream(one):
            busy, idle = (upstream, second) if upstream.received else (second, upstream)
            name = "a/m" if busy is upstream else "b/m"
            key = "{" + prefix + "m}:if:" + name
            for _ in range(100):
                if await client.hlen(key):
                    break
                await asyncio.sleep(0.02)
            for _ in range(4):
                assert await chat(two) == 200
            assert (len(busy.received), len(idle.received)) == (1, 4)
            assert stats(two).in_flight(name) == 1


async def test_cooldown_is_shared(
    upstream: FakeUpstream, second: FakeUpstream, prefix: str
) -> None:
    """A deployment cooled by gateway 1's 429 is skipped by gateway 2."""
    upstream.enqueue(Reply(429, b'{"error": {"message": "slow down"}}'))
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    async with AsyncExitStack() as stack:
        stack.push_async_callback(client.aclose)
        one, two = await gateways(stack, lambda: shared(upstream, second, "round-robin", prefix))
        assert await chat(one) == 429
        key = "{" + prefix + "m}:c:a/m"
        for _ in range(100):
            if await client.exists(key):
                break
            await asyncio.sleep(0.02)
        before = len(upstream.received)
        for _ in range(4):
            assert await chat(two) == 200
        assert len(upstream.received) == before
        assert len(second.received) == 4


@contextmanager
def private_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A throwaway redis-server on `port`, killed on exit."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


async def ready(port: int) -> bool:
    """Wait until the Redis at `port` answers PING; whether it did."""
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        for _ in range(200):
            try:
                if await client.ping():
                    return True
            except (OSError, aioredis.ConnectionError):
                await asyncio.sleep(0.02)
        return False
    finally:
        await client.aclose()


def redis_errors(gateway: Gateway) -> float:
    """The gateway's `llmux_redis_errors_total`, summed over operations."""
    total = 0.0
    for line in gateway.metrics.exposition().decode().splitlines():
        if line.startswith("llmux_redis_errors_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_redis_outage_falls_back_and_recovers(
    upstream: FakeUpstream, second: FakeUpstream, prefix: str
) -> None:
    """With Redis killed calls still succeed and errors are counted; a restarted Redis is used."""
    port = free_port()
    config = shared(upstream, second, "round-robin", prefix, port)
    with private_redis(port) as first:
        assert await ready(port)
        async with running_gateway(config) as gateway:
            assert await chat(gateway) == 200
            first.kill()
            first.wait()
            for _ in range(6):
                assert await chat(gateway) == 200
            assert redis_errors(gateway) >= 1
            link = gateway.redis
            assert link is not None and not link.healthy
            with private_redis(port):
                assert await ready(port)

                async def healed() -> bool:
                    for _ in range(150):
                        assert await chat(gateway) == 200
                        if link.healthy:
                            return True
                        await asyncio.sleep(0.05)
                    return False

                assert await healed()
                client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
                try:
                    assert await client.exists("{" + prefix + "m}:rr")
                finally:
                    await client.aclose()


def test_distributed_mode_requires_distributed_routing() -> None:
    """`deployment.mode: distributed` without `routing.distributed: true` is a config error."""
    with pytest.raises(ConfigError) as caught:
        parse_config("deployment:\n  mode: distributed\n", "x.yaml", {})
    assert "routing.distributed" in str(caught.value)


def pair(prefix: str) -> tuple[RedisLink, RedisLink]:
    """Two replicas' links to the local Redis."""
    config = RedisConfig(key_prefix=prefix)
    return open_link(config, Metrics()), open_link(config, Metrics())


def group_m(a: FakeUpstream, b: FakeUpstream) -> tuple[Deployment, ...]:
    """Group `m`'s two deployments, `a/m` and `b/m`."""
    loaded = parse_config(two_upstreams(a, b, ""), "x.yaml", {})
    return build_table(loaded.config, ("openai-compatible",)).lookup("m")


async def test_usage_window_is_shared_and_counted_once(
    upstream: FakeUpstream, second: FakeUpstream, prefix: str
) -> None:
    """Requests started on one replica count on the other; a replica's own ones count once."""
    deployments = group_m(upstream, second)
    groups = {d.id: d.group for d in deployments}
    policy = GroupPolicy("lowest-tpm-rpm")
    one_link, two_link = pair(prefix)
    one, two = RedisRouterStats(one_link, groups), RedisRouterStats(two_link, groups)
    try:
        for _ in range(3):
            one.start("a/m", 0.0, 10)
        await one.refresh(deployments, policy)
        await two.refresh(deployments, policy)
        assert two.usage("a/m", 0.0).requests == 3
        two.start("a/m", 0.0, 10)
        assert two.usage("a/m", 0.0).requests == 4
        await two.refresh(deployments, policy)
        assert two.usage("a/m", 0.0).requests == 4
        assert two.in_flight("a/m") == 4
    finally:
        await one_link.close()
        await two_link.close()


async def test_a_gone_replica_stops_counting_in_flight(
    upstream: FakeUpstream, second: FakeUpstream, prefix: str
) -> None:
    """Once a replica's `alive` key expired, its in-flight attempts no longer count elsewhere."""
    deployments = group_m(upstream, second)
    groups = {d.id: d.group for d in deployments}
    policy = GroupPolicy("least-busy")
    one_link, two_link = pair(prefix)
    one, two = RedisRouterStats(one_link, groups), RedisRouterStats(two_link, groups)
    try:
        one.start("b/m", 0.0, 10)
        await one.refresh(deployments, policy)
        await two.refresh(deployments, policy)
        assert two.in_flight("b/m") == 1
        await two_link.client.delete("{" + prefix + "m}:alive:" + one_link.replica)
        await two.refresh(deployments, policy)
        assert two.in_flight("b/m") == 0
    finally:
        await one_link.close()
        await two_link.close()
