"""Routing micro-benchmark: CPU µs per routing decision for each of the six strategies.

A decision is what dispatch adds per request: the capacity filter (`admit`), the strategy's
full retry order (`order`), and the attempt's start/end bookkeeping in the in-process stats.
Groups of 2 and 8 deployments, each with rpm, tpm, max_concurrent and prices set so that every
filter and score reads its stats. Run: `python -m benchmarks.bench_routing`.

`--redis URL` adds a second table: wall-clock µs per decision with `routing.distributed`
(`RedisRouterStats`: the one awaited round trip of `refresh()`, the decision, and the queued
start/end writes) next to the same decision on `LocalRouterStats`, one request at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Final, get_args

from llmux.config import parse_config
from llmux.config.schema import RedisConfig, RoutingStrategy
from llmux.metrics import Metrics
from llmux.routing import (
    Deployment,
    GroupPolicy,
    LocalRouterStats,
    RequestEstimate,
    RouterStats,
    admit,
    build_table,
    order,
)

SIZES: Final = (2, 8)
ESTIMATE: Final = RequestEstimate(input_tokens=300, output_tokens=256, stream=False)
_ENTRY: Final = (
    "{{name: m, weight: {w}, rpm: 1000000000000, tpm: 1000000000000000,"
    " max_concurrent: 10000,"
    " input_cost_per_million: {w}, output_cost_per_million: {o}}}"
)


def _group(size: int) -> tuple[Deployment, ...]:
    lines = ["providers:"]
    for index in range(size):
        entry = _ENTRY.format(w=index + 1, o=4 * (index + 1))
        lines.append(f"  - name: p{index}\n    type: mock\n    models: [{entry}]")
    loaded = parse_config("\n".join(lines) + "\n", "bench.yaml", {})
    return build_table(loaded.config, ("mock",)).lookup("m")


def _warm(deployments: tuple[Deployment, ...]) -> LocalRouterStats:
    """Stats with latency, TTFT and window samples on every deployment."""
    stats = LocalRouterStats()
    for index, deployment in enumerate(deployments):
        for sample in range(20):
            stats.start(deployment.id, float(sample), 300)
            stats.end(
                deployment.id,
                float(sample),
                elapsed=0.5 + 0.01 * index,
                failed=False,
                timed_out=False,
            )
    return stats


def _decision(strategy: RoutingStrategy, size: int) -> Callable[[], object]:
    deployments = _group(size)
    stats = _warm(deployments)
    policy = GroupPolicy(strategy)
    rng = random.Random(1)
    strict = strategy == "lowest-tpm-rpm"
    clock = time.monotonic

    def decide() -> object:
        now = clock()
        ranked = order(
            policy,
            admit(deployments, stats, ESTIMATE, now, strict=strict),
            stats,
            ESTIMATE,
            rng,
            now,
        )
        chosen = ranked[0].id
        stats.start(chosen, now, ESTIMATE.input_tokens)
        stats.end(chosen, now, elapsed=0.5, failed=False, timed_out=False)
        return ranked

    return decide


def _cpu_us(work: Callable[[], object], repeat: int) -> float:
    """Best-of-`repeat` CPU microseconds per call of `work`."""
    timer = timeit.Timer(work, timer=time.process_time)
    number, _ = timer.autorange()
    number = max(number, 200)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def report(repeat: int) -> str:
    """A markdown table: strategy x group size, CPU µs per decision."""
    header = "| strategy | " + " | ".join(f"{n} deployments (µs)" for n in SIZES) + " |"
    lines = [header, "|---|" + "---:|" * len(SIZES)]
    for strategy in get_args(RoutingStrategy):
        cells = [f"{_cpu_us(_decision(strategy, n), repeat):.1f}" for n in SIZES]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def _wall_us(strategy: RoutingStrategy, size: int, stats: RouterStats, count: int) -> float:
    """Median wall µs per decision (refresh round trip included when `stats` has one)."""
    from llmux.state import RedisRouterStats

    deployments = _group(size)
    policy = GroupPolicy(strategy)
    rng = random.Random(1)
    strict = strategy == "lowest-tpm-rpm"
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        if isinstance(stats, RedisRouterStats):
            await stats.refresh(deployments, policy)
        now = time.monotonic()
        ranked = order(
            policy,
            admit(deployments, stats, ESTIMATE, now, strict=strict),
            stats,
            ESTIMATE,
            rng,
            now,
        )
        chosen = ranked[0].id
        stats.start(chosen, now, ESTIMATE.input_tokens)
        stats.end(chosen, now, elapsed=0.5, failed=False, timed_out=False)
        samples.append(time.perf_counter() - started)
        await asyncio.sleep(0)
    return statistics.median(samples) * 1e6


async def redis_report(url: str, count: int) -> str:
    """A markdown table: strategy x group size, wall µs per decision, local vs Redis."""
    import uuid

    from llmux.state import RedisRouterStats, open_link

    prefix = f"llmux-bench-{uuid.uuid4().hex}:"
    link = open_link(RedisConfig(url=url, key_prefix=prefix), Metrics())
    header = "| strategy | " + " | ".join(f"{n}: local / Redis (µs)" for n in SIZES) + " |"
    lines = [header, "|---|" + "---:|" * len(SIZES)]
    try:
        for strategy in get_args(RoutingStrategy):
            cells = []
            for size in SIZES:
                groups = {d.id: d.group for d in _group(size)}
                local = await _wall_us(strategy, size, LocalRouterStats(), count)
                shared = await _wall_us(strategy, size, RedisRouterStats(link, groups), count)
                cells.append(f"{local:.1f} / {shared:.1f}")
            lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    finally:
        keys = [key async for key in link.client.scan_iter(match="{" + prefix + "*")]
        if keys:
            await link.client.delete(*keys)
        await link.close()
    return "\n".join(lines)


def main() -> None:
    """Measure every strategy and print the markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="timing repeats (best is kept)")
    parser.add_argument("--redis", help="also time distributed routing against this Redis URL")
    parser.add_argument("--count", type=int, default=2000, help="decisions per Redis timing")
    args = parser.parse_args()
    print(report(args.repeat))
    if args.redis:
        print()
        print(asyncio.run(redis_report(args.redis, args.count)))


if __name__ == "__main__":
    main()
