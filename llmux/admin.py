"""The admin app on `server.admin_port`: Prometheus metrics, health probes, management API.

The management API (`llmux.manage`) manages keys, users, teams, organizations, budgets and
spend in the store, and its control endpoints read and steer the gateway's routing through the
shared `RuntimeHolder` and reload the config through the `Reloader`. `/openapi.json` and `/docs`
describe it. CORS follows `server.admin_cors_origins`. The console arrives with a later issue.
Never imports the gateway app.
"""

from __future__ import annotations

from aiohttp import web

from llmux.appkeys import LIFECYCLE, METRICS, RUNTIME
from llmux.config import Config
from llmux.governance.service import Governance
from llmux.health import add_health_routes
from llmux.lifecycle import Lifecycle
from llmux.manage import add_management_api
from llmux.manage.openapi import add_openapi_routes
from llmux.metrics import CONTENT_TYPE, Metrics
from llmux.middleware.cors import add_cors
from llmux.middleware.errors import errors_middleware
from llmux.reload import RELOADER, Reloader
from llmux.runtime import RuntimeHolder
from llmux.store.base import Store

__all__ = ["create_admin_app"]


def create_admin_app(
    config: Config,
    metrics: Metrics,
    lifecycle: Lifecycle,
    holder: RuntimeHolder | None = None,
    store: Store | None = None,
    governance: Governance | None = None,
    reloader: Reloader | None = None,
) -> web.Application:
    """The admin web application; the control endpoints need the gateway's `holder` (and its
    `reloader` for config reloads), the management API its `store` and `governance`."""
    app = web.Application(
        middlewares=(errors_middleware(),), client_max_size=config.server.admin_max_body_size
    )
    app[METRICS] = metrics
    app[LIFECYCLE] = lifecycle
    add_cors(app, config.server.admin_cors_origins)
    add_health_routes(app)
    if holder is not None:
        app[RUNTIME] = holder
    if reloader is not None:
        app[RELOADER] = reloader
    if store is not None and governance is not None:
        add_management_api(app, store, governance, config.auth.master_key)
        add_openapi_routes(app)
    if config.metrics.enabled:
        app.router.add_get(config.metrics.path, metrics_handler, name="metrics")
    return app


async def metrics_handler(request: web.Request) -> web.Response:
    """Prometheus text exposition (summed over workers when there are several)."""
    body = request.app[METRICS].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
