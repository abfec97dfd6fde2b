"""`type: anthropic` end to end: the official OpenAI SDK against a fake Anthropic upstream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from llmux.serve import Gateway
from tests.helpers.anthropic_upstream import AnthropicUpstream, json_reply, sse_reply
from tests.helpers.edge import raw_request, rejected, sdk_client
from tests.helpers.gateway import running_gateway
from tests.helpers.ports import free_port

SECRET = "sk-ant-upstream-secret"
UPSTREAM_MODEL = "claude-sonnet-4-5-20250929"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
WEATHER: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def anthropic_config(url: str, retry_count: int = 0) -> str:
    """One anthropic provider at `url` with a plain and a thinking deployment."""
    return f"""
server:
  host: 127.0.0.1
  port: 0
  admin_port: {free_port()}
providers:
  - name: claude
    type: anthropic
    base_url: {url}
    api_key: {SECRET}
    models:
      - name: claude
        upstream_model: {UPSTREAM_MODEL}
      - name: claude-think
        upstream_model: {UPSTREAM_MODEL}
        thinking_budget: 2048
        max_output_tokens: 8192
    timeouts:
      connect: 1s
      first_byte: 2s
      idle: 1s
      total: 3s
routing:
  retry_count: {retry_count}
"""


@pytest.fixture
async def anthropic() -> AsyncIterator[AnthropicUpstream]:
    """The fake Anthropic API."""
    fake = AnthropicUpstream()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def claude_gateway(anthropic: AnthropicUpstream) -> AsyncIterator[Gateway]:
    """A gateway whose `claude*` models are served by the fake Anthropic API."""
    async with running_gateway(anthropic_config(anthropic.url)) as gateway:
        yield gateway


@pytest.fixture
async def client(claude_gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official SDK pointed at the gateway."""
    async with sdk_client(claude_gateway) as sdk:
        yield sdk


def _sent(anthropic: AnthropicUpstream) -> dict[str, Any]:
    """The JSON body of the one request the upstream received."""
    (received,) = anthropic.received
    body: dict[str, Any] = received.json
    return body


async def test_chat_request_is_a_messages_call(
    client: openai.AsyncOpenAI, anthropic: AnthropicUpstream
) -> None:
    """The gateway POSTs /v1/messages with x-api-key, anthropic-version and the exact body."""
    await client.chat.completions.create(
        model="claude",
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],
        max_tokens=100,
        temperature=0.3,
        stop=["END"],
        user="user-42",
    )
    (received,) = anthropic.received
    assert (received.method, received.path) == ("POST", "/v1/messages")
    assert received.headers["x-api-key"] == SECRET
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in received.headers
    assert received.json == {
        "model": UPSTREAM_MODEL,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_tokens": 100,
        "system": "Be brief.",
        "stop_sequences": ["END"],
        "temperature": 0.3,
        "metadata": {"user_id": "user-42"},
    }


async def test_chat_answer(client: openai.AsyncOpenAI) -> None:
    """The SDK reads content, finish_reason, usage and its own model name."""
    completion = await client.chat.completions.create(model="claude", messages=HELLO)
    choice = completion.choices[0]
    assert choice.message.content == "Hello! How can I help you today?"
    assert choice.finish_reason == "stop"
    assert completion.model == "claude"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 12)


async def test_stream_with_sdk_iteration(
    client: openai.AsyncOpenAI, anthropic: AnthropicUpstream
) -> None:
    """Plain SDK iteration gets the role, the text and finish_reason stop."""
    stream = await client.chat.completions.create(model="claude", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! How can I help you today?"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert _sent(anthropic)["stream"] is True


async def test_stream_helper_parallel_tool_calls(
    client: openai.AsyncOpenAI, anthropic: AnthropicUpstream
) -> None:
    """The SDK stream helper rebuilds text and two parallel tool calls from tool_use blocks."""
    anthropic.enqueue(sse_reply("chat_tools_stream.sse"))
    async with client.chat.completions.stream(
        model="claude", messages=HELLO, tools=[WEATHER], tool_choice="auto"
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the weather in both cities."
    calls = choice.message.tool_calls or []
    assert [c.id for c in calls] == [
        "toolu_01A09q90qw90lq917835lq9",
        "toolu_01B8fd7e6c5b4a3928170abc",
    ]
    arguments = [json.loads(c.function.arguments) for c in calls]
    assert arguments == [
        {"location": "San Francisco, CA", "unit": "celsius"},
        {"location": "Paris, France"},
    ]
    sent = _sent(anthropic)
    assert sent["tools"][0]["input_schema"] == WEATHER["function"]["parameters"]
    assert sent["tool_choice"] == {"type": "auto"}


async def test_tool_calls_json(client: openai.AsyncOpenAI, anthropic: AnthropicUpstream) -> None:
    """A non-streaming tool_use answer gives tool_calls with JSON-string arguments."""
    anthropic.enqueue(json_reply("chat_tools.json"))
    completion = await client.chat.completions.create(
        model="claude", messages=HELLO, tools=[WEATHER]
    )
    calls = completion.choices[0].message.tool_calls or []
    assert len(calls) == 2
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_thinking(client: openai.AsyncOpenAI, anthropic: AnthropicUpstream) -> None:
    """reasoning_effort enables thinking with the budget; thinking comes back as reasoning."""
    anthropic.enqueue(json_reply("chat_thinking.json"))
    completion = await client.chat.completions.create(
        model="claude-think", messages=HELLO, reasoning_effort="high"
    )
    message = completion.choices[0].message
    assert message.content == "27 * 453 = 12,231"
    assert (message.model_extra or {})["reasoning_content"].startswith("The user asks")
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 52
    sent = _sent(anthropic)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent["max_tokens"] == 8192


async def test_thinking_stream(client: openai.AsyncOpenAI, anthropic: AnthropicUpstream) -> None:
    """Streamed thinking arrives as reasoning_content deltas before the answer."""
    anthropic.enqueue(sse_reply("chat_thinking_stream.sse"))
    stream = await client.chat.completions.create(
        model="claude-think", messages=HELLO, reasoning_effort="low", stream=True
    )
    deltas = [c.choices[0].delta async for c in stream if c.choices]
    reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    assert reasoning == "The user asks 27 * 453. 27 * 453 = 12231."


async def test_images(client: openai.AsyncOpenAI, anthropic: AnthropicUpstream) -> None:
    """Data-URL and https images reach Anthropic as base64 and url sources."""
    await client.chat.completions.create(
        model="claude",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}},
                ],
            }
        ],
    )
    assert _sent(anthropic)["messages"][0]["content"][1:] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/b.png"}},
    ]


async def test_cached_usage(client: openai.AsyncOpenAI, anthropic: AnthropicUpstream) -> None:
    """Cache reads and writes count as prompt tokens; reads are cached_tokens."""
    anthropic.enqueue(json_reply("chat_cached.json"))
    completion = await client.chat.completions.create(model="claude", messages=HELLO)
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens) == (2009, 1800)
    assert usage.total_tokens == 2023


async def test_stream_and_json_usage_are_equal(
    client: openai.AsyncOpenAI, anthropic: AnthropicUpstream
) -> None:
    """The same answer streamed (include_usage) and not streamed reports the same usage."""
    anthropic.enqueue(json_reply("chat_cached.json"), sse_reply("chat_cached_stream.sse"))
    completion = await client.chat.completions.create(model="claude", messages=HELLO)
    stream = await client.chat.completions.create(
        model="claude", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage == completion.usage


async def test_mid_stream_error(client: openai.AsyncOpenAI, anthropic: AnthropicUpstream) -> None:
    """An Anthropic `error` event mid-stream makes the SDK raise after the text so far."""
    anthropic.enqueue(sse_reply("chat_error_stream.sse"))
    stream = await client.chat.completions.create(model="claude", messages=HELLO, stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "Hello"
    assert info.value.message == "Overloaded"


async def test_overloaded_is_503(client: openai.AsyncOpenAI, anthropic: AnthropicUpstream) -> None:
    """A 529 overloaded answer reaches the client as a 503 when there is no retry."""
    anthropic.enqueue(json_reply("error_529.json", 529))
    error = await rejected(client.chat.completions.create(model="claude", messages=HELLO))
    assert error.status_code == 503
    assert error.code == "overloaded"


async def test_overloaded_is_retried(anthropic: AnthropicUpstream) -> None:
    """With retry_count 1 a 529 is retried and the second answer is served."""
    anthropic.enqueue(json_reply("error_529.json", 529))
    async with (
        running_gateway(anthropic_config(anthropic.url, retry_count=1)) as gateway,
        sdk_client(gateway) as client,
    ):
        completion = await client.chat.completions.create(model="claude", messages=HELLO)
    assert completion.choices[0].message.content == "Hello! How can I help you today?"
    assert len(anthropic.received) == 2


async def test_context_length_error(
    client: openai.AsyncOpenAI, anthropic: AnthropicUpstream
) -> None:
    """A too-long prompt is a 400 with code context_length_exceeded."""
    anthropic.enqueue(json_reply("error_400_context.json", 400))
    error = await rejected(client.chat.completions.create(model="claude", messages=HELLO))
    assert (error.status_code, error.code) == (400, "context_length_exceeded")


async def test_embeddings_are_rejected(
    client: openai.AsyncOpenAI, anthropic: AnthropicUpstream
) -> None:
    """Embeddings for an anthropic model are a 400 and never reach the upstream."""
    error = await rejected(client.embeddings.create(model="claude", input="hi"))
    assert error.status_code == 400
    assert anthropic.received == []


async def test_bad_tool_arguments_are_400(
    client: openai.AsyncOpenAI, anthropic: AnthropicUpstream
) -> None:
    """Invalid JSON tool-call arguments in history are a 400 naming the message."""
    messages: list[ChatCompletionMessageParam] = [
        *HELLO,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{"}}
            ],
        },
    ]
    error = await rejected(client.chat.completions.create(model="claude", messages=messages))
    assert error.status_code == 400
    assert "messages[1].tool_calls[0].function.arguments" in error.message
    assert anthropic.received == []


async def test_upstream_key_never_reaches_the_client(
    claude_gateway: Gateway, anthropic: AnthropicUpstream
) -> None:
    """Neither answers, streams nor upstream auth errors echo the upstream key."""
    anthropic.enqueue(json_reply("error_401.json", 401))
    url = f"http://127.0.0.1:{claude_gateway.port}/v1/chat/completions"
    replies = []
    for stream in (False, False, True):
        body = json.dumps({"model": "claude", "messages": HELLO, "stream": stream}).encode()
        replies.append(await raw_request("POST", url, data=body))
    assert replies[0].status == 401
    assert [r.status for r in replies[1:]] == [200, 200]
    for reply in replies:
        assert SECRET not in reply.body.decode()
        assert all(SECRET not in value for value in reply.headers.values())
