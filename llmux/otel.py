"""OpenTelemetry spans following the GenAI semantic conventions; imported only when tracing is on.

One SERVER span per /v1 request (named `{operation} {model}` once the model is known, parented
on the client's W3C `traceparent`) and one CLIENT span per upstream attempt under it, whose
context travels upstream as `traceparent`. The successful attempt's span stays open until the
request ends, so a stream's span covers the whole relay and carries the final usage. Prompts and
completions are recorded only with `tracing.capture_content`. `llmux.tracing` is the facade the
request path calls; nothing else imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import msgspec
from aiohttp import web
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    format_trace_id,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from llmux.appkeys import PRINCIPAL
from llmux.config import Config
from llmux.config.schema import TracingConfig
from llmux.dispatch.records import Binding, CallRecord
from llmux.errors import LlmuxError
from llmux.providers.base import Call
from llmux.types import Endpoint, Usage

__all__ = ["AttemptSpan", "RequestTrace", "Tracing"]

Attributes = dict[str, AttributeValue]

_OPERATIONS = {
    Endpoint.CHAT: "chat",
    Endpoint.COMPLETIONS: "text_completion",
    Endpoint.EMBEDDINGS: "embeddings",
    # The Responses and Messages APIs are chat APIs in the GenAI conventions' terms.
    Endpoint.RESPONSES: "chat",
    Endpoint.MESSAGES: "chat",
    Endpoint.COUNT_TOKENS: "count_tokens",
}
_BY_PATH = {"/v1" + endpoint.value: endpoint for endpoint in Endpoint}
_PROVIDER_NAMES = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
}
"""Config provider type -> `gen_ai.provider.name`; other types are reported as they are."""
_PROMPT_FIELDS = ("messages", "input", "prompt")
_MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_SAMPLING_FIELDS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
)


class Tracing:
    """The process's tracer provider (OTLP export in batches, ratio sampling) and span factory."""

    def __init__(
        self,
        config: Config,
        exporter: SpanExporter | None,
        on_shutdown: Callable[[Tracing], None],
    ) -> None:
        settings = config.tracing
        if not 0.0 <= settings.sample_ratio <= 1.0:
            raise ValueError(
                f"tracing.sample_ratio: must be between 0.0 and 1.0, got {settings.sample_ratio}"
            )
        self.capture_content = settings.capture_content
        self.provider_types = {provider.name: provider.type for provider in config.providers}
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        )
        self._provider.add_span_processor(BatchSpanProcessor(exporter or _otlp(settings)))
        self.tracer = self._provider.get_tracer("llmux")
        self.propagator = TraceContextTextMapPropagator()
        self._on_shutdown = on_shutdown

    def start_request(self, request: web.Request, request_id: str) -> RequestTrace | None:
        """The server span of a /v1 request, continuing the client's trace; None elsewhere."""
        if not request.path.startswith("/v1/"):
            return None
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else request.path
        span = self.tracer.start_span(
            f"{request.method} {route}",
            context=self.propagator.extract(request.headers),
            kind=SpanKind.SERVER,
        )
        if span.is_recording():
            span.set_attributes(
                {
                    "http.request.method": request.method,
                    "http.route": route,
                    "url.path": request.path,
                    "llmux.request_id": request_id,
                }
            )
        return RequestTrace(self, span)

    def force_flush(self) -> bool:
        """Export every ended span now; False if the exporter did not finish in time."""
        return self._provider.force_flush()

    def shutdown(self) -> None:
        """Flush, stop exporting and uninstall (tracing is off again afterwards)."""
        self._on_shutdown(self)
        self._provider.shutdown()


def _otlp(settings: TracingConfig) -> SpanExporter:
    """The configured OTLP exporter; only its own transport (gRPC or HTTP) is imported."""
    headers = dict(settings.headers) or None
    if settings.exporter == "otlp-grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.endpoint, headers=headers)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(endpoint=settings.endpoint, headers=headers)


class RequestTrace:
    """One request's server span and the client spans of its upstream attempts."""

    __slots__ = ("_current", "_described", "_open", "_span", "_tracing", "trace_id")

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self._tracing = tracing
        self._span = span
        self.trace_id = format_trace_id(span.get_span_context().trace_id)
        self._described = False
        """Whether the client's request parameters are on the server span yet."""
        self._current: Span | None = None
        """The latest attempt's span: its context is what goes upstream (else the server's)."""
        self._open: tuple[Span, Binding] | None = None
        """The successful attempt, ended with the request so it carries usage and output."""

    def start_attempt(self, call: Call, binding: Binding, record: CallRecord) -> AttemptSpan | None:
        """Open the client span of one upstream attempt; None when the trace is not sampled.

        An unsampled trace records nothing, so no child span is made: the upstream continues
        from the server span's context.
        """
        if not self._span.is_recording():
            return None
        tracing = self._tracing
        provider_type = tracing.provider_types.get(binding.target.provider, "")
        operation = _client_operation(call.endpoint, provider_type)
        span = tracing.tracer.start_span(
            f"{operation} {binding.target.upstream_model}",
            context=set_span_in_context(self._span),
            kind=SpanKind.CLIENT,
        )
        if not self._described:
            self._span.set_attributes(_request_attributes(call))
            self._described = True
        if span.is_recording():
            attributes = _attempt_attributes(call, binding, record, operation, provider_type)
            if tracing.capture_content:
                attributes.update(_prompt_attributes(call))
            span.set_attributes(attributes)
        self._current = span
        return AttemptSpan(self, span, binding)

    def propagation_headers(self) -> dict[str, str]:
        """The `traceparent` (and `tracestate`) of the current attempt, for the upstream."""
        carrier: dict[str, str] = {}
        span = self._current or self._span
        self._tracing.propagator.inject(carrier, context=set_span_in_context(span))
        return carrier

    def attempt_succeeded(self, span: Span, binding: Binding) -> None:
        """Keep the winning attempt's span open until the request (or its stream) ends."""
        self._open = (span, binding)

    def finish(
        self,
        request: web.Request,
        record: CallRecord,
        status: int,
        response: web.StreamResponse | None,
    ) -> None:
        """End the open attempt span and the server span with what the request produced."""
        server = self._span
        view = _response_view(response) if server.is_recording() else None
        served: str | None = None
        if self._open is not None:
            span, binding = self._open
            served = binding.target.upstream_model
            self._end_winner(span, served, record, view)
            self._open = None
        if server.is_recording():
            endpoint = _BY_PATH.get(request.path)
            if endpoint is not None and record.model is not None:
                server.update_name(f"{_OPERATIONS[endpoint]} {record.model}")
            attributes = _server_attributes(request, record, status, endpoint, view)
            if served is not None:
                attributes["gen_ai.response.model"] = served
            server.set_attributes(attributes)
        if status >= 500:
            server.set_status(Status(StatusCode.ERROR))
        server.end()

    def _end_winner(
        self, span: Span, served: str, record: CallRecord, view: _ResponseView | None
    ) -> None:
        if span.is_recording():
            # The client's body names the model group (llmux rewrites `model`); the upstream
            # model is what the deployment served.
            attributes: Attributes = {"gen_ai.response.model": served}
            attributes.update(_usage_attributes(record.usage))
            if view is not None:
                attributes.update(view.attributes())
                if self._tracing.capture_content:
                    attributes.update(view.content_attributes())
            span.set_attributes(attributes)
        span.end()


class AttemptSpan:
    """The client span of one upstream attempt, ended by how the attempt ended."""

    __slots__ = ("_binding", "_span", "_trace")

    def __init__(self, trace: RequestTrace, span: Span, binding: Binding) -> None:
        self._trace = trace
        self._span = span
        self._binding = binding

    def succeeded(self) -> None:
        """The attempt answered; its span ends with the request."""
        self._trace.attempt_succeeded(self._span, self._binding)

    def failed(self, error: BaseException) -> None:
        """The attempt failed (or was cancelled): record why and end the span."""
        span = self._span
        if span.is_recording():
            span.set_attributes(_error_attributes(error))
            span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__name__))
        span.end()


def _client_operation(endpoint: Endpoint, provider_type: str) -> str:
    """Gemini's upstream call is `generateContent`, which the conventions name on its own."""
    if provider_type == "gemini" and endpoint is not Endpoint.EMBEDDINGS:
        return "generate_content"
    return _OPERATIONS[endpoint]


def _attempt_attributes(
    call: Call, binding: Binding, record: CallRecord, operation: str, provider_type: str
) -> Attributes:
    target = binding.target
    provider_name = _PROVIDER_NAMES.get(provider_type, provider_type or target.provider)
    attributes: Attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider_name,
        "gen_ai.system": provider_name,
        "gen_ai.request.model": target.upstream_model,
        "llmux.provider": target.provider,
        "llmux.deployment": binding.deployment.id,
        "llmux.model_group": call.model,
        "llmux.attempt": record.attempts,
    }
    host = urlsplit(target.base_url)
    if host.hostname:
        attributes["server.address"] = host.hostname
        if host.port is not None:
            attributes["server.port"] = host.port
    if record.fallback_from is not None:
        attributes["llmux.fallback_from"] = record.fallback_from
    attributes.update(_request_attributes(call))
    return attributes


def _request_attributes(call: Call) -> Attributes:
    """The sampling parameters the client asked for (decoded only when a span records)."""
    attributes: Attributes = {"llmux.stream": call.stream}
    for name in _MAX_TOKENS_FIELDS:
        value = _number(call.body.get(name))
        if value is not None:
            attributes["gen_ai.request.max_tokens"] = int(value)
            break
    for name, attribute in _SAMPLING_FIELDS:
        value = _number(call.body.get(name))
        if value is not None:
            attributes[attribute] = float(value)
    return attributes


def _number(raw: msgspec.Raw | None) -> float | None:
    if raw is None:
        return None
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _prompt_attributes(call: Call) -> Attributes:
    """The prompt as the client sent it (`tracing.capture_content` only)."""
    attributes: Attributes = {}
    for name in _PROMPT_FIELDS:
        raw = call.body.get(name)
        if raw is not None:
            attributes["gen_ai.input.messages"] = bytes(raw).decode("utf-8", "replace")
            break
    system = call.body.get("system") if call.endpoint is Endpoint.MESSAGES else None
    if system is not None:
        attributes["gen_ai.system_instructions"] = bytes(system).decode("utf-8", "replace")
    return attributes


def _usage_attributes(usage: Usage | None) -> Attributes:
    if usage is None:
        return {}
    return {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }


def _error_attributes(error: BaseException) -> Attributes:
    if not isinstance(error, LlmuxError):
        return {"error.type": type(error).__qualname__}
    return {
        "error.type": error.code or error.error_type,
        "http.response.status_code": error.http_status,
    }


def _server_attributes(
    request: web.Request,
    record: CallRecord,
    status: int,
    endpoint: Endpoint | None,
    view: _ResponseView | None,
) -> Attributes:
    attributes: Attributes = {
        "http.response.status_code": status,
        "llmux.attempts": record.attempts,
    }
    if endpoint is not None:
        attributes["gen_ai.operation.name"] = _OPERATIONS[endpoint]
    optional = {
        "gen_ai.request.model": record.model,
        "llmux.deployment": record.deployment,
        "llmux.fallback_from": record.fallback_from,
        "error.type": _error_type(status, view),
    }
    attributes.update({key: value for key, value in optional.items() if value is not None})
    attributes.update(_usage_attributes(record.usage))
    attributes.update(_principal_attributes(request))
    return attributes


def _error_type(status: int, view: _ResponseView | None) -> str | None:
    if status < 400:
        return None
    error = view.error if view is not None else None
    if error is not None and (error.code or error.type):
        return error.code or error.type
    return str(status)


def _principal_attributes(request: web.Request) -> Attributes:
    principal = request.get(PRINCIPAL)
    if principal is None:
        return {}
    attributes: Attributes = {"llmux.principal": principal.kind}
    if principal.team_id is not None:
        attributes["llmux.team_id"] = principal.team_id
    tenancy = principal.tenancy
    if tenancy is not None and tenancy.key.key_alias is not None:
        attributes["llmux.key_alias"] = tenancy.key.key_alias
    return attributes


class _ErrorView(msgspec.Struct):
    code: str | None = None
    type: str | None = None


class _ChoiceView(msgspec.Struct):
    finish_reason: str | None = None
    message: msgspec.Raw = msgspec.Raw(b"")
    text: msgspec.Raw = msgspec.Raw(b"")


class _ResponseView(msgspec.Struct):
    """The few fields of any response body llmux returns that spans report."""

    id: str | None = None
    choices: list[_ChoiceView] | None = None
    """Chat and text completions."""
    stop_reason: str | None = None
    """Anthropic Messages."""
    content: msgspec.Raw = msgspec.Raw(b"")
    """Anthropic Messages output blocks."""
    output: msgspec.Raw = msgspec.Raw(b"")
    """Responses API output items."""
    error: _ErrorView | None = None

    def attributes(self) -> Attributes:
        """`gen_ai.response.id` and finish reasons, where the body says them."""
        attributes: Attributes = {}
        if self.id is not None:
            attributes["gen_ai.response.id"] = self.id
        reasons = [choice.finish_reason for choice in self.choices or () if choice.finish_reason]
        if self.stop_reason is not None:
            reasons.append(self.stop_reason)
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons
        return attributes

    def content_attributes(self) -> Attributes:
        """The completion as returned to the client (`tracing.capture_content` only)."""
        parts = [choice.message or choice.text for choice in self.choices or ()]
        parts = [part for part in parts if len(part)] or [
            part for part in (self.content, self.output) if len(part)
        ]
        if not parts:
            return {}
        joined = b"[" + b",".join(bytes(part) for part in parts) + b"]"
        return {"gen_ai.output.messages": joined.decode("utf-8", "replace")}


_VIEW = msgspec.json.Decoder(_ResponseView)


def _response_view(response: web.StreamResponse | None) -> _ResponseView | None:
    """The response body's view, for a whole JSON body (streams have none)."""
    if not isinstance(response, web.Response) or response.content_type != "application/json":
        return None
    body = response.body
    if not isinstance(body, bytes):
        return None
    try:
        return _VIEW.decode(body)
    except msgspec.DecodeError:
        return None
