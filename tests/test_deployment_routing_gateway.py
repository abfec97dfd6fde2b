"""Per-deployment timeouts, the context-window filter and the `route` log line, end to end.

Two fake upstreams `one` and `two` serve the group `gpt-4o-mini` under round-robin, so the
first request goes to `one`; `spare` serves `backup`. Every provider's own timeouts are
generous (first byte 2 s, idle 1 s, total 3 s); `one`'s model entry may override them.
"""

from __future__ import annotations

import json
import logging

import pytest

from llmux.serve import Gateway
from tests.helpers.edge import RawReply, data_payloads, raw_request
from tests.helpers.gateway import running_gateway
from tests.helpers.logs import events
from tests.helpers.ports import free_port
from tests.helpers.upstream import FakeUpstream, Hang, Stream, sse_frames

ONE = "one/gpt-4o-mini"
TWO = "two/gpt-4o-mini"
FRAMES = sse_frames("chat_stream.sse")
DEFAULTS = "{connect: 1s, first_byte: 2s, idle: 1s, total: 3s}"


def config(one: str, two: str, spare: str, *, entry: str = "", routing: str = "") -> str:
    """The three providers; `entry` adds keys to `one`'s model entry, `routing` routing keys."""
    return f"""
server:
  host: 127.0.0.1
  port: 0
  admin_port: {free_port()}
providers:
  - name: one
    type: openai-compatible
    base_url: {one}
    api_key: sk-one
    models:
      - {{name: gpt-4o-mini, {entry}}}
    timeouts: {DEFAULTS}
  - name: two
    type: openai-compatible
    base_url: {two}
    api_key: sk-two
    models: [gpt-4o-mini]
    timeouts: {DEFAULTS}
  - name: spare
    type: openai-compatible
    base_url: {spare}
    api_key: sk-spare
    models: [backup]
    timeouts: {DEFAULTS}
routing:
  strategy: round-robin
  retry_count: 1
{routing}
"""


async def chat(
    gateway: Gateway, model: str = "gpt-4o-mini", *, stream: bool = False, **extra: object
) -> RawReply:
    """One chat completion through the gateway, read whole."""
    body = {"model": model, "messages": [{"role": "user", "content": "Hello"}], "stream": stream}
    return await raw_request(
        "POST",
        f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
        data=json.dumps({**body, **extra}).encode(),
        headers={"Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("override", "stream"),
    [("total: 200ms", False), ("first_byte: 200ms", False), ("first_byte: 200ms", True)],
)
async def test_deployment_timeout_retries_on_the_other_deployment(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream], override: str, stream: bool
) -> None:
    """A hang longer than `one`'s own timeout (but within its provider's) moves to `two`."""
    one, two, spare = fakes
    one.enqueue(Hang(1.5))
    async with running_gateway(
        config(one.url, two.url, spare.url, entry=f"timeouts: {{{override}}}")
    ) as gateway:
        reply = await chat(gateway, stream=stream)
    assert reply.status == 200
    assert reply.headers["x-llmux-deployment"] == TWO
    assert reply.headers["x-llmux-attempts"] == "2"
    assert (len(one.received), len(two.received)) == (1, 1)
    if stream:
        assert reply.body.endswith(b"data: [DONE]\n\n")


async def test_hang_within_the_provider_default_is_not_cut(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """Without an override the same 300 ms hang is waited out: the provider allows 2 s."""
    one, two, spare = fakes
    one.enqueue(Hang(0.3))
    async with running_gateway(config(one.url, two.url, spare.url)) as gateway:
        reply = await chat(gateway)
    assert reply.status == 200
    assert reply.headers["x-llmux-deployment"] == ONE
    assert two.received == []


async def test_deployment_idle_timeout_after_first_byte_ends_with_error_event(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """`one`'s own idle limit cuts its slow stream with a final error event; `two` (provider
    default idle) streams the same pace to [DONE]."""
    one, two, spare = fakes
    one.enqueue(Stream(FRAMES, delay=0.5))
    two.stream_delay = 0.5
    async with running_gateway(
        config(one.url, two.url, spare.url, entry="timeouts: {idle: 200ms}")
    ) as gateway:
        cut = await chat(gateway, stream=True)
        whole = await chat(gateway, stream=True)
    assert cut.status == 200
    assert cut.headers["x-llmux-deployment"] == ONE
    last = json.loads(data_payloads(cut.body)[-1])
    assert last["error"]["code"] == "upstream_timeout"
    assert whole.headers["x-llmux-deployment"] == TWO
    assert whole.body.endswith(b"data: [DONE]\n\n")


async def test_stream_cut_before_first_byte_retries_in_the_group(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """A stream dropped before any frame is retried on the group's other deployment."""
    one, two, spare = fakes
    one.enqueue(Stream([], cut=True))
    async with running_gateway(config(one.url, two.url, spare.url)) as gateway:
        reply = await chat(gateway, stream=True)
    assert reply.status == 200
    assert reply.headers["x-llmux-deployment"] == TWO
    assert reply.body.endswith(b"data: [DONE]\n\n")


async def test_context_window_filter_skips_the_small_deployment(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """With `one` limited to 50 tokens, requests asking 100 output tokens all go to `two`."""
    one, two, spare = fakes
    async with running_gateway(
        config(one.url, two.url, spare.url, entry="context_window: 50")
    ) as gateway:
        replies = [await chat(gateway, max_tokens=100) for _ in range(3)]
    assert [r.headers["x-llmux-deployment"] for r in replies] == [TWO] * 3
    assert one.received == []


async def test_request_beyond_every_window_is_context_length_exceeded(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """Beyond every known window (gpt-4o-mini: 128k in the catalogue): 400, no upstream call."""
    one, two, spare = fakes
    async with running_gateway(config(one.url, two.url, spare.url)) as gateway:
        reply = await chat(gateway, max_tokens=200_000)
    assert reply.status == 400
    error = reply.json["error"]
    assert error["code"] == "context_length_exceeded"
    assert "gpt-4o-mini" in error["message"] and "2000" in error["message"]
    assert one.received == two.received == []


async def test_context_length_exceeded_takes_the_context_window_fallback(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
) -> None:
    """The filter's 400 moves to `context_window_fallbacks` (`backup` has no known window)."""
    one, two, spare = fakes
    routing = "  context_window_fallbacks: {gpt-4o-mini: [backup]}"
    async with running_gateway(config(one.url, two.url, spare.url, routing=routing)) as gateway:
        reply = await chat(gateway, max_tokens=200_000)
    assert reply.status == 200
    assert reply.headers["x-llmux-fallback-from"] == "gpt-4o-mini"
    assert reply.headers["x-llmux-deployment"] == "spare/backup"


async def test_access_line_names_candidates_exclusions_and_pick(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream], capsys: pytest.CaptureFixture[str]
) -> None:
    """The one access line of a routed request: group, strategy, candidates, exclusions, pick."""
    one, two, spare = fakes
    async with running_gateway(
        config(one.url, two.url, spare.url, entry="context_window: 50")
    ) as gateway:
        reply = await chat(gateway, max_tokens=100)
    lines = events(capsys.readouterr().out, "request")
    assert len(lines) == 1
    line = lines[0]
    assert line["level"] == "info"
    assert line["request_id"] == reply.headers["x-request-id"]
    assert (line["group"], line["strategy"]) == ("gpt-4o-mini", "round-robin")
    assert line["candidates"] == [TWO]
    assert line["excluded"] == {ONE: "context_window"}
    assert (line["deployment"], line["attempts"], line["fallback_from"]) == (TWO, 1, None)


async def test_access_line_names_capacity_exclusions(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream], capsys: pytest.CaptureFixture[str]
) -> None:
    """A deployment at its rpm limit is listed as excluded for `capacity`."""
    one, two, spare = fakes
    async with running_gateway(config(one.url, two.url, spare.url, entry="rpm: 1")) as gateway:
        await chat(gateway)
        await chat(gateway)
    routes = events(capsys.readouterr().out, "request")
    assert routes[0]["deployment"] == ONE
    assert routes[1]["excluded"] == {ONE: "capacity"}
    assert routes[1]["deployment"] == TWO


async def test_no_request_line_when_info_is_off(
    fakes: tuple[FakeUpstream, FakeUpstream, FakeUpstream],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Below info level neither the routing decision nor the access line is written."""
    one, two, spare = fakes
    monkeypatch.setattr("llmux.log._level", logging.WARNING)
    quiet = config(one.url, two.url, spare.url) + "logging:\n  level: warning\n"
    async with running_gateway(quiet) as gateway:
        reply = await chat(gateway)
    assert reply.status == 200
    assert events(capsys.readouterr().out, "request") == []
