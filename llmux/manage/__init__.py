"""The management API on the admin port (LiteLLM-compatible shapes): keys, users, teams,
organizations, budgets, end users, spend, audit, control, and its OpenAPI document.

Each module declares its endpoints with `llmux.manage.routes.endpoint`; importing the package
registers all of them, `add_management_api(app, ...)` mounts them.
"""

from __future__ import annotations

from aiohttp import web

from llmux.governance.service import Governance
from llmux.manage.routes import (
    MANAGE_CONFIG,
    MANAGE_GOVERNANCE,
    MANAGE_STORE,
    ManageConfig,
    add_routes,
)
from llmux.store.base import Store

__all__ = ["add_management_api"]


def add_management_api(
    app: web.Application, store: Store, governance: Governance, master_key: str | None
) -> None:
    """Mount every management endpoint on the admin `app`."""
    app[MANAGE_STORE] = store
    app[MANAGE_GOVERNANCE] = governance
    app[MANAGE_CONFIG] = ManageConfig(master_key)
    import llmux.manage.endpoints  # noqa: F401  (declares every endpoint)

    add_routes(app)
