"""The gateway app: the /v1 route table and thin handlers (read -> validate -> dispatch -> out).

Handlers never build error JSON (the errors middleware does) and never touch providers or
transports directly (dispatch does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp import web

from llmux.appkeys import (
    AUTHENTICATOR,
    GATE,
    LIFECYCLE,
    METRICS,
    PRINCIPAL,
    RECORD,
    REQUEST_ID,
    RUNTIME,
    STORE,
)
from llmux.auth import ANONYMOUS, make_authenticator
from llmux.dispatch import CallRecord
from llmux.dispatch.relay import OpenStream
from llmux.errors import (
    LlmuxError,
    PayloadTooLarge,
    RequestTimeout,
    ServiceUnavailable,
    UnsupportedEndpoint,
)
from llmux.frontdoor.messages import count_tokens_body
from llmux.governance.gate import Admission, Outcome
from llmux.governance.service import Governance
from llmux.health import add_health_routes
from llmux.intake import parse_call
from llmux.lifecycle import Lifecycle
from llmux.log import AccessLog, log_body
from llmux.metrics import Metrics
from llmux.middleware import build_chain
from llmux.middleware.context import request_id_header
from llmux.middleware.cors import add_cors
from llmux.providers.base import Call
from llmux.runtime import Runtime, RuntimeHolder
from llmux.store import Store
from llmux.stored_responses import add_stored_response_routes, remember, with_history
from llmux.types import Endpoint
from llmux.wire.openai import encode

__all__ = ["create_app"]

_SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
_UNSUPPORTED = ("/v1/audio", "/v1/batches", "/v1/files")
NO_FALLBACK_HEADER = "x-llmux-no-fallback"
"""A request header; `true` keeps the call inside the model group it names (no fallbacks)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    holder: RuntimeHolder,
    metrics: Metrics,
    lifecycle: Lifecycle,
    access_log: AccessLog,
    store: Store,
    governance: Governance,
) -> web.Application:
    """The gateway web application for the runtime in `holder`."""
    config = holder.current.loaded.config
    app = web.Application(
        middlewares=build_chain(metrics, access_log),
        client_max_size=config.server.max_body_size,
        handler_args={"max_field_size": 16384},
    )
    app[RUNTIME] = holder
    app[METRICS] = metrics
    app[LIFECYCLE] = lifecycle
    app[STORE] = store
    app[GATE] = governance.gate
    app[AUTHENTICATOR] = make_authenticator(
        config.auth.master_key, governance.resolver, governance.last_used, metrics
    )
    app.on_response_prepare.append(request_id_header)
    add_cors(app, config.server.cors_origins)
    _add_routes(app)
    return app


def _add_routes(app: web.Application) -> None:
    router = app.router
    for endpoint in Endpoint:
        router.add_post("/v1" + endpoint.value, _endpoint_handler(endpoint))
    router.add_get("/v1/models", list_models)
    router.add_get("/v1/models/{model:.+}", retrieve_model)
    add_stored_response_routes(app)
    for prefix in _UNSUPPORTED:
        router.add_route("*", prefix, unsupported)
        router.add_route("*", prefix + "/{tail:.*}", unsupported)
    add_health_routes(app)


def _endpoint_handler(endpoint: Endpoint) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await _serve_call(request, endpoint)

    handle.__name__ = f"handle_{endpoint.label}"
    return handle


async def _serve_call(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    if request.app[LIFECYCLE].state == "draining":
        raise ServiceUnavailable("The gateway is shutting down; retry on another replica.")
    runtime = request.app[RUNTIME].current
    data = await _read_body(request, runtime)
    log_body("request_body", data, runtime.loaded.config.logging)
    call = parse_call(
        endpoint, data, request[REQUEST_ID], int(time.time()), _forwarded(request, endpoint)
    )
    record = request[RECORD]
    record.model = call.model
    record.fallback_allowed = request.headers.get(NO_FALLBACK_HEADER, "").lower() != "true"
    if endpoint is Endpoint.RESPONSES:
        call = await with_history(request, call)
    elif endpoint is Endpoint.COUNT_TOKENS and not runtime.dispatcher.serves(call):
        # No deployment can count natively: the documented estimate, no upstream call.
        return web.json_response(body=count_tokens_body(call.body))
    gate = request.app[GATE]
    principal = request.get(PRINCIPAL, ANONYMOUS)
    admission = await gate.admit(
        principal.tenancy,
        call.model,
        call.body,
        runtime.deployments_of,
        runtime.costing,
        request_id=call.request_id,
    )
    if admission.model != call.model:
        call = replace(call, model=admission.model)
        record.model = call.model
    status, error_code = 500, None
    response: web.StreamResponse | None = None
    try:
        if call.stream:
            response = await _relay_stream(request, runtime, call, record, admission.headers())
        else:
            response = await _complete(request, runtime, call, record, admission.headers())
        status = _CLIENT_CLOSED if record.client_closed else response.status
        return response
    except LlmuxError as error:
        status, error_code = error.http_status, error.code
        raise
    finally:
        outcome = Outcome(
            status=status,
            deployment=record.deployment,
            usage=record.usage,
            latency_ms=(time.perf_counter() - record.started) * 1000,
            ttft_ms=_ms(record.first_frame_seconds),
            error_code=error_code,
        )
        cost = gate.finish(admission, outcome, runtime.costing, call.request_id)
        if response is not None and not response.prepared:
            response.headers.update(_spend_headers(admission, cost))


_CLIENT_CLOSED = 499


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 3) if seconds is not None else None


def _spend_headers(admission: Admission, cost: float) -> dict[str, str]:
    """What the call cost and, for a virtual key, the key's spend with it (as last loaded)."""
    headers = {"x-llmux-response-cost": _usd(cost)}
    if admission.tenancy is not None:
        headers["x-llmux-key-spend"] = _usd(admission.tenancy.key.spend + cost)
    return headers


def _usd(amount: float) -> str:
    """USD in plain decimals to the picodollar: a cheap call must not read as `0.000000`."""
    return f"{amount:.12f}".rstrip("0").rstrip(".")


async def _complete(
    request: web.Request,
    runtime: Runtime,
    call: Call,
    record: CallRecord,
    limit_headers: dict[str, str],
) -> web.Response:
    body = await runtime.dispatcher.complete(call, record)
    if call.endpoint is Endpoint.RESPONSES:
        await remember(request, call, body)
    headers = {**_routing_headers(record), **limit_headers}
    return web.Response(body=body, content_type="application/json", headers=headers)


_ANTHROPIC_HEADERS = ("anthropic-version", "anthropic-beta")


def _forwarded(request: web.Request, endpoint: Endpoint) -> dict[str, str]:
    """The client headers a passthrough upstream needs (Anthropic's version and betas)."""
    if endpoint is not Endpoint.MESSAGES and endpoint is not Endpoint.COUNT_TOKENS:
        return {}
    headers = request.headers
    return {name: headers[name] for name in _ANTHROPIC_HEADERS if name in headers}


def _routing_headers(record: CallRecord) -> dict[str, str]:
    """Which deployment answered, after how many attempts, and the group it fell back from."""
    headers = {"x-llmux-attempts": str(record.attempts)}
    if record.deployment is not None:
        headers["x-llmux-deployment"] = record.deployment
    if record.fallback_from is not None:
        headers["x-llmux-fallback-from"] = record.fallback_from
    return headers


async def _read_body(request: web.Request, runtime: Runtime) -> bytes:
    server = runtime.loaded.config.server
    limit = server.max_body_size
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"The request body ({request.content_length} bytes) is larger than the"
            f" {limit} byte limit (server.max_body_size)."
        )
    if request.content.is_eof():
        # The whole body arrived with the headers: nothing to wait for, no timer to arm.
        return await request.read()
    try:
        async with asyncio.timeout(server.read_timeout):
            return await request.read()
    except TimeoutError:
        raise RequestTimeout(
            f"The request body was not received within {server.read_timeout:g}s."
        ) from None
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"The request body is larger than the {limit} byte limit (server.max_body_size)."
        ) from None


async def _relay_stream(
    request: web.Request,
    runtime: Runtime,
    call: Call,
    record: CallRecord,
    limit_headers: dict[str, str],
) -> web.StreamResponse:
    stream = await runtime.dispatcher.open_stream(call, record)
    headers = {**_SSE_HEADERS, **_routing_headers(record), **limit_headers}
    response = web.StreamResponse(status=200, headers=headers)
    try:
        await response.prepare(request)
        await stream.relay(response.write)
    except ConnectionResetError:
        # The client went away: read on (bounded) so the call is billed what the upstream
        # generated; the finally block then frees the upstream connection.
        record.client_closed = True
        drain = runtime.loaded.config.server.abandoned_stream_drain
        if drain > 0:
            await stream.drain(seconds=drain)
    finally:
        stream.close()
        runtime.dispatcher.finish_stream(call, record, stream)
    await _remember_stream(request, call, stream)
    return response


async def _remember_stream(request: web.Request, call: Call, stream: OpenStream) -> None:
    final = getattr(stream.decoder, "final_response", None)
    if call.endpoint is Endpoint.RESPONSES and isinstance(final, bytes):
        await remember(request, call, final)


async def list_models(request: web.Request) -> web.Response:
    """`GET /v1/models`: every model group, as OpenAI model objects."""
    runtime = request.app[RUNTIME].current
    data = [_model_object(runtime, name) for name in runtime.table.group_names()]
    return web.Response(
        body=encode({"object": "list", "data": data}), content_type="application/json"
    )


async def retrieve_model(request: web.Request) -> web.Response:
    """`GET /v1/models/{id}`: one model group or `provider/model` deployment."""
    runtime = request.app[RUNTIME].current
    name = request.match_info["model"]
    runtime.table.lookup(name)
    return web.Response(body=encode(_model_object(runtime, name)), content_type="application/json")


def _model_object(runtime: Runtime, name: str) -> dict[str, object]:
    owners = sorted({d.provider for d in runtime.table.lookup(name)})
    owner = owners[0] if len(owners) == 1 else "llmux"
    return {"id": name, "object": "model", "created": runtime.created, "owned_by": owner}


async def unsupported(request: web.Request) -> web.StreamResponse:
    """Endpoints llmux does not serve get a clear 400 instead of a confusing 404."""
    raise UnsupportedEndpoint(
        f"The endpoint {request.path} is not supported by this gateway.",
    )
