"""`POST /v1/responses` through the official SDK: passthrough and mock, JSON and SSE."""

from __future__ import annotations

import json

import openai

from tests.helpers.upstream import FakeUpstream, sse_frames

MOCK_REPLY = "Hello from the llmux mock provider. This reply is deterministic."
PROMPT = "Tell me a three sentence bedtime story about a unicorn."
UPSTREAM_TEXT = (
    "In a peaceful grove beneath a silver moon, a unicorn named Lumina discovered a hidden pool."
)


def fixture_events() -> list[tuple[str, int]]:
    """(type, sequence_number) of every event in the recorded Responses stream."""
    events = []
    for frame in sse_frames("responses_stream.sse"):
        payload = json.loads(frame.split(b"data: ", 1)[1])
        events.append((payload["type"], payload["sequence_number"]))
    return events


async def test_response_from_upstream(client: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    """A passthrough response keeps the upstream's output and usage under the client's model."""
    response = await client.responses.create(model="smart", input=PROMPT)
    assert response.output_text == UPSTREAM_TEXT
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (36, 87)
    assert response.usage.total_tokens == 123
    assert response.model == "smart"
    assert upstream.received[0].path == "/v1/responses"
    assert upstream.received[0].json == {"model": "gpt-4o", "input": PROMPT}


async def test_response_from_mock(client: openai.AsyncOpenAI) -> None:
    """The mock provider answers with its fixed reply, honest usage and the client's model."""
    response = await client.responses.create(model="mock-gpt", input=PROMPT)
    assert response.output_text == MOCK_REPLY
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.input_tokens == len(PROMPT.split())
    assert response.usage.output_tokens == len(MOCK_REPLY.split())
    assert response.model == "mock-gpt"


async def test_response_stream_helper_from_upstream(client: openai.AsyncOpenAI) -> None:
    """The SDK's strict responses.stream() helper assembles the upstream's streamed response."""
    async with client.responses.stream(model="gpt-4o-mini", input="Hi") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "Hi there!"
    assert final.status == "completed"
    assert final.model == "gpt-4o-mini"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (37, 11)


async def test_response_stream_helper_from_mock(client: openai.AsyncOpenAI) -> None:
    """The SDK's strict responses.stream() helper assembles the mock provider's stream."""
    async with client.responses.stream(model="mock-gpt", input=PROMPT) as stream:
        final = await stream.get_final_response()
    assert final.output_text == MOCK_REPLY
    assert final.status == "completed"
    assert final.model == "mock-gpt"
    assert final.usage is not None
    assert final.usage.output_tokens == len(MOCK_REPLY.split())


async def test_response_stream_keeps_upstream_event_order(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """Passthrough events arrive in the upstream's order with its sequence numbers."""
    stream = await client.responses.create(model="gpt-4o-mini", input="Hi", stream=True)
    events = [(event.type, event.sequence_number) async for event in stream]
    assert events == fixture_events()
    assert upstream.received[0].json == {"model": "gpt-4o-mini", "input": "Hi", "stream": True}


async def test_response_stream_from_mock_is_well_ordered(client: openai.AsyncOpenAI) -> None:
    """The mock's events follow the full Responses sequence, numbered from zero without gaps."""
    stream = await client.responses.create(model="mock-gpt", input=PROMPT, stream=True)
    events = [(event.type, event.sequence_number) async for event in stream]
    kinds = [kind for kind, _ in events]
    assert [number for _, number in events] == list(range(len(events)))
    deltas = kinds.count("response.output_text.delta")
    assert deltas >= 1
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
