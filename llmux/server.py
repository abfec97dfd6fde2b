"""The gateway app: the /v1 route table and thin handlers (read -> validate -> dispatch -> out).

Handlers never build error JSON (the errors middleware does) and never touch providers or
transports directly (dispatch does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from llmux.appkeys import AUTHENTICATOR, LIFECYCLE, METRICS, RECORD, REQUEST_ID, RUNTIME
from llmux.auth import make_authenticator
from llmux.dispatch import CallRecord
from llmux.errors import (
    PayloadTooLarge,
    RequestTimeout,
    ServiceUnavailable,
    UnsupportedEndpoint,
)
from llmux.health import add_health_routes
from llmux.intake import parse_call
from llmux.lifecycle import Lifecycle
from llmux.log import AccessLog
from llmux.metrics import Metrics
from llmux.middleware import build_chain
from llmux.middleware.context import request_id_header
from llmux.providers.base import Call
from llmux.runtime import Runtime, RuntimeHolder
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
    holder: RuntimeHolder, metrics: Metrics, lifecycle: Lifecycle, access_log: AccessLog
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
    app[AUTHENTICATOR] = make_authenticator(config.auth.master_key)
    app.on_response_prepare.append(request_id_header)
    _add_routes(app)
    return app


def _add_routes(app: web.Application) -> None:
    router = app.router
    for endpoint in Endpoint:
        router.add_post("/v1" + endpoint.value, _endpoint_handler(endpoint))
    router.add_get("/v1/models", list_models)
    router.add_get("/v1/models/{model:.+}", retrieve_model)
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
    call = parse_call(endpoint, data, request[REQUEST_ID], int(time.time()))
    record = request[RECORD]
    record.model = call.model
    record.fallback_allowed = request.headers.get(NO_FALLBACK_HEADER, "").lower() != "true"
    if not call.stream:
        body = await runtime.dispatcher.complete(call, record)
        return web.Response(
            body=body, content_type="application/json", headers=_routing_headers(record)
        )
    return await _relay_stream(request, runtime, call, record)


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
    request: web.Request, runtime: Runtime, call: Call, record: CallRecord
) -> web.StreamResponse:
    stream = await runtime.dispatcher.open_stream(call, record)
    response = web.StreamResponse(status=200, headers={**_SSE_HEADERS, **_routing_headers(record)})
    try:
        await response.prepare(request)
        await stream.relay(response.write)
    except ConnectionResetError:
        # The client went away; the finally block still frees the upstream connection.
        record.client_closed = True
    finally:
        stream.close()
        runtime.dispatcher.finish_stream(call, record, stream)
    return response


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
