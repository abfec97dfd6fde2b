"""`KeyCache`, `RedisInvalidationBus` and `LastUsed`: hits, expiry, versioned invalidation, outages.

What the cache holds is observed through the real store: a key changed or deleted in the store
still answers from the cache until it expires or is invalidated. Outages and in-flight lookups
use the local Postgres behind a `TcpProxy`; cross-replica invalidation uses the local Redis
(directly, or behind a proxy to take it away), with a channel prefix of each test's own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from llmux.governance.keycache import KeyCache, LastUsed, RedisInvalidationBus
from llmux.governance.keys import hash_key
from llmux.store import Store, StoreUnavailable, open_store
from llmux.store.records import Key
from tests.governance._outage import Outage, TcpProxy, eventually, postgres_outage

TOKEN = hash_key("sk-key-cache-test")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def redis_client(port: int = 6379) -> aioredis.Redis:
    """A client as a replica holds one: fails fast rather than retrying inside redis-py."""
    return aioredis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The in-memory store, or a SQLite file, holding the key `TOKEN`."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/llmux.db"
    opened = await open_store(url)
    await opened.create(Key(token=TOKEN, key_alias="first"))
    yield opened
    await opened.close()


@pytest.fixture
async def outage() -> AsyncIterator[Outage]:
    """Postgres directly and through a proxy the test can cut or hold, holding key `TOKEN`."""
    async with postgres_outage() as ready:
        await ready.direct.create(Key(token=TOKEN, key_alias="first"))
        yield ready


@pytest.fixture
def prefix() -> str:
    """A channel prefix of this test's own."""
    return f"llmux-test-{uuid.uuid4().hex[:12]}"


async def alias(cache: KeyCache) -> str | None:
    """The alias of the key `TOKEN` as the cache answers it (None: no such key)."""
    key = await cache.get(TOKEN)
    return key.key_alias if key is not None else None


async def test_a_cached_key_is_answered_without_the_store(store: Store) -> None:
    """After one lookup, deleting the key in the store does not change the cache's answer."""
    cache = KeyCache(store, clock=Clock())
    assert await alias(cache) == "first"
    await store.delete(Key, TOKEN)
    assert await alias(cache) == "first"


async def test_invalidate_makes_the_next_get_ask_the_store(store: Store) -> None:
    """`invalidate` drops the entry: the next lookup sees the store's current state."""
    cache = KeyCache(store, clock=Clock())
    await cache.get(TOKEN)
    await store.delete(Key, TOKEN)
    cache.invalidate(TOKEN)
    assert await cache.get(TOKEN) is None


async def test_an_entry_expires_after_its_ttl(store: Store) -> None:
    """Past `ttl` the store is asked again and its change shows."""
    clock = Clock()
    cache = KeyCache(store, ttl=30, clock=clock)
    await cache.get(TOKEN)
    await store.update(Key, TOKEN, {"key_alias": "second"})
    clock.advance(29)
    assert await alias(cache) == "first"
    clock.advance(2)
    assert await alias(cache) == "second"


async def test_an_unknown_token_is_remembered_as_missing_briefly(store: Store) -> None:
    """A miss is cached for `negative_ttl`: a key created meanwhile shows only after it."""
    clock = Clock()
    cache = KeyCache(store, negative_ttl=5, clock=clock)
    other = hash_key("sk-created-later")
    assert await cache.get(other) is None
    await store.create(Key(token=other))
    assert await cache.get(other) is None
    clock.advance(5)
    assert await cache.get(other) is not None


async def test_a_lookup_in_flight_when_invalidated_never_caches_its_answer(
    outage: Outage,
) -> None:
    """A stale answer that arrives after `invalidate` is not written back into the cache."""
    cache = KeyCache(outage.flaky, clock=Clock())
    outage.proxy.hold(containing=b"first")
    lookup = asyncio.create_task(alias(cache))
    await outage.proxy.reply_held.wait()  # Postgres has answered "first"; the reply is held
    await outage.direct.update(Key, TOKEN, {"key_alias": "second"})
    cache.invalidate(TOKEN)
    outage.proxy.release()
    assert await lookup == "first"  # it started before the change; the answer is its own
    assert await alias(cache) == "second"


async def test_store_down_serves_entries_up_to_stale_ttl(outage: Outage) -> None:
    """With Postgres down an expired entry is served until `stale_ttl`, then the outage shows."""
    clock = Clock()
    cache = KeyCache(outage.flaky, ttl=30, stale_ttl=600, clock=clock)
    await cache.get(TOKEN)
    await outage.proxy.cut()
    clock.advance(599)
    assert await alias(cache) == "first"
    clock.advance(1)
    with pytest.raises(StoreUnavailable):
        await cache.get(TOKEN)


async def test_store_down_never_serves_an_invalidated_entry(outage: Outage) -> None:
    """A revoked key is not brought back by the stale fallback during an outage."""
    cache = KeyCache(outage.flaky, clock=Clock())
    await cache.get(TOKEN)
    await outage.proxy.cut()
    cache.invalidate(TOKEN)
    with pytest.raises(StoreUnavailable):
        await cache.get(TOKEN)


async def test_invalidation_published_on_one_replica_reaches_the_other(
    store: Store, prefix: str
) -> None:
    """Two caches, two buses on the real Redis: a revocation on one shows on the other in 1 s."""
    clients = [redis_client(), redis_client()]
    buses = [RedisInvalidationBus(client, prefix) for client in clients]
    # The clocks never move: only the invalidation can change what `second` answers.
    first, second = (KeyCache(store, clock=Clock(), bus=bus) for bus in buses)
    try:
        for cache in (first, second):
            await cache.start()
        await eventually(lambda: all(bus.epoch is not None for bus in buses))
        await second.get(TOKEN)
        await store.update(Key, TOKEN, {"blocked": True})
        await first.publish_invalidation(TOKEN)
        await eventually(lambda: blocked(second), within=1.0)
    finally:
        for cache in (first, second):
            await cache.close()
        for client in clients:
            await client.aclose()


async def blocked(cache: KeyCache) -> bool:
    """Whether the cache answers that key `TOKEN` is blocked."""
    key = await cache.get(TOKEN)
    return key is not None and key.blocked


@pytest.fixture
async def redis_proxy() -> AsyncIterator[TcpProxy]:
    """A proxy in front of the local Redis that the test can cut."""
    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def bus(redis_proxy: TcpProxy, prefix: str) -> AsyncIterator[RedisInvalidationBus]:
    """A bus whose Redis connection goes through `redis_proxy`."""
    client = redis_client(redis_proxy.port)
    yield RedisInvalidationBus(client, prefix, ping_interval=0.1, retry_max=0.1)
    await client.aclose()


async def connected_cache(store: Store, bus: RedisInvalidationBus, clock: Clock) -> KeyCache:
    """A started cache with a 30 s ttl whose bus has subscribed."""
    cache = KeyCache(store, ttl=30, clock=clock, bus=bus)
    await cache.start()
    await eventually(lambda: bus.epoch is not None)
    return cache


async def test_while_the_bus_is_down_entries_are_fresh_for_one_second(
    store: Store, bus: RedisInvalidationBus, redis_proxy: TcpProxy
) -> None:
    """Redis gone: an entry older than 1 s is looked up again, though the ttl is 30 s."""
    clock = Clock()
    cache = await connected_cache(store, bus, clock)
    try:
        await cache.get(TOKEN)
        await store.update(Key, TOKEN, {"key_alias": "second"})
        clock.advance(1.5)
        assert await alias(cache) == "first"
        await redis_proxy.cut()
        await eventually(lambda: bus.epoch is None)
        assert await alias(cache) == "second"
    finally:
        await cache.close()


async def test_after_a_reconnect_only_entries_fetched_since_get_the_full_ttl(
    store: Store, bus: RedisInvalidationBus, redis_proxy: TcpProxy
) -> None:
    """Entries from before a reconnect may have missed invalidations: 1 s for them, not 30."""
    clock = Clock()
    cache = await connected_cache(store, bus, clock)
    try:
        await cache.get(TOKEN)
        await redis_proxy.cut()
        await eventually(lambda: bus.epoch is None)
        await redis_proxy.resume()
        await eventually(lambda: bus.epoch is not None)
        await store.update(Key, TOKEN, {"key_alias": "second"})
        clock.advance(1.5)
        assert await alias(cache) == "second"
        await store.update(Key, TOKEN, {"key_alias": "third"})
        clock.advance(1.5)
        assert await alias(cache) == "second"
    finally:
        await cache.close()


WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def test_last_used_keeps_the_latest_mark_and_writes_it(store: Store) -> None:
    """Marks for one key collapse to the latest; `flush` writes it to the store."""
    last_used = LastUsed(store)
    last_used.mark(TOKEN, WHEN + timedelta(hours=1))
    last_used.mark(TOKEN, WHEN)
    await last_used.flush()
    key = await store.get_key(TOKEN)
    assert key is not None and key.last_used_at == WHEN + timedelta(hours=1)


async def test_last_used_marks_survive_a_failed_flush(outage: Outage) -> None:
    """Store down: the flush fails, the marks stay, and the next flush writes them."""
    last_used = LastUsed(outage.flaky)
    last_used.mark(TOKEN, WHEN)
    await outage.proxy.cut()
    with pytest.raises(StoreUnavailable):
        await last_used.flush()
    await outage.proxy.resume()
    await last_used.flush()
    key = await outage.direct.get_key(TOKEN)
    assert key is not None and key.last_used_at == WHEN


async def test_last_used_close_writes_what_is_pending(store: Store) -> None:
    """`close` makes a last flush, so marks since the previous one are not lost."""
    last_used = LastUsed(store, interval=3600)
    await last_used.start()
    last_used.mark(TOKEN, WHEN)
    await last_used.close()
    key = await store.get_key(TOKEN)
    assert key is not None and key.last_used_at == WHEN
