"""`RedisRateLimiter`: exact across replicas, identical to the local windows, and its failure modes.

Runs against the Redis at 127.0.0.1:6379 (CI starts it), with a key prefix of each test's own
whose keys are deleted afterwards. Tests that need Redis to forget scripts or die run a private
`redis-server` on a free port. Time is injected (`server_time=False`) where windows must slide.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from llmux.errors import RateLimited, ServiceUnavailable
from llmux.governance.limits import Lease, Limit, LocalRateLimiter, RateLimiter
from llmux.governance.redis_limits import RedisRateLimiter
from tests.helpers.ports import free_port

URL = "redis://127.0.0.1:6379/0"
T = 1_000.0

needs_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


def replica_client() -> aioredis.Redis:
    """A client as a gateway replica would hold: a bounded pool that queues when all are busy."""
    pool = aioredis.BlockingConnectionPool.from_url(URL, max_connections=16, timeout=10)
    return aioredis.Redis.from_pool(pool)


def client_at(port: int) -> aioredis.Redis:
    """A Redis client for 127.0.0.1:`port` that fails fast instead of retrying."""
    return aioredis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    """A client of the shared test Redis."""
    client = aioredis.Redis.from_url(URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"llmux-test-limits-{uuid.uuid4().hex}:"
    yield name
    keys = [key async for key in redis.scan_iter(match=name + "*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
def limiter(redis: aioredis.Redis, prefix: str) -> RedisRateLimiter:
    """A fail-closed limiter on the shared Redis, on the injected clock."""
    return RedisRateLimiter(redis, prefix, fail_open=False, server_time=False)


@contextmanager
def private_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A throwaway redis-server on `port`, killed on exit."""
    command = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


async def wait_ready(client: aioredis.Redis) -> None:
    """Wait until `client`'s Redis answers PING."""
    for _ in range(250):
        try:
            await client.ping()
            return
        except (OSError, aioredis.ConnectionError):
            await asyncio.sleep(0.02)
    raise AssertionError("redis-server did not start")


async def outcome(limiter: RateLimiter, limits: list[Limit], tokens: int, now: float) -> object:
    """What one acquire gives: ("ok", headers, lease) or ("refused", message, headers)."""
    try:
        lease = await limiter.acquire(limits, tokens, now)
    except RateLimited as refusal:
        return ("refused", refusal.message, refusal.headers)
    return ("ok", lease.headers(), lease)


async def test_two_replicas_admit_exactly_the_limit_cluster_wide(prefix: str) -> None:
    """300 concurrent requests through two replicas sharing Redis: exactly 100 of 100 RPM pass."""
    clients = [replica_client(), replica_client()]
    try:
        replicas = [RedisRateLimiter(client, prefix, fail_open=False) for client in clients]
        limits = [Limit("key", "k1", None, 100, None, None)]
        calls = [replicas[i % 2].acquire(limits, 0, time.time()) for i in range(300)]
        results = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        for client in clients:
            await client.aclose()
    assert sum(isinstance(result, Lease) for result in results) == 100
    assert sum(isinstance(result, RateLimited) for result in results) == 200


async def test_two_replicas_share_parallel_slots(prefix: str) -> None:
    """Parallel slots are cluster-wide, and a slot settled on one replica frees it for both."""
    clients = [replica_client(), replica_client()]
    try:
        replicas = [RedisRateLimiter(client, prefix, fail_open=False) for client in clients]
        limits = [Limit("team", "t1", None, None, None, 5)]
        calls = [replicas[i % 2].acquire(limits, 0, time.time()) for i in range(40)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        leases = [result for result in results if isinstance(result, Lease)]
        assert len(leases) == 5
        await replicas[1].settle(leases[0], 0, time.time())
        await replicas[0].acquire(limits, 0, time.time())
        with pytest.raises(RateLimited, match="for team: 5 parallel requests"):
            await replicas[1].acquire(limits, 0, time.time())
    finally:
        for client in clients:
            await client.aclose()


async def test_redis_windows_behave_exactly_like_local_ones(limiter: RedisRateLimiter) -> None:
    """A random schedule of acquires and settles gets the same answers and headers from both."""
    rng = random.Random(7)
    local = LocalRateLimiter()
    everything = [
        Limit("key", "k:1", None, 12, 4000, 3),
        Limit("key", "k:1", "gpt-4o", 6, 1500, None),
        Limit("team", "t1", None, 30, 6000, None),
        Limit("end_user", "alice", None, 8, None, 2),
    ]
    open_leases: list[tuple[Lease, Lease]] = []
    answers: list[str] = []
    now = T
    for _ in range(400):
        now += rng.expovariate(0.5)
        if open_leases and rng.random() < 0.5:
            pair = open_leases.pop(rng.randrange(len(open_leases)))
            actual = rng.randrange(0, 700)
            await local.settle(pair[0], actual, now)
            await limiter.settle(pair[1], actual, now)
            continue
        limits = [lim for lim in everything if lim.model in (None, rng.choice(["gpt-4o", "x"]))]
        tokens = rng.randrange(0, 600)
        expected = await outcome(local, limits, tokens, now)
        got = await outcome(limiter, limits, tokens, now)
        assert isinstance(expected, tuple) and isinstance(got, tuple)
        assert got[:2] == expected[:2]
        answers.append(str(expected[0]))
        if expected[0] == "ok":
            open_leases.append((expected[2], got[2]))
        else:
            assert got[2] == expected[2]
    assert answers.count("ok") > 50 and answers.count("refused") > 50


async def test_rpm_capacity_returns_only_as_the_window_slides(limiter: RedisRateLimiter) -> None:
    """Requests admitted in bucket T count until bucket T + 61 starts, in Redis too."""
    limits = [Limit("key", "k1", None, 3, None, None)]
    for _ in range(3):
        await limiter.acquire(limits, 0, T + 0.5)
    for now in (T + 59.9, T + 60.1, T + 60.999):
        with pytest.raises(RateLimited, match="for key: 3 requests per minute"):
            await limiter.acquire(limits, 0, now)
    await limiter.acquire(limits, 0, T + 61)


async def test_settle_lowers_tpm_so_later_requests_fit(limiter: RedisRateLimiter) -> None:
    """Settling a 900-token reservation at 100 tokens makes room for 900 more."""
    limits = [Limit("user", "u1", None, None, 1000, None)]
    lease = await limiter.acquire(limits, 900, T)
    with pytest.raises(RateLimited, match="for user: 1000 tokens per minute"):
        await limiter.acquire(limits, 900, T + 1)
    await limiter.settle(lease, 100, T + 2)
    await limiter.acquire(limits, 900, T + 3)


async def test_refused_request_consumes_nothing_at_any_level(limiter: RedisRateLimiter) -> None:
    """When the organization refuses, the key's requests, tokens and slot are untouched."""
    key = Limit("key", "k1", None, 1, 100, 1)
    org = Limit("organization", "o1", None, None, 10, None)
    with pytest.raises(RateLimited, match="for organization: 10 tokens per minute"):
        await limiter.acquire([key, org], 100, T)
    lease = await limiter.acquire([key], 100, T)
    assert lease.headers()["x-ratelimit-remaining-requests"] == "0"
    assert lease.headers()["x-ratelimit-remaining-tokens"] == "0"


async def test_keys_expire_after_the_window(
    limiter: RedisRateLimiter, redis: aioredis.Redis
) -> None:
    """Window keys live 62 s after their last write; parallel sets their ttl plus a second."""
    limit = Limit("key", "k1", None, 5, 50, 2)
    await limiter.acquire([limit], 10, time.time())
    requests, tokens, slots = limiter.keys(limit)
    assert 0 < await redis.pttl(requests) <= 62_000
    assert 0 < await redis.pttl(tokens) <= 62_000
    assert 900_000 < await redis.pttl(slots) <= 901_000


def test_colons_in_models_and_subjects_cannot_collide(limiter: RedisRateLimiter) -> None:
    """Model "a:b" for subject "c" and model "a" for subject "b:c" get different keys."""
    first = limiter.keys(Limit("key", "c", "a:b", 1, None, None))
    second = limiter.keys(Limit("key", "b:c", "a", 1, None, None))
    assert set(first).isdisjoint(second)


@needs_redis_server
async def test_script_is_reloaded_when_redis_forgot_it(prefix: str) -> None:
    """After SCRIPT FLUSH (or a restart) the next acquire loads the script and succeeds."""
    port = free_port()
    with private_redis(port):
        client = client_at(port)
        try:
            await wait_ready(client)
            limiter = RedisRateLimiter(client, prefix, fail_open=False)
            limits = [Limit("key", "k1", None, 2, None, None)]
            await limiter.acquire(limits, 0, time.time())
            await client.script_flush()
            await limiter.acquire(limits, 0, time.time())
            with pytest.raises(RateLimited):
                await limiter.acquire(limits, 0, time.time())
        finally:
            await client.aclose()


async def test_fail_open_admits_and_counts_when_redis_is_unreachable(prefix: str) -> None:
    """With fail_open, an unreachable Redis admits the request unlimited and reports it."""
    reported: list[str] = []
    client = client_at(free_port())
    try:
        limiter = RedisRateLimiter(client, prefix, fail_open=True, on_redis_error=reported.append)
        lease = await limiter.acquire([Limit("key", "k1", None, 0, None, None)], 0, T)
        await limiter.settle(lease, 10, T)
    finally:
        await client.aclose()
    assert lease.headers() == {}
    assert limiter.errors == 1
    assert reported == ["rate_limit"]


async def test_fail_closed_refuses_with_503_naming_redis(prefix: str) -> None:
    """Without fail_open, an unreachable Redis refuses the request with a 503 naming Redis."""
    client = client_at(free_port())
    try:
        limiter = RedisRateLimiter(client, prefix, fail_open=False)
        with pytest.raises(ServiceUnavailable, match="Redis is unavailable") as refusal:
            await limiter.acquire([Limit("key", "k1", None, 10, None, None)], 0, T)
    finally:
        await client.aclose()
    assert refusal.value.http_status == 503
    assert refusal.value.code == "rate_limiter_unavailable"
    assert limiter.errors == 1


@needs_redis_server
async def test_settle_with_redis_gone_counts_the_error_and_does_not_raise(prefix: str) -> None:
    """A settle that cannot reach Redis is counted; the caller's response is not disturbed."""
    port = free_port()
    with private_redis(port) as server:
        client = client_at(port)
        try:
            await wait_ready(client)
            limiter = RedisRateLimiter(client, prefix, fail_open=False)
            lease = await limiter.acquire([Limit("key", "k1", None, None, None, 3)], 0, T)
            server.kill()
            server.wait()
            await limiter.settle(lease, 0, T)
        finally:
            await client.aclose()
    assert limiter.errors == 1
