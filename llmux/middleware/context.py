"""Request context: request id, in-flight gauge, request metrics and the access log line.

The request id is the client's `x-request-id` when it is sane, else a fresh one; it is bound to
every log line of the request and sent back on every response (set in `on_response_prepare`,
so streamed and error responses carry it too).
"""

from __future__ import annotations

import os
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from llmux.appkeys import RECORD, REQUEST_ID
from llmux.dispatch import CallRecord
from llmux.log import AccessLog, bind_request
from llmux.metrics import Metrics

__all__ = ["context_middleware", "request_id_header"]

_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_CLIENT_CLOSED = 499


def _request_id(sent: str | None) -> str:
    if sent and _SANE_ID.match(sent):
        return sent
    return os.urandom(16).hex()


async def request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: every response carries the request id."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers["x-request-id"] = request_id


def context_middleware(metrics: Metrics, access_log: AccessLog) -> Middleware:
    """Bind the request id, count the request and write one access line when it ends."""

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = _request_id(request.headers.get("x-request-id"))
        record = CallRecord()
        request[REQUEST_ID] = request_id
        request[RECORD] = record
        # Never cleared: the next request on a kept-alive connection binds its own id first.
        bind_request(request_id)
        metrics.in_flight.inc()
        status = 500
        try:
            response: web.StreamResponse = await handler(request)
            status = _CLIENT_CLOSED if record.client_closed else response.status
            return response
        finally:
            metrics.in_flight.dec()
            elapsed = time.perf_counter() - record.started
            route = _route_label(request)
            metrics.observe_request(route, record.model, status, elapsed)
            if access_log.enabled:
                access_log.write(_access_fields(request, record, status, elapsed))

    return impl


def _route_label(request: web.Request) -> str:
    """The matched route pattern (bounded by the route table), or `other`."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "other"


def _access_fields(
    request: web.Request, record: CallRecord, status: int, elapsed: float
) -> dict[str, object]:
    usage = record.usage
    return {
        "request_id": request[REQUEST_ID],
        "method": request.method,
        "path": request.path,
        "status": status,
        "model": record.model,
        "deployment": record.deployment,
        "attempts": record.attempts,
        "latency_ms": round(elapsed * 1000, 2),
        "upstream_ms": _ms(record.upstream_seconds),
        "ttft_ms": _ms(record.first_frame_seconds),
        "input_tokens": usage.input_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
    }


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 2) if seconds is not None else None
