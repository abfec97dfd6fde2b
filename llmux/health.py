"""Health routes shared by the gateway and admin apps: cheap liveness, honest readiness."""

from __future__ import annotations

from aiohttp import web

from llmux.appkeys import LIFECYCLE
from llmux.wire.openai import encode

__all__ = ["add_health_routes"]

_LIVE = encode({"status": "ok"})


async def live(request: web.Request) -> web.Response:
    """The process answers; nothing else is checked."""
    return web.Response(body=_LIVE, content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    """200 while serving; 503 while starting or draining, saying which."""
    lifecycle = request.app[LIFECYCLE]
    status = 200 if lifecycle.ready else 503
    body = encode({"status": lifecycle.state})
    return web.Response(status=status, body=body, content_type="application/json")


def add_health_routes(app: web.Application) -> None:
    """`GET /health/live` and `GET /health/ready`."""
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
