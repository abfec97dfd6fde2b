"""Streamed answers of every provider, as Responses stream events the spec and SDK accept."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from llmux.errors import LlmuxError, RateLimited, UpstreamError, UpstreamProtocolError
from llmux.frontdoor.responses import ResponsesOverChat, ResponsesStream
from llmux.frontdoor.responses.response import echo_of
from llmux.types import Usage
from tests.frontdoor.responses_support import (
    ANTHROPIC,
    GEMINI,
    OPENAI,
    Event,
    fixture,
    parse_events,
    responses_call,
    run_stream,
)
from tests.helpers.spec import schema_error

SDK_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)

STREAMS = [
    (OPENAI, "openai/chat_stream.sse"),
    (OPENAI, "openai/chat_tools_stream.sse"),
    (ANTHROPIC, "anthropic/chat_stream.sse"),
    (ANTHROPIC, "anthropic/chat_tools_stream.sse"),
    (ANTHROPIC, "anthropic/chat_thinking_stream.sse"),
    (ANTHROPIC, "anthropic/chat_cached_stream.sse"),
    (GEMINI, "gemini/stream.sse"),
    (GEMINI, "gemini/stream_tools.sse"),
    (GEMINI, "gemini/stream_thinking.sse"),
]


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    """One OpenAI chat chunk frame as an upstream sends it."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return b"data: " + json.dumps({**body, "choices": [choice]}).encode() + b"\n\n"


def _usage_chunk(prompt: int, completion: int) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    body = {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _names(events: list[Event]) -> list[str]:
    return [name for name, _ in events]


def _sdk_final(events: list[Event], sse: bytes) -> openai.types.responses.Response:
    """The SDK's `responses.stream()` helper run over `sse`; its final response."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse)

    http = httpx2.Client(transport=httpx2.MockTransport(answer))
    client = openai.OpenAI(api_key="sk-test", base_url="https://llmux.test/v1", http_client=http)
    with client.responses.stream(model="client-model", input="Hi") as stream:
        seen = [event.type for event in stream]
        final = stream.get_final_response()
    http.close()
    assert seen == _names(events)
    return final


@pytest.mark.parametrize(("codec", "name"), STREAMS)
def test_every_event_is_spec_and_sdk_valid(codec: ResponsesOverChat, name: str) -> None:
    """Each event matches the spec's ResponseStreamEvent and the SDK's event union."""
    events, _ = run_stream(codec, responses_call(stream=True), fixture(name))
    for event_name, data in events:
        assert event_name == data["type"]
        assert schema_error("ResponseStreamEvent", data) is None
        assert SDK_EVENT.validate_python(data).type == event_name


@pytest.mark.parametrize(("codec", "name"), STREAMS)
def test_lifecycle_and_sequence_numbers(codec: ResponsesOverChat, name: str) -> None:
    """created and in_progress open the stream, completed ends it; sequence numbers count up."""
    events, _ = run_stream(codec, responses_call(stream=True), fixture(name))
    assert _names(events)[:2] == ["response.created", "response.in_progress"]
    assert _names(events)[-1] == "response.completed"
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))


@pytest.mark.parametrize(("codec", "name"), STREAMS)
def test_sdk_stream_helper_accepts_it(codec: ResponsesOverChat, name: str) -> None:
    """`client.responses.stream()` consumes the events and `get_final_response()` succeeds."""
    upstream = fixture(name)
    decoder = codec.stream_decoder(responses_call(stream=True))
    sse = b"".join([*decoder.feed(upstream), *decoder.finish()])
    events = parse_events(sse)
    final = _sdk_final(events, sse)
    assert decoder.final_response is not None
    stored = json.loads(decoder.final_response)
    assert (final.id, final.status) == (stored["id"], "completed")
    assert [(item.type, item.id) for item in final.output] == [
        (item["type"], item["id"]) for item in stored["output"]
    ]
    assert final.output_text == "".join(
        part["text"]
        for item in stored["output"]
        if item["type"] == "message"
        for part in item["content"]
    )


def test_final_response_matches_completed_event() -> None:
    """`final_response` is exactly the Response that response.completed carried."""
    events, decoder = run_stream(
        ANTHROPIC, responses_call(stream=True), fixture("anthropic/chat_stream.sse")
    )
    assert decoder.final_response is not None
    assert json.loads(decoder.final_response) == events[-1][1]["response"]


def test_text_event_sequence() -> None:
    """A text answer streams one message item with one output_text part."""
    events, _ = run_stream(
        ANTHROPIC, responses_call(stream=True), fixture("anthropic/chat_stream.sse")
    )
    names = _names(events)
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = "".join(data["delta"] for name, data in events if name == "response.output_text.delta")
    done = next(data for name, data in events if name == "response.output_text.done")
    assert done["text"] == deltas
    assert (done["item_id"], done["output_index"], done["content_index"]) == ("msg_req1_0", 0, 0)


def test_tool_call_events() -> None:
    """Each tool call is a function_call item; its argument deltas add up to the done event."""
    events, _ = run_stream(
        ANTHROPIC, responses_call(stream=True), fixture("anthropic/chat_tools_stream.sse")
    )
    added = [data["item"] for name, data in events if name == "response.output_item.added"]
    assert [item["type"] for item in added] == ["message", "function_call", "function_call"]
    assert added[1]["call_id"] == "toolu_01A09q90qw90lq917835lq9"
    assert added[1]["status"] == "in_progress"
    deltas = "".join(
        data["delta"]
        for name, data in events
        if name == "response.function_call_arguments.delta" and data["output_index"] == 1
    )
    done = [data for name, data in events if name == "response.function_call_arguments.done"]
    assert done[0]["arguments"] == deltas == '{"location": "San Francisco, CA", "unit": "celsius"}'
    assert done[0]["name"] == "get_weather"


def test_items_close_before_the_next_opens() -> None:
    """output_item.done of one item always precedes output_item.added of the next."""
    events, _ = run_stream(
        ANTHROPIC, responses_call(stream=True), fixture("anthropic/chat_tools_stream.sse")
    )
    lifecycle = [
        (name, data["output_index"])
        for name, data in events
        if name in ("response.output_item.added", "response.output_item.done")
    ]
    assert lifecycle == [
        ("response.output_item.added", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.output_item.done", 1),
        ("response.output_item.added", 2),
        ("response.output_item.done", 2),
    ]


def test_reasoning_events() -> None:
    """Thinking streams as a reasoning item with summary part and summary text events."""
    events, _ = run_stream(
        ANTHROPIC, responses_call(stream=True), fixture("anthropic/chat_thinking_stream.sse")
    )
    reasoning = [name for name, data in events if data.get("output_index") == 0]
    assert reasoning[0] == "response.output_item.added"
    assert reasoning[1] == "response.reasoning_summary_part.added"
    assert reasoning[-3:] == [
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    final = events[-1][1]["response"]
    assert final["output"][0]["type"] == "reasoning"
    assert final["output"][0]["summary"][0]["text"]


def test_usage_mirrors_the_inner_decoder() -> None:
    """`usage` is the chat codec's usage; the completed Response reports it."""
    upstream = _chunk({"content": "Hi"}) + _chunk({}, "stop") + _usage_chunk(5, 2)
    events, decoder = run_stream(
        OPENAI, responses_call(stream=True), upstream + b"data: [DONE]\n\n"
    )
    assert decoder.usage == Usage(input_tokens=5, output_tokens=2)
    assert events[-1][1]["response"]["usage"]["total_tokens"] == 7


def test_length_ends_incomplete() -> None:
    """finish_reason length -> response.incomplete with reason max_output_tokens."""
    upstream = _chunk({"content": "Once upon"}) + _chunk({}, "length") + b"data: [DONE]\n\n"
    events, decoder = run_stream(OPENAI, responses_call(stream=True), upstream)
    name, data = events[-1]
    assert name == "response.incomplete"
    assert data["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert data["response"]["output"][0]["status"] == "incomplete"
    assert schema_error("ResponseStreamEvent", data) is None
    assert decoder.final_response is not None


def test_refusal_events() -> None:
    """A refusal streams as a refusal part with refusal delta and done events."""
    upstream = _chunk({"refusal": "I can't"}) + _chunk({"refusal": " help."}, "stop")
    events, _ = run_stream(OPENAI, responses_call(stream=True), upstream + b"data: [DONE]\n\n")
    done = next(data for name, data in events if name == "response.refusal.done")
    assert done["refusal"] == "I can't help."
    part = next(data for name, data in events if name == "response.content_part.done")["part"]
    assert part == {"type": "refusal", "refusal": "I can't help."}
    for _, data in events:
        assert schema_error("ResponseStreamEvent", data) is None


def test_empty_answer_gets_an_empty_message() -> None:
    """A stream with no content still ends with one (empty) message, like the JSON answer."""
    upstream = _chunk({"role": "assistant", "content": ""}) + _chunk({}, "stop")
    events, _ = run_stream(OPENAI, responses_call(stream=True), upstream + b"data: [DONE]\n\n")
    output = events[-1][1]["response"]["output"]
    assert [item["content"][0]["text"] for item in output] == [""]
    assert "response.output_text.delta" not in _names(events)


def test_nothing_is_sent_before_output() -> None:
    """A role-only first chunk yields no event, so the dispatcher may still retry."""
    decoder = OPENAI.stream_decoder(responses_call(stream=True))
    assert decoder.feed(_chunk({"role": "assistant", "content": ""})) == []
    assert _names(parse_events(b"".join(decoder.feed(_chunk({"content": "Hi"})))))[:2] == [
        "response.created",
        "response.in_progress",
    ]


def test_upstream_error_event_raises() -> None:
    """An Anthropic `error` event mid-stream surfaces as an UpstreamError, not as events."""
    decoder = ANTHROPIC.stream_decoder(responses_call(stream=True))
    with pytest.raises(UpstreamError):
        decoder.feed(fixture("anthropic/chat_error_stream.sse"))
        decoder.finish()


class _Relay:
    """A chat stream decoder that hands frames through as they come (errors included)."""

    def __init__(self) -> None:
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        return [chunk]

    def finish(self) -> list[bytes]:
        return []

    def error_frame(self, error: LlmuxError) -> bytes:
        return b""


def _relayed() -> ResponsesStream:
    call = responses_call(stream=True)
    return ResponsesStream(call, echo_of(call, []), _Relay())


def test_error_payload_from_the_chat_codec_raises() -> None:
    """A relayed `data: {"error": ...}` chunk becomes an UpstreamError with its message."""
    decoder = _relayed()
    decoder.feed(_chunk({"content": "Hi"}))
    frame = b'data: {"error":{"message":"boom","type":"server_error","code":"x"}}\n\n'
    with pytest.raises(UpstreamError, match="boom") as caught:
        decoder.feed(frame)
    assert caught.value.code == "x"


def test_error_after_output_in_the_same_read_is_deferred() -> None:
    """Events translated before an error in one read are returned; the error comes next."""
    decoder = _relayed()
    frame = b'data: {"error":{"message":"boom"}}\n\n'
    events = parse_events(b"".join(decoder.feed(_chunk({"content": "Hi"}) + frame)))
    assert _names(events)[-1] == "response.output_text.delta"
    with pytest.raises(UpstreamError, match="boom"):
        decoder.finish()
    failed = parse_events(decoder.error_frame(UpstreamError("boom")))
    assert failed[0][1]["sequence_number"] == len(events)


def test_unreadable_chunk_is_a_protocol_error() -> None:
    """A chunk that is not a chat chunk is an UpstreamProtocolError (502), not a crash."""
    with pytest.raises(UpstreamProtocolError):
        _relayed().feed(b'data: {"choices": 5}\n\n')


def test_error_frame_after_output() -> None:
    """A failure after the start ends with `error` and `response.failed`, both spec-valid."""
    decoder = OPENAI.stream_decoder(responses_call(stream=True))
    started = parse_events(b"".join(decoder.feed(_chunk({"content": "Hi"}))))
    failed = parse_events(decoder.error_frame(UpstreamError("Overloaded", status=529)))
    assert _names(failed) == ["error", "response.failed"]
    assert failed[0][1]["message"] == "Overloaded"
    response = failed[1][1]["response"]
    assert (response["status"], response["error"]["code"]) == ("failed", "server_error")
    sequence = [data["sequence_number"] for _, data in started + failed]
    assert sequence == list(range(len(sequence)))
    for _, data in failed:
        assert schema_error("ResponseStreamEvent", data) is None
        SDK_EVENT.validate_python(data)
    assert decoder.final_response is None


def test_error_frame_before_output_opens_the_response() -> None:
    """A failure before any output still starts with response.created (the SDK requires it)."""
    decoder = OPENAI.stream_decoder(responses_call(stream=True))
    failed = parse_events(decoder.error_frame(RateLimited("slow down")))
    assert _names(failed) == [
        "response.created",
        "response.in_progress",
        "error",
        "response.failed",
    ]
    assert failed[-1][1]["response"]["error"]["code"] == "rate_limit_exceeded"


def test_json_schema_stream_is_the_message_text() -> None:
    """With text.format json_schema, Anthropic's streamed JSON arrives as output_text."""
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    text = {"format": {"type": "json_schema", "name": "person", "schema": schema}}
    call = responses_call(stream=True, text=text)
    events, _ = run_stream(ANTHROPIC, call, fixture("anthropic/chat_json_stream.sse"))
    done = next(data for name, data in events if name == "response.output_text.done")
    assert isinstance(json.loads(done["text"]), dict)


def _tool_chunk(index: int, arguments: str, name: str | None = None) -> bytes:
    function: dict[str, str] = {"arguments": arguments}
    call: dict[str, Any] = {"index": index, "function": function}
    if name is not None:
        function["name"] = name
        call["id"] = f"call_{index}"
    return _chunk({"tool_calls": [call]})


def test_tool_call_without_a_name_is_a_protocol_error() -> None:
    """A tool call that starts without its function name cannot become a function_call."""
    decoder = OPENAI.stream_decoder(responses_call(stream=True))
    with pytest.raises(UpstreamProtocolError):
        decoder.feed(_tool_chunk(0, "{}"))


def test_resumed_tool_call_is_a_protocol_error() -> None:
    """Arguments for a call that was already closed (interleaved calls) are refused."""
    decoder = _relayed()
    decoder.feed(_tool_chunk(0, "{", name="a") + _tool_chunk(1, "{}", name="b"))
    with pytest.raises(UpstreamProtocolError):
        decoder.feed(_tool_chunk(0, "}"))
