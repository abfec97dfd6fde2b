"""Control endpoints: every deployment's routing state, and cooling or clearing one by hand.

`GET /control/deployments` lists each deployment with its breaker state, in-flight count,
latency and TTFT averages and rpm/tpm use in the current window (readers of everything:
`proxy_admin`, `proxy_admin_viewer`). `POST /control/deployments/cooldown` takes
`{"deployment": id, "seconds": N}` (cool it for N seconds, then half-open as usual) or
`{"deployment": id, "clear": true}` (healthy at once); `proxy_admin` only. Both act on the
runtime serving now; a reload keeps the state of unchanged deployments. A cooldown set here is
announced to the other processes (`--workers`, replicas sharing Redis), which apply it to their
own breakers (`llmux.peers`); the listing shows the state of the process that answers.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Literal

import msgspec

from llmux.appkeys import RUNTIME
from llmux.cooldown import State
from llmux.errors import InvalidRequest, NotFound
from llmux.manage.access import require
from llmux.manage.routes import Ctx, endpoint
from llmux.routing import Deployment
from llmux.runtime import Runtime

__all__ = [
    "MAX_MANUAL_COOLDOWN",
    "CooldownBody",
    "DeploymentList",
    "DeploymentView",
    "serving_runtime",
]

MAX_MANUAL_COOLDOWN = 86400.0
"""Seconds: the longest manual cooldown accepted (one day)."""

_STATES: dict[State, Literal["healthy", "cooling", "half_open"]] = {
    State.HEALTHY: "healthy",
    State.COOLING: "cooling",
    State.HALF_OPEN: "half_open",
}


class DeploymentView(msgspec.Struct, kw_only=True):
    """One deployment's configuration and live routing state."""

    id: Annotated[str, msgspec.Meta(description="`provider/model`: the deployment id.")]
    group: Annotated[str, msgspec.Meta(description="The model group clients name.")]
    provider: str
    upstream_model: str
    state: Literal["healthy", "cooling", "half_open"]
    cooling_until: Annotated[
        float | None, msgspec.Meta(description="Unix time the cooldown ends; null if not cooling.")
    ]
    in_flight: int
    latency_ewma_ms: float | None
    ttft_ewma_ms: float | None
    rpm_used: float
    tpm_used: float
    rpm_limit: int | None
    tpm_limit: int | None
    max_concurrent: int | None
    context_window: int | None


class DeploymentList(msgspec.Struct, kw_only=True):
    """Every deployment, in model-group order."""

    object: Literal["list"] = "list"
    data: list[DeploymentView]


class CooldownBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Cool `deployment` for `seconds`, or send `clear: true` to make it healthy now."""

    deployment: Annotated[str, msgspec.Meta(description="A deployment id.")]
    seconds: Annotated[
        float | None,
        msgspec.Meta(description=f"Cooldown length, above 0 and at most {MAX_MANUAL_COOLDOWN:g}."),
    ] = None
    clear: Annotated[
        bool | None, msgspec.Meta(description="true: end any cooldown (without seconds).")
    ] = None


def serving_runtime(ctx: Ctx) -> Runtime:
    """The runtime the gateway serves now (404 on an admin app without a gateway)."""
    holder = ctx.request.app.get(RUNTIME)
    if holder is None:
        raise NotFound("This admin app serves no gateway runtime.")
    return holder.current


@endpoint(
    "GET",
    "/control/deployments",
    summary="Every deployment with its breaker state, in-flight count, latency and usage.",
    tag="control",
    response=DeploymentList,
)
async def list_deployments(ctx: Ctx, _: None) -> DeploymentList:
    """Every deployment of the serving runtime, in group order."""
    require(ctx.actor.sees_all, "the proxy_admin or proxy_admin_viewer role")
    runtime = serving_runtime(ctx)
    return DeploymentList(
        data=[
            _view(runtime, deployment)
            for deployments in runtime.table.groups.values()
            for deployment in deployments
        ]
    )


@endpoint(
    "POST",
    "/control/deployments/cooldown",
    summary="Cool a deployment for some seconds, or clear its cooldown.",
    tag="control",
    response=DeploymentView,
    body=CooldownBody,
    writes=True,
)
async def set_cooldown(ctx: Ctx, body: CooldownBody) -> DeploymentView:
    """Cool one deployment for `seconds`, or clear its cooldown; its new view."""
    require(ctx.actor.is_admin, "the proxy_admin role")
    seconds = _cooldown_seconds(body)
    runtime = serving_runtime(ctx)
    found = runtime.table.by_id.get(body.deployment)
    if found is None:
        raise NotFound(
            f"No deployment `{body.deployment}`; GET /control/deployments lists them.",
            param="deployment",
            code="deployment_not_found",
        )
    breaker = runtime.dispatcher.breaker
    if seconds is None:
        breaker.clear(found.id)
    else:
        breaker.force_cooldown(found.id, seconds)
    ctx.announce(ctx.governance.peers.cooldown(found.id, seconds))
    return _view(runtime, found)


def _cooldown_seconds(body: CooldownBody) -> float | None:
    """The seconds to cool for (None: clear), or 400 naming what is wrong."""
    if not body.deployment:
        raise InvalidRequest("`deployment` must be a deployment id.", param="deployment")
    if body.clear is True and body.seconds is None:
        return None
    if body.clear is not None:
        raise InvalidRequest("`clear` must be true, without `seconds`.", param="clear")
    seconds = body.seconds
    if seconds is None or not math.isfinite(seconds) or not 0 < seconds <= MAX_MANUAL_COOLDOWN:
        raise InvalidRequest(
            f"Send `seconds` (a number above 0, at most {MAX_MANUAL_COOLDOWN:g}) or `clear: true`.",
            param="seconds",
        )
    return seconds


def _view(runtime: Runtime, deployment: Deployment) -> DeploymentView:
    dispatcher = runtime.dispatcher
    stats, breaker, key = dispatcher.stats, dispatcher.breaker, deployment.id
    left = breaker.cooling_left(key)
    usage = stats.usage(key, dispatcher.clock())
    entry = deployment.entry
    return DeploymentView(
        id=key,
        group=deployment.group,
        provider=deployment.provider,
        upstream_model=deployment.upstream_model,
        state=_STATES[breaker.state(key)],
        cooling_until=None if left is None else round(time.time() + left, 3),
        in_flight=stats.in_flight(key),
        latency_ewma_ms=_ms(stats.latency(key, False)),
        ttft_ewma_ms=_ms(stats.ttft(key)),
        rpm_used=round(usage.requests, 3),
        tpm_used=round(usage.tokens, 3),
        rpm_limit=entry.rpm,
        tpm_limit=entry.tpm,
        max_concurrent=entry.max_concurrent,
        context_window=deployment.context_window,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)
