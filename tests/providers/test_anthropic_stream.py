"""Anthropic codec streams: Messages SSE events -> OpenAI chunks, usage and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmux.errors import UpstreamError, UpstreamProtocolError
from llmux.intake import parse_call
from llmux.providers.anthropic import AnthropicProvider
from llmux.providers.base import Call, StreamDecoder
from llmux.sse import DONE_FRAME
from llmux.types import Endpoint, Usage
from tests.helpers.anthropic_upstream import fixture, frames

CODEC = AnthropicProvider()


def _call(include_usage: bool = False, **extra: Any) -> Call:
    body: dict[str, Any] = {
        "model": "claude",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        **extra,
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return parse_call(Endpoint.CHAT, json.dumps(body).encode(), "req-1", 1700000000)


def _run(name: str, call: Call | None = None) -> tuple[list[bytes], StreamDecoder]:
    decoder = CODEC.stream_decoder(call or _call())
    out: list[bytes] = []
    for frame in frames(name):
        out.extend(decoder.feed(frame))
    out.extend(decoder.finish())
    return out, decoder


def _chunks(out: list[bytes]) -> list[dict[str, Any]]:
    assert out[-1] == DONE_FRAME
    return [json.loads(frame.removeprefix(b"data: ")) for frame in out[:-1]]


def _deltas(out: list[bytes]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in _chunks(out) if c["choices"]]


class TestText:
    """Plain text streams."""

    def test_role_then_content_then_finish(self) -> None:
        """The role chunk, one chunk per text delta, the finish chunk and [DONE]."""
        out, _ = _run("chat_stream.sse")
        chunks = _chunks(out)
        assert [c["choices"][0]["delta"] for c in chunks] == [
            {"role": "assistant", "content": ""},
            {"content": "Hello!"},
            {"content": " How can I help"},
            {"content": " you today?"},
            {},
        ]
        assert [c["choices"][0]["finish_reason"] for c in chunks][-2:] == [None, "stop"]
        assert {c["model"] for c in chunks} == {"claude"}
        assert {c["id"] for c in chunks} == {"chatcmpl-req-1"}
        assert {c["object"] for c in chunks} == {"chat.completion.chunk"}

    def test_usage_without_usage_chunk(self) -> None:
        """Usage is known at the end even when the client did not ask for the chunk."""
        out, decoder = _run("chat_stream.sse")
        assert all(c["choices"] for c in _chunks(out))
        assert decoder.usage == Usage(input_tokens=12, output_tokens=12)

    def test_usage_chunk_when_asked(self) -> None:
        """include_usage adds the usage-only chunk before [DONE]."""
        out, _ = _run("chat_cached_stream.sse", _call(include_usage=True))
        last = _chunks(out)[-1]
        assert last["choices"] == []
        assert last["usage"]["prompt_tokens"] == 2009
        assert last["usage"]["prompt_tokens_details"]["cached_tokens"] == 1800
        assert last["usage"]["completion_tokens"] == 14

    @pytest.mark.parametrize("size", range(1, 14))
    def test_any_byte_split(self, size: int) -> None:
        """Feeding the stream in `size`-byte pieces gives the same chunks."""
        whole = fixture("chat_tools_stream.sse")
        decoder = CODEC.stream_decoder(_call())
        out: list[bytes] = []
        for at in range(0, len(whole), size):
            out.extend(decoder.feed(whole[at : at + size]))
        out.extend(decoder.finish())
        assert out == _run("chat_tools_stream.sse")[0]

    def test_crlf_stream(self) -> None:
        """CRLF line endings parse like LF."""
        whole = fixture("chat_stream.sse").replace(b"\n", b"\r\n")
        decoder = CODEC.stream_decoder(_call())
        out = decoder.feed(whole) + decoder.finish()
        assert out == _run("chat_stream.sse")[0]


class TestTools:
    """Tool-use blocks become streamed tool_calls."""

    def test_tool_call_chunks(self) -> None:
        """index, id and name come first with empty arguments; fragments follow."""
        out, _ = _run("chat_tools_stream.sse")
        deltas = _deltas(out)
        tool_deltas = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
        assert tool_deltas == [
            {
                "index": 0,
                "id": "toolu_01A09q90qw90lq917835lq9",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            },
            {"index": 0, "function": {"arguments": '{"location": "San Fra'}},
            {"index": 0, "function": {"arguments": 'ncisco, CA", "unit": "celsius"}'}},
            {
                "index": 1,
                "id": "toolu_01B8fd7e6c5b4a3928170abc",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            },
            {"index": 1, "function": {"arguments": '{"locat'}},
            {"index": 1, "function": {"arguments": 'ion": "Paris, France"}'}},
        ]
        assert _chunks(out)[-1]["choices"][0]["finish_reason"] == "tool_calls"

    def test_text_before_tools(self) -> None:
        """The text block streams as content before the tool calls."""
        out, _ = _run("chat_tools_stream.sse")
        text = "".join(d.get("content") or "" for d in _deltas(out))
        assert text == "I'll check the weather in both cities."

    def test_json_mode_streams_content(self) -> None:
        """In JSON mode the json_response tool input streams as content, finish stop."""
        call = _call(response_format={"type": "json_object"})
        out, _ = _run("chat_json_stream.sse", call)
        deltas = _deltas(out)
        assert all("tool_calls" not in d for d in deltas)
        content = "".join(d.get("content") or "" for d in deltas)
        assert json.loads(content) == {"name": "Ada", "age": 36}
        assert _chunks(out)[-1]["choices"][0]["finish_reason"] == "stop"


class TestThinking:
    """Thinking blocks become reasoning_content deltas."""

    def test_reasoning_content(self) -> None:
        """thinking_delta -> reasoning_content; signature_delta is dropped."""
        out, decoder = _run("chat_thinking_stream.sse")
        deltas = _deltas(out)
        reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
        assert reasoning == "The user asks 27 * 453. 27 * 453 = 12231."
        assert "".join(d.get("content") or "" for d in deltas) == "27 * 453 = 12,231"
        assert decoder.usage == Usage(input_tokens=46, output_tokens=71, reasoning_tokens=52)


class TestFailures:
    """Errors and truncations."""

    def test_error_event_raises_mapped_error(self) -> None:
        """An `error` event mid-stream raises the mapped UpstreamError."""
        decoder = CODEC.stream_decoder(_call())
        events = frames("chat_error_stream.sse")
        for frame in events[:-1]:
            decoder.feed(frame)
        with pytest.raises(UpstreamError) as info:
            decoder.feed(events[-1])
        assert (info.value.http_status, info.value.code) == (503, "overloaded")

    def test_error_frame_shape(self) -> None:
        """The error frame is an OpenAI error object."""
        decoder = CODEC.stream_decoder(_call())
        frame = decoder.error_frame(UpstreamError("Overloaded", status=503, code="overloaded"))
        payload = json.loads(frame.removeprefix(b"data: "))
        assert payload["error"]["message"] == "Overloaded"
        assert payload["error"]["code"] == "overloaded"

    def test_missing_message_stop(self) -> None:
        """A stream that ends before message_stop is a protocol error."""
        decoder = CODEC.stream_decoder(_call())
        for frame in frames("chat_stream.sse")[:-1]:
            decoder.feed(frame)
        with pytest.raises(UpstreamProtocolError):
            decoder.finish()

    def test_invalid_event(self) -> None:
        """An event whose data is not JSON is a protocol error."""
        decoder = CODEC.stream_decoder(_call())
        with pytest.raises(UpstreamProtocolError):
            decoder.feed(b"event: message_start\ndata: {nope\n\n")

    def test_unknown_events_are_ignored(self) -> None:
        """Future event types and deltas for unknown blocks produce nothing."""
        decoder = CODEC.stream_decoder(_call())
        assert decoder.feed(b'data: {"type":"brand_new_event"}\n\n') == []
        delta = (
            b'data: {"type":"content_block_delta","index":9,'
            b'"delta":{"type":"text_delta","text":"x"}}\n\n'
        )
        assert decoder.feed(delta) == []


def test_error_after_frames_in_one_read_is_deferred() -> None:
    """Frames before an error in the same read are returned; the error comes next."""
    decoder = CODEC.stream_decoder(_call())
    out = decoder.feed(fixture("chat_error_stream.sse"))
    assert json.loads(out[-1].removeprefix(b"data: "))["choices"][0]["delta"] == {
        "content": "Hello"
    }
    with pytest.raises(UpstreamError):
        decoder.finish()


def test_block_start_edges() -> None:
    """A start without a block is ignored; a thinking start with text streams it."""
    decoder = CODEC.stream_decoder(_call())
    assert decoder.feed(b'data: {"type":"content_block_start","index":0}\n\n') == []
    start = (
        b'{"type":"content_block_start","index":0,'
        b'"content_block":{"type":"thinking","thinking":"Hm"}}'
    )
    (frame,) = decoder.feed(b"data: " + start + b"\n\n")
    assert json.loads(frame.removeprefix(b"data: "))["choices"][0]["delta"] == {
        "reasoning_content": "Hm"
    }
