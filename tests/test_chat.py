"""`POST /v1/chat/completions` through the official SDK: passthrough, streaming, usage, tools."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema

from llmux.serve import Gateway
from tests.helpers.upstream import FakeUpstream, Stream, sse_frames

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
STREAM_USAGE = {
    "prompt_tokens": 19,
    "completion_tokens": 6,
    "total_tokens": 25,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[aiohttp.ClientSession]:
    """A raw HTTP client on the gateway port, for the exact bytes the SDK hides."""
    async with aiohttp.ClientSession(f"http://127.0.0.1:{gateway.port}") as session:
        yield session


async def raw_stream(http: aiohttp.ClientSession, body: dict[str, Any]) -> bytes:
    """POST a streaming chat request and return the whole SSE body."""
    async with http.post("/v1/chat/completions", json=body) as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return await response.read()


def sse_payloads(body: bytes) -> list[dict[str, Any]]:
    """The JSON payloads of every `data:` frame before `[DONE]`."""
    frames = [frame for frame in body.split(b"\n\n") if frame.strip()]
    payloads = [frame.removeprefix(b"data: ") for frame in frames]
    return [json.loads(payload) for payload in payloads if payload != b"[DONE]"]


async def test_chat_returns_upstream_message(client: openai.AsyncOpenAI) -> None:
    """A non-streaming chat returns the upstream's content, finish_reason and usage."""
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    choice = completion.choices[0]
    assert choice.message.content == "Hello! How can I assist you today?"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (19, 10)
    assert completion.usage.total_tokens == 29


async def test_chat_reports_client_model_name(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """The response names the model the client asked for, while the upstream got its own name."""
    completion = await client.chat.completions.create(model="smart", messages=HELLO)
    assert completion.model == "smart"
    assert upstream.received[0].json["model"] == "gpt-4o"


async def test_chat_forwards_every_other_field_unchanged(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """Tools, images, response_format, logprobs and unknown fields reach the upstream as sent."""
    messages: list[ChatCompletionMessageParam] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image, and the weather there?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
            ],
        }
    ]
    response_format: ResponseFormatJSONSchema = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    extra = {"x_vendor_option": {"nested": [1, 2.5, None, "é"]}}
    await client.chat.completions.create(
        model="smart",
        messages=messages,
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        response_format=response_format,
        logprobs=True,
        top_logprobs=2,
        temperature=0.2,
        extra_body=extra,
    )
    sent = {
        "model": "gpt-4o",
        "messages": messages,
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "response_format": response_format,
        "logprobs": True,
        "top_logprobs": 2,
        "temperature": 0.2,
        **extra,
    }
    assert upstream.received[0].json == sent


async def test_chat_authenticates_upstream_with_provider_key(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """The upstream sees the provider's API key, never the client's."""
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    headers = upstream.received[0].headers
    assert headers["Authorization"] == "Bearer sk-upstream-secret"
    assert "sk-client" not in json.dumps(headers)


async def test_stream_injects_include_usage_upstream(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """A stream without stream_options asks the upstream for usage anyway."""
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    async for _ in stream:
        pass
    assert upstream.received[0].json["stream_options"] == {"include_usage": True}


async def test_stream_without_include_usage_hides_usage_chunk(client: openai.AsyncOpenAI) -> None:
    """Without include_usage the client gets no usage-only chunk and no usage on any chunk."""
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks
    assert all(chunk.choices for chunk in chunks)
    assert all("usage" not in chunk.model_fields_set for chunk in chunks)


async def test_stream_without_include_usage_has_no_usage_keys_on_the_wire(
    http: aiohttp.ClientSession,
) -> None:
    """No raw SSE payload carries a `usage` key when the client did not ask for usage."""
    body = await raw_stream(http, {"model": "gpt-4o-mini", "messages": HELLO, "stream": True})
    payloads = sse_payloads(body)
    assert len(payloads) == 5
    assert all("usage" not in payload for payload in payloads)


async def test_stream_ends_with_done(http: aiohttp.ClientSession) -> None:
    """The raw SSE body ends with the `data: [DONE]` terminator."""
    body = await raw_stream(http, {"model": "gpt-4o-mini", "messages": HELLO, "stream": True})
    assert body.endswith(b"\n\ndata: [DONE]\n\n")
    assert body.count(b"[DONE]") == 1


async def test_stream_content_concatenates_to_full_reply(client: openai.AsyncOpenAI) -> None:
    """Deltas concatenate to the upstream's reply and the last finish_reason is stop."""
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == "Hello! How can I help?"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.model == "gpt-4o-mini" for chunk in chunks)


async def test_stream_with_include_usage_ends_with_usage_chunk(
    client: openai.AsyncOpenAI,
) -> None:
    """With include_usage the final chunk has no choices and the upstream's usage."""
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert final.usage.model_dump(exclude_none=True) == STREAM_USAGE
    assert all(chunk.usage is None for chunk in chunks[:-1])


async def test_stream_with_include_usage_false_hides_usage(
    http: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    """include_usage false behaves like no stream_options: injected upstream, hidden from client."""
    body = await raw_stream(
        http,
        {
            "model": "gpt-4o-mini",
            "messages": HELLO,
            "stream": True,
            "stream_options": {"include_usage": False},
        },
    )
    assert upstream.received[0].json["stream_options"] == {"include_usage": True}
    payloads = sse_payloads(body)
    assert all(payload["choices"] for payload in payloads)
    assert all("usage" not in payload for payload in payloads)
    assert body.endswith(b"data: [DONE]\n\n")


async def test_stream_tool_call_accumulates_in_sdk_helper(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """The SDK's stream helper rebuilds the streamed tool call with its full JSON arguments."""
    upstream.enqueue(Stream(sse_frames("chat_tools_stream.sse")))
    async with client.chat.completions.stream(
        model="smart",
        messages=[{"role": "user", "content": "What's the weather like in Paris today?"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id == "call_DdmO9pD3xa9XTPNJ32zg2hcA"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris, France"}
    assert final.model == "smart"


async def test_stream_tool_call_strips_unrequested_usage_chunk(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """The tool-call fixture's usage chunk is dropped because the client did not ask for it."""
    upstream.enqueue(Stream(sse_frames("chat_tools_stream.sse")))
    async with client.chat.completions.stream(
        model="smart", messages=HELLO, tools=[WEATHER_TOOL]
    ) as stream:
        chunks = [event.chunk async for event in stream if event.type == "chunk"]
        final = await stream.get_final_completion()
    assert len(chunks) == 8
    assert all(chunk.choices and chunk.usage is None for chunk in chunks)
    assert final.usage is None
