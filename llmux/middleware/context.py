"""Request context: request id, in-flight gauge, request metrics and the access log line.

The request id is the client's `x-request-id` when it is sane, else a fresh one; it is bound to
every log line of the request and sent back on every response (set in `on_response_prepare`,
so streamed and error responses carry it too). With tracing on, the request's server span
opens and ends here, and its trace id joins the request id on every log line; with tracing off,
a client's `traceparent` still lends its trace id to the logs.
"""

from __future__ import annotations

import os
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from llmux.appkeys import RECORD, REQUEST_ID, RUNTIME
from llmux.dispatch import CallRecord
from llmux.log import AccessLog, bind_request, debug_enabled, log_body
from llmux.metrics import Metrics
from llmux.tracing import (
    active_tracing,
    bind_request_trace,
    client_trace_id,
    unbind_request_trace,
)

__all__ = ["context_middleware", "request_id_header"]

_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_CLIENT_CLOSED = 499


def _request_id(sent: str | None) -> str:
    if sent and _SANE_ID.match(sent):
        return sent
    return os.urandom(16).hex()


async def request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: every response carries the request id and the overhead.

    `x-llmux-overhead-ms` is the time spent in the gateway so far, excluding upstream waits:
    for a stream, up to its headers (the first frame is ready then).
    """
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers["x-request-id"] = request_id
        record = request.get(RECORD)
        if record is not None:
            overhead = time.perf_counter() - record.started - record.upstream_wait
            response.headers["x-llmux-overhead-ms"] = f"{max(overhead, 0.0) * 1000:.3f}"
        if request.path.startswith("/v1/messages"):
            # Anthropic's SDKs read the id from `request-id`.
            response.headers["request-id"] = request_id


def context_middleware(metrics: Metrics, access_log: AccessLog) -> Middleware:
    """Bind the request id, count the request and write one access line when it ends."""

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = _request_id(request.headers.get("x-request-id"))
        record = CallRecord()
        request[REQUEST_ID] = request_id
        request[RECORD] = record
        tracing = active_tracing()
        trace = tracing.start_request(request, request_id) if tracing is not None else None
        trace_id = trace.trace_id if trace is not None else client_trace_id(request.headers)
        # Never cleared: the next request on a kept-alive connection binds its own ids first.
        bind_request(request_id, trace_id)
        token = bind_request_trace(trace) if trace is not None else None
        metrics.in_flight.inc()
        status = 500
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
            status = _CLIENT_CLOSED if record.client_closed else response.status
            return response
        finally:
            metrics.in_flight.dec()
            elapsed = time.perf_counter() - record.started
            route = _route_label(request)
            metrics.observe_request(route, record.model, status, elapsed)
            if trace is not None:
                trace.finish(request, record, status, response)
            if token is not None:
                unbind_request_trace(token)
            if debug_enabled():
                _log_response_body(request, response)
            if access_log.enabled:
                access_log.write(_access_fields(request, record, status, elapsed, trace_id))

    return impl


def _route_label(request: web.Request) -> str:
    """The matched route pattern (bounded by the route table), or `other`."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "other"


def _log_response_body(request: web.Request, response: web.StreamResponse | None) -> None:
    """The whole response body at debug level, when `logging.log_bodies` (streams are not kept)."""
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        settings = request.app[RUNTIME].current.loaded.config.logging
        log_body("response_body", response.body, settings)


def _access_fields(
    request: web.Request, record: CallRecord, status: int, elapsed: float, trace_id: str | None
) -> dict[str, object]:
    usage = record.usage
    fields: dict[str, object] = {
        "request_id": request[REQUEST_ID],
        "trace_id": trace_id,
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
    trace = record.trace
    if trace is not None and trace.group:
        # The routing decision rides on the access line: one line per request, not two.
        fields["group"] = trace.group
        fields["strategy"] = trace.strategy
        fields["candidates"] = trace.candidates
        fields["excluded"] = trace.excluded
        fields["fallback_from"] = record.fallback_from
    return fields


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 2) if seconds is not None else None
