"""`/v1/messages` at the edge: the official Anthropic SDK against a real gateway.

Each behaviour runs against fake upstreams of the kinds in `DOORS`: an Anthropic upstream is
served by passthrough (only `model` rewritten), OpenAI-compatible and Gemini upstreams by
translation over chat. The tests read only what crosses the network: the SDK's objects, the raw
wire and what the fake upstream received.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest
from anthropic.types import MessageParam, ToolParam, ToolUseBlock

from llmux.serve import Gateway
from tests.helpers.anthropic_upstream import AnthropicUpstream, sse_reply
from tests.helpers.edge import RawReply, data_payloads, raw_request
from tests.helpers.gateway import running_gateway
from tests.helpers.gemini_upstream import FakeGemini, gemini_frames, gemini_reply, gemini_stream
from tests.helpers.upstream import Behaviour, FakeUpstream, Reply, Stream, sse_frames

MODEL = "claude-test"
UPSTREAM_CLAUDE = "claude-sonnet-4-5-20250929"
HELLO: list[MessageParam] = [{"role": "user", "content": "Hi"}]
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}
FORECAST = "22C and sunny"
ROUND_TRIP: list[MessageParam] = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_weather_1",
                "name": "get_weather",
                "input": {"location": "Paris"},
            }
        ],
    },
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_weather_1", "content": FORECAST}],
    },
]


@dataclass(frozen=True)
class Door:
    """One provider type behind the gateway, and where its upstream body carries each field."""

    kind: str
    fake: Callable[[], FakeUpstream]
    provider: str
    """The provider's config lines; `ROOT` and `BASE` stand for the fake's URLs."""
    text: str
    stream_text: str
    tool_stream: Behaviour
    tool_location: str
    server_error: Reply
    broken_stream: Behaviour
    tool_result: Callable[[dict[str, Any]], str]
    """The tool result (its use id or name, then its content) found in an upstream body."""
    system: Callable[[dict[str, Any]], str]
    stop: Callable[[dict[str, Any]], list[str]]

    @property
    def translated(self) -> bool:
        """Whether the gateway translates (it passes Anthropic upstreams through)."""
        return self.kind != "anthropic"


def _anthropic_tool_result(body: dict[str, Any]) -> str:
    blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
    (result,) = [b for b in blocks if b["type"] == "tool_result"]
    return f"{result['tool_use_id']} {json.dumps(result['content'])}"


def _chat_tool_result(body: dict[str, Any]) -> str:
    (result,) = [m for m in body["messages"] if m["role"] == "tool"]
    return f"{result['tool_call_id']} {json.dumps(result['content'])}"


def _gemini_tool_result(body: dict[str, Any]) -> str:
    parts = [p for content in body["contents"] for p in content["parts"]]
    (result,) = [p["functionResponse"] for p in parts if "functionResponse" in p]
    return f"{result['name']} {json.dumps(result['response'])}"


def _chat_system(body: dict[str, Any]) -> str:
    first = body["messages"][0]
    assert first["role"] == "system", first
    return json.dumps(first["content"])


def _openai_error() -> bytes:
    error = {"message": "The server had an error", "type": "server_error", "code": None}
    return json.dumps({"error": error}).encode()


_ANTHROPIC_500 = b'{"type":"error","error":{"type":"api_error","message":"Internal server error"}}'
_OPENAI_STREAM = sse_frames("chat_stream.sse")

DOORS = [
    Door(
        kind="anthropic",
        fake=AnthropicUpstream,
        provider=f"type: anthropic\n    base_url: ROOT\n    api_key: sk-ant-secret\n    models:\n"
        f"      - name: {MODEL}\n        upstream_model: {UPSTREAM_CLAUDE}",
        text="Hello! How can I help you today?",
        stream_text="Hello! How can I help you today?",
        tool_stream=sse_reply("chat_tools_stream.sse"),
        tool_location="San Francisco, CA",
        server_error=Reply(500, _ANTHROPIC_500),
        broken_stream=sse_reply("chat_error_stream.sse"),
        tool_result=_anthropic_tool_result,
        system=lambda body: json.dumps(body["system"]),
        stop=lambda body: list(body["stop_sequences"]),
    ),
    Door(
        kind="openai",
        fake=FakeUpstream,
        provider=f"type: openai-compatible\n    base_url: BASE\n    api_key: sk-secret\n"
        f"    models:\n      - name: {MODEL}\n        upstream_model: gpt-4o-mini",
        text="Hello! How can I assist you today?",
        stream_text="Hello! How can I help?",
        tool_stream=Stream(sse_frames("chat_tools_stream.sse")),
        tool_location="Paris, France",
        server_error=Reply(500, _openai_error()),
        broken_stream=Stream(_OPENAI_STREAM[:3], cut=True),
        tool_result=_chat_tool_result,
        system=_chat_system,
        stop=lambda body: list(body["stop"]),
    ),
    Door(
        kind="gemini",
        fake=FakeGemini,
        provider=f"type: gemini\n    base_url: ROOT\n    api_key: AIza-secret\n    models:\n"
        f"      - name: {MODEL}\n        upstream_model: gemini-2.0-flash",
        text="Hello! How can I help you today?",
        stream_text="Hello! How can I help you today?",
        tool_stream=gemini_stream("stream_tools.sse"),
        tool_location="Paris",
        server_error=gemini_reply("error_500.json", 500),
        broken_stream=Stream(gemini_frames("stream.sse")[:1], cut=True),
        tool_result=_gemini_tool_result,
        system=lambda body: json.dumps(body["systemInstruction"]),
        stop=lambda body: list(body["generationConfig"]["stopSequences"]),
    ),
]
TRANSLATED = [door for door in DOORS if door.translated]
_BY_KIND = {door.kind: door for door in DOORS}


def _config(door: Door, fake: FakeUpstream, *, retry_count: int = 0, master_key: str = "") -> str:
    root = f"http://127.0.0.1:{fake.port}"
    provider = door.provider.replace("ROOT", root).replace("BASE", root + "/v1")
    auth = f"auth:\n  master_key: {master_key}\n" if master_key else ""
    return f"""
server: {{host: 127.0.0.1, port: 0, admin_port: 0}}
providers:
  - name: {door.kind}
    {provider}
routing:
  retry_count: {retry_count}
{auth}"""


@dataclass
class Edge:
    """A gateway in front of one door's fake upstream, and the Anthropic SDK pointed at it."""

    door: Door
    fake: FakeUpstream
    gateway: Gateway
    client: anthropic.AsyncAnthropic

    @property
    def url(self) -> str:
        """The gateway's root URL."""
        return f"http://127.0.0.1:{self.gateway.port}"

    def sent(self, index: int = -1) -> dict[str, Any]:
        """The JSON body of one request the upstream received (the last by default)."""
        body: dict[str, Any] = self.fake.received[index].json
        return body

    async def post(self, path: str, body: bytes, **headers: str) -> RawReply:
        """A raw POST to the gateway, with the Anthropic SDK's usual headers."""
        sent = {"x-api-key": "sk-client", "anthropic-version": "2023-06-01", **headers}
        return await raw_request("POST", self.url + path, data=body, headers=sent)


@asynccontextmanager
async def _edge(door: Door, *, retry_count: int = 0, master_key: str = "") -> AsyncIterator[Edge]:
    fake = door.fake()
    await fake.start()
    config = _config(door, fake, retry_count=retry_count, master_key=master_key)
    try:
        async with running_gateway(config) as gateway:
            client = anthropic.AsyncAnthropic(
                base_url=f"http://127.0.0.1:{gateway.port}", api_key="sk-client", max_retries=0
            )
            try:
                yield Edge(door, fake, gateway, client)
            finally:
                await client.close()
    finally:
        await fake.stop()


@pytest.fixture(params=DOORS, ids=lambda door: door.kind)
async def edge(request: pytest.FixtureRequest) -> AsyncIterator[Edge]:
    """The gateway in front of each provider type in turn."""
    async with _edge(request.param) as running:
        yield running


@pytest.fixture(params=TRANSLATED, ids=lambda door: door.kind)
async def translated(request: pytest.FixtureRequest) -> AsyncIterator[Edge]:
    """The gateway in front of each provider type it serves by translation."""
    async with _edge(request.param) as running:
        yield running


@pytest.fixture
async def passthrough() -> AsyncIterator[Edge]:
    """The gateway in front of an Anthropic upstream."""
    async with _edge(_BY_KIND["anthropic"]) as running:
        yield running


def _assert_anthropic_error(reply: RawReply, status: int, error_type: str) -> None:
    """`reply` is Anthropic's `{"type": "error", "error": {type, message}}` with a request-id."""
    assert reply.status == status, reply.body
    body = reply.json
    assert body["type"] == "error", body
    assert body["error"]["type"] == error_type, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert reply.headers["request-id"]


class TestText:
    """Text answers, as JSON and as a stream, on every provider type."""

    async def test_json_answer(self, edge: Edge) -> None:
        """The SDK reads the text, end_turn and usage."""
        message = await edge.client.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
        assert [block.type for block in message.content] == ["text"]
        assert message.content[0].text == edge.door.text  # type: ignore[union-attr]
        assert (message.role, message.stop_reason) == ("assistant", "end_turn")
        assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0

    async def test_stream_helper_final_message(self, edge: Edge) -> None:
        """messages.stream() and get_final_message() assemble the streamed answer."""
        async with edge.client.messages.stream(
            model=MODEL, max_tokens=64, messages=HELLO
        ) as stream:
            text = "".join([chunk async for chunk in stream.text_stream])
            final = await stream.get_final_message()
        assert text == edge.door.stream_text
        assert final.stop_reason == "end_turn"
        assert final.usage.output_tokens > 0

    async def test_translated_model_is_the_clients(self, translated: Edge) -> None:
        """A translated Message names the model the client asked for."""
        message = await translated.client.messages.create(
            model=MODEL, max_tokens=64, messages=HELLO
        )
        assert message.model == MODEL


class TestRequestFields:
    """System prompt and stop sequences reach every upstream in its own dialect."""

    async def test_system_prompt(self, edge: Edge) -> None:
        """`system` becomes the upstream's system instruction."""
        await edge.client.messages.create(
            model=MODEL, max_tokens=64, system="Be brief.", messages=HELLO
        )
        assert "Be brief." in edge.door.system(edge.sent())

    async def test_stop_sequences(self, edge: Edge) -> None:
        """`stop_sequences` become the upstream's stop list."""
        await edge.client.messages.create(
            model=MODEL, max_tokens=64, stop_sequences=["END", "STOP"], messages=HELLO
        )
        assert edge.door.stop(edge.sent()) == ["END", "STOP"]


class TestTools:
    """Tool use streamed from every provider type, and tool results sent back."""

    async def test_streamed_tool_use(self, edge: Edge) -> None:
        """get_final_message() holds the tool_use block with its parsed input."""
        edge.fake.enqueue(edge.door.tool_stream)
        async with edge.client.messages.stream(
            model=MODEL, max_tokens=256, messages=HELLO, tools=[WEATHER]
        ) as stream:
            final = await stream.get_final_message()
        uses = [block for block in final.content if isinstance(block, ToolUseBlock)]
        assert uses[0].name == "get_weather" and uses[0].id
        assert uses[0].input["location"] == edge.door.tool_location
        assert final.stop_reason == "tool_use"

    async def test_input_json_deltas_are_never_empty(self, translated: Edge) -> None:
        """Every translated input_json_delta carries some of the tool's arguments."""
        translated.fake.enqueue(translated.door.tool_stream)
        body = {"model": MODEL, "max_tokens": 256, "messages": HELLO, "tools": [WEATHER]}
        reply = await translated.post("/v1/messages", json.dumps({**body, "stream": True}).encode())
        events = [json.loads(payload) for payload in data_payloads(reply.body)]
        deltas = [
            event["delta"]["partial_json"]
            for event in events
            if event["type"] == "content_block_delta"
            and event["delta"]["type"] == "input_json_delta"
        ]
        assert deltas and all(deltas)

    async def test_tool_result_round_trip(self, edge: Edge) -> None:
        """A tool_result block reaches the upstream as that call's result."""
        await edge.client.messages.create(
            model=MODEL, max_tokens=64, messages=ROUND_TRIP, tools=[WEATHER]
        )
        result = edge.door.tool_result(edge.sent())
        names_call = "get_weather" if edge.door.kind == "gemini" else "toolu_weather_1"
        assert result.startswith(names_call + " ")
        assert FORECAST in result


class TestPassthrough:
    """Anthropic upstreams get the client's request with only `model` rewritten."""

    async def test_model_rewritten_and_beta_forwarded(self, passthrough: Edge) -> None:
        """The upstream sees its own model name and the client's anthropic-beta header."""
        await passthrough.client.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=HELLO,
            extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
        )
        received = passthrough.fake.received[-1]
        assert received.path == "/v1/messages"
        assert received.json["model"] == UPSTREAM_CLAUDE
        assert received.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
        assert received.headers["x-api-key"] == "sk-ant-secret"

    async def test_count_tokens_passthrough(self, passthrough: Edge) -> None:
        """count_tokens goes to the Anthropic upstream, which counts."""
        passthrough.fake.enqueue(Reply(200, b'{"input_tokens": 42}'))
        counted = await passthrough.client.messages.count_tokens(model=MODEL, messages=HELLO)
        assert counted.input_tokens == 42
        received = passthrough.fake.received[-1]
        assert received.path == "/v1/messages/count_tokens"
        assert received.json["model"] == UPSTREAM_CLAUDE


async def test_count_tokens_estimate(translated: Edge) -> None:
    """Without an Anthropic upstream count_tokens is a local estimate; no upstream call."""
    counted = await translated.client.messages.count_tokens(
        model=MODEL, system="Be brief.", messages=ROUND_TRIP, tools=[WEATHER]
    )
    assert counted.input_tokens > 0
    assert translated.fake.received == []


class TestErrors:
    """Failures come back in Anthropic's error shape, with a request-id header."""

    async def test_bad_body_is_a_400(self, edge: Edge) -> None:
        """A body that is not JSON is an invalid_request_error, and no upstream call."""
        reply = await edge.post("/v1/messages", b"{not json")
        _assert_anthropic_error(reply, 400, "invalid_request_error")
        assert edge.fake.received == []

    async def test_missing_key_is_a_401(self) -> None:
        """With a master key set, a request without a key is an authentication_error."""
        async with _edge(_BY_KIND["openai"], master_key="sk-master") as edge:
            body = json.dumps({"model": MODEL, "max_tokens": 8, "messages": HELLO}).encode()
            reply = await raw_request("POST", edge.url + "/v1/messages", data=body)
            _assert_anthropic_error(reply, 401, "authentication_error")
            with pytest.raises(anthropic.AuthenticationError):
                await edge.client.messages.create(model=MODEL, max_tokens=8, messages=HELLO)

    async def test_master_key_in_x_api_key_is_accepted(self) -> None:
        """The SDK's x-api-key carries the master key; the upstream gets its own key instead."""
        async with _edge(_BY_KIND["openai"], master_key="sk-master") as edge:
            client = edge.client.with_options(api_key="sk-master")
            message = await client.messages.create(model=MODEL, max_tokens=8, messages=HELLO)
            assert message.stop_reason == "end_turn"
            assert edge.fake.received[-1].headers["Authorization"] == "Bearer sk-secret"

    async def test_upstream_500(self, edge: Edge) -> None:
        """An upstream 500 reaches the SDK as an Anthropic-shaped api_error."""
        edge.fake.enqueue(edge.door.server_error)
        with pytest.raises(anthropic.APIStatusError) as info:
            await edge.client.messages.create(model=MODEL, max_tokens=8, messages=HELLO)
        error = info.value
        assert error.status_code >= 500
        assert isinstance(error.body, dict) and error.body["type"] == "error"
        assert error.body["error"]["type"] == "api_error"
        assert error.request_id

    async def test_mid_stream_failure_is_an_error_event(self, edge: Edge) -> None:
        """A stream that breaks after it started ends with an `event: error` frame."""
        edge.fake.enqueue(edge.door.broken_stream)
        body = json.dumps({"model": MODEL, "max_tokens": 8, "messages": HELLO, "stream": True})
        reply = await edge.post("/v1/messages", body.encode())
        assert reply.status == 200
        blocks = [block for block in reply.body.split(b"\n\n") if block.strip()]
        assert blocks[-1].startswith(b"event: error\n"), blocks[-1]
        error = json.loads(data_payloads(blocks[-1] + b"\n\n")[0])
        assert error["type"] == "error" and error["error"]["message"]


async def test_retry_after_upstream_500() -> None:
    """With retry_count 1 a first upstream 500 is retried and the client sees the answer."""
    door = _BY_KIND["openai"]
    async with _edge(door, retry_count=1) as edge:
        edge.fake.enqueue(door.server_error)
        message = await edge.client.messages.create(model=MODEL, max_tokens=8, messages=HELLO)
        assert message.content[0].text == door.text  # type: ignore[union-attr]
        assert len(edge.fake.received) == 2
