"""Event-loop lag: a background task that measures how late the loop wakes a periodic timer.

Every `interval` seconds the task sleeps and compares when it woke with when it asked to. The
drift is time that ready callbacks (request handlers, JSON work, GC pauses) held the loop, which
is also how long any request's next step waited. Each sample goes to an `observe` callback (the
metrics' `observe_loop_lag`), so this module knows nothing of Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

__all__ = ["DEFAULT_INTERVAL", "LoopMonitor"]

DEFAULT_INTERVAL = 0.5


class LoopMonitor:
    """Samples event-loop lag while started; `stop()` is safe whether or not it ever started."""

    def __init__(
        self,
        observe: Callable[[float], None],
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._observe = observe
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the sampling task is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Begin sampling on the running loop (a second call while running does nothing)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="llmux-loop-monitor"
            )

    async def stop(self) -> None:
        """Stop sampling and wait for the task to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while True:
            await self.sample()

    async def sample(self) -> float:
        """Sleep one interval and report how much later than asked the loop woke us."""
        due = self._clock() + self._interval
        await self._sleep(self._interval)
        lag = max(self._clock() - due, 0.0)
        self._observe(lag)
        return lag
