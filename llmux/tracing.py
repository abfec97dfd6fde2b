"""Tracing hooks for the request path; OpenTelemetry itself lives in `llmux.otel`.

With `tracing.enabled: false` nothing of OpenTelemetry is imported: `setup_tracing` returns
None, no tracing is active, and every hook below costs one None check. When it is on, the
context middleware opens a `RequestTrace` (the server span) and binds it to the request's
context; dispatch asks it for one client span per upstream attempt and for the `traceparent`
to send upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import replace
from typing import TYPE_CHECKING

from llmux.types import PreparedRequest

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from llmux.config import Config
    from llmux.dispatch.records import Binding, CallRecord
    from llmux.otel import AttemptSpan, RequestTrace, Tracing
    from llmux.providers.base import Call

__all__ = [
    "active_tracing",
    "bind_request_trace",
    "client_trace_id",
    "setup_tracing",
    "start_attempt",
    "unbind_request_trace",
    "with_traceparent",
]

_active: Tracing | None = None
_request_trace: ContextVar[RequestTrace | None] = ContextVar("llmux_request_trace", default=None)
_HEX = frozenset("0123456789abcdef")
_NO_TRACE = "0" * 32


def setup_tracing(config: Config, *, exporter: SpanExporter | None = None) -> Tracing | None:
    """Install process-wide tracing for `config`; None (and no import) when tracing is off.

    `exporter` replaces the OTLP exporter (tests pass an in-memory one). Call `shutdown()` on
    the result to flush and uninstall it.
    """
    global _active
    if not config.tracing.enabled:
        return None
    if _active is not None:
        raise RuntimeError("tracing is already set up in this process")
    try:
        from llmux.otel import Tracing
    except ImportError as error:
        raise RuntimeError(
            "tracing.enabled needs OpenTelemetry: pip install 'llmux[otel]'"
        ) from error
    _active = Tracing(config, exporter, on_shutdown=_uninstall)
    return _active


def _uninstall(tracing: Tracing) -> None:
    global _active
    if _active is tracing:
        _active = None


def active_tracing() -> Tracing | None:
    """The installed tracing, or None when tracing is off (the hot path's one check)."""
    return _active


def bind_request_trace(trace: RequestTrace) -> Token[RequestTrace | None]:
    """Make `trace` the current request's trace; returns the token `unbind_request_trace` takes."""
    return _request_trace.set(trace)


def unbind_request_trace(token: Token[RequestTrace | None]) -> None:
    """Restore the trace that was current before `bind_request_trace`."""
    _request_trace.reset(token)


def start_attempt(call: Call, binding: Binding, record: CallRecord) -> AttemptSpan | None:
    """A client span for the upstream attempt about to start; None when the request is untraced."""
    trace = _request_trace.get()
    return None if trace is None else trace.start_attempt(call, binding, record)


def with_traceparent(prepared: PreparedRequest) -> PreparedRequest:
    """`prepared` with the current attempt's `traceparent` header, when the request is traced."""
    trace = _request_trace.get()
    if trace is None:
        return prepared
    carrier = trace.propagation_headers()
    if not carrier:
        return prepared
    # A copy: codecs may hand out header dicts they share between calls.
    return replace(prepared, headers={**prepared.headers, **carrier})


def client_trace_id(headers: Mapping[str, str]) -> str | None:
    """The trace id of the client's W3C `traceparent`, if it sent a well-formed one.

    Used for log lines when tracing is off, so a caller's trace still joins up with our logs.
    """
    value = headers.get("traceparent")
    if value is None or len(value) < 55 or value[2] != "-" or value[35] != "-":
        return None
    trace_id = value[3:35].lower()
    if trace_id == _NO_TRACE or not _HEX.issuperset(trace_id):
        return None
    return trace_id
