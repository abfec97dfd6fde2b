"""What routing observes about deployments: in-flight counts, latency, usage windows, turns.

`RouterStats` is the Protocol strategies read and dispatch writes; `LocalRouterStats` keeps it
in process (standalone mode). A Redis-backed implementation can replace it for shared state.
Every method takes `now` (monotonic seconds) from the caller, so tests drive the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from llmux.routing.table import Deployment, GroupPolicy

__all__ = [
    "EWMA_ALPHA",
    "WINDOW_SECONDS",
    "LocalRouterStats",
    "RouterStats",
    "SharedRouterStats",
    "Usage",
]

EWMA_ALPHA = 0.2
"""Weight of the newest sample in the latency and TTFT averages."""
WINDOW_SECONDS = 60.0
"""Length of the rpm/tpm window."""
FAILURE_PENALTY = 2.0
"""A failed attempt counts as this many times the current average (or its own duration)."""
TIMEOUT_PENALTY = 4.0
"""A timed-out attempt counts as this many times the current average (or its own duration)."""
_PENALTY_FLOOR = 1.0
"""Seconds: the least a failure of an unsampled deployment counts as."""


class Usage(NamedTuple):
    """Requests and tokens over the last `WINDOW_SECONDS`, and when the window next eases."""

    requests: float
    tokens: float
    eases_in: float


class RouterStats(Protocol):
    """Per-deployment observations routing decides on."""

    def start(self, deployment: str, now: float, tokens: int) -> None:
        """An attempt started: one more in flight, one request and `tokens` into the window."""

    def end(
        self, deployment: str, now: float, *, elapsed: float | None, failed: bool, timed_out: bool
    ) -> None:
        """An attempt ended on any path; `elapsed` (None: not a latency sample) feeds the EWMA."""

    def first_token(self, deployment: str, seconds: float) -> None:
        """A stream's time to first token."""

    def add_tokens(self, deployment: str, now: float, tokens: int) -> None:
        """Correct the token window (the actual usage minus what `start` estimated)."""

    def in_flight(self, deployment: str) -> int:
        """Attempts started and not yet ended."""

    def latency(self, deployment: str, stream: bool) -> float | None:
        """EWMA seconds (TTFT for streams when sampled); None when never sampled."""

    def ttft(self, deployment: str) -> float | None:
        """EWMA seconds to a stream's first token; None when never sampled."""

    def usage(self, deployment: str, now: float) -> Usage:
        """Requests and tokens over the sliding window ending at `now`."""

    def next_turn(self, group: str) -> int:
        """The group's round-robin counter, post-incremented."""


@runtime_checkable
class SharedRouterStats(RouterStats, Protocol):
    """`RouterStats` shared between replicas (`llmux.state`): refreshed before each pick."""

    async def refresh(self, deployments: Sequence[Deployment], policy: GroupPolicy) -> None:
        """Bring what the pick among `deployments` reads up to date (a turn, shared counts)."""


class _Window:
    """Two one-window buckets; the previous one is weighted by how much of it still overlaps.

    Unlike fixed minute buckets this allows no double burst at a boundary: just after a roll the
    previous bucket still counts almost fully.
    """

    __slots__ = ("cur_requests", "cur_start", "cur_tokens", "prev_requests", "prev_tokens")

    def __init__(self, now: float) -> None:
        self.cur_start = now
        self.cur_requests = self.cur_tokens = 0.0
        self.prev_requests = self.prev_tokens = 0.0

    def _roll(self, now: float) -> None:
        elapsed = now - self.cur_start
        if elapsed < WINDOW_SECONDS:
            return
        if elapsed < 2 * WINDOW_SECONDS:
            self.prev_requests, self.prev_tokens = self.cur_requests, self.cur_tokens
            self.cur_start += WINDOW_SECONDS
        else:
            self.prev_requests = self.prev_tokens = 0.0
            self.cur_start = now
        self.cur_requests = self.cur_tokens = 0.0

    def add(self, now: float, requests: float, tokens: float) -> None:
        self._roll(now)
        self.cur_requests += requests
        self.cur_tokens += tokens

    def read(self, now: float) -> Usage:
        self._roll(now)
        into = now - self.cur_start
        overlap = max(1.0 - into / WINDOW_SECONDS, 0.0)
        return Usage(
            requests=max(self.prev_requests * overlap + self.cur_requests, 0.0),
            tokens=max(self.prev_tokens * overlap + self.cur_tokens, 0.0),
            eases_in=max(WINDOW_SECONDS - into, 0.0),
        )


class _Deployment:
    __slots__ = ("in_flight", "latency", "ttft", "window")

    def __init__(self, now: float) -> None:
        self.in_flight = 0
        self.latency: float | None = None
        self.ttft: float | None = None
        self.window = _Window(now)


def _ewma(old: float | None, sample: float) -> float:
    return sample if old is None else old + EWMA_ALPHA * (sample - old)


def _penalised(old: float | None, elapsed: float, factor: float) -> float:
    base = max(elapsed, _PENALTY_FLOOR) if old is None else max(elapsed, old)
    return _ewma(old, base * factor)


class LocalRouterStats:
    """`RouterStats` in process memory; exact for one process, per replica otherwise."""

    __slots__ = ("_deployments", "_turns")

    def __init__(self) -> None:
        self._deployments: dict[str, _Deployment] = {}
        self._turns: dict[str, int] = {}

    def _get(self, deployment: str, now: float = 0.0) -> _Deployment:
        found = self._deployments.get(deployment)
        if found is None:
            found = self._deployments[deployment] = _Deployment(now)
        return found

    def start(self, deployment: str, now: float, tokens: int) -> None:
        state = self._get(deployment, now)
        state.in_flight += 1
        state.window.add(now, 1.0, float(tokens))

    def end(
        self, deployment: str, now: float, *, elapsed: float | None, failed: bool, timed_out: bool
    ) -> None:
        state = self._get(deployment, now)
        state.in_flight = max(state.in_flight - 1, 0)
        if elapsed is None:
            return
        if timed_out or failed:
            factor = TIMEOUT_PENALTY if timed_out else FAILURE_PENALTY
            state.latency = _penalised(state.latency, elapsed, factor)
            if state.ttft is not None:
                state.ttft = _penalised(state.ttft, elapsed, factor)
        else:
            state.latency = _ewma(state.latency, elapsed)

    def first_token(self, deployment: str, seconds: float) -> None:
        state = self._get(deployment)
        state.ttft = _ewma(state.ttft, seconds)

    def add_tokens(self, deployment: str, now: float, tokens: int) -> None:
        self._get(deployment, now).window.add(now, 0.0, float(tokens))

    def in_flight(self, deployment: str) -> int:
        found = self._deployments.get(deployment)
        return 0 if found is None else found.in_flight

    def latency(self, deployment: str, stream: bool) -> float | None:
        found = self._deployments.get(deployment)
        if found is None:
            return None
        if stream and found.ttft is not None:
            return found.ttft
        return found.latency

    def ttft(self, deployment: str) -> float | None:
        found = self._deployments.get(deployment)
        return None if found is None else found.ttft

    def usage(self, deployment: str, now: float) -> Usage:
        found = self._deployments.get(deployment)
        if found is None:
            return Usage(0.0, 0.0, 0.0)
        return found.window.read(now)

    def next_turn(self, group: str) -> int:
        turn = self._turns.get(group, 0)
        self._turns[group] = turn + 1
        return turn

    def carry_from(
        self, previous: LocalRouterStats, deployments: Iterable[str], groups: Iterable[str]
    ) -> None:
        """Adopt `previous`'s observations of `deployments` and the turns of `groups` (a reload).

        The per-deployment records are shared, not copied: attempts still in flight on the old
        runtime end on the same record, so in-flight counts stay right on both.
        """
        for deployment in deployments:
            found = previous._deployments.get(deployment)
            if found is not None:
                self._deployments[deployment] = found
        for group in groups:
            turn = previous._turns.get(group)
            if turn is not None:
                self._turns[group] = turn
