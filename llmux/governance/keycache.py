"""Virtual keys cached in process, with revocations reaching every replica within a second.

`KeyCache.get(token)` answers a warm key from memory (no store round trip); a miss asks
`Store.get_key` once, however many requests wait for the same token, and caches the answer,
negative answers too (briefly), so guessing keys does not turn into database load. `token` is
always the key's hash (`llmux.governance.keys.hash_key`). `LastUsed` batches `last_used_at`
updates off the request path. Imports `llmux.store`, `llmux.log` and `redis` only.

Freshness, and the bounds it keeps:

* An entry is fresh for `ttl` seconds (`negative_ttl` for "no such key") after its lookup
  started. `invalidate(token)` drops it at once; `publish_invalidation(token)` also tells every
  other replica through the `InvalidationBus` (Redis pub/sub in distributed mode), which
  delivers in milliseconds, well within the 1 s the issue asks for.
* Versioned entries: a lookup in flight when its token is invalidated is marked stale, so it
  answers the requests that were already waiting for it but never writes its (possibly
  pre-revocation) result into the cache; requests after the invalidation start a new lookup.
  A cached `Key` is also never replaced by one with a lower `Key.version`.
* Without the bus (disconnected, or resubscribed since the entry was fetched, so invalidations
  may have been missed) entries are fresh for `DISCONNECTED_TTL` (1 s) only: revocations still
  land within about a second, at the cost of a store lookup per key per second.
* Store down (`StoreUnavailable`): an entry is served until it is `stale_ttl` seconds old (the
  stated staleness bound for authentication during a database outage); past that, or with no
  entry at all, `StoreUnavailable` propagates. An invalidated entry is never served.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol, final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from llmux.log import get_logger
from llmux.store.base import Store, StoreUnavailable
from llmux.store.records import Key

__all__ = [
    "DISCONNECTED_TTL",
    "InvalidationBus",
    "KeyCache",
    "LastUsed",
    "RedisInvalidationBus",
]

DISCONNECTED_TTL: Final = 1.0
"""Seconds an entry stays fresh while invalidations might be missed (no bus connection)."""


class InvalidationBus(Protocol):
    """Carries key invalidations between replicas."""

    @property
    def epoch(self) -> int | None:
        """Changes each time the subscription is (re)established; None while disconnected."""
        ...

    async def start(self, on_message: Callable[[str], None]) -> None:
        """Subscribe; call `on_message(token)` for every invalidation any replica publishes."""
        ...

    async def publish(self, token: str) -> None:
        """Tell every subscriber (this replica included) that `token` changed."""
        ...

    async def close(self) -> None:
        """Unsubscribe and stop."""
        ...


@dataclass(slots=True)
class _Entry:
    key: Key | None
    fetched_at: float
    epoch: int | None


@dataclass(slots=True)
class _Lookup:
    """One store lookup in flight, shared by every request that missed the same token."""

    started_at: float
    epoch: int | None
    future: asyncio.Future[Key | None]
    stale: bool = False


@final
class KeyCache:
    """Keys by token hash, cached in process; see the module docstring for the bounds.

    Args:
        store: where keys live.
        ttl: seconds a found key is served from memory while the bus is connected.
        stale_ttl: seconds an entry may still be served while the store is unavailable.
        negative_ttl: seconds "no such key" is remembered.
        max_entries: entries kept; the oldest inserted goes first.
        clock: monotonic seconds.
        bus: cross-replica invalidations (None: one process, local invalidations only).
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl: float = 30.0,
        stale_ttl: float = 600.0,
        negative_ttl: float = 5.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        bus: InvalidationBus | None = None,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._stale_ttl = stale_ttl
        self._negative_ttl = min(negative_ttl, ttl)
        self._max_entries = max_entries
        self._clock = clock
        self._bus = bus
        self._entries: dict[str, _Entry] = {}
        self._lookups: dict[str, _Lookup] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Subscribe to the bus, if there is one."""
        if self._bus is not None:
            await self._bus.start(self.invalidate)

    async def close(self) -> None:
        """Leave the bus and cancel lookups still in flight."""
        if self._bus is not None:
            await self._bus.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def get(self, token: str) -> Key | None:
        """The key whose hash is `token`, or None; from memory when fresh.

        Raises `StoreUnavailable` when the store is down and no entry young enough is cached.
        """
        entry = self._entries.get(token)
        if entry is not None and self._clock() - entry.fetched_at < self._fresh_for(entry):
            return entry.key
        lookup = self._lookups.get(token)
        if lookup is None:
            lookup = self._launch(token)
        try:
            return await asyncio.shield(lookup.future)
        except StoreUnavailable:
            return self._stale(token)

    def invalidate(self, token: str) -> None:
        """Forget `token` here, and keep a lookup already in flight from caching its answer."""
        self._entries.pop(token, None)
        lookup = self._lookups.pop(token, None)
        if lookup is not None:
            lookup.stale = True

    async def publish_invalidation(self, token: str) -> None:
        """Forget `token` here and on every other replica (call after changing the key)."""
        self.invalidate(token)
        if self._bus is not None:
            await self._bus.publish(token)

    def _fresh_for(self, entry: _Entry) -> float:
        fresh = self._ttl if entry.key is not None else self._negative_ttl
        if self._bus is not None and (entry.epoch is None or entry.epoch != self._bus.epoch):
            return min(fresh, DISCONNECTED_TTL)
        return fresh

    def _launch(self, token: str) -> _Lookup:
        loop = asyncio.get_running_loop()
        epoch = self._bus.epoch if self._bus is not None else None
        lookup = _Lookup(self._clock(), epoch, loop.create_future())
        lookup.future.add_done_callback(_retrieve)
        self._lookups[token] = lookup
        # A task, not the first caller, runs the lookup: the caller may be cancelled (client
        # gone) while others wait on the same future.
        task = asyncio.create_task(self._fetch(token, lookup), name="llmux-key-lookup")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return lookup

    async def _fetch(self, token: str, lookup: _Lookup) -> None:
        try:
            key = await self._store.get_key(token)
        except asyncio.CancelledError:
            lookup.future.cancel()
            raise
        except Exception as exc:
            lookup.future.set_exception(exc)
        else:
            if not lookup.stale:
                self._remember(token, key, lookup)
            lookup.future.set_result(key)
        finally:
            if self._lookups.get(token) is lookup:
                del self._lookups[token]

    def _remember(self, token: str, key: Key | None, lookup: _Lookup) -> None:
        if _newer(self._entries.get(token), key):
            return
        # Re-insert at the end: eviction goes by insertion order, oldest first.
        self._entries.pop(token, None)
        self._entries[token] = _Entry(key, lookup.started_at, lookup.epoch)
        if len(self._entries) > self._max_entries:
            del self._entries[next(iter(self._entries))]

    def _stale(self, token: str) -> Key | None:
        entry = self._entries.get(token)
        if entry is None or self._clock() - entry.fetched_at >= self._stale_ttl:
            raise StoreUnavailable(f"cannot check the key: the store is down ({token[:8]}...)")
        return entry.key


def _newer(current: _Entry | None, key: Key | None) -> bool:
    """Whether the cached entry holds a later version of the key than a lookup returned."""
    return (
        current is not None
        and current.key is not None
        and key is not None
        and current.key.version > key.version
    )


def _retrieve(future: asyncio.Future[Key | None]) -> None:
    # Mark the exception as retrieved: every waiter may have been cancelled before it landed.
    if not future.cancelled():
        future.exception()


@final
class RedisInvalidationBus:
    """Key invalidations over the Redis pub/sub channel `<prefix>:keys:invalidate`.

    One subscriber task per process reconnects after any Redis error with capped backoff.
    `epoch` is None while it is not subscribed and takes a new value on every subscription
    confirmation (also after a silent reconnect inside redis-py), so `KeyCache` knows which
    entries may have missed an invalidation. A connection that stops answering PINGs for
    three `ping_interval`s is treated as broken.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        *,
        ping_interval: float = 1.0,
        retry_min: float = 0.05,
        retry_max: float = 2.0,
    ) -> None:
        self.channel = f"{prefix.rstrip(':')}:keys:invalidate"
        self._client = client
        self._ping_interval = ping_interval
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._epoch: int | None = None
        self._subscriptions = 0
        self._delay = retry_min
        self._down = False
        self._task: asyncio.Task[None] | None = None

    @property
    def epoch(self) -> int | None:
        """See `InvalidationBus.epoch`."""
        return self._epoch

    async def start(self, on_message: Callable[[str], None]) -> None:
        """Start the subscriber task; it connects in the background."""
        self._task = asyncio.create_task(self._listen(on_message), name="llmux-key-invalidations")

    async def publish(self, token: str) -> None:
        """Publish `token`; a Redis error is logged, not raised (subscribers are down as well,
        so their caches are already on `DISCONNECTED_TTL`)."""
        try:
            await self._client.publish(self.channel, token)
        except (RedisError, OSError) as exc:
            get_logger().warning("key_invalidation_publish_failed", error=str(exc))

    async def close(self) -> None:
        """Stop the subscriber task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._epoch = None

    async def _listen(self, on_message: Callable[[str], None]) -> None:
        while True:
            try:
                await self._relay(on_message)
            except Exception as exc:  # whatever broke, the subscriber must come back
                self._epoch = None
                if not self._down:
                    self._down = True
                    get_logger().warning(
                        "key_invalidation_bus_down",
                        error=str(exc) or type(exc).__name__,
                        message=f"key cache entries are fresh for {DISCONNECTED_TTL:g}s only",
                    )
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, self._retry_max)

    async def _relay(self, on_message: Callable[[str], None]) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            heard = time.monotonic()
            while True:
                message = await pubsub.get_message(timeout=self._ping_interval)
                now = time.monotonic()
                if message is not None:
                    heard = now
                    self._handle(message, on_message)
                elif now - heard > 3 * self._ping_interval:
                    raise ConnectionError("no answer from redis to pub/sub pings")
                else:
                    await pubsub.ping()
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py

    def _handle(self, message: Mapping[str, object], on_message: Callable[[str], None]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            self._subscriptions += 1
            self._epoch = self._subscriptions
            self._delay = self._retry_min
            if self._down:
                self._down = False
                get_logger().info("key_invalidation_bus_recovered")
        elif kind == "message":
            data = message.get("data")
            on_message(data.decode() if isinstance(data, bytes) else str(data))


@final
class LastUsed:
    """Batches `last_used_at` updates: `mark` is O(1); a background task writes them.

    Marks that fail to write (store down) are kept and merged into the next flush.
    """

    def __init__(self, store: Store, *, interval: float = 5.0) -> None:
        self._store = store
        self._interval = interval
        self._pending: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    def mark(self, token: str, when: datetime) -> None:
        """Note that key `token` was used at `when`."""
        previous = self._pending.get(token)
        if previous is None or when > previous:
            self._pending[token] = when

    async def flush(self) -> None:
        """Write the pending marks now; on failure they stay pending and the error propagates."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            await self._store.touch_keys(batch)
        except BaseException:
            for token, when in batch.items():
                self.mark(token, when)
            raise

    async def start(self) -> None:
        """Start flushing every `interval` seconds."""
        self._task = asyncio.create_task(self._run(), name="llmux-last-used")

    async def close(self) -> None:
        """Stop the task and make one last attempt to write what is pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception as exc:
            get_logger().warning(
                "last_used_flush_failed", error=str(exc), pending=len(self._pending)
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception as exc:
                get_logger().warning(
                    "last_used_flush_failed", error=str(exc), pending=len(self._pending)
                )
