"""JSON log lines of real requests: request and trace ids on every line, redaction, body logging.

Each test configures structlog for JSON at debug level while pytest captures stdout (reset
after), and parses stdout line by line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmux.config import parse_config
from llmux.log import configure, get_logger
from llmux.serve import Gateway
from llmux.tracing import setup_tracing
from tests.helpers.edge import RawReply, raw_request
from tests.helpers.gateway import running_gateway, upstream_config
from tests.helpers.upstream import FakeUpstream

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"
BODIES = "logging:\n  log_bodies: true\n  body_max_bytes: {cap}\n"


@pytest.fixture(autouse=True)
def structlog_defaults() -> Iterator[None]:
    """Give structlog its defaults back after each test (tests configure JSON at debug)."""
    yield
    structlog.reset_defaults()


def json_debug_logs() -> None:
    """Render JSON lines at debug level into stdout as the test phase has it (captured)."""
    configure("debug", "json")


def log_lines(out: str) -> list[dict[str, Any]]:
    """Every JSON line written to stdout."""
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def of_request(lines: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    """The lines that belong to one request."""
    return [line for line in lines if line.get("request_id") == request_id]


@asynccontextmanager
async def gateway_for(upstream: FakeUpstream, extra: str = "") -> AsyncIterator[Gateway]:
    """A gateway in front of `upstream`; stopping it flushes the access log."""
    async with running_gateway(upstream_config(upstream.url, extra=extra)) as gateway:
        yield gateway


async def chat(
    gateway: Gateway, content: str = "Hello", headers: dict[str, str] | None = None
) -> RawReply:
    """One non-streaming chat call."""
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": content}],
        "metadata": {"api_key": "hunter2-metadata-secret"},
    }
    return await raw_request(
        "POST",
        f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={
            "content-type": "application/json",
            "authorization": "Bearer sk-client-secret-value",
            **(headers or {}),
        },
    )


async def test_request_lines_carry_client_trace_id(
    upstream: FakeUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """With tracing off, every line of a request carries its id and the client's trace id."""
    json_debug_logs()
    async with gateway_for(upstream, BODIES.format(cap=4096)) as gateway:
        reply = await chat(gateway, headers={"traceparent": TRACEPARENT})
    request_id = reply.headers["x-request-id"]
    lines = of_request(log_lines(capsys.readouterr().out), request_id)
    events = {line["event"] for line in lines}
    assert {"request", "request_body", "response_body"} <= events
    assert all(line["trace_id"] == CLIENT_TRACE for line in lines)


async def test_request_lines_carry_server_span_trace_id(
    upstream: FakeUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """With tracing on, every line of a request carries the trace id of its server span."""
    json_debug_logs()
    text = upstream_config(upstream.url, extra=BODIES.format(cap=4096))
    traced = parse_config(text + "\ntracing: {enabled: true}\n", "traced.yaml", {})
    exporter = InMemorySpanExporter()
    tracing = setup_tracing(traced.config, exporter=exporter)
    assert tracing is not None
    try:
        async with running_gateway(text) as gateway:
            reply = await chat(gateway)
        assert tracing.force_flush()
    finally:
        tracing.shutdown()
    server = next(span for span in exporter.get_finished_spans() if span.parent is None)
    assert server.context is not None
    lines = of_request(log_lines(capsys.readouterr().out), reply.headers["x-request-id"])
    assert {line["event"] for line in lines} >= {"request", "request_body", "response_body"}
    assert {line["trace_id"] for line in lines} == {f"{server.context.trace_id:032x}"}


async def test_untraced_request_does_not_inherit_a_trace_id(
    upstream: FakeUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """A request without traceparent after one with it carries no trace id in its lines."""
    json_debug_logs()
    async with gateway_for(upstream) as gateway:
        await chat(gateway, headers={"traceparent": TRACEPARENT})
        plain = await chat(gateway)
    lines = of_request(log_lines(capsys.readouterr().out), plain.headers["x-request-id"])
    assert lines
    assert all(line.get("trace_id") is None for line in lines)


async def test_secrets_are_redacted_from_logged_bodies(
    upstream: FakeUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keys inside logged bodies and the client's and upstream's credentials never show."""
    json_debug_logs()
    async with gateway_for(upstream, BODIES.format(cap=4096)) as gateway:
        await chat(gateway, content="my key is sk-proj-abcdefghijkl and Bearer tok-123456")
    out = capsys.readouterr().out
    body = next(line for line in log_lines(out) if line["event"] == "request_body")["body"]
    assert '"api_key": "***"' in body
    assert "sk-***" in body and "Bearer ***" in body
    for secret in ("hunter2", "sk-proj-abcdefghijkl", "tok-123456", "sk-client-secret", "sk-ups"):
        assert secret not in out


def test_authorization_fields_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """Fields named like credentials are masked whatever their value."""
    json_debug_logs()
    get_logger().info("upstream_call", authorization="Bearer abc.def", api_key="plain-value")
    (line,) = log_lines(capsys.readouterr().out)
    assert line["authorization"] == "***"
    assert line["api_key"] == "***"


async def test_logged_bodies_are_cut_to_the_cap(
    upstream: FakeUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """Request and response bodies longer than body_max_bytes are cut and marked truncated."""
    json_debug_logs()
    async with gateway_for(upstream, BODIES.format(cap=64)) as gateway:
        await chat(gateway, content="x" * 500)
    lines = {line["event"]: line for line in log_lines(capsys.readouterr().out)}
    for event in ("request_body", "response_body"):
        assert len(lines[event]["body"].encode()) <= 64
        assert lines[event]["truncated"] is True
        assert lines[event]["body_bytes"] > 64


async def test_bodies_are_not_logged_by_default(
    upstream: FakeUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without logging.log_bodies no body line is written, even at debug level."""
    json_debug_logs()
    async with gateway_for(upstream) as gateway:
        assert (await chat(gateway, content="private words")).status == 200
    out = capsys.readouterr().out
    assert "private words" not in out
    assert not [line for line in log_lines(out) if line["event"].endswith("_body")]
