"""Per-deployment bindings and per-call records: what dispatch works with and reports.

`CallRecord` is what the access log, the response headers and the metrics read; `RouteTrace`
is the last routing decision, which the access line reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from llmux.providers.base import Provider, Target
from llmux.routing import Deployment
from llmux.types import Usage
from llmux.upstream.base import Timeouts, Transport

__all__ = ["Binding", "CallRecord", "RouteTrace", "start_trace"]


@dataclass(frozen=True, slots=True)
class Binding:
    """How to call one deployment: its codec, transport, target and timeouts."""

    deployment: Deployment
    provider: Provider
    transport: Transport
    target: Target
    timeouts: Timeouts


@dataclass(slots=True)
class CallRecord:
    """What happened to one client call, for the access log and metrics."""

    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    client_closed: bool = False
    deployment: str | None = None
    attempts: int = 0
    upstream_seconds: float | None = None
    upstream_wait: float = 0.0
    """Seconds spent waiting on upstream attempts so far (for streams: up to the first frame);
    what the gateway's overhead excludes."""
    first_frame_seconds: float | None = None
    usage: Usage | None = None
    fallback_allowed: bool = True
    """False when the client sent `x-llmux-no-fallback: true`."""
    fallback_from: str | None = None
    """The model group the client asked for, when a fallback group answered."""
    trace: RouteTrace | None = None
    """The last routing decision, kept only while info logging is on (for the access line)."""


@dataclass(slots=True)
class RouteTrace:
    """One routing decision: the group, who could take the call, who was left out and why."""

    group: str = ""
    strategy: str = ""
    candidates: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    """Deployment id -> `endpoint`, `context_window`, `capacity` or `cooldown`."""


def start_trace(
    trace: RouteTrace,
    group: str,
    strategy: str,
    deployments: tuple[Deployment, ...],
    able: list[Deployment],
) -> None:
    trace.group, trace.strategy, trace.candidates = group, strategy, []
    trace.excluded = {}
    if len(able) < len(deployments):
        serving = {d.id for d in able}
        trace.excluded.update({d.id: "endpoint" for d in deployments if d.id not in serving})
