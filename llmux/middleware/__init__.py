"""The gateway's middleware chain, in the one order it runs (outermost first).

`context` is outermost so the access log and request metrics see the final status of every
request, including errors rendered by `errors` and 404/405s from the router. `errors` turns
every exception into the OpenAI error shape. `auth` resolves the caller; rate limits and
budgets slot in after it.
"""

from __future__ import annotations

from aiohttp.typedefs import Middleware

from llmux.log import AccessLog
from llmux.metrics import Metrics
from llmux.middleware.auth import auth_middleware
from llmux.middleware.context import context_middleware
from llmux.middleware.errors import errors_middleware

__all__ = ["build_chain"]


def build_chain(metrics: Metrics, access_log: AccessLog) -> tuple[Middleware, ...]:
    """The gateway chain: context -> errors -> auth."""
    return (
        context_middleware(metrics, access_log),
        errors_middleware(),
        auth_middleware(),
    )
