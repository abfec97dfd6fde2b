"""The admin control API: read every deployment's routing state, cool or clear one by hand.

`GET /control/deployments` lists each deployment with its breaker state, in-flight count,
latency and TTFT averages and rpm/tpm use in the current window. `POST
/control/deployments/cooldown` takes `{"deployment": id, "seconds": N}` (cool it for N seconds,
then half-open as usual) or `{"deployment": id, "clear": true}` (healthy at once). Both require
`auth.master_key` as a Bearer token when one is set. They act on the runtime serving now; a
reload starts from fresh state. With several workers each call reaches one worker's state.
"""

from __future__ import annotations

import hmac
import math
import time
from typing import Any

import msgspec
from aiohttp import web

from llmux.appkeys import RUNTIME
from llmux.auth import credential_from
from llmux.cooldown import State
from llmux.errors import AuthenticationFailed, InvalidRequest, LlmuxError, NotFound
from llmux.middleware.errors import render_error
from llmux.routing import Deployment
from llmux.runtime import Runtime

__all__ = ["MAX_MANUAL_COOLDOWN", "add_control_routes"]

MAX_MANUAL_COOLDOWN = 86400.0
"""Seconds: the longest manual cooldown accepted (one day)."""

_STATES = {State.HEALTHY: "healthy", State.COOLING: "cooling", State.HALF_OPEN: "half_open"}


def add_control_routes(app: web.Application) -> None:
    """The control routes; `app[RUNTIME]` must hold the gateway's runtime."""
    app.router.add_get("/control/deployments", list_deployments)
    app.router.add_post("/control/deployments/cooldown", set_cooldown)


async def list_deployments(request: web.Request) -> web.Response:
    """Every deployment of the current runtime, in group order."""
    try:
        runtime = _authorized(request)
    except LlmuxError as error:
        return render_error(error)
    data = [
        _view(runtime, deployment)
        for deployments in runtime.table.groups.values()
        for deployment in deployments
    ]
    return _json({"object": "list", "data": data})


async def set_cooldown(request: web.Request) -> web.Response:
    """Cool one deployment for `seconds`, or clear its cooldown; answers its new view."""
    try:
        runtime = _authorized(request)
        deployment, seconds = _cooldown_request(await request.read())
        found = runtime.table.by_id.get(deployment)
        if found is None:
            raise NotFound(
                f"No deployment `{deployment}`; GET /control/deployments lists them.",
                param="deployment",
                code="deployment_not_found",
            )
    except LlmuxError as error:
        return render_error(error)
    breaker = runtime.dispatcher.breaker
    if seconds is None:
        breaker.clear(deployment)
    else:
        breaker.force_cooldown(deployment, seconds)
    return _json(_view(runtime, found))


def _authorized(request: web.Request) -> Runtime:
    runtime = request.app[RUNTIME].current
    key = runtime.loaded.config.auth.master_key
    if key:
        credential = credential_from(request.headers)
        if credential is None or not hmac.compare_digest(credential.encode(), key.encode()):
            raise AuthenticationFailed("The control API requires the master key as a Bearer token.")
    return runtime


def _cooldown_request(raw: bytes) -> tuple[str, float | None]:
    """The deployment and the seconds to cool it (None: clear), or 400."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise InvalidRequest("The body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    unknown = sorted(set(body) - {"deployment", "seconds", "clear"})
    if unknown:
        raise InvalidRequest(f"Unknown field `{unknown[0]}`.", param=unknown[0])
    deployment = body.get("deployment")
    if not isinstance(deployment, str) or not deployment:
        raise InvalidRequest("`deployment` must be a deployment id string.", param="deployment")
    seconds, clear = body.get("seconds"), body.get("clear")
    if clear is True and seconds is None:
        return deployment, None
    if clear not in (None, False):
        raise InvalidRequest("`clear` must be true, without `seconds`.", param="clear")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or not 0 < seconds <= MAX_MANUAL_COOLDOWN
    ):
        raise InvalidRequest(
            f"Send `seconds` (a number above 0, at most {MAX_MANUAL_COOLDOWN:g}) or `clear: true`.",
            param="seconds",
        )
    return deployment, float(seconds)


def _view(runtime: Runtime, deployment: Deployment) -> dict[str, Any]:
    dispatcher = runtime.dispatcher
    stats, breaker, key = dispatcher.stats, dispatcher.breaker, deployment.id
    left = breaker.cooling_left(key)
    usage = stats.usage(key, dispatcher.clock())
    entry = deployment.entry
    return {
        "id": key,
        "group": deployment.group,
        "provider": deployment.provider,
        "upstream_model": deployment.upstream_model,
        "state": _STATES[breaker.state(key)],
        "cooling_until": None if left is None else round(time.time() + left, 3),
        "in_flight": stats.in_flight(key),
        "latency_ewma_ms": _ms(stats.latency(key, False)),
        "ttft_ewma_ms": _ms(stats.ttft(key)),
        "rpm_used": round(usage.requests, 3),
        "tpm_used": round(usage.tokens, 3),
        "rpm_limit": entry.rpm,
        "tpm_limit": entry.tpm,
        "max_concurrent": entry.max_concurrent,
        "context_window": deployment.context_window,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _json(payload: object) -> web.Response:
    return web.Response(body=msgspec.json.encode(payload), content_type="application/json")
