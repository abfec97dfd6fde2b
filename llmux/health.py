"""Health routes shared by the gateway and admin apps: cheap liveness, honest readiness."""

from __future__ import annotations

from aiohttp import web

from llmux.appkeys import LIFECYCLE, READINESS
from llmux.wire.openai import encode

__all__ = ["add_health_routes"]

_LIVE = encode({"status": "ok"})


async def live(request: web.Request) -> web.Response:
    """The process answers; nothing else is checked."""
    return web.Response(body=_LIVE, content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    """200 while serving with every dependency reachable; else 503 saying what is wrong.

    The body is `{"status": "ready"|"starting"|"draining"|"not_ready", "checks": {...}}`,
    `checks` naming each dependency (`store`, `redis`) as `ok` or `unreachable: <reason>`.
    """
    lifecycle = request.app[LIFECYCLE]
    readiness = request.app.get(READINESS)
    checks = await readiness.status() if readiness is not None else {}
    healthy = all(state == "ok" for state in checks.values())
    state: str = lifecycle.state
    if lifecycle.ready and not healthy:
        state = "not_ready"
    status = 200 if lifecycle.ready and healthy else 503
    body = encode({"status": state, "checks": checks})
    return web.Response(status=status, body=body, content_type="application/json")


def add_health_routes(app: web.Application) -> None:
    """`GET /health/live` and `GET /health/ready`."""
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
