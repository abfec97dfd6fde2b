"""Every Prometheus metric llmux exports; metric names and labels exist only here.

Labels are bounded: routes are a fixed set, model groups and deployments come from config
(anything else is `other`), status is a class (`2xx`). With `--workers N` the process supervisor
sets PROMETHEUS_MULTIPROC_DIR, samples go to shared files, and any worker's `/metrics` exposes
the sum over all workers. The only module that imports prometheus_client.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE", "Metrics", "mark_worker_dead", "status_class"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
OTHER = "other"


def status_class(status: int) -> str:
    """`2xx`, `4xx`, ...: the only form a status takes in a label."""
    return _STATUS_CLASSES.get(status // 100, OTHER)


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges from the shared files (multi-worker mode only)."""
    if _multiprocess_dir():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class Metrics:
    """Owns a private registry and every collector; one instance per process."""

    def __init__(self) -> None:
        # `_created` series double the exposition and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self._groups: frozenset[str] = frozenset()
        self._deployments: frozenset[str] = frozenset()
        # labels() takes a lock and builds a key on every call; the label sets are bounded, so
        # the children are looked up once and kept.
        self._children: dict[tuple[Any, ...], Any] = {}
        r = self.registry
        self.requests = Counter(
            "llmux_requests",
            "Client requests by route, model group and status class.",
            ["route", "model_group", "status_class"],
            registry=r,
        )
        self.request_duration = Histogram(
            "llmux_request_duration_seconds",
            "Client request latency, first byte in to last byte out.",
            ["route", "model_group"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_duration = Histogram(
            "llmux_upstream_duration_seconds",
            "Upstream attempt latency (to the full body, or to stream headers) by outcome.",
            ["deployment", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "llmux_time_to_first_token_seconds",
            "Streaming: request start to the first frame sent to the client.",
            ["model_group"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "llmux_tokens",
            "Tokens reported by upstreams, by model group and type.",
            ["model_group", "type"],
            registry=r,
        )
        self.retries = Counter(
            "llmux_upstream_retries",
            "Upstream attempts after the first, by model group.",
            ["model_group"],
            registry=r,
        )
        self.fallbacks = Counter(
            "llmux_fallbacks",
            "Requests that moved to a fallback model group, by the group left and the one tried.",
            ["from_group", "to_group"],
            registry=r,
        )
        self.cooldowns = Counter(
            "llmux_cooldowns",
            "Deployments put in cooldown, by reason (rate_limited, auth, not_found,"
            " failure_rate, trial_failed).",
            ["deployment", "reason"],
            registry=r,
        )
        self.deployment_state = Gauge(
            "llmux_deployment_state",
            "Circuit breaker state of each deployment: 0 healthy, 1 cooling down, 2 half-open.",
            ["deployment"],
            registry=r,
            multiprocess_mode="max",
        )
        self.redis_errors = Counter(
            "llmux_redis_errors",
            "Failed or timed-out Redis operations, by operation (routing, heartbeat); routing"
            " goes on with local state meanwhile.",
            ["operation"],
            registry=r,
        )
        self.in_flight = Gauge(
            "llmux_in_flight_requests",
            "Client requests being served now.",
            registry=r,
            multiprocess_mode="livesum",
        )

    def know(self, model_groups: Iterable[str], deployments: Iterable[str]) -> None:
        """Set the label values allowed for model groups and deployments (from config)."""
        self._groups = frozenset(model_groups)
        self._deployments = frozenset(deployments)
        self._children.clear()

    def group_label(self, model: str | None) -> str:
        """The model group as a label value, or `other` for names not in config."""
        return model if model in self._groups else OTHER

    def deployment_label(self, deployment: str) -> str:
        """The deployment id as a label value, or `other` for unknown ids."""
        return deployment if deployment in self._deployments else OTHER

    def observe_request(self, route: str, model: str | None, status: int, seconds: float) -> None:
        """Count one finished client request."""
        key = ("request", route, self.group_label(model), status_class(status))
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(key[1], key[2], key[3]),
                self.request_duration.labels(key[1], key[2]),
            )
        children[0].inc()
        children[1].observe(seconds)

    def observe_attempt(self, deployment: str, outcome: str, seconds: float) -> None:
        """One upstream attempt of `deployment` ended with `outcome` after `seconds`."""
        key = ("attempt", self.deployment_label(deployment), outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.upstream_duration.labels(key[1], outcome)
        child.observe(seconds)

    def observe_first_token(self, model: str, seconds: float) -> None:
        """A stream of `model` sent its first frame `seconds` after the request arrived."""
        key = ("ttft", self.group_label(model))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.time_to_first_token.labels(key[1])
        child.observe(seconds)

    def observe_retry(self, model: str) -> None:
        """Count one upstream attempt after the first."""
        self.retries.labels(self.group_label(model)).inc()

    def observe_fallback(self, from_group: str, to_group: str) -> None:
        """Count one move from a failed model group to a fallback group."""
        self.fallbacks.labels(self.group_label(from_group), self.group_label(to_group)).inc()

    def observe_cooldown(self, deployment: str, reason: str) -> None:
        """Count one deployment entering cooldown for `reason` (a fixed set of words)."""
        self.cooldowns.labels(self.deployment_label(deployment), reason).inc()

    def observe_redis_error(self, operation: str) -> None:
        """Count one failed Redis operation (`routing` or `heartbeat`)."""
        self.redis_errors.labels(operation).inc()

    def set_deployment_state(self, deployment: str, state: int) -> None:
        """Set a deployment's breaker state (0 healthy, 1 cooling down, 2 half-open)."""
        self.deployment_state.labels(self.deployment_label(deployment)).set(state)

    def observe_tokens(self, model: str, counts: Iterable[tuple[str, int]]) -> None:
        """Add token counts (`input`, `output`, `cached`, `reasoning`) for one call."""
        group = self.group_label(model)
        for kind, value in counts:
            if value:
                key = ("tokens", group, kind)
                child = self._children.get(key)
                if child is None:
                    child = self._children[key] = self.tokens.labels(group, kind)
                child.inc(value)

    def exposition(self) -> bytes:
        """The text exposition: this process, or the sum of every worker in multi-worker mode."""
        directory = _multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
