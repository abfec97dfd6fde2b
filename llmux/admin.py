"""The admin app on `server.admin_port`: Prometheus metrics, health probes, control API.

The control API (`llmux.control`) reads and steers the gateway's routing through the shared
`RuntimeHolder`. The console arrives with a later issue. Never imports the gateway app.
"""

from __future__ import annotations

from aiohttp import web

from llmux.appkeys import LIFECYCLE, METRICS, RUNTIME
from llmux.config import Config
from llmux.control import add_control_routes
from llmux.health import add_health_routes
from llmux.lifecycle import Lifecycle
from llmux.metrics import CONTENT_TYPE, Metrics
from llmux.runtime import RuntimeHolder

__all__ = ["create_admin_app"]


def create_admin_app(
    config: Config,
    metrics: Metrics,
    lifecycle: Lifecycle,
    holder: RuntimeHolder | None = None,
) -> web.Application:
    """The admin web application; the control API needs the gateway's `holder`."""
    app = web.Application()
    app[METRICS] = metrics
    app[LIFECYCLE] = lifecycle
    add_health_routes(app)
    if holder is not None:
        app[RUNTIME] = holder
        add_control_routes(app)
    if config.metrics.enabled:
        app.router.add_get(config.metrics.path, metrics_handler, name="metrics")
    return app


async def metrics_handler(request: web.Request) -> web.Response:
    """Prometheus text exposition (summed over workers when there are several)."""
    body = request.app[METRICS].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
