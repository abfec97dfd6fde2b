"""Routing state shared through Redis (`routing.distributed: true`), so N replicas route as one.

Two objects. `RedisLink` is one per process (the Gateway opens and closes it): the Redis client,
an ordered write queue flushed by one task, health with backoff, and a heartbeat.
`RedisRouterStats` is one per runtime: the `RouterStats` strategies read, backed by a local
mirror, and `refresh()`, which dispatch awaits before each pick.

Hot path, and the trade-offs taken:

* Strategies read stats synchronously and many times per decision, so they never touch Redis:
  they read a mirror. `refresh()` fills it with ONE round trip per attempt: a Lua script that
  takes the round-robin turn (INCR) and returns, for every candidate, the other replicas'
  in-flight counts, the shared rpm/tpm window, the latency and TTFT averages and the cooldown
  left. It runs only when the decision needs shared data: round-robin, least-busy,
  lowest-latency, lowest-tpm-rpm, a deployment with rpm/tpm/max_concurrent, or a cooldown
  cache older than `COOLDOWN_REFRESH` seconds; otherwise (simple-shuffle or lowest-cost without
  limits) the decision costs no round trip at all.
* Writes (attempt start and end, token corrections, cooldowns) are fire-and-forget: they are
  queued in order and one task sends everything queued as one pipeline, one EVALSHA per model
  group. A routing read goes through the same queue, so it sees exactly the writes queued
  before it; this replica's writes queued after it are added locally (`_added`), so nothing is
  counted twice or missed. Strict round-robin across replicas holds: every turn is one INCR.
* In-flight counts are written as each replica's absolute count (a hash field per replica), not
  as increments, and count only while the replica's `alive` key (TTL `ALIVE_SECONDS`, renewed
  by every write and a heartbeat) exists: a crashed replica's requests stop counting, and a
  count lost to a Redis outage is rewritten when Redis is back. This replica's own count is
  always exact; the others' are as of the last refresh.
* Windows use Redis server time (replicas' monotonic clocks are not comparable), with the same
  two-bucket sliding window as `LocalRouterStats`. Latency EWMAs are updated inside the script.
  Both are approximate under concurrency by nature; a sample lost in an outage is not replayed.
* Cooldowns: a replica's breaker publishes "cooling for T" as a key with a TTL of T; other
  replicas adopt it into their own breaker at their next refresh (so within `COOLDOWN_REFRESH`
  seconds at most). When it ends, each replica lets its own half-open trial through.
* Cost, measured with `benchmarks/bench_routing.py --redis` on a 2-core box whose loopback
  PING takes ~230 µs through redis-py: ~0.85-1.4 ms wall per decision against ~10-50 µs local.
  Most of it is redis-py and the round trip; a refresh that arrives while a write-only flush is
  on the wire waits for it (up to two round trips), which a single ordered connection with
  pipelined replies would avoid (not done).
* Redis down or slow (`redis.op_timeout`): routing goes on with this replica's local state, one
  warning log and `llmux_redis_errors_total{operation}` per failed batch; writes are dropped
  while down (the in-flight counts are rewritten on recovery) and Redis is retried with
  backoff (`_BACKOFF_MIN` doubling to `_BACKOFF_MAX` seconds), so the link heals by itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from llmux.config.schema import RedisConfig
from llmux.cooldown import Breaker
from llmux.log import get_logger
from llmux.metrics import Metrics
from llmux.routing.stats import (
    _PENALTY_FLOOR,
    EWMA_ALPHA,
    FAILURE_PENALTY,
    TIMEOUT_PENALTY,
    WINDOW_SECONDS,
    LocalRouterStats,
    Usage,
)
from llmux.routing.table import Deployment, GroupPolicy
from llmux.state._lua import GROUP_SCRIPT

__all__ = ["ALIVE_SECONDS", "COOLDOWN_REFRESH", "RedisLink", "RedisRouterStats", "open_link"]

ALIVE_SECONDS = 15.0
"""A replica's in-flight counts stop counting this long after its last write or heartbeat."""
COOLDOWN_REFRESH = 0.25
"""Seconds a group's mirrored cooldowns may age before a decision refreshes them."""
_BACKOFF_MIN = 0.25
_BACKOFF_MAX = 5.0
_SHARED_STRATEGIES = frozenset({"round-robin", "least-busy", "lowest-latency", "lowest-tpm-rpm"})
_SHA = hashlib.sha1(GROUP_SCRIPT.encode()).hexdigest()
_FIELDS = 7
"""Values the script returns per deployment read."""

Op = tuple[str, str, float, float]
"""(kind, deployment, a, b): one write, as the script reads it."""


class LinkDown(Exception):
    """Redis could not be reached for a routing read; the caller uses local state."""


@dataclass(slots=True)
class _Read:
    take_turn: bool
    deployments: list[str]
    future: asyncio.Future[list[Any]]


@dataclass(slots=True)
class _Call:
    """One EVALSHA: a group's writes in order, then at most one read."""

    group: str
    ops: list[Op] = field(default_factory=list)
    read: _Read | None = None


def open_link(config: RedisConfig, metrics: Metrics) -> RedisLink:
    """A link to the Redis `config` names; no connection is made until it is used."""
    client = aioredis.Redis.from_url(
        config.url,
        socket_connect_timeout=config.connect_timeout,
        socket_timeout=config.op_timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    return RedisLink(
        client, config.key_prefix, metrics, timeout=config.connect_timeout + config.op_timeout
    )


class RedisLink:
    """One process's connection to the shared routing state."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        metrics: Metrics,
        *,
        timeout: float = 1.25,
        replica: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.replica = replica or uuid.uuid4().hex
        self._metrics = metrics
        self._timeout = timeout
        self._clock = clock
        self._queue: list[tuple[str, Op | _Read]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._own: dict[tuple[str, str], int] = {}
        """This process's in-flight count per (group, deployment), across runtimes."""
        self.healthy = True
        self._closed = False
        self._resync = False
        self._retry_at = 0.0
        self._backoff = _BACKOFF_MIN

    def base(self, group: str) -> str:
        """The group's key base; its braces make the whole of it the cluster hash tag."""
        return "{" + self.prefix + group + "}"

    def in_flight(self, group: str, deployment: str) -> int:
        """This process's attempts of the deployment started and not ended."""
        return self._own.get((group, deployment), 0)

    def adjust_in_flight(self, group: str, deployment: str, delta: int) -> None:
        """Count an attempt in (+1) or out (-1), and publish the new count."""
        key = (group, deployment)
        count = self._own[key] = max(self._own.get(key, 0) + delta, 0)
        self.write(group, ("f", deployment, float(count), 0.0))

    def usable(self) -> bool:
        """Whether to send Redis anything now (healthy, or due for a retry)."""
        return self.healthy or self._clock() >= self._retry_at

    def write(self, group: str, op: Op) -> None:
        """Queue a write; dropped while Redis is down (in-flight counts are resent later)."""
        if self.usable():
            self._push(group, op)

    def read(
        self, group: str, take_turn: bool, deployments: list[str]
    ) -> asyncio.Future[list[Any]]:
        """Queue a routing read; the future fails with `LinkDown` when Redis does."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._push(group, _Read(take_turn, deployments, future))
        return future

    def _push(self, group: str, item: Op | _Read) -> None:
        if self._closed:
            if isinstance(item, _Read):
                self._fail_reads([(group, item)])
            return
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(), name="llmux-redis-writer"),
                asyncio.create_task(self._heartbeat(), name="llmux-redis-heartbeat"),
            ]
        self._queue.append((group, item))
        self._wake.set()

    async def close(self) -> None:
        """Stop the writer and heartbeat (queued writes are dropped) and close the client."""
        self._closed = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._timeout)
        self._tasks = []
        self._fail_reads(self._queue)
        self._queue = []
        await self.client.aclose()

    async def _run(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            items, self._queue = self._queue, []
            if items:
                await self._flush(items)

    async def _heartbeat(self) -> None:
        """Keep this replica's `alive` keys (and so its in-flight counts) from expiring."""
        while True:
            await asyncio.sleep(ALIVE_SECONDS / 3)
            for (group, deployment), count in list(self._own.items()):
                if count:
                    self.write(group, ("f", deployment, float(count), 0.0))

    async def _flush(self, items: list[tuple[str, Op | _Read]]) -> None:
        calls = self._calls(items)
        operation = "read" if any(c.read is not None for c in calls) else "write"
        try:
            async with asyncio.timeout(self._timeout):
                replies = await self._send(calls)
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(operation, error)
            self._fail_reads(items)
            return
        if not self.healthy:
            self.healthy = True
            self._backoff = _BACKOFF_MIN
            get_logger().info("redis_recovered", message="shared routing state is back in use")
        for call, reply in zip(calls, replies, strict=True):
            if call.read is not None and not call.read.future.done():
                call.read.future.set_result(reply)

    def _calls(self, items: list[tuple[str, Op | _Read]]) -> list[_Call]:
        calls: list[_Call] = []
        if self._resync:
            # Redis was down: rewrite this replica's in-flight counts, zeros included.
            self._resync = False
            for (group, deployment), count in self._own.items():
                calls.append(_Call(group, [("f", deployment, float(count), 0.0)]))
        open_calls: dict[str, _Call] = {}
        for group, item in items:
            call = open_calls.get(group)
            if call is None:
                call = open_calls[group] = _Call(group)
                calls.append(call)
            if isinstance(item, _Read):
                call.read = item
                del open_calls[group]
            else:
                call.ops.append(item)
        return calls

    async def _send(self, calls: list[_Call]) -> list[Any]:
        args = [self._args(call) for call in calls]
        replies = await self._pipeline(args)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # Redis restarted or its scripts were flushed: load once, resend what failed.
            await self.client.script_load(GROUP_SCRIPT)
            again = await self._pipeline([args[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _pipeline(self, args: list[list[str | float]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for one in args:
            pipe.evalsha(_SHA, 1, *one)
        return list(await pipe.execute(raise_on_error=False))

    def _args(self, call: _Call) -> list[str | float]:
        args: list[str | float] = [
            self.base(call.group),
            self.replica,
            int(ALIVE_SECONDS * 1000),
            EWMA_ALPHA,
            WINDOW_SECONDS,
            _PENALTY_FLOOR,
            len(call.ops),
        ]
        for op in call.ops:
            args.extend(op)
        read = call.read
        if read is None:
            args.extend(("0", 0))
        else:
            args.extend(("1" if read.take_turn else "0", len(read.deployments)))
            args.extend(read.deployments)
        return args

    def _failed(self, operation: str, error: BaseException) -> None:
        self._metrics.observe_redis_error(operation)
        now = self._clock()
        self._resync = True
        if self.healthy:
            self.healthy = False
            get_logger().warning(
                "redis_unavailable",
                error=repr(error),
                message="routing goes on with this replica's own state until Redis is back",
            )
        else:
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
        self._retry_at = now + self._backoff

    @staticmethod
    def _fail_reads(items: list[tuple[str, Op | _Read]]) -> None:
        for _, item in items:
            if isinstance(item, _Read) and not item.future.done():
                item.future.set_exception(LinkDown())
                # Mark it retrieved: a reader that went away must not log "never retrieved".
                item.future.exception()


@dataclass(slots=True)
class _Snapshot:
    """A deployment as the last refresh read it, and this replica's usage added since."""

    others: int
    requests: float
    tokens: float
    eases_in: float
    latency: float | None
    ttft: float | None
    at: float
    added_requests: float
    added_tokens: float


class RedisRouterStats:
    """`RouterStats` shared through Redis; reads are served from a mirror `refresh()` fills."""

    def __init__(
        self,
        link: RedisLink,
        groups: dict[str, str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`groups` maps each deployment id to its model group."""
        self._link = link
        self._groups = groups
        self._clock = clock
        self._local = LocalRouterStats()
        self._snapshots: dict[str, _Snapshot] = {}
        self._added: dict[str, list[float]] = {}
        self._turns: dict[str, int] = {}
        self._fresh: dict[str, float] = {}
        self._breaker: Breaker | None = None
        self._adopting = False

    def bind(self, breaker: Breaker) -> None:
        """The breaker whose cooldowns are published and which adopts other replicas' ones."""
        self._breaker = breaker

    def cooled(self, deployment: str) -> None:
        """The breaker just cooled `deployment`: publish it (unless it came from Redis)."""
        if self._adopting or self._breaker is None:
            return
        seconds = self._breaker.cooling_for(deployment)
        if seconds > 0:
            group = self._groups.get(deployment)
            if group is not None:
                self._link.write(group, ("c", deployment, float(math.ceil(seconds * 1000)), 0.0))

    async def refresh(self, deployments: Sequence[Deployment], policy: GroupPolicy) -> None:
        """Before a pick: one round trip to take a turn and mirror the group, when needed."""
        if not deployments:
            return
        group = deployments[0].group
        self._turns.pop(group, None)
        now = self._clock()
        take_turn = policy.strategy == "round-robin" and len(deployments) > 1
        if not (
            policy.strategy in _SHARED_STRATEGIES
            or now - self._fresh.get(group, -math.inf) >= COOLDOWN_REFRESH
            or any(_limited(d) for d in deployments)
        ):
            return
        if not self._link.usable():
            return
        ids = [d.id for d in deployments]
        baselines = [tuple(self._added.get(i, (0.0, 0.0))) for i in ids]
        try:
            reply = await self._link.read(group, take_turn, ids)
        except LinkDown:
            return
        self._fresh[group] = now
        if take_turn:
            self._turns[group] = int(reply[0])
        for index, deployment in enumerate(ids):
            values = reply[1 + index * _FIELDS : 1 + (index + 1) * _FIELDS]
            requests, tokens = baselines[index]
            self._snapshots[deployment] = _Snapshot(
                others=int(values[0]),
                requests=float(values[1]),
                tokens=float(values[2]),
                eases_in=float(values[3]),
                latency=float(values[4]) if values[4] else None,
                ttft=float(values[5]) if values[5] else None,
                at=now,
                added_requests=requests,
                added_tokens=tokens,
            )
            cooling = int(values[6])
            if cooling > 0 and self._breaker is not None:
                self._adopting = True
                try:
                    self._breaker.adopt(deployment, cooling / 1000)
                finally:
                    self._adopting = False

    def _snapshot(self, deployment: str) -> _Snapshot | None:
        return self._snapshots.get(deployment) if self._link.healthy else None

    def _add(self, deployment: str, requests: float, tokens: float) -> None:
        added = self._added.get(deployment)
        if added is None:
            added = self._added[deployment] = [0.0, 0.0]
        added[0] += requests
        added[1] += tokens
        group = self._groups.get(deployment)
        if group is not None:
            self._link.write(group, ("w", deployment, requests, tokens))

    def start(self, deployment: str, now: float, tokens: int) -> None:
        self._local.start(deployment, now, tokens)
        group = self._groups.get(deployment)
        if group is not None:
            self._link.adjust_in_flight(group, deployment, 1)
        self._add(deployment, 1.0, float(tokens))

    def end(
        self, deployment: str, now: float, *, elapsed: float | None, failed: bool, timed_out: bool
    ) -> None:
        self._local.end(deployment, now, elapsed=elapsed, failed=failed, timed_out=timed_out)
        group = self._groups.get(deployment)
        if group is None:
            return
        self._link.adjust_in_flight(group, deployment, -1)
        if elapsed is not None:
            factor = TIMEOUT_PENALTY if timed_out else FAILURE_PENALTY if failed else 1.0
            self._link.write(group, ("l", deployment, elapsed, factor))

    def first_token(self, deployment: str, seconds: float) -> None:
        self._local.first_token(deployment, seconds)
        group = self._groups.get(deployment)
        if group is not None:
            self._link.write(group, ("t", deployment, seconds, 0.0))

    def add_tokens(self, deployment: str, now: float, tokens: int) -> None:
        self._local.add_tokens(deployment, now, tokens)
        self._add(deployment, 0.0, float(tokens))

    def in_flight(self, deployment: str) -> int:
        group = self._groups.get(deployment)
        if group is None:
            return self._local.in_flight(deployment)
        own = self._link.in_flight(group, deployment)
        snapshot = self._snapshot(deployment)
        return own if snapshot is None else own + snapshot.others

    def latency(self, deployment: str, stream: bool) -> float | None:
        snapshot = self._snapshot(deployment)
        if snapshot is None or snapshot.latency is None:
            return self._local.latency(deployment, stream)
        if stream and snapshot.ttft is not None:
            return snapshot.ttft
        return snapshot.latency

    def ttft(self, deployment: str) -> float | None:
        snapshot = self._snapshot(deployment)
        if snapshot is None or snapshot.ttft is None:
            return self._local.ttft(deployment)
        return snapshot.ttft

    def usage(self, deployment: str, now: float) -> Usage:
        snapshot = self._snapshot(deployment)
        if snapshot is None or now - snapshot.at >= WINDOW_SECONDS:
            return self._local.usage(deployment, now)
        added = self._added.get(deployment, [0.0, 0.0])
        return Usage(
            requests=max(snapshot.requests + added[0] - snapshot.added_requests, 0.0),
            tokens=max(snapshot.tokens + added[1] - snapshot.added_tokens, 0.0),
            eases_in=max(snapshot.eases_in - (now - snapshot.at), 0.0),
        )

    def next_turn(self, group: str) -> int:
        turn = self._turns.pop(group, None)
        return self._local.next_turn(group) if turn is None else turn


def _limited(deployment: Deployment) -> bool:
    entry = deployment.entry
    return entry.rpm is not None or entry.tpm is not None or entry.max_concurrent is not None
