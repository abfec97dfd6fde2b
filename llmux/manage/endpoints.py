"""Imports every module that declares management endpoints, so importing this registers them.

One line per module; `llmux.manage.add_management_api` imports this before mounting routes.
"""

from __future__ import annotations

import llmux.manage.audit
import llmux.manage.budgets
import llmux.manage.config
import llmux.manage.control
import llmux.manage.customers
import llmux.manage.keys
import llmux.manage.models
import llmux.manage.orgs
import llmux.manage.spend
import llmux.manage.teams
import llmux.manage.users  # noqa: F401
