"""Google API error bodies -> the llmux error tree.

`{"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED", "details": [...]}}`
keeps its HTTP status and message; `code` is the lowercased `status` (`resource_exhausted`),
or `context_length_exceeded` when a 400 says the input has too many tokens. The OpenAI `type`
follows the status. A `google.rpc.RetryInfo` detail's `retryDelay` (`"13s"`) is the retry hint
when no `Retry-After` header came. Retryability follows the status (429 and 5xx retry).
Docs: https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from llmux.errors import UpstreamError
from llmux.providers.openai import parse_retry_after
from llmux.wire import gemini as g

__all__ = ["map_error", "mid_stream_error"]

_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}
_RETRY_INFO: Final = "type.googleapis.com/google.rpc.RetryInfo"
_TOO_MANY_TOKENS: Final = ("input token count", "exceeds the maximum number of tokens")


def map_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """The error for an upstream answer with HTTP `status`."""
    try:
        error = g.decode_error(body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        error = None
    if error is None:
        text = body[:300].decode("utf-8", "replace").strip() or "no body"
        return UpstreamError(
            f"upstream returned HTTP {status}: {text}",
            status=status,
            retry_after=parse_retry_after(headers),
        )
    return _from_google(error, status, parse_retry_after(headers))


def mid_stream_error(error: g.GoogleError) -> UpstreamError:
    """The error for an `error` object received inside a stream."""
    return _from_google(error, error.code or 502, None)


def _from_google(error: g.GoogleError, status: int, retry_after: float | None) -> UpstreamError:
    message = error.message or f"upstream returned HTTP {status}"
    code = error.status.lower() if error.status else None
    if status == 400 and any(marker in message.lower() for marker in _TOO_MANY_TOKENS):
        code = "context_length_exceeded"
    return UpstreamError(
        message,
        status=status,
        error_type=_TYPES.get(status, "api_error" if status >= 500 else None),
        code=code,
        retry_after=retry_after if retry_after is not None else _retry_delay(error),
    )


def _retry_delay(error: g.GoogleError) -> float | None:
    for detail in error.details:
        if detail.type == _RETRY_INFO and detail.retry_delay:
            try:
                return max(float(detail.retry_delay.removesuffix("s")), 0.0)
            except ValueError:
                return None
    return None
