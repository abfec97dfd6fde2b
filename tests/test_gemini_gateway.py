"""Gemini through the gateway: the official SDK in front, a fake Generative Language API behind."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from llmux.serve import Gateway
from tests.helpers.edge import data_payloads, raw_request, rejected, sdk_client
from tests.helpers.gateway import running_gateway
from tests.helpers.gemini_upstream import FakeGemini, gemini_frames, gemini_reply, gemini_stream
from tests.helpers.upstream import Stream

SECRET = "AIza-upstream-secret"
SIGNATURE = "CiQBVKhc7mGJ3ZcX9Q0uKs0H2tq1d7VkYV1dOpm5QWhcQf1xqg4KZQFUqFzuY3TqQ7lVYGyHqv2Lgq3tYw=="
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
WEATHER: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
            "additionalProperties": False,
        },
    },
}


def gemini_config(root: str) -> str:
    """A gateway with one Gemini provider: a chat, a thinking and an embedding model."""
    return f"""
server: {{host: 127.0.0.1, port: 0, admin_port: 0}}
providers:
  - name: google
    type: gemini
    api_key: "{SECRET}"
    base_url: {root}
    models:
      - name: gem-flash
        upstream_model: gemini-2.0-flash
      - name: gem-think
        upstream_model: gemini-2.5-flash
        thinking_budget: 1024
      - name: gem-embed
        upstream_model: gemini-embedding-001
routing:
  retry_count: 0
"""


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    """A fake Gemini server."""
    server = FakeGemini()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def gateway(fake: FakeGemini) -> AsyncIterator[Gateway]:
    """The gateway in front of the fake Gemini server."""
    async with running_gateway(gemini_config(fake.url)) as running:
        yield running


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official SDK pointed at the gateway."""
    async with sdk_client(gateway) as sdk:
        yield sdk


def _headers(fake: FakeGemini, at: int = 0) -> dict[str, str]:
    return {k.lower(): v for k, v in fake.received[at].headers.items()}


async def test_chat_request_on_the_wire(client: openai.AsyncOpenAI, fake: FakeGemini) -> None:
    """A chat POSTs the translated body to :generateContent with x-goog-api-key."""
    await client.chat.completions.create(
        model="gem-flash",
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],
        max_completion_tokens=50,
        temperature=0.3,
    )
    sent = fake.received[0]
    assert (sent.method, sent.path) == ("POST", "/v1beta/models/gemini-2.0-flash:generateContent")
    assert _headers(fake)["x-goog-api-key"] == SECRET
    assert "authorization" not in _headers(fake)
    assert sent.json == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.3, "maxOutputTokens": 50},
    }


async def test_chat_answer(client: openai.AsyncOpenAI) -> None:
    """The answer comes back as an OpenAI completion in the client's model name."""
    completion = await client.chat.completions.create(model="gem-flash", messages=HELLO)
    assert completion.model == "gem-flash"
    assert completion.choices[0].message.content == "Hello! How can I help you today?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (8, 9)


async def test_stream_iteration(client: openai.AsyncOpenAI, fake: FakeGemini) -> None:
    """A stream goes to :streamGenerateContent?alt=sse and iterates as OpenAI chunks."""
    stream = await client.chat.completions.create(
        model="gem-flash", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    sent = fake.received[0]
    assert sent.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert _headers(fake)["x-goog-api-key"] == SECRET
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! How can I help you today?"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 17


async def test_stream_helper_function_call_round_trip(
    client: openai.AsyncOpenAI, fake: FakeGemini
) -> None:
    """The SDK stream helper assembles tool calls; calls, thought signature and results go back."""
    fake.enqueue(gemini_stream("stream_tools.sse"), gemini_stream("stream.sse"))
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Paris, Tokyo?"}]
    async with client.chat.completions.stream(
        model="gem-flash", messages=messages, tools=[WEATHER]
    ) as stream:
        first = await stream.get_final_completion()
    calls = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"location": "Paris"},
        {"location": "Tokyo"},
    ]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))  # type: ignore[arg-type]
    for call, temp in zip(calls, (18, 25), strict=True):
        messages.append({"role": "tool", "tool_call_id": call.id, "content": f'{{"temp": {temp}}}'})
    async with client.chat.completions.stream(
        model="gem-flash", messages=messages, tools=[WEATHER]
    ) as stream:
        second = await stream.get_final_completion()
    assert second.choices[0].message.content == "Hello! How can I help you today?"
    sent = fake.received[1].json
    assert sent["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
                    "thoughtSignature": SIGNATURE,
                },
                {"functionCall": {"name": "get_weather", "args": {"location": "Tokyo"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                {"functionResponse": {"name": "get_weather", "response": {"temp": 25}}},
            ],
        },
    ]
    declared = sent["tools"][0]["functionDeclarations"][0]["parameters"]
    assert "additionalProperties" not in declared


async def test_images(client: openai.AsyncOpenAI, fake: FakeGemini) -> None:
    """Data-URL and http images reach Gemini as inlineData and fileData parts."""
    await client.chat.completions.create(
        model="gem-flash",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AA="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}},
                ],
            }
        ],
    )
    assert fake.received[0].json["contents"][0]["parts"] == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AA="}},
        {"fileData": {"fileUri": "https://example.com/b.png", "mimeType": "image/png"}},
    ]


async def test_thinking_and_cached_tokens(client: openai.AsyncOpenAI, fake: FakeGemini) -> None:
    """reasoning_effort sends the configured budget; thoughts and cached tokens come back."""
    fake.enqueue(gemini_reply("generate_thinking.json"))
    completion = await client.chat.completions.create(
        model="gem-think", messages=HELLO, reasoning_effort="low"
    )
    assert fake.received[0].json["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}
    }
    message = completion.choices[0].message
    assert (message.model_extra or {})["reasoning_content"].startswith("**Counting letters**")
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 1024
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 99
    assert (usage.prompt_tokens, usage.completion_tokens) == (1250, 111)


async def test_stream_and_non_stream_usage_equal(
    client: openai.AsyncOpenAI, fake: FakeGemini
) -> None:
    """The same answer streamed and not reports identical usage."""
    fake.enqueue(gemini_reply("generate_thinking.json"), gemini_stream("stream_thinking.sse"))
    whole = await client.chat.completions.create(model="gem-think", messages=HELLO)
    stream = await client.chat.completions.create(
        model="gem-think", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    last = [chunk async for chunk in stream][-1]
    assert last.usage == whole.usage


async def test_embeddings_floats(client: openai.AsyncOpenAI, fake: FakeGemini) -> None:
    """Float embeddings: one batchEmbedContents request per input, vectors back in order."""
    result = await client.embeddings.create(
        model="gem-embed", input=["a", "b"], encoding_format="float", dimensions=4
    )
    sent = fake.received[0]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert _headers(fake)["x-goog-api-key"] == SECRET
    assert sent.json == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": text}]},
                "outputDimensionality": 4,
            }
            for text in ("a", "b")
        ]
    }
    assert result.model == "gem-embed"
    assert [item.embedding for item in result.data][1] == [-0.5, 0.125, 0.0, 1.0]


async def test_embeddings_sdk_default_base64(client: openai.AsyncOpenAI) -> None:
    """The SDK's default base64 request decodes to the same vectors."""
    result = await client.embeddings.create(model="gem-embed", input="a")
    assert result.data[1].embedding == [-0.5, 0.125, 0.0, 1.0]
    assert result.data[0].embedding[0] == pytest.approx(0.0123)


async def test_token_array_embeddings_are_400(client: openai.AsyncOpenAI, fake: FakeGemini) -> None:
    """Token-id input is a 400 naming `input`, and nothing is sent upstream."""
    error = await rejected(client.embeddings.create(model="gem-embed", input=[[1, 2, 3]]))
    assert error.status_code == 400
    assert isinstance(error.body, dict) and error.body["param"] == "input"
    assert fake.received == []


async def test_mid_stream_error(client: openai.AsyncOpenAI, fake: FakeGemini) -> None:
    """An error inside the Gemini stream reaches the SDK as an APIError after the text.

    The frames are paced so the text is relayed before the error arrives.
    """
    fake.enqueue(Stream(gemini_frames("stream_error.sse"), delay=0.05))
    stream = await client.chat.completions.create(model="gem-flash", messages=HELLO, stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "Hello"
    assert "overloaded" in info.value.message


async def test_rate_limit_is_429(client: openai.AsyncOpenAI, fake: FakeGemini) -> None:
    """RESOURCE_EXHAUSTED reaches the client as a 429 with Google's message."""
    fake.enqueue(gemini_reply("error_429.json", status=429))
    error = await rejected(client.chat.completions.create(model="gem-flash", messages=HELLO))
    assert isinstance(error, openai.RateLimitError)
    assert isinstance(error.body, dict)
    assert error.body["code"] == "resource_exhausted"
    assert "exceeded your current quota" in error.body["message"]


async def test_upstream_key_never_reaches_clients(gateway: Gateway, fake: FakeGemini) -> None:
    """No answer, stream or error body contains the upstream API key."""
    fake.enqueue(gemini_reply("error_400.json", status=400))
    url = f"http://127.0.0.1:{gateway.port}/v1/chat/completions"
    bodies: list[Any] = [
        {"model": "gem-flash", "messages": HELLO},
        {"model": "gem-flash", "messages": HELLO},
        {"model": "gem-flash", "messages": HELLO, "stream": True},
    ]
    replies = [await raw_request("POST", url, data=json.dumps(b).encode()) for b in bodies]
    assert [reply.status for reply in replies] == [400, 200, 200]
    assert data_payloads(replies[2].body)[-1] == b"[DONE]"
    for reply in replies:
        assert SECRET.encode() not in reply.body
        assert all(SECRET not in value for value in reply.headers.values())
