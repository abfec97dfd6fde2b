"""Rate limits (RPM, TPM, parallel requests) at every governance level, checked all at once.

One request is checked against every limit that applies to it (key, user, team, organization,
end user, and the per-model limits of each) in one atomic step: either every limit admits it and
all are counted, or none is counted and `RateLimited` names the level that refused. This module
holds the types every limiter shares, the `RateLimiter` Protocol, and `LocalRateLimiter`, the
in-process implementation; `llmux.governance.redis_limits` holds the one shared across replicas.
Imports `llmux.errors` only.

The window, and its exact bound (identical in both implementations):

* Time is cut into buckets of `BUCKET_SECONDS` (1 s), numbered ``floor(now / BUCKET_SECONDS)``.
  A limit counts what was admitted in the current bucket and the `SPAN` (60) before it, so an
  admitted request (or reserved token) counts against its limit for at least 60 s and at most
  61 s after admission, then drops out whole.
* Bound: in ANY interval ``[s, s + 60]`` a limit admits at most its value, wherever the
  interval falls relative to the buckets, so there is no double burst at window edges (unlike a
  fixed window, or GCRA with burst = limit, which admit ~2x in some 60 s span). Proof: that
  interval touches at most the 61 buckets k..k+60; the last request admitted in it was checked
  against buckets b-60..b with k <= b <= k+60, which include every earlier one of them.
* The price of exactness is at most 1 s of conservatism: capacity comes back between 60 and
  61 s after it was used. A bucket-sized log (one entry per non-empty second, at most 61) keeps
  memory per subject small and every check O(1) amortised.
* TPM: `acquire` reserves `tokens` (the caller's estimate) in the current bucket; `settle`
  corrects that bucket to the actual usage, if it is still inside the window (after that the
  reservation has already dropped out and there is nothing to correct). A request that uses
  more than it reserved can push a window over its limit; later requests then wait for it.
* Parallel: a count of leases not yet settled; `settle` frees the slot.

`now` is any clock in seconds that the caller uses consistently (production: `time.time()`, so
in-process and Redis windows agree on bucket boundaries); tests pass it to avoid sleeping.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol, final

from llmux.errors import RateLimited

__all__ = [
    "BUCKET_SECONDS",
    "LEVELS",
    "PARALLEL_RETRY_SECONDS",
    "SPAN",
    "SWEEP_SECONDS",
    "Lease",
    "Limit",
    "LocalLease",
    "LocalRateLimiter",
    "Quota",
    "RateLimiter",
    "applicable_limits",
    "format_duration",
    "quota_headers",
    "refusal",
    "tighter",
]

BUCKET_SECONDS: Final = 1.0
"""Width of one window bucket: the granularity at which capacity comes back."""
SPAN: Final = 60
"""Buckets before the current one that a limit still counts (60 s of them)."""
LEVELS: Final = frozenset({"key", "user", "team", "organization", "end_user"})
"""The governance levels a `Limit` may belong to."""
SWEEP_SECONDS: Final = 60.0
"""How often `LocalRateLimiter` drops subjects with nothing counted and nothing in flight."""
PARALLEL_RETRY_SECONDS: Final = 1
"""Retry-After for a parallel-requests refusal: slots free when calls end, which is unknown."""
_LEVEL_NAMES: Final = {"end_user": "end user"}


@dataclass(frozen=True, slots=True)
class Limit:
    """The limits of one subject at one level, for all models (`model` None) or one model group.

    A `None` value means "no limit of that kind"; 0 refuses everything of that kind.
    """

    level: str
    subject: str
    model: str | None
    rpm: int | None
    tpm: int | None
    parallel: int | None

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"unknown rate-limit level {self.level!r}")
        for name, value in (("rpm", self.rpm), ("tpm", self.tpm), ("parallel", self.parallel)):
            if value is not None and value < 0:
                raise ValueError(f"{name} limit must be >= 0, got {value}")

    def describe(self) -> str:
        """Who the limit belongs to, for messages: "key", "team on model gpt-4o"."""
        who = _LEVEL_NAMES.get(self.level, self.level)
        return who if self.model is None else f"{who} on model {self.model}"


def applicable_limits(limits: Sequence[Limit], model: str) -> list[Limit]:
    """The limits that apply to a request for `model`: those for all models and those for it."""
    return [limit for limit in limits if limit.model is None or limit.model == model]


class Quota(NamedTuple):
    """Where one window of one limit stands: its value, what is left, and when it empties."""

    limit: int
    remaining: int
    reset: float
    """Seconds until everything now counted has dropped out of the window."""


def tighter(current: Quota | None, candidate: Quota) -> Quota:
    """The more constraining of two quotas (fewer remaining; then the smaller limit)."""
    if current is None or candidate.remaining < current.remaining:
        return candidate
    if candidate.remaining == current.remaining and candidate.limit < current.limit:
        return candidate
    return current


def format_duration(seconds: float) -> str:
    """A duration the way OpenAI writes `x-ratelimit-reset-*`: "20ms", "1.5s", "1m0.5s"."""
    millis = max(0, math.ceil(seconds * 1000 - 1e-6))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    minutes, millis = divmod(millis, 60_000)
    text = f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{text}" if minutes else text


def quota_headers(requests: Quota | None, tokens: Quota | None) -> dict[str, str]:
    """The OpenAI-style `x-ratelimit-*` headers for the given request and token quotas."""
    headers: dict[str, str] = {}
    if requests is not None:
        headers["x-ratelimit-limit-requests"] = str(requests.limit)
        headers["x-ratelimit-remaining-requests"] = str(requests.remaining)
        headers["x-ratelimit-reset-requests"] = format_duration(requests.reset)
    if tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(tokens.limit)
        headers["x-ratelimit-remaining-tokens"] = str(tokens.remaining)
        headers["x-ratelimit-reset-tokens"] = format_duration(tokens.reset)
    return headers


class Lease:
    """What one admitted request holds until `settle`: its token reservation and parallel slots.

    `headers()` gives the `x-ratelimit-*` headers of the most constraining limits as they stood
    right after admission; successful responses carry them.
    """

    __slots__ = ("requests", "settled", "tokens", "tokens_quota")

    def __init__(self, tokens: int, requests: Quota | None, tokens_quota: Quota | None) -> None:
        self.tokens = tokens
        self.requests = requests
        self.tokens_quota = tokens_quota
        self.settled = False

    def headers(self) -> dict[str, str]:
        """The `x-ratelimit-*` headers for the response of this request."""
        return quota_headers(self.requests, self.tokens_quota)


class RateLimiter(Protocol):
    """Checks and counts every limit of a request atomically; see the module docstring."""

    async def acquire(self, limits: Sequence[Limit], tokens: int, now: float) -> Lease:
        """Admit one request against all `limits`, reserving `tokens`, or raise `RateLimited`.

        Args:
            limits: every limit that applies to the request (see `applicable_limits`).
            tokens: the TPM reservation: prompt estimate + max output tokens.
            now: the caller's clock, in seconds.
        """
        ...

    async def settle(self, lease: Lease, actual_tokens: int, now: float) -> None:
        """Correct the TPM reservation to `actual_tokens` and free the parallel slots.

        Safe to call once per lease on every path (success, error, disconnect); a second call
        does nothing.
        """
        ...

    async def settle_many(self, items: Sequence[tuple[Lease, int]], now: float) -> None:
        """`settle` for many leases at once (one Redis round trip for all of them)."""
        ...


def refusal(
    limit: Limit,
    kind: str,
    tokens: int,
    retry_after: float | None,
    own: Quota | None,
    standing: tuple[Quota | None, Quota | None],
) -> RateLimited:
    """The `RateLimited` for `limit` refusing on `kind` ("rpm", "tpm" or "parallel").

    `retry_after` is None when waiting cannot help (the request alone needs more than the limit):
    the response then says `x-should-retry: false` instead of giving a Retry-After. The
    `x-ratelimit-*` headers show `own` (the refusing limit's quota of the refused kind) for that
    kind and the most constraining of `standing` (requests, tokens) for the other.
    """
    who = limit.describe()
    if kind == "rpm":
        message = f"Rate limit exceeded for {who}: {limit.rpm} requests per minute."
    elif kind == "tpm":
        message = f"Rate limit exceeded for {who}: {limit.tpm} tokens per minute."
        if retry_after is None:
            message += f" This request alone reserves {tokens} tokens, so it can never fit."
    else:
        message = f"Rate limit exceeded for {who}: {limit.parallel} parallel requests."
    requests, tokens_quota = standing
    if kind == "rpm":
        requests = own
    elif kind == "tpm":
        tokens_quota = own
    headers = quota_headers(requests, tokens_quota)
    if retry_after is None:
        headers["x-should-retry"] = "false"
    else:
        millis = max(1, math.ceil(retry_after * 1000 - 1e-6))
        headers["retry-after"] = str(math.ceil(millis / 1000))
        headers["retry-after-ms"] = str(millis)
    return RateLimited(message, headers=headers, level=limit.level)


class _Bucket:
    """One second of a window: how much was counted in it; `live` until it drops out."""

    __slots__ = ("amount", "index", "live")

    def __init__(self, index: int, amount: int) -> None:
        self.index = index
        self.amount = amount
        self.live = True


class _Window:
    """A sliding window as a log of non-empty buckets (at most SPAN + 1) and their running sum."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[_Bucket] = deque()
        self.total = 0

    def roll(self, current: int) -> int:
        """Drop buckets older than the window ending in bucket `current`; what is left counted."""
        buckets = self.buckets
        first_live = current - SPAN
        while buckets and buckets[0].index < first_live:
            gone = buckets.popleft()
            gone.live = False
            self.total -= gone.amount
        return self.total

    def add(self, current: int, amount: int) -> _Bucket:
        """Count `amount` in bucket `current` (in the newest one if the clock went backwards)."""
        buckets = self.buckets
        if buckets and buckets[-1].index >= current:
            bucket = buckets[-1]
            bucket.amount += amount
        else:
            bucket = _Bucket(current, amount)
            buckets.append(bucket)
        self.total += amount
        return bucket

    def correct(self, bucket: _Bucket, delta: int) -> None:
        """Change a reservation in `bucket` by `delta`, if it still counts."""
        if bucket.live:
            bucket.amount += delta
            self.total += delta

    def quota(self, limit: int, now: float) -> Quota:
        """The window's standing against `limit`, assumed rolled to `now`."""
        reset = 0.0
        if self.total > 0:
            reset = (self.buckets[-1].index + SPAN + 1) * BUCKET_SECONDS - now
        return Quota(limit, max(0, limit - self.total), reset)

    def retry_after(self, limit: int, amount: int, now: float) -> float | None:
        """Seconds until `amount` more fits under `limit`; None if it never can."""
        if amount > limit:
            return None
        excess = self.total + amount - limit
        for bucket in self.buckets:
            excess -= bucket.amount
            if excess <= 0:
                return (bucket.index + SPAN + 1) * BUCKET_SECONDS - now
        return 0.0


def _tightest(windows: list[tuple[int, _Window]], now: float) -> Quota | None:
    """The quota of the most constraining (limit, window) pair (see `tighter`), or None."""
    if not windows:
        return None
    best_limit, best = windows[0]
    for limit, window in windows[1:]:
        # Clamped like `Quota.remaining`, so ties break as `tighter` breaks them.
        left, best_left = max(0, limit - window.total), max(0, best_limit - best.total)
        if left < best_left or (left == best_left and limit < best_limit):
            best_limit, best = limit, window
    return best.quota(best_limit, now)


class _Subject:
    """The counters of one (level, subject, model): request and token windows, calls in flight."""

    __slots__ = ("inflight", "requests", "tokens")

    def __init__(self) -> None:
        self.requests = _Window()
        self.tokens = _Window()
        self.inflight = 0

    def idle(self, current: int) -> bool:
        """Whether nothing is counted any more, so the subject can be forgotten."""
        return (
            self.inflight == 0 and not self.requests.roll(current) and not self.tokens.roll(current)
        )


@final
class LocalLease(Lease):
    """A `Lease` of `LocalRateLimiter`: the token buckets it reserved in, the slots it holds."""

    __slots__ = ("reservations", "slots")

    def __init__(
        self,
        tokens: int,
        requests: Quota | None,
        tokens_quota: Quota | None,
        reservations: list[tuple[_Window, _Bucket]],
        slots: list[_Subject],
    ) -> None:
        super().__init__(tokens, requests, tokens_quota)
        self.reservations = reservations
        self.slots = slots


@final
class LocalRateLimiter:
    """The in-process `RateLimiter` (standalone mode): exact for this process only.

    Memory is bounded by the subjects active in the last ~2 minutes: every `SWEEP_SECONDS` the
    subjects with empty windows and nothing in flight are dropped.
    """

    def __init__(self) -> None:
        self._subjects: dict[tuple[str, str, str | None], _Subject] = {}
        self._swept = -math.inf

    def __len__(self) -> int:
        """How many subjects are currently tracked."""
        return len(self._subjects)

    async def acquire(self, limits: Sequence[Limit], tokens: int, now: float) -> Lease:
        """Admit one request against all `limits`, reserving `tokens`, or raise `RateLimited`."""
        current = int(now // BUCKET_SECONDS)
        if now - self._swept >= SWEEP_SECONDS:
            self._sweep(current, now)
        subjects = [self._subject(limit) for limit in limits]
        for limit, subject in zip(limits, subjects, strict=True):
            refused = self._check(limit, subject, tokens, current, now)
            if refused is not None:
                kind, retry_after, own = refused
                standing = self._standing(limits, subjects, current, now)
                raise refusal(limit, kind, tokens, retry_after, own, standing)
        # Every limit admits the request: count it everywhere. No await since the checks, so
        # no other request can have changed a window in between.
        return self._commit(limits, subjects, tokens, current, now)

    async def settle_many(self, items: Sequence[tuple[Lease, int]], now: float) -> None:
        """Settle each lease in turn (in process, nothing to batch)."""
        for lease, actual_tokens in items:
            await self.settle(lease, actual_tokens, now)

    async def settle(self, lease: Lease, actual_tokens: int, now: float) -> None:
        """Correct the TPM reservation to `actual_tokens` and free the parallel slots (once)."""
        if not isinstance(lease, LocalLease):
            raise TypeError(f"not a lease of this limiter: {lease!r}")
        if lease.settled:
            return
        lease.settled = True
        delta = max(0, actual_tokens) - lease.tokens
        if delta:
            for window, bucket in lease.reservations:
                window.correct(bucket, delta)
        for subject in lease.slots:
            subject.inflight -= 1

    def _subject(self, limit: Limit) -> _Subject:
        key = (limit.level, limit.subject, limit.model)
        subject = self._subjects.get(key)
        if subject is None:
            subject = self._subjects[key] = _Subject()
        return subject

    @staticmethod
    def _check(
        limit: Limit, subject: _Subject, tokens: int, current: int, now: float
    ) -> tuple[str, float | None, Quota | None] | None:
        """Whether `limit` refuses: (kind, retry after, refusing quota), or None. Counts nothing."""
        if limit.rpm is not None and subject.requests.roll(current) + 1 > limit.rpm:
            window = subject.requests
            return "rpm", window.retry_after(limit.rpm, 1, now), window.quota(limit.rpm, now)
        if limit.tpm is not None and subject.tokens.roll(current) + tokens > limit.tpm:
            window = subject.tokens
            retry = window.retry_after(limit.tpm, tokens, now)
            return "tpm", retry, window.quota(limit.tpm, now)
        if limit.parallel is not None and subject.inflight >= limit.parallel:
            return "parallel", PARALLEL_RETRY_SECONDS, None
        return None

    @staticmethod
    def _standing(
        limits: Sequence[Limit], subjects: list[_Subject], current: int, now: float
    ) -> tuple[Quota | None, Quota | None]:
        """The most constraining (requests, tokens) quotas over `limits`, counting nothing."""
        requests: Quota | None = None
        tokens: Quota | None = None
        for limit, subject in zip(limits, subjects, strict=True):
            if limit.rpm is not None:
                subject.requests.roll(current)
                requests = tighter(requests, subject.requests.quota(limit.rpm, now))
            if limit.tpm is not None:
                subject.tokens.roll(current)
                tokens = tighter(tokens, subject.tokens.quota(limit.tpm, now))
        return requests, tokens

    @staticmethod
    def _commit(
        limits: Sequence[Limit], subjects: list[_Subject], tokens: int, current: int, now: float
    ) -> LocalLease:
        """Count the admitted request in every window and slot; the lease that undoes it."""
        counted_requests: list[tuple[int, _Window]] = []
        counted_tokens: list[tuple[int, _Window]] = []
        reservations: list[tuple[_Window, _Bucket]] = []
        slots: list[_Subject] = []
        for limit, subject in zip(limits, subjects, strict=True):
            if limit.rpm is not None:
                subject.requests.add(current, 1)
                counted_requests.append((limit.rpm, subject.requests))
            if limit.tpm is not None:
                reservations.append((subject.tokens, subject.tokens.add(current, tokens)))
                counted_tokens.append((limit.tpm, subject.tokens))
            if limit.parallel is not None:
                subject.inflight += 1
                slots.append(subject)
        requests = _tightest(counted_requests, now)
        return LocalLease(tokens, requests, _tightest(counted_tokens, now), reservations, slots)

    def _sweep(self, current: int, now: float) -> None:
        """Forget subjects with nothing counted and nothing in flight."""
        self._swept = now
        idle = [key for key, subject in self._subjects.items() if subject.idle(current)]
        for key in idle:
            del self._subjects[key]
