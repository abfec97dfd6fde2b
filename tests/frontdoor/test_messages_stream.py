"""Messages front door streams: a provider's chat chunks -> Anthropic stream events.

Upstream bytes are fed in odd-sized pieces through the real inner codecs; every event is checked
against the anthropic SDK's types, accumulated with the SDK's own accumulator, and the whole
stream is also read by the SDK's `messages.stream()` helper over an in-memory transport.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx2 as httpx
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent, ToolUseBlock
from pydantic import TypeAdapter

from llmux.errors import UpstreamError, UpstreamProtocolError
from llmux.frontdoor.messages import MessagesOverChat
from llmux.providers.base import Call, Provider
from llmux.providers.gemini import GeminiProvider
from llmux.providers.openai import OpenAIProvider
from llmux.types import Endpoint
from llmux.wire.openai import decode_body

FIXTURES = Path(__file__).parent.parent / "fixtures"
EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)
CALL = Call(
    Endpoint.MESSAGES,
    "claude-sonnet-4-5",
    decode_body(b'{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[],"stream":true}'),
    True,
    False,
    "req1",
)


def _fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [choice],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _usage_chunk(prompt: int, completion: int) -> bytes:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    body = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [],
        "usage": usage,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\ndata: [DONE]\n\n"


def _stream(inner: Provider, data: bytes, size: int = 7) -> bytes:
    """The client-facing bytes for upstream `data` fed `size` bytes at a time."""
    decoder = MessagesOverChat(inner).stream_decoder(CALL)
    out: list[bytes] = []
    for start in range(0, len(data), size):
        out.extend(decoder.feed(data[start : start + size]))
    out.extend(decoder.finish())
    return b"".join(out)


def _events(stream: bytes) -> list[dict[str, Any]]:
    """Parsed events; each `event:` name must match its data's type."""
    events = []
    for block in stream.decode().split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        events.append(event)
    return events


def _final(stream: bytes) -> Message:
    """Every event validated by the SDK types, then accumulated by the SDK into a Message."""
    snapshot = None
    buffers: dict[int, bytes] = {}
    for raw in _events(stream):
        if raw["type"] == "ping":
            continue
        event = EVENTS.validate_python(raw)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)
    assert snapshot is not None
    return Message.model_validate(snapshot.to_dict())


def _sdk_final(stream: bytes) -> Message:
    """What `client.messages.stream(...).get_final_message()` makes of the stream."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=stream, headers={"content-type": "text/event-stream"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = anthropic.Anthropic(api_key="k", base_url="http://llmux.test", http_client=http)
    with client.messages.stream(
        model="gateway-model", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    ) as events:
        message = events.get_final_message()
    http.close()
    return message


class TestOpenAIStreams:
    """Streams from the OpenAI codec."""

    def test_event_sequence_for_text(self) -> None:
        """message_start, ping, one text block, message_delta and message_stop, in order."""
        events = _events(_stream(OpenAIProvider(), _fixture("openai", "chat_stream.sse")))
        assert [e["type"] for e in events] == [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        assert events[0]["message"]["model"] == "claude-sonnet-4-5"
        assert events[0]["message"]["id"] == "msg_req1"

    def test_text_accumulates_in_the_sdk(self) -> None:
        """The SDK's stream helper rebuilds the text, stop reason and usage."""
        message = _sdk_final(_stream(OpenAIProvider(), _fixture("openai", "chat_stream.sse")))
        assert message.content[0].type == "text"
        assert message.content[0].text == "Hello! How can I help?"
        assert message.stop_reason == "end_turn"
        assert (message.usage.input_tokens, message.usage.output_tokens) == (19, 6)

    def test_streamed_tool_arguments(self) -> None:
        """Argument fragments become input_json_delta events the SDK parses into input."""
        stream = _stream(OpenAIProvider(), _fixture("openai", "chat_tools_stream.sse"), size=11)
        message = _sdk_final(stream)
        tool = message.content[0]
        assert tool.type == "tool_use" and tool.name == "get_weather"
        assert tool.input == {"location": "Paris, France"}
        assert message.stop_reason == "tool_use"
        assert _final(stream).content[0] == tool

    def test_empty_arguments_stream_an_empty_object(self) -> None:
        """A tool call with no argument fragments gets partial_json "{}", never nothing."""
        call = {
            "index": 0,
            "id": "call_t",
            "type": "function",
            "function": {"name": "get_time", "arguments": ""},
        }
        data = (
            _chunk({"role": "assistant", "tool_calls": [call]})
            + _chunk({}, "tool_calls")
            + _usage_chunk(5, 3)
        )
        stream = _stream(OpenAIProvider(), data)
        json_deltas = [
            e["delta"]["partial_json"]
            for e in _events(stream)
            if e["type"] == "content_block_delta"
        ]
        assert json_deltas == ["{}"]
        tool = _sdk_final(stream).content[0]
        assert isinstance(tool, ToolUseBlock) and tool.input == {}

    def test_text_then_tool_are_two_blocks(self) -> None:
        """Text followed by a tool call closes the text block and opens block 1."""
        call = {
            "index": 0,
            "id": "call_w",
            "type": "function",
            "function": {"name": "w", "arguments": '{"a":1}'},
        }
        data = (
            _chunk({"content": "Let me check."})
            + _chunk({"tool_calls": [call]})
            + _chunk({}, "tool_calls")
            + _usage_chunk(5, 3)
        )
        events = _events(_stream(OpenAIProvider(), data))
        starts = [
            (e["index"], e["content_block"]["type"])
            for e in events
            if e["type"] == "content_block_start"
        ]
        assert starts == [(0, "text"), (1, "tool_use")]
        stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
        assert stops == [0, 1]

    def test_calls_sharing_index_zero_stay_apart(self) -> None:
        """Servers that number every call 0 still give one tool_use block per call id."""
        first = {"index": 0, "id": "call_a", "function": {"name": "a", "arguments": "{}"}}
        second = {"index": 0, "id": "call_b", "function": {"name": "b", "arguments": "{}"}}
        data = (
            _chunk({"tool_calls": [first]})
            + _chunk({"tool_calls": [second]})
            + _chunk({}, "tool_calls")
            + _usage_chunk(5, 3)
        )
        message = _sdk_final(_stream(OpenAIProvider(), data))
        assert [block.type for block in message.content] == ["tool_use", "tool_use"]

    def test_reasoning_content_streams_as_thinking(self) -> None:
        """reasoning_content deltas form a thinking block ending with a signature_delta."""
        data = (
            _chunk({"reasoning_content": "Think"})
            + _chunk({"content": "Done"})
            + _chunk({}, "stop")
            + _usage_chunk(5, 3)
        )
        stream = _stream(OpenAIProvider(), data)
        deltas = [e["delta"]["type"] for e in _events(stream) if e["type"] == "content_block_delta"]
        assert deltas == ["thinking_delta", "signature_delta", "text_delta"]
        message = _sdk_final(stream)
        assert [block.type for block in message.content] == ["thinking", "text"]

    def test_length_finish_is_max_tokens(self) -> None:
        """finish_reason length -> stop_reason max_tokens in message_delta."""
        data = _chunk({"content": "Once"}) + _chunk({}, "length") + _usage_chunk(5, 1)
        assert _sdk_final(_stream(OpenAIProvider(), data)).stop_reason == "max_tokens"

    def test_cached_tokens_in_message_delta(self) -> None:
        """Final usage reports cache reads apart from input tokens."""
        usage = (
            b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":2,'
            b'"prompt_tokens_details":{"cached_tokens":60}}}\n\ndata: [DONE]\n\n'
        )
        data = _chunk({"content": "Hi"}) + _chunk({}, "stop") + usage
        delta = [
            e for e in _events(_stream(OpenAIProvider(), data)) if e["type"] == "message_delta"
        ][0]
        assert delta["usage"] == {
            "input_tokens": 40,
            "output_tokens": 2,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 60,
        }

    def test_usage_is_exposed_for_accounting(self) -> None:
        """The decoder's usage is the inner codec's, for spend and limits."""
        decoder = MessagesOverChat(OpenAIProvider()).stream_decoder(CALL)
        decoder.feed(_fixture("openai", "chat_stream.sse"))
        decoder.finish()
        assert decoder.usage is not None and decoder.usage.input_tokens == 19

    def test_mid_stream_error_raises_for_the_dispatcher(self) -> None:
        """An upstream error frame is raised, to be reported with error_frame."""
        decoder = MessagesOverChat(OpenAIProvider()).stream_decoder(CALL)
        decoder.feed(_chunk({"content": "Hi"}))
        with pytest.raises(UpstreamError):
            decoder.feed(b'data: {"error":{"message":"boom","type":"server_error"}}\n\n')

    def test_error_frame_is_anthropic_shaped(self) -> None:
        """error_frame is an `error` event the SDK types accept."""
        decoder = MessagesOverChat(OpenAIProvider()).stream_decoder(CALL)
        frame = decoder.error_frame(UpstreamError("busy", status=503))
        event = _events(frame)[0]
        assert event == {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}


class TestGeminiStreams:
    """Streams from the Gemini codec."""

    def test_text(self) -> None:
        """Gemini text parts stream as one text block."""
        message = _sdk_final(_stream(GeminiProvider(), _fixture("gemini", "stream.sse"), 5))
        assert message.content[0].type == "text"
        assert message.content[0].text == "Hello! How can I help you today?"
        assert message.stop_reason == "end_turn"

    def test_function_calls(self) -> None:
        """Whole Gemini function calls become two tool_use blocks and stop_reason tool_use."""
        stream = _stream(GeminiProvider(), _fixture("gemini", "stream_tools.sse"), 13)
        message = _sdk_final(stream)
        assert [b.input for b in message.content if b.type == "tool_use"] == [
            {"location": "Paris"},
            {"location": "Tokyo"},
        ]
        assert message.stop_reason == "tool_use"
        assert _final(stream).content == message.content

    def test_thinking_and_cache_reads(self) -> None:
        """Thought parts stream as thinking; cached tokens are cache reads."""
        message = _sdk_final(_stream(GeminiProvider(), _fixture("gemini", "stream_thinking.sse")))
        assert [block.type for block in message.content] == ["thinking", "text"]
        assert message.usage.cache_read_input_tokens == 1024
        assert message.usage.input_tokens == 1250 - 1024

    def test_truncated_stream_is_a_protocol_error(self) -> None:
        """A stream cut before its end fails instead of looking complete."""
        with pytest.raises(UpstreamProtocolError):
            _stream(GeminiProvider(), _fixture("gemini", "stream_truncated.sse"))
