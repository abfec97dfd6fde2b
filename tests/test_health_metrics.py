"""Observability: health probes and Prometheus metrics on the admin port, and the access log.

The metrics tests drive one scripted mix of traffic through a gateway with `retry_count: 1`
(two chats, one stream, one unknown model, one upstream 429 that is retried and fails again,
one upstream 503 that is retried and succeeds), then read `/metrics` with prometheus_client's
parser. The access log is read through structlog (console format) and from stdout (JSON).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from openai.types.chat import ChatCompletionMessageParam

from llmux.serve import Gateway
from tests.helpers.edge import metric_samples, raw_request, rejected, sdk_client
from tests.helpers.gateway import running_gateway, upstream_config
from tests.helpers.upstream import FakeUpstream, Reply, fixture_bytes

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
UNKNOWN_MODEL = "client-made-up-model-x9"
ROUTE = "/v1/chat/completions"
DEPLOYMENT = "upstream/gpt-4o-mini"
CLIENT_KEY = "sk-client-key-do-not-log"
UPSTREAM_KEY = "sk-upstream-secret"
OVERLOADED = b'{"error": {"message": "overloaded", "type": "server_error", "param": null}}'

Samples = list[tuple[str, dict[str, str], float]]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every sample called `name` whose labels include `labels`."""
    return sum(
        value
        for sample, sample_labels, value in samples
        if sample == name and labels.items() <= sample_labels.items()
    )


@pytest.fixture
async def metered(upstream: FakeUpstream) -> AsyncIterator[Samples]:
    """The /metrics samples after the scripted traffic (see the module docstring)."""
    config = upstream_config(upstream.url, retry_count=1)
    async with running_gateway(config) as gateway, sdk_client(gateway) as client:
        for _ in range(2):
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        )
        async for _ in stream:
            pass
        await rejected(client.chat.completions.create(model=UNKNOWN_MODEL, messages=HELLO))
        rate_limited = Reply(429, fixture_bytes("error_429.json"))
        upstream.enqueue(rate_limited, rate_limited)
        await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
        upstream.enqueue(Reply(503, OVERLOADED))
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        yield await metric_samples(gateway)


async def test_admin_health_live(gateway: Gateway) -> None:
    """/health/live on the admin port answers 200."""
    reply = await raw_request("GET", f"http://127.0.0.1:{gateway.admin_port}/health/live")
    assert reply.status == 200
    assert reply.json == {"status": "ok"}


async def test_admin_health_ready(gateway: Gateway) -> None:
    """/health/ready on the admin port answers 200 `ready` once started, its store checked."""
    reply = await raw_request("GET", f"http://127.0.0.1:{gateway.admin_port}/health/ready")
    assert reply.status == 200
    assert reply.json == {"status": "ready", "checks": {"store": "ok"}}


async def test_successful_requests_are_counted(metered: Samples) -> None:
    """Every 2xx chat (JSON, stream, retried) is counted under its route and model group."""
    count = total(
        metered,
        "llmux_requests_total",
        route=ROUTE,
        model_group="gpt-4o-mini",
        status_class="2xx",
    )
    assert count == 4


async def test_client_errors_are_counted(metered: Samples) -> None:
    """The upstream 429 and the unknown model are counted as 4xx on the chat route."""
    assert total(metered, "llmux_requests_total", route=ROUTE, status_class="4xx") == 2
    assert (
        total(
            metered,
            "llmux_requests_total",
            route=ROUTE,
            model_group="gpt-4o-mini",
            status_class="4xx",
        )
        == 1
    )


async def test_unknown_model_is_labelled_other(metered: Samples) -> None:
    """A model name invented by the client never becomes a label value; it is `other`."""
    labelled = {value for _, labels, _ in metered for value in labels.values()}
    assert UNKNOWN_MODEL not in labelled
    assert (
        total(
            metered,
            "llmux_requests_total",
            route=ROUTE,
            model_group="other",
            status_class="4xx",
        )
        == 1
    )


async def test_tokens_are_counted_from_upstream_usage(metered: Samples) -> None:
    """Input and output tokens add up the usage the fixtures report (3 x chat.json + 1 stream)."""
    tokens = "llmux_tokens_total"
    assert total(metered, tokens, model_group="gpt-4o-mini", type="input") == 4 * 19
    assert total(metered, tokens, model_group="gpt-4o-mini", type="output") == 3 * 10 + 6


async def test_time_to_first_token_is_observed(metered: Samples) -> None:
    """The stream records one time-to-first-token observation for its model group."""
    name = "llmux_time_to_first_token_seconds_count"
    assert total(metered, name, model_group="gpt-4o-mini") == 1


async def test_upstream_attempts_by_outcome(metered: Samples) -> None:
    """Each upstream attempt is timed under its deployment, by success or error."""
    name = "llmux_upstream_duration_seconds_count"
    assert total(metered, name, deployment=DEPLOYMENT, outcome="success") == 4
    assert total(metered, name, deployment=DEPLOYMENT, outcome="error") == 3


async def test_retries_are_counted(metered: Samples) -> None:
    """The retried 429 and the retried 503 count two upstream retries."""
    assert total(metered, "llmux_upstream_retries_total", model_group="gpt-4o-mini") == 2


async def test_nothing_in_flight_after_traffic(metered: Samples) -> None:
    """Once every response is complete, the in-flight gauge is back to 0."""
    assert [v for name, _, v in metered if name == "llmux_in_flight_requests"] == [0.0]


async def test_access_line_per_request_through_structlog(upstream: FakeUpstream) -> None:
    """The console-format access log emits one `request` event per call with its fields."""
    config = upstream_config(upstream.url, extra="logging:\n  format: console\n")
    with structlog.testing.capture_logs() as events:
        async with running_gateway(config) as gateway, sdk_client(gateway) as client:
            ok = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=HELLO
            )
            missing = await rejected(
                client.chat.completions.create(model=UNKNOWN_MODEL, messages=HELLO)
            )
    lines = [event for event in events if event["event"] == "request"]
    assert len(lines) == 2
    first, second = lines
    assert first["request_id"] == ok.headers["x-request-id"]
    assert (first["status"], first["model"], first["deployment"]) == (
        200,
        "gpt-4o-mini",
        DEPLOYMENT,
    )
    assert (first["input_tokens"], first["output_tokens"]) == (19, 10)
    assert isinstance(first["latency_ms"], float) and first["latency_ms"] >= 0
    assert second["request_id"] == missing.request_id
    assert (second["status"], second["model"], second["deployment"]) == (404, UNKNOWN_MODEL, None)


def json_access_lines(out: str) -> list[dict[str, Any]]:
    """The JSON access lines in captured stdout."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "request"]


async def test_json_access_line_per_request(
    upstream: FakeUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default JSON access log writes one line per call with id, status, model and tokens."""
    async with (
        running_gateway(upstream_config(upstream.url)) as gateway,
        sdk_client(gateway) as client,
    ):
        stream = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        )
        async for _ in stream.parse():
            pass
    lines = json_access_lines(capsys.readouterr().out)
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == stream.headers["x-request-id"]
    assert (line["status"], line["model"], line["deployment"]) == (200, "gpt-4o-mini", DEPLOYMENT)
    assert (line["input_tokens"], line["output_tokens"]) == (19, 6)
    assert line["latency_ms"] >= 0
    assert line["ttft_ms"] is not None


async def test_no_secret_is_logged(
    upstream: FakeUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """Neither the upstream key nor a client's key appears in any log event or log line."""
    config = upstream_config(upstream.url, extra=f"auth:\n  master_key: {CLIENT_KEY}\n")
    with structlog.testing.capture_logs() as events:
        async with running_gateway(config) as gateway:
            async with sdk_client(gateway, api_key=CLIENT_KEY) as client:
                await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
                upstream.enqueue(Reply(500, b"upstream crashed"))
                await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
            async with sdk_client(gateway, api_key=CLIENT_KEY + "-wrong") as intruder:
                await rejected(intruder.models.list())
    out = capsys.readouterr().out
    assert len(json_access_lines(out)) == 3
    assert events, "expected structlog events (listening, stopped)"
    logged = repr(events) + out
    for secret in (UPSTREAM_KEY, CLIENT_KEY):
        assert secret not in logged
