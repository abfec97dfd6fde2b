"""Governance for one process: built from config, started with the gateway, closed on drain.

Standalone and development modes count limits and budgets in process; distributed mode counts
them in Redis (one round trip per request for limits, one for budgets) and spreads key and
entity invalidations through Redis pub/sub. The background tasks are the spend writer, the
`last_used_at` batcher, the key invalidation subscriber and the budget reset loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from llmux.config.schema import Config
from llmux.governance.budget_events import BudgetEvents
from llmux.governance.budgets import BudgetLedger, LocalBudgetLedger
from llmux.governance.durations import next_reset, parse_duration
from llmux.governance.gate import Gate
from llmux.governance.keycache import InvalidationBus, KeyCache, LastUsed, RedisInvalidationBus
from llmux.governance.limits import LocalRateLimiter, RateLimiter
from llmux.governance.redis_budgets import RedisBudgetLedger
from llmux.governance.redis_limits import RedisRateLimiter
from llmux.governance.spend import SpendWriter
from llmux.governance.tenancy import EntityCache, TenancyResolver
from llmux.log import get_logger
from llmux.metrics import Metrics
from llmux.peers import PEER_PREFIX, Peers
from llmux.store.base import Store, StoreError
from llmux.workerbus import worker_bus_from_env

__all__ = ["ENTITIES_CHANGED", "Governance"]

ENTITIES_CHANGED = "*entities*"
"""The invalidation message for "some user, team, organization or budget changed"."""

_REDIS_POOL = 64
"""Connections to Redis per process for limits, budgets and invalidations."""


class _Fanout:
    """The key invalidation bus, also carrying entity invalidations to the tenancy resolver
    and other processes' admin actions to `llmux.peers`."""

    def __init__(
        self,
        inner: InvalidationBus,
        on_entities: Callable[[], None],
        on_peer: Callable[[str], None],
    ) -> None:
        self._inner = inner
        self._on_entities = on_entities
        self._on_peer = on_peer

    @property
    def epoch(self) -> int | None:
        return self._inner.epoch

    async def start(self, on_message: Callable[[str], None]) -> None:
        def route(message: str) -> None:
            if message == ENTITIES_CHANGED:
                self._on_entities()
            elif message.startswith(PEER_PREFIX):
                self._on_peer(message)
            else:
                on_message(message)

        await self._inner.start(route)

    async def publish(self, token: str) -> None:
        await self._inner.publish(token)

    async def close(self) -> None:
        await self._inner.close()


class Governance:
    """Authentication state, limits, budgets and the spend ledger of one process."""

    def __init__(
        self, config: Config, store: Store, metrics: Metrics, store_url: str = "memory://"
    ) -> None:
        self._config = config
        self._store = store
        self._metrics = metrics
        auth, governance = config.auth, config.governance
        self.distributed = config.deployment.mode == "distributed"
        self.redis: aioredis.Redis | None = None
        if self.distributed:
            self.redis = _redis_client(config)
        self.entities = EntityCache(store, ttl=auth.key_cache_ttl, stale_ttl=auth.stale_key_ttl)
        self.peers = Peers()
        """Admin actions other processes announce, repeated here (see `llmux.peers`)."""
        self._bus = self._invalidation_bus()
        self.keys = KeyCache(
            store, ttl=auth.key_cache_ttl, stale_ttl=auth.stale_key_ttl, bus=self._bus
        )
        self.ledger = self._ledger()
        self.resolver = TenancyResolver(
            self.keys, self.entities, self.ledger, ttl=auth.key_cache_ttl
        )
        self.last_used = LastUsed(store)
        spend = governance.spend
        self.writer = (
            SpendWriter(
                store,
                batch_size=spend.batch_size,
                flush_interval=spend.flush_interval,
                max_buffer=spend.max_buffer,
                spill_path=spill_path(spend.spill_path, store_url),
                on_flush=self._flushed,
                on_error=self._flush_failed,
            )
            if spend.enabled
            else None
        )
        self.budget_events = BudgetEvents(store)
        self.gate = Gate(
            self.resolver,
            self._limiter(),
            self.ledger,
            self.writer,
            metrics,
            calendar_aligned=governance.budgets.calendar_aligned,
            fail_open=governance.rate_limits.fail_open,
            budget_events=self.budget_events,
        )
        self._resets: asyncio.Task[None] | None = None

    def _invalidation_bus(self) -> _Fanout | None:
        """Redis across replicas; else the supervisor's bus across `--workers`; else none."""
        inner: InvalidationBus | None
        if self.redis is not None:
            inner = RedisInvalidationBus(self.redis, self._config.redis.key_prefix)
        else:
            inner = worker_bus_from_env()
        if inner is None:
            return None
        return _Fanout(inner, self._entities_changed, self.peers.received)

    def _limiter(self) -> RateLimiter:
        if self.redis is None:
            return LocalRateLimiter()
        return RedisRateLimiter(
            self.redis,
            self._config.redis.key_prefix,
            self._config.governance.rate_limits.fail_open,
            on_redis_error=self._metrics.observe_redis_error,
        )

    def _ledger(self) -> BudgetLedger:
        if self.redis is None:
            return LocalBudgetLedger()
        return RedisBudgetLedger(self.redis, self._config.redis.key_prefix)

    def _entities_changed(self) -> None:
        self.resolver.invalidate_all()

    def _flushed(self, rows: int, seconds: float) -> None:
        self._metrics.spend_flush_duration.observe(seconds)
        if self.writer is not None:
            self._metrics.spend_queue.set(self.writer.queue_depth)

    def _flush_failed(self, error: Exception) -> None:
        self._metrics.spend_flush_failures.inc()
        self._metrics.observe_store_error("add_spend")

    async def start(self) -> None:
        """Start the background tasks."""
        await self.keys.start()
        await self.last_used.start()
        if self.writer is not None:
            await self.writer.start()
        self._resets = asyncio.create_task(self._reset_loop(), name="llmux-budget-resets")

    async def close(self) -> None:
        """Settle, flush and stop everything (the store itself is closed by its owner)."""
        if self._resets is not None:
            self._resets.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resets
        await self.gate.close()
        await self.budget_events.close()
        if self.writer is not None:
            await self.writer.close()
        await self.last_used.close()
        await self.keys.close()
        if self.redis is not None:
            # The pool was built here and handed to the client, which then leaves it open.
            await self.redis.aclose(close_connection_pool=True)

    async def invalidate_key(self, token: str) -> None:
        """A key changed: drop it here and on every replica."""
        await self.keys.publish_invalidation(token)

    async def announce(self, message: str) -> None:
        """Have every other process (`--workers`, replicas sharing Redis) repeat an admin
        action (a message from `self.peers`)."""
        if self._bus is not None:
            await self._bus.publish(message)

    async def invalidate_entities(self) -> None:
        """A user, team, organization, end user or budget changed: rebuild every tenancy."""
        self.resolver.invalidate_all()
        if self._bus is not None:
            await self.keys.publish_invalidation(ENTITIES_CHANGED)

    async def reset_due_budgets(self, now: datetime | None = None) -> int:
        """Zero the spend of every entity whose budget period ended; returns how many."""
        now = now or datetime.now(UTC)
        aligned = self._config.governance.budgets.calendar_aligned
        count = 0
        for due in await self._store.due_budget_resets(now):
            following = None
            if due.budget_duration:
                following = next_reset(parse_duration(due.budget_duration), now, aligned)
            if await self._store.reset_budget(due.kind, due.id, following):
                count += 1
                get_logger().info(
                    "budget_reset", level=due.kind, subject=due.id, next_reset_at=str(following)
                )
                if due.kind == "key":
                    await self.invalidate_key(due.id)
        if count:
            await self.invalidate_entities()
        return count

    async def _reset_loop(self) -> None:
        interval = self._config.governance.budgets.reset_check_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reset_due_budgets()
            except (StoreError, OSError) as exc:
                self._metrics.observe_store_error("budget_reset")
                get_logger().warning("budget_reset_failed", error=str(exc))


def spill_path(configured: str | None, store_url: str) -> Path | None:
    """Where spend rows go while the store is down: configured, or derived from the store."""
    if configured:
        return Path(configured)
    if store_url.startswith("memory:"):
        return None
    if store_url.startswith("sqlite:"):
        database = store_url.removeprefix("sqlite://")
        if database not in ("", "/:memory:"):
            return Path(database + ".spend-spill.jsonl")
        return None
    return Path("llmux-spend-spill.jsonl")


def _redis_client(config: Config) -> aioredis.Redis:
    redis = config.redis
    # A blocking pool: under a burst, requests wait for a connection instead of failing.
    pool = aioredis.BlockingConnectionPool.from_url(
        redis.url,
        max_connections=_REDIS_POOL,
        timeout=redis.connect_timeout,
        socket_connect_timeout=redis.connect_timeout,
        socket_timeout=redis.op_timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    return aioredis.Redis(connection_pool=pool)
