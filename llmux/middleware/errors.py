"""Turns every exception into the OpenAI error shape; the only place error JSON is rendered.

Router exceptions (404, 405, 413) are mapped to the error tree first, so clients always get
`{"error": {"message", "type", "param", "code"}}`. Anything unexpected is logged with its stack
and becomes a 500 that names the request id, never a stack trace on the wire.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from llmux.appkeys import REQUEST_ID
from llmux.errors import (
    HTTPStatusError,
    LlmuxError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UpstreamError,
)
from llmux.frontdoor.messages import anthropic_error_body
from llmux.log import get_logger
from llmux.store.base import StoreUnavailable
from llmux.wire.openai import error_body

__all__ = ["errors_middleware", "render_error"]


ANTHROPIC_PREFIX = "/v1/messages"
"""Requests under this path speak Anthropic's dialect, errors included."""


def render_error(error: LlmuxError, *, anthropic: bool = False) -> web.Response:
    """The HTTP response for `error`, in OpenAI's error shape or Anthropic's."""
    headers = dict(error.headers)
    if error.http_status >= 500 and not error.retryable and not isinstance(error, UpstreamError):
        headers["x-should-retry"] = "false"
    if isinstance(error, UpstreamError) and error.retry_after is not None:
        headers["retry-after"] = str(max(int(error.retry_after + 0.999), 0))
    return web.Response(
        status=error.http_status,
        body=anthropic_error_body(error)
        if anthropic
        else error_body(error.message, error.error_type, error.param, error.code),
        content_type="application/json",
        headers=headers,
    )


def from_http_exception(request: web.Request, exc: web.HTTPException) -> LlmuxError:
    """Map aiohttp's router and body-size exceptions into the error tree."""
    if isinstance(exc, web.HTTPNotFound):
        return NotFound(f"Unknown request URL: {request.method} {request.path}.")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return MethodNotAllowed(
            f"Method {request.method} is not allowed for {request.path}; use {allowed}."
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("The request body is larger than server.max_body_size allows.")
    return HTTPStatusError(exc.reason or "HTTP error", status=exc.status)


def errors_middleware() -> Middleware:
    """Catch, map and render; never let an exception reach aiohttp."""
    logger = get_logger("llmux.errors")

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except LlmuxError as error:
            return render_error(error, anthropic=_speaks_anthropic(request))
        except StoreUnavailable:
            # A store outage is the server's, and passing: 503 so clients retry, never a 500.
            unavailable = ServiceUnavailable(
                "The gateway's store is unreachable; retry shortly.", code="store_unavailable"
            )
            return render_error(unavailable, anthropic=_speaks_anthropic(request))
        except web.HTTPException as exc:
            mapped = from_http_exception(request, exc)
            return render_error(mapped, anthropic=_speaks_anthropic(request))
        except Exception:
            logger.exception("unhandled_error", path=request.path)
            request_id = request.get(REQUEST_ID, "unknown")
            internal = LlmuxError(
                f"The gateway hit an internal error; request id {request_id}.",
                code="internal_error",
            )
            return render_error(internal, anthropic=_speaks_anthropic(request))

    return impl


def _speaks_anthropic(request: web.Request) -> bool:
    return request.path.startswith(ANTHROPIC_PREFIX)
