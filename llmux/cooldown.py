"""Circuit breaking: which deployments are cooling down, and for how long. Pure state, no I/O.

One `Breaker` per runtime holds a small state machine per deployment:

    healthy --(trigger)--> cooling --(time passes)--> half-open --(trial ok)--> healthy
                                ^                          |
                                +------(trial fails: doubled cooldown, capped)

Triggers: an immediate cooldown on 429, 401, 403 or 404, and a failure rate at or above
`failure_rate` over a sliding `window` once it holds `min_samples` outcomes. Both apply only
when the deployment's group has another deployment to send traffic to: blocking a group's only
deployment would turn its errors into 503s for the whole cooldown and spare nobody. The
cooldown lasts the upstream's Retry-After when it sent one, else `period`. When it ends, exactly
one trial request is let through; its outcome decides. The clock is injected, so tests are
deterministic.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["Breaker", "CooldownPolicy", "State", "counts_as_failure"]

_IMMEDIATE = {429: "rate_limited", 401: "auth", 403: "auth", 404: "not_found"}
_BUCKETS = 10
"""The sliding window is kept as this many buckets, so memory stays bounded at any rate."""


class State(enum.IntEnum):
    """A deployment's breaker state; the value is the `llmux_deployment_state` gauge value."""

    HEALTHY = 0
    COOLING = 1
    HALF_OPEN = 2


def counts_as_failure(status: int) -> bool:
    """Whether an upstream answer with `status` says the deployment is unhealthy.

    Retryable statuses (timeouts 408/504, 409, 429, 5xx, connect errors as 502) and the
    credential/model errors 401/403/404 count; other 4xx are the client's mistake and show a
    working deployment.
    """
    return status >= 500 or status in (408, 409, 429, 401, 403, 404)


@dataclass(frozen=True, slots=True)
class CooldownPolicy:
    """`routing.cooldown` in config terms, in seconds."""

    enabled: bool = True
    period: float = 60.0
    max_period: float = 600.0
    failure_rate: float = 0.5
    min_samples: int = 5
    window: float = 60.0
    max_wait: float = 0.0
    """When every deployment cools down: wait this long at most for one to recover (0 = 503)."""


@dataclass(slots=True)
class _Deployment:
    state: State = State.HEALTHY
    until: float = 0.0
    length: float = 0.0
    trial_since: float | None = None
    # (bucket index, successes, failures), oldest first.
    buckets: deque[list[int]] = field(default_factory=deque)


OnChange = Callable[[str, State], None]


class Breaker:
    """Per-deployment circuit breakers; every method takes effect at `clock()`."""

    def __init__(
        self,
        policy: CooldownPolicy,
        clock: Callable[[], float] = time.monotonic,
        on_change: OnChange | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._on_change = on_change
        self._states: dict[str, _Deployment] = {}

    def state(self, deployment: str) -> State:
        """The deployment's state now (a finished cooldown reads as half-open)."""
        entry = self._states.get(deployment)
        if entry is None:
            return State.HEALTHY
        return self._advance(deployment, entry, self._clock())

    def available(self, deployment: str) -> bool:
        """Whether routing may send the deployment a request now.

        Half-open admits one trial at a time; a trial whose outcome never came back (a client
        that went away) stops blocking after `period`.
        """
        entry = self._states.get(deployment)
        if entry is None:
            return True
        now = self._clock()
        state = self._advance(deployment, entry, now)
        if state is State.HALF_OPEN:
            return entry.trial_since is None or now - entry.trial_since >= self._policy.period
        return state is State.HEALTHY

    def begin(self, deployment: str) -> None:
        """Routing picked the deployment: in half-open this request becomes the trial."""
        entry = self._states.get(deployment)
        if entry is not None and entry.state is State.HALF_OPEN:
            entry.trial_since = self._clock()

    def abandon(self, deployment: str) -> None:
        """The picked request ended without an outcome (cancelled): free the trial slot."""
        entry = self._states.get(deployment)
        if entry is not None:
            entry.trial_since = None

    @property
    def max_wait(self) -> float:
        """How long a request may wait for a cooling group to recover (0: answer 503 at once)."""
        return self._policy.max_wait

    def retry_in(self, deployments: list[str]) -> float:
        """Seconds until the soonest of `deployments` takes requests again (0 if one does)."""
        now = self._clock()
        waits = []
        for deployment in deployments:
            entry = self._states.get(deployment)
            if entry is None or self.available(deployment):
                return 0.0
            if entry.state is State.COOLING:
                waits.append(entry.until - now)
            elif entry.trial_since is not None:
                waits.append(entry.trial_since + self._policy.period - now)
        return max(min(waits, default=0.0), 0.0)

    def cooling_left(self, deployment: str) -> float | None:
        """Seconds until the deployment's cooldown ends; None when it is not cooling."""
        entry = self._states.get(deployment)
        now = self._clock()
        if entry is None or self._advance(deployment, entry, now) is not State.COOLING:
            return None
        return entry.until - now

    def force_cooldown(self, deployment: str, seconds: float) -> None:
        """An operator cools the deployment for `seconds` (then half-open as usual)."""
        entry = self._entry(deployment)
        self._cool(deployment, entry, self._clock(), seconds)

    def clear(self, deployment: str) -> None:
        """An operator ends any cooldown or trial: healthy, with an empty failure window."""
        entry = self._states.get(deployment)
        if entry is None:
            return
        entry.trial_since = None
        entry.length = 0.0
        entry.buckets.clear()
        if entry.state is not State.HEALTHY:
            self._set(deployment, entry, State.HEALTHY)

    def cooling_for(self, deployment: str) -> float:
        """Seconds of cooldown left (0 when the deployment is not cooling down)."""
        entry = self._states.get(deployment)
        if entry is None:
            return 0.0
        now = self._clock()
        if self._advance(deployment, entry, now) is not State.COOLING:
            return 0.0
        return entry.until - now

    def adopt(self, deployment: str, seconds: float) -> None:
        """Another replica cooled the deployment for `seconds` more: cool it here as well.

        Only lengthens: a cooldown of this replica that ends later is kept.
        """
        if not self._policy.enabled or seconds <= 0:
            return
        now = self._clock()
        entry = self._entry(deployment)
        if self._advance(deployment, entry, now) is State.COOLING:
            entry.until = max(entry.until, now + seconds)
            return
        self._cool(deployment, entry, now, seconds)

    def carry_from(self, previous: Breaker, deployments: Iterable[str]) -> None:
        """Adopt `previous`'s state of `deployments` (a reload keeps unchanged deployments' state).

        The records are shared, so outcomes of attempts still in flight on the old runtime land
        here too.
        """
        for deployment in deployments:
            found = previous._states.get(deployment)
            if found is not None:
                self._states[deployment] = found

    def record_success(self, deployment: str) -> None:
        """An attempt succeeded (or was refused for the client's own mistake)."""
        if not self._policy.enabled:
            return
        now = self._clock()
        entry = self._entry(deployment)
        if self._advance(deployment, entry, now) is State.HALF_OPEN:
            entry.trial_since = None
            entry.length = 0.0
            self._set(deployment, entry, State.HEALTHY)
        self._sample(entry, now, failed=False)

    def record_failure(
        self,
        deployment: str,
        status: int,
        *,
        retry_after: float | None = None,
        alternatives: bool = True,
    ) -> str | None:
        """An attempt failed with `status`; the cooldown reason when this started one.

        `alternatives` says whether the deployment's group has another deployment.
        """
        if not self._policy.enabled or not counts_as_failure(status):
            return None
        now = self._clock()
        entry = self._entry(deployment)
        state = self._advance(deployment, entry, now)
        policy = self._policy
        if state is State.HALF_OPEN:
            length = min(max(entry.length, policy.period) * 2, policy.max_period)
            if retry_after is not None:
                length = min(max(length, retry_after), policy.max_period)
            self._cool(deployment, entry, now, length)
            return "trial_failed"
        if state is State.COOLING:
            # A late failure of a request sent before the cooldown: it may only lengthen it.
            if retry_after is not None:
                entry.until = max(entry.until, now + min(retry_after, policy.max_period))
            return None
        self._sample(entry, now, failed=True)
        if not alternatives:
            return None
        reason = _IMMEDIATE.get(status)
        if reason is None and self._rate_exceeded(entry, now):
            reason = "failure_rate"
        if reason is None:
            return None
        length = policy.period if retry_after is None else min(retry_after, policy.max_period)
        self._cool(deployment, entry, now, length)
        return reason

    def _entry(self, deployment: str) -> _Deployment:
        entry = self._states.get(deployment)
        if entry is None:
            entry = self._states[deployment] = _Deployment()
        return entry

    def _advance(self, deployment: str, entry: _Deployment, now: float) -> State:
        if entry.state is State.COOLING and now >= entry.until:
            entry.trial_since = None
            self._set(deployment, entry, State.HALF_OPEN)
        return entry.state

    def _cool(self, deployment: str, entry: _Deployment, now: float, length: float) -> None:
        entry.until = now + length
        entry.length = length
        entry.trial_since = None
        entry.buckets.clear()
        self._set(deployment, entry, State.COOLING)

    def _set(self, deployment: str, entry: _Deployment, state: State) -> None:
        entry.state = state
        if self._on_change is not None:
            self._on_change(deployment, state)

    def _sample(self, entry: _Deployment, now: float, *, failed: bool) -> None:
        index = self._bucket(now)
        buckets = entry.buckets
        while buckets and buckets[0][0] <= index - _BUCKETS:
            buckets.popleft()
        if not buckets or buckets[-1][0] != index:
            buckets.append([index, 0, 0])
        buckets[-1][2 if failed else 1] += 1

    def _rate_exceeded(self, entry: _Deployment, now: float) -> bool:
        oldest = self._bucket(now) - _BUCKETS
        ok = failed = 0
        for index, successes, failures in entry.buckets:
            if index > oldest:
                ok += successes
                failed += failures
        total = ok + failed
        return total >= self._policy.min_samples and failed >= self._policy.failure_rate * total

    def _bucket(self, now: float) -> int:
        return int(now // (self._policy.window / _BUCKETS))
