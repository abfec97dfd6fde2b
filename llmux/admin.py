"""The admin app on `server.admin_port`: Prometheus metrics and health probes.

The management API and console arrive with later issues. Never imports the gateway app.
"""

from __future__ import annotations

from aiohttp import web

from llmux.appkeys import LIFECYCLE, METRICS
from llmux.config import Config
from llmux.health import add_health_routes
from llmux.lifecycle import Lifecycle
from llmux.metrics import CONTENT_TYPE, Metrics

__all__ = ["create_admin_app"]


def create_admin_app(config: Config, metrics: Metrics, lifecycle: Lifecycle) -> web.Application:
    """The admin web application."""
    app = web.Application()
    app[METRICS] = metrics
    app[LIFECYCLE] = lifecycle
    add_health_routes(app)
    if config.metrics.enabled:
        app.router.add_get(config.metrics.path, metrics_handler, name="metrics")
    return app


async def metrics_handler(request: web.Request) -> web.Response:
    """Prometheus text exposition (summed over workers when there are several)."""
    body = request.app[METRICS].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
