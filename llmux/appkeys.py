"""Every typed aiohttp application and request key, one line each; nothing else."""

from __future__ import annotations

from aiohttp import web

from llmux.auth import Authenticator, Principal
from llmux.dispatch import CallRecord
from llmux.lifecycle import Lifecycle
from llmux.metrics import Metrics
from llmux.runtime import RuntimeHolder

__all__ = [
    "AUTHENTICATOR",
    "LIFECYCLE",
    "METRICS",
    "PRINCIPAL",
    "RECORD",
    "REQUEST_ID",
    "RUNTIME",
]

RUNTIME = web.AppKey("runtime", RuntimeHolder)
METRICS = web.AppKey("metrics", Metrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)

REQUEST_ID = web.RequestKey("request_id", str)
RECORD = web.RequestKey("record", CallRecord)
PRINCIPAL = web.RequestKey("principal", Principal)
