"""The event-loop lag monitor, driven by an injected clock and sleep (no real waiting)."""

from __future__ import annotations

import asyncio

from llmux.loopmonitor import DEFAULT_INTERVAL, LoopMonitor


class FakeTime:
    """A clock that a fake `sleep` moves forward by the interval plus a scripted lateness."""

    def __init__(self, *lateness: float) -> None:
        self.now = 100.0
        self.lateness = list(lateness)
        self.slept: list[float] = []

    def clock(self) -> float:
        """The current fake time."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Advance the clock by `seconds` and the next lateness, yielding to the loop once."""
        self.slept.append(seconds)
        self.now += seconds + (self.lateness.pop(0) if self.lateness else 0.0)
        await asyncio.sleep(0)


async def test_sample_reports_how_late_the_timer_woke() -> None:
    """A wake-up 0.25 s after the due time is a 0.25 s lag sample."""
    time = FakeTime(0.25)
    seen: list[float] = []
    monitor = LoopMonitor(seen.append, clock=time.clock, sleep=time.sleep)
    assert await monitor.sample() == 0.25
    assert seen == [0.25]
    assert time.slept == [DEFAULT_INTERVAL]


async def test_early_wake_up_is_zero_lag() -> None:
    """A timer that fires early (clock granularity) never reports a negative lag."""
    time = FakeTime(-0.01)
    seen: list[float] = []
    monitor = LoopMonitor(seen.append, clock=time.clock, sleep=time.sleep)
    await monitor.sample()
    assert seen == [0.0]


async def test_started_monitor_samples_until_stopped() -> None:
    """Once started the monitor samples repeatedly; after `stop()` it is no longer running."""
    time = FakeTime(0.125, 0.25, 0.375)
    seen: list[float] = []
    three = asyncio.Event()

    def observe(lag: float) -> None:
        seen.append(lag)
        if len(seen) == 3:
            three.set()

    monitor = LoopMonitor(observe, interval=0.5, clock=time.clock, sleep=time.sleep)
    monitor.start()
    await three.wait()
    await monitor.stop()
    assert not monitor.running
    assert seen[:3] == [0.125, 0.25, 0.375]


async def test_second_start_keeps_one_task() -> None:
    """Starting a running monitor again does not add a second sampling task."""
    time = FakeTime()
    monitor = LoopMonitor(lambda _: None, clock=time.clock, sleep=time.sleep)
    monitor.start()
    tasks = {t.get_name() for t in asyncio.all_tasks()}
    monitor.start()
    assert {t.get_name() for t in asyncio.all_tasks()} == tasks
    await monitor.stop()


async def test_stop_without_start_is_harmless() -> None:
    """A gateway whose start failed early still stops its monitor without error."""
    monitor = LoopMonitor(lambda _: None)
    await monitor.stop()
    assert not monitor.running
