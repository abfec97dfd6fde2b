"""Upstream failures: timeouts, refused connections, broken streams and client disconnects.

Before the first byte an upstream failure is an HTTP error status (504, 502); after it, the
stream ends with a final `data: {"error": ...}` event, never a silent truncation and never
a new status. Raw aiohttp reads the SSE bytes; the SDK must raise `openai.APIError`.
Timeouts are shortened to 200 ms through `upstream_config` to keep the tests fast.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llmux.serve import Gateway
from tests.helpers.edge import (
    RawReply,
    assert_openai_error,
    data_payloads,
    eventually,
    eventually_async,
    metric_samples,
    raw_request,
    rejected,
    sdk_client,
)
from tests.helpers.gateway import running_gateway, upstream_config
from tests.helpers.ports import free_port
from tests.helpers.upstream import FakeUpstream, Hang, Reply, Stream, fixture_bytes, sse_frames

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
FRAMES = sse_frames("chat_stream.sse")
UPSTREAM_STREAM_ERROR = (
    b'data: {"error": {"message": "The server had an error while processing your request.'
    b' Sorry about that!", "type": "server_error", "param": null, "code": null}}\n\n'
)


@pytest.fixture
async def quick_gateway(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """A gateway whose upstream timeouts (first byte, idle, total) are all 200 ms."""
    config = upstream_config(upstream.url, first_byte="200ms", idle="200ms", total="200ms")
    async with running_gateway(config) as running:
        yield running


async def stream_raw(gateway: Gateway) -> RawReply:
    """A streamed chat for gpt-4o-mini, read to the end as raw bytes."""
    body = {"model": "gpt-4o-mini", "messages": HELLO, "stream": True}
    return await raw_request(
        "POST",
        f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )


def contents(payloads: list[bytes]) -> list[str]:
    """The `delta.content` of each chat chunk payload (empty string where absent)."""
    out = []
    for payload in payloads:
        chunk = json.loads(payload)
        assert chunk["model"] == "gpt-4o-mini", chunk
        out.append("".join(c["delta"].get("content") or "" for c in chunk["choices"]))
    return out


def final_error(payloads: list[bytes]) -> dict[str, object]:
    """The last payload, which must be a stream error event in the OpenAI error shape."""
    assert b"[DONE]" not in payloads, payloads
    last = json.loads(payloads[-1])
    assert set(last) == {"error"}, last
    error = last["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}, error
    return error


async def test_upstream_timeout_is_504(quick_gateway: Gateway, upstream: FakeUpstream) -> None:
    """An upstream that answers nothing within the timeout gives a 504 `upstream_timeout`."""
    upstream.enqueue(Hang(0.5))
    async with sdk_client(quick_gateway) as client:
        exc = await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert exc.status_code == 504
    assert_openai_error(
        exc.response.json(),
        type="timeout_error",
        code="upstream_timeout",
        param=None,
        mentions=("timed out",),
    )


async def test_server_write_timeout_caps_the_upstream_total(upstream: FakeUpstream) -> None:
    """`server.write_timeout` bounds a non-streaming answer even when the provider allows more."""
    config = upstream_config(upstream.url, server_extra="write_timeout: 200ms", total="30s")
    upstream.enqueue(Hang(1.0))
    async with running_gateway(config) as gateway, sdk_client(gateway) as client:
        exc = await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert exc.status_code == 504
    assert exc.code == "upstream_timeout"


async def test_stream_timeout_before_first_byte_is_504(
    quick_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """A streamed call whose upstream never answers is a 504 too, not an empty stream."""
    upstream.enqueue(Hang(0.5))
    async with sdk_client(quick_gateway) as client:
        exc = await rejected(
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
        )
    assert exc.status_code == 504
    assert exc.code == "upstream_timeout"


async def test_idle_timeout_mid_stream_ends_with_error_event(
    quick_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """A stream that goes quiet sends the frames so far, then a final `upstream_timeout` event."""
    upstream.enqueue(Stream(FRAMES[:2], delay=0.5))
    reply = await stream_raw(quick_gateway)
    assert reply.status == 200
    payloads = data_payloads(reply.body)
    assert contents(payloads[:1]) == [""]
    assert len(payloads) == 2
    error = final_error(payloads)
    assert error["code"] == "upstream_timeout"


async def test_slow_stream_within_idle_limit_is_not_cut(
    quick_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """Frames 100 ms apart outlive a 200 ms idle limit many times over and still complete."""
    frames = sse_frames("chat_stream.sse")
    upstream.enqueue(Stream(frames, delay=0.1))
    reply = await stream_raw(quick_gateway)
    assert reply.status == 200
    assert reply.body.endswith(b"data: [DONE]\n\n")
    assert b'"error"' not in reply.body


async def test_idle_timeout_mid_stream_raises_in_the_sdk(
    quick_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """The SDK gets the first chunk of a stream that goes quiet, then raises APIError."""
    upstream.enqueue(Stream(FRAMES[:2], delay=0.5))
    seen: list[str] = []
    async with sdk_client(quick_gateway) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        )
        with pytest.raises(openai.APIError) as info:
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.role or "")
    assert seen == ["assistant"]
    assert "timed out" in info.value.message
    assert info.value.code == "upstream_timeout"


async def test_connection_refused_is_502(upstream: FakeUpstream) -> None:
    """An upstream nobody listens on gives a 502 `upstream_connection_error`."""
    closed = f"http://127.0.0.1:{free_port()}/v1"
    async with running_gateway(upstream_config(closed)) as gateway, sdk_client(gateway) as client:
        exc = await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert exc.status_code == 502
    assert_openai_error(
        exc.response.json(),
        type="api_error",
        code="upstream_connection_error",
        param=None,
        mentions=("cannot connect",),
    )


async def test_cut_stream_ends_with_error_event(gateway: Gateway, upstream: FakeUpstream) -> None:
    """An upstream that drops the connection mid-stream: frames so far, then an error event."""
    upstream.enqueue(Stream(FRAMES[:3], cut=True))
    reply = await stream_raw(gateway)
    assert reply.status == 200
    payloads = data_payloads(reply.body)
    assert contents(payloads[:3]) == ["", "Hello", "!"]
    assert len(payloads) == 4
    final_error(payloads)


async def test_upstream_error_frame_is_relayed_and_ends_the_stream(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """An upstream error frame after the client's first bytes is relayed as the last event."""
    upstream.enqueue(Stream([*FRAMES[:2], UPSTREAM_STREAM_ERROR, *FRAMES[2:]], delay=0.1))
    reply = await stream_raw(gateway)
    assert reply.status == 200
    payloads = data_payloads(reply.body)
    assert contents(payloads[:2]) == ["", "Hello"]
    assert len(payloads) == 3
    error = final_error(payloads)
    assert error["type"] == "server_error"
    assert error["message"] == (
        "The server had an error while processing your request. Sorry about that!"
    )


async def test_stream_with_finish_reason_but_no_done_gets_done(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """An upstream that ends after a finish_reason without [DONE] still yields a [DONE]."""
    upstream.enqueue(Stream(FRAMES[:5]))
    reply = await stream_raw(gateway)
    payloads = data_payloads(reply.body)
    assert payloads[-1] == b"[DONE]"
    assert contents(payloads[:-1]) == ["", "Hello", "!", " How can I help?", ""]


async def test_stream_ending_abruptly_ends_with_error_event(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """An upstream that ends cleanly but before any finish_reason: an error event, no [DONE]."""
    upstream.enqueue(Stream(FRAMES[:3]))
    reply = await stream_raw(gateway)
    assert reply.status == 200
    payloads = data_payloads(reply.body)
    assert contents(payloads[:3]) == ["", "Hello", "!"]
    error = final_error(payloads)
    assert error["code"] == "bad_upstream_response"


async def in_flight(gateway: Gateway) -> float:
    """The gateway's in-flight gauge, read from the admin /metrics page."""
    samples = await metric_samples(gateway)
    return next(v for name, _, v in samples if name == "llmux_in_flight_requests")


async def test_client_disconnect_reads_the_upstream_to_its_end(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """A client that hangs up mid-stream: the upstream is read to its end (for its usage)."""
    upstream.stream_delay = 0.02
    await _hang_up_mid_stream(gateway)
    assert await eventually(lambda: upstream.active_streams == 0)
    assert upstream.aborted_streams == 0

    async def idle() -> bool:
        return await in_flight(gateway) == 0

    assert await eventually_async(idle)


async def test_client_disconnect_releases_the_upstream_without_drain(
    upstream: FakeUpstream,
) -> None:
    """With `abandoned_stream_drain: 0` the upstream stream is aborted at once."""
    upstream.stream_delay = 0.1
    config = upstream_config(upstream.url, server_extra="abandoned_stream_drain: 0s")
    async with running_gateway(config) as gateway:
        await _hang_up_mid_stream(gateway)
        assert await eventually(
            lambda: upstream.aborted_streams == 1 and upstream.active_streams == 0
        )

        async def idle() -> bool:
            return await in_flight(gateway) == 0

        assert await eventually_async(idle)


async def _hang_up_mid_stream(gateway: Gateway) -> None:
    body = {"model": "gpt-4o-mini", "messages": HELLO, "stream": True}
    url = f"http://127.0.0.1:{gateway.port}/v1/chat/completions"
    async with aiohttp.ClientSession() as session:
        response = await session.post(url, json=body)
        assert response.status == 200
        first = await response.content.readany()
        assert first.startswith(b"data: {")
        response.close()


async def test_gateway_serves_after_a_client_disconnect(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """After a client hung up mid-stream, the next request is served normally."""
    upstream.stream_delay = 0.05
    body = {"model": "gpt-4o-mini", "messages": HELLO, "stream": True}
    url = f"http://127.0.0.1:{gateway.port}/v1/chat/completions"
    async with aiohttp.ClientSession() as session:
        response = await session.post(url, json=body)
        await response.content.readany()
        response.close()
    assert await eventually(lambda: upstream.active_streams == 0)
    upstream.stream_delay = 0.0
    async with sdk_client(gateway) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert completion.choices[0].message.content == "Hello! How can I assist you today?"


@pytest.fixture
async def retrying_gateway(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """A gateway that retries a failed upstream attempt up to twice (`retry_count: 2`)."""
    async with running_gateway(upstream_config(upstream.url, retry_count=2)) as running:
        yield running


def upstream_error(status: int, message: str) -> Reply:
    """An OpenAI-shaped upstream error reply."""
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return Reply(status, json.dumps(body).encode())


async def test_retry_after_503_succeeds(retrying_gateway: Gateway, upstream: FakeUpstream) -> None:
    """An upstream 503 followed by a success gives the client a 200 after two upstream calls."""
    upstream.enqueue(upstream_error(503, "The engine is currently overloaded."))
    async with sdk_client(retrying_gateway) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert completion.choices[0].message.content == "Hello! How can I assist you today?"
    assert len(upstream.received) == 2


async def test_stream_is_retried_before_its_first_byte(
    retrying_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """A streamed call whose first attempt gets a 503 is retried and streams in full."""
    upstream.enqueue(upstream_error(503, "The engine is currently overloaded."))
    async with sdk_client(retrying_gateway) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == "Hello! How can I help?"
    assert len(upstream.received) == 2


async def test_client_error_from_upstream_is_not_retried(
    retrying_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """An upstream 400 is returned at once, after a single upstream call."""
    upstream.enqueue(Reply(400, fixture_bytes("error_400_context.json")))
    async with sdk_client(retrying_gateway) as client:
        exc = await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert exc.status_code == 400
    assert exc.code == "context_length_exceeded"
    assert len(upstream.received) == 1


async def test_exhausted_retries_return_the_last_upstream_error(
    retrying_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """When every attempt fails, the client gets the last upstream status and message."""
    upstream.enqueue(
        upstream_error(500, "first failure"),
        upstream_error(502, "second failure"),
        upstream_error(503, "third failure"),
    )
    async with sdk_client(retrying_gateway) as client:
        exc = await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert exc.status_code == 503
    assert_openai_error(
        exc.response.json(),
        type="server_error",
        code=None,
        param=None,
        mentions=("third failure",),
    )
    assert len(upstream.received) == 3


async def test_rate_limit_with_retry_after_is_retried(
    retrying_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """An upstream 429 carrying `retry-after-ms` is retried and the call succeeds."""
    upstream.enqueue(Reply(429, fixture_bytes("error_429.json"), {"retry-after-ms": "10"}))
    async with sdk_client(retrying_gateway) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert completion.choices[0].finish_reason == "stop"
    assert len(upstream.received) == 2
