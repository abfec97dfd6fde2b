"""Readiness of the process's dependencies: the store always, Redis in distributed mode.

`/health/ready` must stay cheap under frequent probing, so each dependency is checked at most
once per `interval` (probes in between get the last answer) and every check is bounded by
`timeout`. A dependency that does not answer makes the replica not-ready: a load balancer then
sends traffic to replicas that can authenticate keys and count limits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

__all__ = ["Readiness"]

Check = Callable[[], Awaitable[object]]
"""Returns when the dependency answers; raises (anything) when it does not."""


class Readiness:
    """Named dependency checks with a short-lived cache of their last outcome."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        *,
        interval: float = 1.0,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = dict(checks)
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._last: dict[str, str] = {}
        self._checked_at = -float("inf")
        self._running: asyncio.Task[dict[str, str]] | None = None

    async def status(self) -> dict[str, str]:
        """Each dependency's state, `ok` or `unreachable: <reason>`."""
        if self._clock() - self._checked_at < self._interval:
            return self._last
        if self._running is None:
            self._running = asyncio.ensure_future(self._check_all())
        running = self._running
        try:
            return await asyncio.shield(running)
        finally:
            if running.done() and self._running is running:
                self._running = None

    async def _check_all(self) -> dict[str, str]:
        names = list(self._checks)
        outcomes = await asyncio.gather(*(self._check(self._checks[n]) for n in names))
        self._last = dict(zip(names, outcomes, strict=True))
        self._checked_at = self._clock()
        return self._last

    async def _check(self, check: Check) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                await check()
        except TimeoutError:
            return f"unreachable: no answer within {self._timeout:g}s"
        except Exception as exc:  # any failure means not ready; the reason is reported
            return f"unreachable: {type(exc).__name__}: {exc}"[:300]
        return "ok"
