"""`RedisRateLimiter`: the rate limits of `llmux.governance.limits`, shared by every replica.

Exact cluster-wide: 100 RPM is 100 across all replicas, not 100 each. Every `acquire` is ONE
Redis round trip (EVALSHA of `ACQUIRE_SCRIPT`; on NOSCRIPT the script is loaded and the call
repeated once) that rolls, checks and counts every limit of the request atomically; every
`settle` is one more (none when it has nothing to undo). The windows and their bound are the
ones described in `llmux.governance.limits`.

* Clock: by default (`server_time=True`) the script reads the Redis server's clock (`TIME`), so
  replicas with skewed clocks agree on the windows and the `now` passed in is ignored. With
  `server_time=False` the script uses the caller's `now` (tests inject time this way; a
  production caller would pass `time.time()` and must keep replica clocks in sync).
* Keys: ``<prefix>rl:<level>:<model>:<subject>:{r,t,p}`` (model ``*`` for all models, else
  ``m<length>=<model>`` so that colons in model and subject ids stay unambiguous). Windows
  expire 62 s after their last write, parallel sets `parallel_ttl` + 1 s after theirs. One
  script touches keys of several subjects, so under Redis Cluster the prefix must carry a hash
  tag (e.g. ``{llmux}:``) to keep them in one slot.
* Parallel slots are lease ids in a sorted set scored by acquire time + `parallel_ttl`: a
  replica that dies mid-call frees its slots after `parallel_ttl`; a call that runs longer than
  that stops holding its slot (so the parallel limit can be exceeded by such calls only).
* Redis unreachable or failing (any `RedisError` but NOSCRIPT, or `OSError`): with `fail_open`
  the request is admitted unlimited (its lease settles nothing), otherwise `ServiceUnavailable`
  (503) names Redis. Either way the failure is counted in `errors`, reported to
  `on_redis_error("rate_limit")`, and logged once per outage. A failed `settle` never raises:
  the reservation stays until its window drops it and the slot until `parallel_ttl`.
  Timeouts are the Redis client's (`socket_timeout`, `socket_connect_timeout`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, cast, final

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from llmux.errors import ServiceUnavailable
from llmux.governance._limits_lua import ACQUIRE_SCRIPT, SETTLE_SCRIPT
from llmux.governance.limits import Lease, Limit, Quota, refusal, tighter
from llmux.log import get_logger

__all__ = ["DEFAULT_PARALLEL_TTL", "RedisLease", "RedisRateLimiter"]

DEFAULT_PARALLEL_TTL: Final = 900.0
"""Seconds a parallel slot counts at most if its lease is never settled (a crashed replica)."""
_ACQUIRE_SHA: Final = hashlib.sha1(ACQUIRE_SCRIPT.encode()).hexdigest()
_SETTLE_SHA: Final = hashlib.sha1(SETTLE_SCRIPT.encode()).hexdigest()
_KINDS: Final = {1: "rpm", 2: "tpm", 3: "parallel"}
_HEAD: Final = 4
"""Values the acquire script returns before its per-limit values."""
_PER_LIMIT: Final = 5
"""Values the acquire script returns per limit."""
_REDIS_FAILURES: Final = (RedisError, OSError)


@final
class RedisLease(Lease):
    """A `Lease` of `RedisRateLimiter`: the token windows (and buckets) and slots it holds."""

    __slots__ = ("lease_id", "reservations", "slots")

    def __init__(
        self,
        tokens: int,
        requests: Quota | None,
        tokens_quota: Quota | None,
        *,
        lease_id: str,
        reservations: list[tuple[str, int]],
        slots: list[str],
    ) -> None:
        super().__init__(tokens, requests, tokens_quota)
        self.lease_id = lease_id
        self.reservations = reservations
        self.slots = slots


def _unlimited(tokens: int) -> RedisLease:
    """The lease of a request admitted without Redis (fail-open): it holds nothing."""
    return RedisLease(tokens, None, None, lease_id="", reservations=[], slots=[])


@final
class RedisRateLimiter:
    """The `RateLimiter` shared through Redis (distributed mode); see the module docstring."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        fail_open: bool,
        *,
        server_time: bool = True,
        parallel_ttl: float = DEFAULT_PARALLEL_TTL,
        on_redis_error: Callable[[str], None] | None = None,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._fail_open = fail_open
        self._server_time = server_time
        self._parallel_ttl = repr(float(parallel_ttl))
        self._on_redis_error = on_redis_error
        self._healthy = True
        self.errors = 0
        """Redis failures seen (acquire and settle), fail-open admissions included."""

    def keys(self, limit: Limit) -> tuple[str, str, str]:
        """The request window, token window and parallel set keys of `limit`'s subject."""
        model = "*" if limit.model is None else f"m{len(limit.model)}={limit.model}"
        base = f"{self._prefix}rl:{limit.level}:{model}:{limit.subject}:"
        return base + "r", base + "t", base + "p"

    async def acquire(self, limits: Sequence[Limit], tokens: int, now: float) -> Lease:
        """Admit one request against all `limits`, reserving `tokens`, or raise `RateLimited`.

        Raises `ServiceUnavailable` when Redis fails and `fail_open` is off.
        """
        if not limits:
            return _unlimited(tokens)
        keys: list[str] = []
        args: list[str | int] = ["" if self._server_time else repr(now), tokens]
        lease_id = os.urandom(9).hex()
        args += [lease_id, self._parallel_ttl]
        for limit in limits:
            keys.extend(self.keys(limit))
            args += [_arg(limit.rpm), _arg(limit.tpm), _arg(limit.parallel)]
        try:
            reply = await self._eval(_ACQUIRE_SHA, ACQUIRE_SCRIPT, keys, args)
        except _REDIS_FAILURES as error:
            self._failed(error)
            if self._fail_open:
                return _unlimited(tokens)
            raise ServiceUnavailable(
                "Rate limits cannot be checked: Redis is unavailable.",
                code="rate_limiter_unavailable",
            ) from error
        self._recovered()
        return self._lease(limits, tokens, lease_id, reply)

    async def settle(self, lease: Lease, actual_tokens: int, now: float) -> None:
        """Correct the TPM reservation to `actual_tokens` and free the parallel slots (once).

        Never raises on a Redis failure (it is counted and logged instead).
        """
        await self.settle_many([(lease, actual_tokens)], now)

    async def settle_many(self, items: Sequence[tuple[Lease, int]], now: float) -> None:
        """Settle many leases in one pipelined round trip; never raises on a Redis failure."""
        calls = [call for lease, actual in items if (call := self._settle_call(lease, actual))]
        if not calls:
            return
        try:
            await self._eval_many(_SETTLE_SHA, SETTLE_SCRIPT, calls)
        except _REDIS_FAILURES as error:
            self._failed(error)
        else:
            self._recovered()

    def _settle_call(
        self, lease: Lease, actual_tokens: int
    ) -> tuple[list[str], list[str | int]] | None:
        """The settle script's keys and arguments for `lease`; None when nothing is held."""
        if not isinstance(lease, RedisLease):
            raise TypeError(f"not a lease of this limiter: {lease!r}")
        if lease.settled:
            return None
        lease.settled = True
        delta = max(0, actual_tokens) - lease.tokens
        windows = lease.reservations if delta else []
        if not windows and not lease.slots:
            return None
        keys = [key for key, _ in windows] + lease.slots
        args: list[str | int] = [len(windows), delta, lease.lease_id]
        args += [bucket for _, bucket in windows]
        return keys, args

    async def _eval_many(
        self, sha: str, script: str, calls: list[tuple[list[str], list[str | int]]]
    ) -> None:
        """Many EVALSHAs in one pipeline, loading the script once if Redis lost it."""
        failed = await self._pipelined(sha, calls)
        if failed:
            await self._redis.script_load(script)
            await self._pipelined(sha, failed)

    async def _pipelined(
        self, sha: str, calls: list[tuple[list[str], list[str | int]]]
    ) -> list[tuple[list[str], list[str | int]]]:
        """Run `calls`; return those Redis refused with NOSCRIPT (other errors raise)."""
        pipe = self._redis.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        replies = await pipe.execute(raise_on_error=False)
        failed = []
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, NoScriptError):
                failed.append(call)
            elif isinstance(reply, Exception):
                raise reply
        return failed

    async def _eval(
        self, sha: str, script: str, keys: list[str], args: list[str | int]
    ) -> list[int]:
        """EVALSHA, loading the script once if Redis does not know it (restart, flush)."""
        try:
            return await self._evalsha(sha, keys, args)
        except NoScriptError:
            await self._redis.script_load(script)
            return await self._evalsha(sha, keys, args)

    def _evalsha(self, sha: str, keys: list[str], args: list[str | int]) -> Awaitable[list[int]]:
        # redis-py types EVALSHA's reply loosely; the scripts return lists of integers.
        return cast(Awaitable[list[int]], self._redis.evalsha(sha, len(keys), *keys, *args))

    def _lease(
        self, limits: Sequence[Limit], tokens: int, lease_id: str, reply: list[int]
    ) -> RedisLease:
        """The lease for an admitted request, or raise the refusal the script reported."""
        ok, refused, kind, retry_ms = reply[:_HEAD]
        quotas = [_quotas(limit, reply, i) for i, limit in enumerate(limits)]
        requests, tokens_quota = _tightest(quotas)
        if not ok:
            limit, kind_name = limits[refused - 1], _KINDS[kind]
            own = quotas[refused - 1][0 if kind_name == "rpm" else 1]
            retry_after = None if retry_ms < 0 else retry_ms / 1000
            raise refusal(limit, kind_name, tokens, retry_after, own, (requests, tokens_quota))
        reservations: list[tuple[str, int]] = []
        slots: list[str] = []
        for i, limit in enumerate(limits):
            _, token_key, slot_key = self.keys(limit)
            if limit.tpm is not None:
                reservations.append((token_key, reply[_HEAD + i * _PER_LIMIT + 4]))
            if limit.parallel is not None:
                slots.append(slot_key)
        return RedisLease(
            tokens,
            requests,
            tokens_quota,
            lease_id=lease_id,
            reservations=reservations,
            slots=slots,
        )

    def _failed(self, error: BaseException) -> None:
        """Count a Redis failure; log the first of an outage."""
        self.errors += 1
        if self._on_redis_error is not None:
            self._on_redis_error("rate_limit")
        if self._healthy:
            self._healthy = False
            get_logger().warning(
                "rate_limit_redis_unavailable",
                error=repr(error),
                fail_open=self._fail_open,
                message="requests are admitted unlimited"
                if self._fail_open
                else "requests are refused with 503",
            )

    def _recovered(self) -> None:
        if not self._healthy:
            self._healthy = True
            get_logger().info("rate_limit_redis_recovered", message="rate limits are enforced")


def _arg(value: int | None) -> int:
    """A limit value as the script reads it: -1 for "no limit"."""
    return -1 if value is None else value


def _quotas(limit: Limit, reply: list[int], index: int) -> tuple[Quota | None, Quota | None]:
    """The (requests, tokens) quotas of the `index`-th limit from the acquire script's reply."""
    at = _HEAD + index * _PER_LIMIT
    counted_requests, requests_reset, counted_tokens, tokens_reset = reply[at : at + 4]
    return (
        _quota(limit.rpm, counted_requests, requests_reset),
        _quota(limit.tpm, counted_tokens, tokens_reset),
    )


def _quota(limit: int | None, counted: int, reset_ms: int) -> Quota | None:
    if limit is None:
        return None
    return Quota(limit, max(0, limit - counted), reset_ms / 1000)


def _tightest(
    quotas: list[tuple[Quota | None, Quota | None]],
) -> tuple[Quota | None, Quota | None]:
    """The most constraining requests quota and tokens quota over all limits."""
    requests: Quota | None = None
    tokens: Quota | None = None
    for own_requests, own_tokens in quotas:
        if own_requests is not None:
            requests = tighter(requests, own_requests)
        if own_tokens is not None:
            tokens = tighter(tokens, own_tokens)
    return requests, tokens
