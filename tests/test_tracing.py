"""OpenTelemetry spans through a real gateway, read back from an in-memory exporter.

Tracing is installed with `setup_tracing(config, exporter=...)` around a gateway whose own
config leaves tracing off (one tracing per process), so the spans the gateway emits land in the
test's exporter. The fake upstream records the `traceparent` it received.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from llmux.config import ConfigError, parse_config
from llmux.serve import Gateway
from llmux.tracing import active_tracing, setup_tracing
from tests.helpers.edge import RawReply, data_payloads, raw_request
from tests.helpers.gateway import running_gateway, upstream_config
from tests.helpers.upstream import FakeUpstream, Reply

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
CHAT = {
    "model": "smart",
    "messages": [{"role": "user", "content": "Say hello to Ada"}],
    "max_tokens": 64,
    "temperature": 0.25,
}


@dataclass
class Traced:
    """A running gateway whose spans go to `spans`."""

    gateway: Gateway
    exporter: InMemorySpanExporter

    def spans(self) -> Sequence[ReadableSpan]:
        """Every span ended so far, after flushing the batch processor."""
        tracing = active_tracing()
        assert tracing is not None
        assert tracing.force_flush()
        return self.exporter.get_finished_spans()

    def one(self, kind: SpanKind) -> ReadableSpan:
        """The only span of `kind`."""
        found = [span for span in self.spans() if span.kind is kind]
        assert len(found) == 1, found
        return found[0]

    async def post(
        self, body: dict[str, object], headers: dict[str, str] | None = None
    ) -> RawReply:
        """POST `body` to /v1/chat/completions."""
        return await raw_request(
            "POST",
            f"http://127.0.0.1:{self.gateway.port}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json", **(headers or {})},
        )


@asynccontextmanager
async def traced(
    upstream: FakeUpstream, *, tracing: str = "", retry_count: int = 0
) -> AsyncIterator[Traced]:
    """A gateway in front of `upstream` with tracing on (`tracing` adds `tracing:` keys)."""
    text = upstream_config(upstream.url, retry_count=retry_count)
    keys = "".join(f"\n  {line}" for line in tracing.splitlines() if line.strip())
    loaded = parse_config(f"{text}\ntracing:\n  enabled: true{keys}\n", "tracing.yaml", {})
    exporter = InMemorySpanExporter()
    installed = setup_tracing(loaded.config, exporter=exporter)
    assert installed is not None
    try:
        async with running_gateway(text) as gateway:
            yield Traced(gateway, exporter)
    finally:
        installed.shutdown()


def attributes(span: ReadableSpan) -> dict[str, object]:
    """The span's attributes as a plain dict."""
    return dict(span.attributes or {})


def attempt_number(span: ReadableSpan) -> int:
    """The `llmux.attempt` of a client span."""
    number = attributes(span)["llmux.attempt"]
    assert isinstance(number, int)
    return number


async def test_request_has_server_span_with_client_child(upstream: FakeUpstream) -> None:
    """A chat call yields a SERVER span named `chat <model>` with one CLIENT span under it."""
    async with traced(upstream) as run:
        assert (await run.post(CHAT)).status == 200
        server, client = run.one(SpanKind.SERVER), run.one(SpanKind.CLIENT)
    assert server.name == "chat smart"
    assert client.name == "chat gpt-4o"
    assert client.parent is not None and server.context is not None
    assert client.parent.span_id == server.context.span_id
    assert client.context is not None and client.context.trace_id == server.context.trace_id


async def test_client_span_has_genai_attributes(upstream: FakeUpstream) -> None:
    """The attempt span carries the GenAI request, response and usage attributes."""
    async with traced(upstream) as run:
        await run.post(CHAT)
        client = attributes(run.one(SpanKind.CLIENT))
    assert client["gen_ai.operation.name"] == "chat"
    assert client["gen_ai.provider.name"] == "openai-compatible"
    assert client["gen_ai.request.model"] == "gpt-4o"
    assert client["gen_ai.response.model"] == "gpt-4o"
    assert client["llmux.model_group"] == "smart"
    assert client["gen_ai.request.max_tokens"] == 64
    assert client["gen_ai.request.temperature"] == 0.25
    assert client["gen_ai.usage.input_tokens"] == 19
    assert client["gen_ai.usage.output_tokens"] == 10
    assert client["gen_ai.response.finish_reasons"] == ("stop",)
    assert client["llmux.deployment"] == "upstream/smart"
    assert client["llmux.attempt"] == 1
    assert client["server.address"] == "127.0.0.1"


async def test_server_span_has_request_outcome(upstream: FakeUpstream) -> None:
    """The request span records the HTTP status, model group, deployment and usage."""
    async with traced(upstream) as run:
        await run.post(CHAT)
        server = run.one(SpanKind.SERVER)
    values = attributes(server)
    assert values["http.response.status_code"] == 200
    assert values["http.route"] == "/v1/chat/completions"
    assert values["gen_ai.operation.name"] == "chat"
    assert values["gen_ai.request.model"] == "smart"
    assert values["gen_ai.response.model"] == "gpt-4o"
    assert values["llmux.deployment"] == "upstream/smart"
    assert values["llmux.attempts"] == 1
    assert values["gen_ai.usage.output_tokens"] == 10
    assert server.status.status_code is StatusCode.UNSET


async def test_client_traceparent_is_continued(upstream: FakeUpstream) -> None:
    """The server span joins the client's trace, as a child of the client's span."""
    async with traced(upstream) as run:
        await run.post(CHAT, {"traceparent": TRACEPARENT})
        server = run.one(SpanKind.SERVER)
    assert server.context is not None and server.parent is not None
    assert f"{server.context.trace_id:032x}" == CLIENT_TRACE
    assert f"{server.parent.span_id:016x}" == CLIENT_SPAN


async def test_upstream_receives_attempt_traceparent(upstream: FakeUpstream) -> None:
    """The upstream request carries a traceparent naming the client trace and the attempt span."""
    async with traced(upstream) as run:
        await run.post(CHAT, {"traceparent": TRACEPARENT})
        client = run.one(SpanKind.CLIENT)
    sent = upstream.received[-1].headers["traceparent"]
    version, trace_id, parent_id, flags = sent.split("-")
    assert client.context is not None
    assert (version, trace_id, flags) == ("00", CLIENT_TRACE, "01")
    assert parent_id == f"{client.context.span_id:016x}"


async def test_retry_yields_two_client_spans(upstream: FakeUpstream) -> None:
    """A retried upstream 500 leaves a failed attempt span and a successful one."""
    upstream.enqueue(Reply(500, b'{"error": {"message": "boom", "type": "server_error"}}'))
    async with traced(upstream, retry_count=1) as run:
        assert (await run.post(CHAT)).status == 200
        clients = sorted(
            (span for span in run.spans() if span.kind is SpanKind.CLIENT), key=attempt_number
        )
    assert [attempt_number(span) for span in clients] == [1, 2]
    failed, succeeded = clients
    assert failed.status.status_code is StatusCode.ERROR
    assert attributes(failed)["http.response.status_code"] == 500
    assert "gen_ai.usage.output_tokens" not in attributes(failed)
    assert attributes(succeeded)["gen_ai.usage.output_tokens"] == 10


async def test_upstream_failure_marks_server_span(upstream: FakeUpstream) -> None:
    """An upstream 500 relayed to the client is an error on the server span with its type."""
    upstream.enqueue(Reply(500, b'{"error": {"message": "boom", "type": "server_error"}}'))
    async with traced(upstream) as run:
        assert (await run.post(CHAT)).status == 500
        server = run.one(SpanKind.SERVER)
    assert server.status.status_code is StatusCode.ERROR
    assert attributes(server)["error.type"] == "server_error"


async def test_stream_attempt_span_carries_usage(upstream: FakeUpstream) -> None:
    """A stream's attempt span ends with the relay and reports the final usage."""
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with traced(upstream) as run:
        reply = await run.post(body)
        client = attributes(run.one(SpanKind.CLIENT))
    assert data_payloads(reply.body)[-1] == b"[DONE]"
    assert client["llmux.stream"] is True
    assert isinstance(client["gen_ai.usage.output_tokens"], int)
    assert client["gen_ai.usage.output_tokens"] > 0


async def test_content_is_not_recorded_by_default(upstream: FakeUpstream) -> None:
    """Without capture_content no span holds the prompt or the completion."""
    async with traced(upstream) as run:
        await run.post(CHAT)
        spans = run.spans()
    for span in spans:
        assert not any("Ada" in str(value) for value in attributes(span).values())
        assert "gen_ai.input.messages" not in attributes(span)
        assert "gen_ai.output.messages" not in attributes(span)


async def test_content_is_recorded_with_capture_content(upstream: FakeUpstream) -> None:
    """With capture_content the attempt span holds the prompt and the completion."""
    async with traced(upstream, tracing="capture_content: true") as run:
        await run.post(CHAT)
        client = attributes(run.one(SpanKind.CLIENT))
    prompt = json.loads(str(client["gen_ai.input.messages"]))
    completion = json.loads(str(client["gen_ai.output.messages"]))
    assert prompt == CHAT["messages"]
    assert completion[0]["content"] == "Hello! How can I assist you today?"


async def test_sampling_zero_records_nothing(upstream: FakeUpstream) -> None:
    """With sample_ratio 0.0 a request without a sampled parent exports no span."""
    async with traced(upstream, tracing="sample_ratio: 0.0") as run:
        assert (await run.post(CHAT)).status == 200
        assert run.spans() == ()
    flags = upstream.received[-1].headers["traceparent"].rsplit("-", 1)[1]
    assert int(flags, 16) & 1 == 0, "the upstream must see the trace as not sampled"


async def test_health_checks_are_not_traced(upstream: FakeUpstream) -> None:
    """Probes outside /v1 produce no spans."""
    async with traced(upstream) as run:
        reply = await raw_request("GET", f"http://127.0.0.1:{run.gateway.port}/health/live")
        assert reply.status == 200
        assert run.spans() == ()


async def test_gateway_sets_up_and_removes_tracing(upstream: FakeUpstream) -> None:
    """A gateway with tracing.enabled installs tracing while it runs and removes it on stop."""
    text = upstream_config(upstream.url)
    text += "\ntracing:\n  enabled: true\n  sample_ratio: 0.0\n"
    text += "  endpoint: http://127.0.0.1:9/v1/traces\n"
    async with running_gateway(text) as gateway:
        assert gateway.tracing is not None
        assert active_tracing() is gateway.tracing
    assert active_tracing() is None


def test_sample_ratio_out_of_range_is_refused() -> None:
    """A sample_ratio above 1.0 fails at config load, naming the key and its line."""
    with pytest.raises(
        ConfigError, match=r"bad\.yaml:1: tracing\.sample_ratio: expected `float` <= 1\.0"
    ):
        parse_config("tracing: {enabled: true, sample_ratio: 1.5}\n", "bad.yaml", {})
    assert active_tracing() is None


_TRACING_OFF_SCRIPT = """
import asyncio, sys
import aiohttp
import redis.asyncio  # redis-py imports OpenTelemetry's metrics API itself when it is installed

def otel_modules():
    return {name for name in sys.modules if name.startswith("opentelemetry")}

BEFORE = otel_modules()
from llmux.config import parse_config
from llmux.serve import Gateway

CONFIG = '''
server: {host: 127.0.0.1, port: 0, admin_port: 0}
providers: [{name: mock, type: mock, models: [mock-gpt]}]
store: {url: 'memory://'}
'''

async def main():
    async with Gateway(parse_config(CONFIG, "off.yaml", {})) as gateway:
        url = f"http://127.0.0.1:{gateway.port}/v1/chat/completions"
        body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=body, headers=headers) as response:
                assert response.status == 200, await response.text()
    added = otel_modules() - BEFORE
    print(sorted(added), "llmux.otel" in sys.modules, "opentelemetry.sdk.trace" in sys.modules)

asyncio.run(main())
"""


def test_tracing_off_imports_no_opentelemetry() -> None:
    """A gateway serving a traced client with tracing off imports nothing of OpenTelemetry.

    Checked in a fresh interpreter, against what redis-py loads on its own.
    """
    done = subprocess.run(
        [sys.executable, "-c", _TRACING_OFF_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[] False False"
