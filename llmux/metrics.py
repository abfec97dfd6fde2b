"""Every Prometheus metric llmux exports; metric names and labels exist only here.

Labels are bounded: routes are a fixed set, model groups and deployments come from config
(anything else is `other`), status is a class (`2xx`). With `--workers N` the process supervisor
sets PROMETHEUS_MULTIPROC_DIR, samples go to shared files, and any worker's `/metrics` exposes
the sum over all workers. Process metrics (`process_*`: CPU, memory, file descriptors) describe
one process each, so in that mode they carry a `pid` label, one series per live worker, and a
dashboard sums them. The only module that imports prometheus_client.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics", "mark_worker_dead", "status_class"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
_PER_TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1)
_LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# Live gauges get one file per worker (`gauge_livesum_<pid>.db`) that `mark_process_dead`
# removes, so these file names list the workers alive now.
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")
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


def _live_worker_pids(directory: str) -> list[int]:
    """The pids that own live-gauge files in the shared directory (every running worker)."""
    found = {int(m.group(1)) for m in map(_LIVE_GAUGE_FILE.match, os.listdir(directory)) if m}
    return sorted(found)


class _WorkerProcesses(Collector):
    """`process_*` of every live worker, each series labelled with its worker's `pid`.

    prometheus_client's multi-process mode drops process metrics, since summing CPU seconds or
    start times over workers is meaningless; reading each worker's /proc entry at scrape time
    keeps them, per worker, whichever worker answers the scrape.
    """

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for pid in _live_worker_pids(self._directory):
            reader = ProcessCollector(pid=partial(str, pid), registry=None)
            for family in reader.collect():
                into = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    into.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from merged.values()


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
        self.time_per_output_token = Histogram(
            "llmux_time_per_output_token_seconds",
            "Streaming: seconds per output token after the first frame (stream duration less time"
            " to first token, over output tokens less one); streams of one token are skipped.",
            ["model_group"],
            buckets=_PER_TOKEN_BUCKETS,
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
        self.store_errors = Counter(
            "llmux_store_errors",
            "Failed store operations (Postgres/SQLite), by operation; requests go on from caches"
            " and buffers meanwhile.",
            ["operation"],
            registry=r,
        )
        self.auth_failures = Counter(
            "llmux_auth_failures",
            "Refused credentials on /v1, by reason (missing, invalid, expired, blocked).",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "llmux_rate_limit_rejections",
            "Requests refused by a governance rate limit, by the level that refused.",
            ["level"],
            registry=r,
        )
        self.budget_rejections = Counter(
            "llmux_budget_rejections",
            "Requests refused because a hard budget would be overshot, by level.",
            ["level"],
            registry=r,
        )
        self.soft_budget_alerts = Counter(
            "llmux_soft_budget_alerts",
            "Soft budgets crossed (once per budget period), by level.",
            ["level"],
            registry=r,
        )
        self.cost = Counter(
            "llmux_cost_usd",
            "Spend in USD by model group and team (`none` for keys without a team).",
            ["model_group", "team"],
            registry=r,
        )
        self.unpriced = Counter(
            "llmux_unpriced_requests",
            "Requests whose model has no price (charged 0), by model group.",
            ["model_group"],
            registry=r,
        )
        self.spend_queue = Gauge(
            "llmux_spend_queue_rows",
            "Spend rows waiting for the background writer (in memory, not yet spilled).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.spend_flush_duration = Histogram(
            "llmux_spend_flush_duration_seconds",
            "Time to write one batch of spend rows to the store.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.spend_flush_failures = Counter(
            "llmux_spend_flush_failures",
            "Spend batches the store refused or could not take (they are retried, never lost).",
            registry=r,
        )
        self.in_flight = Gauge(
            "llmux_in_flight_requests",
            "Client requests being served now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.loop_lag = Histogram(
            "llmux_event_loop_lag_seconds",
            "How late the event loop woke a 0.5 s timer: time callbacks waited behind others.",
            buckets=_LOOP_LAG_BUCKETS,
            registry=r,
        )
        self.loop_lag_last = Gauge(
            "llmux_event_loop_lag_last_seconds",
            "The latest event-loop lag sample; with several workers, the worst live worker's.",
            registry=r,
            multiprocess_mode="livemax",
        )
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

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

    def observe_time_per_output_token(
        self, model: str, seconds_after_first: float, output_tokens: int
    ) -> None:
        """A stream of `model` produced `output_tokens` tokens, the last `seconds_after_first`
        after its first frame; streams of fewer than two tokens have no per-token pace."""
        if output_tokens < 2:
            return
        key = ("tpot", self.group_label(model))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.time_per_output_token.labels(key[1])
        child.observe(max(seconds_after_first, 0.0) / (output_tokens - 1))

    def observe_loop_lag(self, seconds: float) -> None:
        """One event-loop lag sample from the loop monitor."""
        self.loop_lag.observe(seconds)
        self.loop_lag_last.set(seconds)

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

    def observe_store_error(self, operation: str) -> None:
        """Count one failed store operation (a fixed word per call site)."""
        self.store_errors.labels(operation).inc()

    def observe_auth_failure(self, reason: str) -> None:
        """Count one refused credential (`missing`, `invalid`, `expired`, `blocked`)."""
        self.auth_failures.labels(reason).inc()

    def observe_rate_limited(self, level: str) -> None:
        """Count one request refused by the rate limit of `level`."""
        self.rate_limited.labels(level).inc()

    def observe_budget_rejection(self, level: str) -> None:
        """Count one request refused by the hard budget of `level`."""
        self.budget_rejections.labels(level).inc()

    def observe_soft_budget(self, level: str) -> None:
        """Count one soft budget crossed for the first time in its period."""
        self.soft_budget_alerts.labels(level).inc()

    def observe_cost(self, model: str | None, team: str | None, usd: float) -> None:
        """Add the cost of one call."""
        if usd > 0:
            key = ("cost", self.group_label(model), team or "none")
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.cost.labels(key[1], key[2])
            child.inc(usd)

    def observe_unpriced(self, model: str | None) -> None:
        """Count one call whose model has no price."""
        key = ("unpriced", self.group_label(model))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.unpriced.labels(key[1])
        child.inc()

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
        registry.register(_WorkerProcesses(directory))
        PlatformCollector(registry=registry)
        return generate_latest(registry)
