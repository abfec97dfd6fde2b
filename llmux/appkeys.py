"""Every typed aiohttp application and request key, one line each; nothing else."""

from __future__ import annotations

from aiohttp import web

from llmux.auth import Authenticator, Principal
from llmux.dispatch import CallRecord
from llmux.governance.gate import Gate
from llmux.lifecycle import Lifecycle
from llmux.metrics import Metrics
from llmux.readiness import Readiness
from llmux.runtime import RuntimeHolder
from llmux.store import Store

__all__ = [
    "AUTHENTICATOR",
    "GATE",
    "LIFECYCLE",
    "METRICS",
    "PRINCIPAL",
    "READINESS",
    "RECORD",
    "REQUEST_ID",
    "RUNTIME",
    "STORE",
]

RUNTIME = web.AppKey("runtime", RuntimeHolder)
METRICS = web.AppKey("metrics", Metrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
STORE = web.AppKey("store", Store)
GATE = web.AppKey("gate", Gate)
READINESS = web.AppKey("readiness", Readiness)

REQUEST_ID = web.RequestKey("request_id", str)
RECORD = web.RequestKey("record", CallRecord)
PRINCIPAL = web.RequestKey("principal", Principal)
