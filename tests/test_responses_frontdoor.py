"""`/v1/responses` at the edge: the official SDK against a real gateway on every provider type.

Each test runs against fake upstreams of the kinds in `DOORS`: Anthropic, Gemini and Azure are
served by translation over chat, an OpenAI-compatible upstream by passthrough. The tests read
only what crosses the network: the SDK's objects, the raw wire and what the fake upstream got.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseFunctionToolCall, ResponseInputParam
from openai.types.responses.function_tool_param import FunctionToolParam

from llmux.serve import Gateway
from tests.helpers.anthropic_upstream import AnthropicUpstream, json_reply, sse_reply
from tests.helpers.edge import data_payloads, raw_request, sdk_client
from tests.helpers.gateway import running_gateway
from tests.helpers.gemini_upstream import FakeGemini, gemini_reply, gemini_stream
from tests.helpers.governance import MASTER_KEY, add_key, add_team
from tests.helpers.spec import schema_error
from tests.helpers.upstream import Behaviour, FakeUpstream, Reply, Stream, fixture_bytes, sse_frames

MODEL = "door-model"
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
        "additionalProperties": False,
    },
    "strict": True,
}
FORECAST = "22C and sunny"


@dataclass(frozen=True)
class Door:
    """One provider type behind the gateway, and what its fake upstream answers."""

    kind: str
    fake: Callable[[], FakeUpstream]
    provider: str
    """The provider's config lines; `ROOT` and `BASE` stand for the fake's URLs."""
    text: str
    stream_text: str
    tool_reply: Behaviour
    tool_stream: Behaviour | None
    tool_location: str
    stream_tool_location: str
    tool_result: Callable[[dict[str, Any]], str]
    """The tool result (its call id or name, then its output) found in an upstream body."""
    history: Callable[[dict[str, Any]], str]
    """Everything the upstream body carries as conversation, as one string."""

    @property
    def translated(self) -> bool:
        """Whether the gateway builds the Response itself (and so stores it)."""
        return self.kind != "openai"


def _anthropic_tool_result(body: dict[str, Any]) -> str:
    blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
    (result,) = [b for b in blocks if b["type"] == "tool_result"]
    return f"{result['tool_use_id']} {json.dumps(result['content'])}"


def _gemini_tool_result(body: dict[str, Any]) -> str:
    parts = [p for content in body["contents"] for p in content["parts"]]
    (result,) = [p["functionResponse"] for p in parts if "functionResponse" in p]
    return f"{result['name']} {json.dumps(result['response'])}"


def _chat_tool_result(body: dict[str, Any]) -> str:
    (result,) = [m for m in body["messages"] if m["role"] == "tool"]
    return f"{result['tool_call_id']} {json.dumps(result['content'])}"


def _responses_tool_result(body: dict[str, Any]) -> str:
    (result,) = [i for i in body["input"] if i.get("type") == "function_call_output"]
    return f"{result['call_id']} {json.dumps(result['output'])}"


DOORS = [
    Door(
        kind="anthropic",
        fake=AnthropicUpstream,
        provider=f"type: anthropic\n    base_url: ROOT\n    api_key: sk-ant-secret\n    models:\n"
        f"      - name: {MODEL}\n        upstream_model: claude-sonnet-4-5-20250929",
        text="Hello! How can I help you today?",
        stream_text="Hello! How can I help you today?",
        tool_reply=json_reply("chat_tools.json"),
        tool_stream=sse_reply("chat_tools_stream.sse"),
        tool_location="San Francisco, CA",
        stream_tool_location="San Francisco, CA",
        tool_result=_anthropic_tool_result,
        history=lambda body: json.dumps(body["messages"]),
    ),
    Door(
        kind="gemini",
        fake=FakeGemini,
        provider=f"type: gemini\n    base_url: ROOT\n    api_key: AIza-secret\n    models:\n"
        f"      - name: {MODEL}\n        upstream_model: gemini-2.0-flash",
        text="Hello! How can I help you today?",
        stream_text="Hello! How can I help you today?",
        tool_reply=gemini_reply("generate_tools.json"),
        tool_stream=gemini_stream("stream_tools.sse"),
        tool_location="Paris",
        stream_tool_location="Paris",
        tool_result=_gemini_tool_result,
        history=lambda body: json.dumps(body["contents"]),
    ),
    Door(
        kind="azure",
        fake=FakeUpstream,
        provider=f"type: azure\n    base_url: ROOT\n    api_key: azure-secret\n    models:\n"
        f"      - name: {MODEL}\n        upstream_model: prod-gpt4o",
        text="Hello! How can I assist you today?",
        stream_text="Hello! How can I help?",
        tool_reply=Reply(200, fixture_bytes("chat_tools.json")),
        tool_stream=Stream(sse_frames("chat_tools_stream.sse")),
        tool_location="Paris, France",
        stream_tool_location="Paris, France",
        tool_result=_chat_tool_result,
        history=lambda body: json.dumps(body["messages"]),
    ),
    Door(
        kind="openai",
        fake=FakeUpstream,
        provider=f"type: openai-compatible\n    base_url: BASE\n    api_key: sk-secret\n"
        f"    models:\n      - name: {MODEL}\n        upstream_model: gpt-4.1",
        text="In a peaceful grove beneath a silver moon, a unicorn named Lumina discovered a"
        " hidden pool.",
        stream_text="Hi there!",
        tool_reply=Reply(200, fixture_bytes("responses_function_call.json")),
        tool_stream=None,
        tool_location="Paris, France",
        stream_tool_location="Paris, France",
        tool_result=_responses_tool_result,
        history=lambda body: json.dumps(body["input"]),
    ),
]
TRANSLATED = [door for door in DOORS if door.translated]


def _config(door: Door, fake: FakeUpstream, master_key: str = "") -> str:
    root = f"http://127.0.0.1:{fake.port}"
    provider = door.provider.replace("ROOT", root).replace("BASE", root + "/v1")
    auth = f"auth:\n  master_key: {master_key}\n" if master_key else ""
    return f"""
server: {{host: 127.0.0.1, port: 0, admin_port: 0}}
providers:
  - name: {door.kind}
    {provider}
routing:
  retry_count: 0
{auth}"""


@dataclass
class Edge:
    """A gateway in front of one door's fake upstream, and the SDK pointed at it."""

    door: Door
    fake: FakeUpstream
    gateway: Gateway
    client: openai.AsyncOpenAI

    def sent(self, index: int = -1) -> dict[str, Any]:
        """The JSON body of one request the upstream received (the last by default)."""
        body: dict[str, Any] = self.fake.received[index].json
        return body


async def _edge(door: Door) -> AsyncIterator[Edge]:
    fake = door.fake()
    await fake.start()
    try:
        async with running_gateway(_config(door, fake)) as gateway, sdk_client(gateway) as client:
            yield Edge(door, fake, gateway, client)
    finally:
        await fake.stop()


@pytest.fixture(params=DOORS, ids=lambda door: door.kind)
async def edge(request: pytest.FixtureRequest) -> AsyncIterator[Edge]:
    """The gateway in front of each provider type in turn."""
    async for running in _edge(request.param):
        yield running


@pytest.fixture(params=TRANSLATED, ids=lambda door: door.kind)
async def translated(request: pytest.FixtureRequest) -> AsyncIterator[Edge]:
    """The gateway in front of each provider type it serves by translation."""
    async for running in _edge(request.param):
        yield running


def _function_calls(response: openai.types.responses.Response) -> list[ResponseFunctionToolCall]:
    return [item for item in response.output if isinstance(item, ResponseFunctionToolCall)]


def _second_turn(call_id: str) -> ResponseInputParam:
    """A follow-up that answers the model's get_weather call."""
    return [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "type": "function_call",
            "call_id": call_id,
            "name": "get_weather",
            "arguments": '{"location":"Paris, France"}',
        },
        {"type": "function_call_output", "call_id": call_id, "output": FORECAST},
    ]


async def _raw_post(edge: Edge, **body: Any) -> bytes:
    reply = await raw_request(
        "POST",
        f"http://127.0.0.1:{edge.gateway.port}/v1/responses",
        data=json.dumps({"model": MODEL, **body}).encode(),
        headers={"Authorization": "Bearer sk-client", "Content-Type": "application/json"},
    )
    assert reply.status == 200, reply.body
    return reply.body


class TestText:
    """A plain text answer, as JSON and as a stream, on every provider type."""

    async def test_json_answer(self, edge: Edge) -> None:
        """The SDK reads the upstream's text, the client's model name and consistent usage."""
        response = await edge.client.responses.create(model=MODEL, input="Hi")
        assert response.output_text == edge.door.text
        assert (response.model, response.status) == (MODEL, "completed")
        assert response.usage is not None
        usage = response.usage
        assert usage.total_tokens == usage.input_tokens + usage.output_tokens > 0

    async def test_stream_helper_final_response(self, edge: Edge) -> None:
        """responses.stream() and get_final_response() assemble the streamed answer."""
        async with edge.client.responses.stream(model=MODEL, input="Hi") as stream:
            final = await stream.get_final_response()
        assert final.output_text == edge.door.stream_text
        assert (final.model, final.status) == (MODEL, "completed")
        assert final.usage is not None and final.usage.output_tokens > 0

    async def test_json_response_matches_the_spec(self, translated: Edge) -> None:
        """A translated Response object validates against the OpenAI spec's `Response` schema."""
        body = await _raw_post(translated, input="Hi")
        assert schema_error("Response", json.loads(body)) is None

    async def test_stream_events_match_the_spec(self, translated: Edge) -> None:
        """Every translated stream event validates, numbered from 0 without gaps."""
        body = await _raw_post(translated, input="Hi", stream=True)
        events = [json.loads(payload) for payload in data_payloads(body)]
        errors = [schema_error("ResponseStreamEvent", event) for event in events]
        assert [error for error in errors if error] == []
        assert [event["sequence_number"] for event in events] == list(range(len(events)))
        assert (events[0]["type"], events[-1]["type"]) == ("response.created", "response.completed")
        assert schema_error("Response", events[-1]["response"]) is None


class TestTools:
    """Function tools: the model's call becomes a function_call item; its output goes back."""

    async def test_function_call_item(self, edge: Edge) -> None:
        """A tool call upstream is a `function_call` output item with call_id, name, arguments."""
        edge.fake.enqueue(edge.door.tool_reply)
        response = await edge.client.responses.create(
            model=MODEL, input="Weather in Paris?", tools=[WEATHER]
        )
        first = _function_calls(response)[0]
        assert first.name == "get_weather" and first.call_id
        assert json.loads(first.arguments)["location"] == edge.door.tool_location
        assert "get_weather" in json.dumps(edge.sent())

    async def test_streamed_function_call(self, translated: Edge) -> None:
        """The stream helper rebuilds a streamed tool call into a `function_call` item."""
        assert translated.door.tool_stream is not None
        translated.fake.enqueue(translated.door.tool_stream)
        async with translated.client.responses.stream(
            model=MODEL, input="Weather in Paris?", tools=[WEATHER]
        ) as stream:
            final = await stream.get_final_response()
        first = _function_calls(final)[0]
        assert first.name == "get_weather" and first.call_id
        assert json.loads(first.arguments)["location"] == translated.door.stream_tool_location

    async def test_function_call_output_reaches_the_upstream(self, edge: Edge) -> None:
        """A `function_call_output` item reaches the upstream as that call's tool result."""
        await edge.client.responses.create(
            model=MODEL, input=_second_turn("call_weather_1"), tools=[WEATHER]
        )
        result = edge.door.tool_result(edge.sent())
        names_call = "get_weather" if edge.door.kind == "gemini" else "call_weather_1"
        assert result.startswith(names_call + " ")
        assert FORECAST in result


class TestStored:
    """Responses the gateway builds are stored: follow-ups, GET, input_items and DELETE."""

    async def test_previous_response_id_sends_the_first_turn(self, translated: Edge) -> None:
        """The follow-up's upstream body holds the first turn's input and answer."""
        client = translated.client
        first = await client.responses.create(model=MODEL, input="My name is Ada.")
        await client.responses.create(
            model=MODEL, input="What is my name?", previous_response_id=first.id
        )
        history = translated.door.history(translated.sent())
        assert "My name is Ada." in history
        assert translated.door.text in history
        assert history.index("My name is Ada.") < history.index("What is my name?")

    async def test_follow_up_echoes_previous_response_id(self, translated: Edge) -> None:
        """The follow-up Response names the response it continues, as OpenAI's does."""
        client = translated.client
        first = await client.responses.create(model=MODEL, input="My name is Ada.")
        second = await client.responses.create(
            model=MODEL, input="What is my name?", previous_response_id=first.id
        )
        assert second.previous_response_id == first.id

    async def test_streamed_follow_up_echoes_previous_response_id(self, translated: Edge) -> None:
        """The streamed follow-up's final Response names the response it continues."""
        client = translated.client
        first = await client.responses.create(model=MODEL, input="My name is Ada.")
        async with client.responses.stream(
            model=MODEL, input="What is my name?", previous_response_id=first.id
        ) as stream:
            second = await stream.get_final_response()
        assert second.previous_response_id == first.id

    async def test_previous_response_id_after_a_stream(self, translated: Edge) -> None:
        """A streamed first turn is stored too, so a follow-up can name it."""
        client = translated.client
        async with client.responses.stream(model=MODEL, input="My name is Ada.") as stream:
            first = await stream.get_final_response()
        await client.responses.create(
            model=MODEL, input="What is my name?", previous_response_id=first.id
        )
        history = translated.door.history(translated.sent())
        assert "My name is Ada." in history
        assert translated.door.stream_text in history

    async def test_retrieve(self, translated: Edge) -> None:
        """GET /v1/responses/{id} returns the response as it was answered."""
        created = await translated.client.responses.create(model=MODEL, input="Hi")
        retrieved = await translated.client.responses.retrieve(created.id)
        assert retrieved.model_dump() == created.model_dump()

    async def test_input_items(self, translated: Edge) -> None:
        """GET /v1/responses/{id}/input_items lists the request's input as message items."""
        created = await translated.client.responses.create(model=MODEL, input="Hello there")
        page = await translated.client.responses.input_items.list(created.id)
        (item,) = page.data
        assert item.type == "message"
        assert "Hello there" in json.dumps(item.model_dump())

    async def test_delete_then_retrieve_is_404(self, translated: Edge) -> None:
        """After DELETE, GET answers 404 and a second DELETE does too."""
        created = await translated.client.responses.create(model=MODEL, input="Hi")
        await translated.client.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            await translated.client.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            await translated.client.responses.delete(created.id)

    async def test_store_false_is_not_retrievable(self, translated: Edge) -> None:
        """A response created with `store: false` cannot be fetched afterwards."""
        created = await translated.client.responses.create(model=MODEL, input="Hi", store=False)
        with pytest.raises(openai.NotFoundError):
            await translated.client.responses.retrieve(created.id)

    async def test_unknown_previous_response_id_is_a_400(self, translated: Edge) -> None:
        """A translated provider cannot resolve an id the store does not know: 400, no call."""
        with pytest.raises(openai.BadRequestError) as info:
            await translated.client.responses.create(
                model=MODEL, input="Hi", previous_response_id="resp_unknown"
            )
        assert info.value.body == {
            "message": 'Previous response with id "resp_unknown" not found.',
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }
        assert translated.fake.received == []


async def test_stored_response_is_private_to_its_key() -> None:
    """Another virtual key cannot read, list or delete a response; its creator can."""
    fake = AnthropicUpstream()
    await fake.start()
    try:
        async with running_gateway(_config(DOORS[0], fake, MASTER_KEY)) as gateway:
            owner_key, other_key = await add_key(gateway), await add_key(gateway)
            async with (
                sdk_client(gateway, owner_key) as owner,
                sdk_client(gateway, other_key) as other,
            ):
                created = await owner.responses.create(model=MODEL, input="Hi")
                with pytest.raises(openai.NotFoundError):
                    await other.responses.retrieve(created.id)
                with pytest.raises(openai.NotFoundError):
                    await other.responses.input_items.list(created.id)
                with pytest.raises(openai.NotFoundError):
                    await other.responses.delete(created.id)
                assert (await owner.responses.retrieve(created.id)).id == created.id
    finally:
        await fake.stop()


async def test_stored_response_is_shared_within_its_team() -> None:
    """A key of the creating key's team can read the response too."""
    fake = AnthropicUpstream()
    await fake.start()
    try:
        async with running_gateway(_config(DOORS[0], fake, MASTER_KEY)) as gateway:
            await add_team(gateway, "team-a")
            owner_key = await add_key(gateway, team_id="team-a")
            mate_key = await add_key(gateway, team_id="team-a")
            async with (
                sdk_client(gateway, owner_key) as owner,
                sdk_client(gateway, mate_key) as mate,
            ):
                created = await owner.responses.create(model=MODEL, input="Hi")
                assert (await mate.responses.retrieve(created.id)).id == created.id
    finally:
        await fake.stop()
