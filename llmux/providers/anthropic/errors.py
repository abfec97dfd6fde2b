"""Anthropic error bodies -> llmux's error tree, for HTTP answers and mid-stream `error` events.

`overloaded_error` (HTTP 529) becomes a retryable 503; `invalid_request_error` about a prompt
that is too long gets the OpenAI code `context_length_exceeded`. The other direction,
`anthropic_error_type` / `anthropic_error_body`, renders llmux's errors in Anthropic's shape for
clients of /v1/messages (the passthrough stream's error event and the Messages front door).
Docs: https://docs.anthropic.com/en/api/errors
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from llmux.errors import LlmuxError, UpstreamError
from llmux.providers.openai import parse_retry_after
from llmux.wire import anthropic as wire

__all__ = ["anthropic_error_body", "anthropic_error_type", "decode_error", "error_from_detail"]

# Anthropic error type -> (our status, OpenAI-style type).
_BY_TYPE: Final = {
    "invalid_request_error": (400, "invalid_request_error"),
    "authentication_error": (401, "authentication_error"),
    "billing_error": (402, "billing_error"),
    "permission_error": (403, "permission_error"),
    "not_found_error": (404, "not_found_error"),
    "request_too_large": (413, "invalid_request_error"),
    "rate_limit_error": (429, "rate_limit_error"),
    "api_error": (500, "api_error"),
    "timeout_error": (504, "timeout_error"),
    "overloaded_error": (503, "service_unavailable"),
}
_CONTEXT_HINTS: Final = ("prompt is too long", "context window", "context length")
# HTTP status -> Anthropic error type, as https://docs.anthropic.com/en/api/errors lists them.
_TYPE_BY_STATUS: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_error_encoder = msgspec.json.Encoder()


def anthropic_error_type(error: LlmuxError) -> str:
    """The Anthropic `error.type` for `error`, chosen by its HTTP status."""
    status = error.http_status
    if status in _TYPE_BY_STATUS:
        return _TYPE_BY_STATUS[status]
    return "invalid_request_error" if status < 500 else "api_error"


def anthropic_error_body(error: LlmuxError) -> bytes:
    """`{"type": "error", "error": {"type", "message"}}`, the body Anthropic's SDKs parse."""
    detail = {"type": anthropic_error_type(error), "message": error.message}
    return _error_encoder.encode({"type": "error", "error": detail})


def decode_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """Map an HTTP error answer; the Anthropic `error.type` decides the status class."""
    retry_after = parse_retry_after(headers)
    try:
        detail = wire.decode_error(body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        detail = None
    if detail is None:
        text = body[:300].decode("utf-8", "replace").strip() or "no body"
        status = 503 if status == 529 else status
        return UpstreamError(
            f"upstream returned HTTP {status}: {text}", status=status, retry_after=retry_after
        )
    return error_from_detail(detail, status, retry_after)


def error_from_detail(
    detail: wire.ErrorDetail, status: int, retry_after: float | None = None
) -> UpstreamError:
    """The UpstreamError for one Anthropic `error` object (`status` used for unknown types)."""
    message = detail.message or f"Anthropic returned {detail.type or 'an error'}"
    mapped_status, error_type = _BY_TYPE.get(detail.type or "", (status, None))
    if mapped_status == 529:
        mapped_status = 503
    code = detail.type
    if detail.type == "invalid_request_error" and _too_long(message):
        code = "context_length_exceeded"
    elif detail.type == "overloaded_error":
        code = "overloaded"
    return UpstreamError(
        message, status=mapped_status, error_type=error_type, code=code, retry_after=retry_after
    )


def _too_long(message: str) -> bool:
    lowered = message.lower()
    return any(hint in lowered for hint in _CONTEXT_HINTS)
