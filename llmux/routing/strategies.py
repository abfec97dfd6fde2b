"""The six strategies and the capacity filter: pure functions over deployments and stats.

`order()` returns the group's candidates in the order to try them: the first is the pick, and
each later one is what the same strategy would pick from the deployments not yet listed, so a
retry moves on by the same rule. `admit()` runs first and drops deployments without capacity.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmux.config.schema import WeightBy
from llmux.errors import DeploymentCapacityExceeded, InvalidRequest
from llmux.routing.stats import RouterStats
from llmux.routing.table import Deployment, GroupPolicy

__all__ = ["RequestEstimate", "admit", "fit_context", "order"]

_TIE = 1e-9
"""Relative difference under which two scores count as equal (ties are broken randomly)."""


@dataclass(frozen=True, slots=True)
class RequestEstimate:
    """What routing knows of a request before sending it."""

    input_tokens: int
    """Estimated prompt tokens (body bytes / 4)."""
    output_tokens: int
    """The request's output cap, or a default when it sets none."""
    stream: bool


def fit_context(
    deployments: Sequence[Deployment], model: str, needed: Callable[[], int]
) -> tuple[list[Deployment], list[Deployment]]:
    """The deployments whose context window holds the request, and those dropped.

    `needed` (input plus output tokens) is only computed when some deployment has a known
    window. When none is left: 400 `context_length_exceeded`, which routes to the group's
    `context_window_fallbacks`.
    """
    if all(d.context_window is None for d in deployments):
        return list(deployments), []
    tokens = needed()
    kept: list[Deployment] = []
    dropped: list[Deployment] = []
    for deployment in deployments:
        window = deployment.context_window
        (kept if window is None or window >= tokens else dropped).append(deployment)
    if not kept:
        largest = max(d.context_window or 0 for d in dropped)
        raise InvalidRequest(
            f"The request to `{model}` needs about {tokens} tokens (input estimate plus"
            f" max output tokens), more than the largest context window of its deployments"
            f" ({largest}).",
            param="messages",
            code="context_length_exceeded",
        )
    return kept, dropped


def admit(
    deployments: Sequence[Deployment],
    stats: RouterStats,
    estimate: RequestEstimate,
    now: float,
    *,
    strict: bool = False,
) -> list[Deployment]:
    """The deployments with capacity left; `DeploymentCapacityExceeded` (429) when none has.

    A deployment is out when its in-flight count reached `max_concurrent`, or its window reached
    its rpm or tpm. With `strict` (lowest-tpm-rpm) it is out when this request would exceed them.
    """
    kept: list[Deployment] = []
    retry_after = math.inf
    for deployment in deployments:
        wait = _wait(deployment, stats, estimate, now, strict)
        if wait is None:
            kept.append(deployment)
        else:
            retry_after = min(retry_after, wait)
    if kept:
        return kept
    seconds = max(math.ceil(retry_after), 1)
    raise DeploymentCapacityExceeded(
        f"Every deployment of `{deployments[0].group}` is at its rpm, tpm or max_concurrent"
        f" limit; retry in {seconds}s.",
        headers={"retry-after": str(seconds)},
    )


def _wait(
    deployment: Deployment,
    stats: RouterStats,
    estimate: RequestEstimate,
    now: float,
    strict: bool,
) -> float | None:
    """None when `deployment` has capacity, else a guess of the seconds until it has."""
    entry = deployment.entry
    if entry.max_concurrent is not None and (
        stats.in_flight(deployment.id) >= entry.max_concurrent
    ):
        return 1.0
    if entry.rpm is None and entry.tpm is None:
        return None
    usage = stats.usage(deployment.id, now)
    requests, tokens = usage.requests, usage.tokens
    if strict:
        over_rpm = entry.rpm is not None and requests + 1 > entry.rpm
        over_tpm = entry.tpm is not None and tokens + estimate.input_tokens > entry.tpm
    else:
        over_rpm = entry.rpm is not None and requests >= entry.rpm
        over_tpm = entry.tpm is not None and tokens >= entry.tpm
    if over_rpm or over_tpm:
        return max(usage.eases_in, 1.0)
    return None


def order(
    policy: GroupPolicy,
    deployments: Sequence[Deployment],
    stats: RouterStats,
    estimate: RequestEstimate,
    rng: random.Random,
    now: float,
) -> list[Deployment]:
    """`deployments` in the order `policy.strategy` would try them."""
    if len(deployments) <= 1:
        return list(deployments)
    strategy = policy.strategy
    if strategy == "round-robin":
        return _round_robin(deployments, stats)
    if strategy == "simple-shuffle":
        return _weighted_order(deployments, _weights(deployments, policy.weight_by), rng)
    if strategy == "lowest-latency":
        return _fastest_first(deployments, stats, estimate, policy, rng)
    score = _SCORES[strategy](deployments, stats, estimate, now)
    # Lowest score first; equal scores in random order (a random draw among the tied each time).
    keyed = sorted((score[d.id], rng.random(), i) for i, d in enumerate(deployments))
    return [deployments[i] for _, _, i in keyed]


def _round_robin(deployments: Sequence[Deployment], stats: RouterStats) -> list[Deployment]:
    """Strict rotation over the whole group; a filtered-out turn goes to the next in line."""
    peers = deployments[0].peers
    turn = stats.next_turn(deployments[0].group) % peers
    return sorted(deployments, key=lambda d: (d.position - turn) % peers)


def _weights(deployments: Sequence[Deployment], weight_by: WeightBy) -> list[float]:
    """Each deployment's weight; one without the key gets the mean of those with it."""
    mode = weight_by
    if mode == "auto":
        mode = next(
            (key for key in ("weight", "rpm", "tpm") if any(_key(d, key) for d in deployments)),
            "uniform",
        )
    if mode == "uniform":
        return [1.0] * len(deployments)
    values = [_key(d, mode) for d in deployments]
    known = [v for v in values if v is not None]
    default = sum(known) / len(known) if known else 1.0
    return [default if v is None else v for v in values]


def _key(deployment: Deployment, key: str) -> float | None:
    entry = deployment.entry
    value = entry.weight if key == "weight" else entry.rpm if key == "rpm" else entry.tpm
    return None if value is None else float(value)


def _weighted_order(
    deployments: Sequence[Deployment], weights: Sequence[float], rng: random.Random
) -> list[Deployment]:
    # Efraimidis-Spirakis: sort by u^(1/w), the same as repeated weighted draws without
    # replacement; a zero weight goes last.
    keyed = [
        (rng.random() ** (1.0 / w) if w > 0 else -rng.random(), i) for i, w in enumerate(weights)
    ]
    keyed.sort(reverse=True)
    return [deployments[i] for _, i in keyed]


def _fastest_first(
    deployments: Sequence[Deployment],
    stats: RouterStats,
    estimate: RequestEstimate,
    policy: GroupPolicy,
    rng: random.Random,
) -> list[Deployment]:
    """Unsampled first (explored, in random order), then a random pick near the fastest left.

    "Near" is within `latency_buffer` (a fraction) of the fastest remaining average.
    """
    unsampled: list[Deployment] = []
    sampled: list[tuple[float, int]] = []
    for index, deployment in enumerate(deployments):
        latency = stats.latency(deployment.id, estimate.stream)
        if latency is None:
            unsampled.append(deployment)
        else:
            sampled.append((latency, index))
    rng.shuffle(unsampled)
    sampled.sort()
    widen = (1.0 + policy.latency_buffer) * (1.0 + _TIE)
    while sampled:
        ceiling = sampled[0][0] * widen
        within = 1
        while within < len(sampled) and sampled[within][0] <= ceiling:
            within += 1
        unsampled.append(deployments[sampled.pop(rng.randrange(within))[1]])
    return unsampled


def _busy(
    deployments: Sequence[Deployment], stats: RouterStats, _: RequestEstimate, __: float
) -> dict[str, float]:
    return {d.id: float(stats.in_flight(d.id)) for d in deployments}


def _usage_share(
    deployments: Sequence[Deployment], stats: RouterStats, _: RequestEstimate, now: float
) -> dict[str, float]:
    """The larger of rpm and tpm use as a share of the limit; a missing limit is the mean."""
    rpm = _defaults([d.entry.rpm for d in deployments])
    tpm = _defaults([d.entry.tpm for d in deployments])
    out: dict[str, float] = {}
    for deployment, rpm_limit, tpm_limit in zip(deployments, rpm, tpm, strict=True):
        usage = stats.usage(deployment.id, now)
        if rpm_limit is None and tpm_limit is None:
            out[deployment.id] = usage.tokens + usage.requests
            continue
        shares = [usage.requests / rpm_limit if rpm_limit else 0.0]
        shares.append(usage.tokens / tpm_limit if tpm_limit else 0.0)
        out[deployment.id] = max(shares)
    return out


def _defaults(values: Sequence[int | None]) -> list[float | None]:
    known = [float(v) for v in values if v is not None]
    if not known:
        return [None] * len(values)
    mean = sum(known) / len(known)
    return [mean if v is None else float(v) for v in values]


def _cost(
    deployments: Sequence[Deployment], _: RouterStats, estimate: RequestEstimate, __: float
) -> dict[str, float]:
    """This request's expected cost; a missing price is the mean of the group's known ones."""
    inputs = _prices([d.entry.input_cost_per_million for d in deployments])
    outputs = _prices([d.entry.output_cost_per_million for d in deployments])
    return {
        d.id: (estimate.input_tokens * i + estimate.output_tokens * o) / 1e6
        for d, i, o in zip(deployments, inputs, outputs, strict=True)
    }


def _prices(values: Sequence[float | None]) -> list[float]:
    known = [v for v in values if v is not None]
    mean = sum(known) / len(known) if known else 0.0
    return [mean if v is None else v for v in values]


_SCORES: dict[
    str,
    Callable[[Sequence[Deployment], RouterStats, RequestEstimate, float], dict[str, float]],
] = {"least-busy": _busy, "lowest-tpm-rpm": _usage_share, "lowest-cost": _cost}
