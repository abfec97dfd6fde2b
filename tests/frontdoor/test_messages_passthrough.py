"""Native /v1/messages and count_tokens on Anthropic upstreams: bytes relayed, model rewritten."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from llmux.errors import UpstreamError, UpstreamProtocolError
from llmux.providers.anthropic import AnthropicProvider
from llmux.providers.base import Call, Target
from llmux.types import Endpoint, Usage
from llmux.wire.openai import decode_body

FIXTURES = Path(__file__).parent.parent / "fixtures" / "anthropic"
CODEC = AnthropicProvider()
TARGET = Target("anthropic", "https://api.anthropic.test", "sk-ant", "claude-sonnet-4-5-x", {})
BODY = (
    b'{"model":"smart","max_tokens":64,"cache":{"keep":  true},'
    b'"messages":[{"role":"user","content":"Hi"}]}'
)
EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def _call(
    endpoint: Endpoint = Endpoint.MESSAGES,
    stream: bool = False,
    headers: dict[str, str] | None = None,
) -> Call:
    return Call(
        endpoint, "smart", decode_body(BODY), stream, False, "req1", client_headers=headers or {}
    )


def _relay(name: str, size: int = 9) -> tuple[list[dict[str, Any]], Usage | None]:
    decoder = CODEC.stream_decoder(_call(stream=True))
    data = (FIXTURES / name).read_bytes()
    out: list[bytes] = []
    for start in range(0, len(data), size):
        out.extend(decoder.feed(data[start : start + size]))
    out.extend(decoder.finish())
    events = []
    for frame in out:
        name_line, data_line = frame.decode().rstrip("\n").split("\n")
        event = json.loads(data_line.removeprefix("data: "))
        assert name_line == f"event: {event['type']}"
        events.append(event)
    return events, decoder.usage


class TestEncode:
    """The upstream request."""

    def test_only_model_is_replaced(self) -> None:
        """The client's bytes go upstream unchanged but for `model`."""
        prepared = CODEC.encode_request(_call(), TARGET)
        assert prepared.url == "https://api.anthropic.test/v1/messages"
        assert prepared.body == BODY.replace(b'"smart"', b'"claude-sonnet-4-5-x"')

    def test_headers_from_target_and_client(self) -> None:
        """x-api-key from the deployment; version and beta from the client."""
        call = _call(headers={"anthropic-version": "2023-01-01", "anthropic-beta": "tools-2024"})
        headers = CODEC.encode_request(call, TARGET).headers
        assert headers["x-api-key"] == "sk-ant"
        assert headers["anthropic-version"] == "2023-01-01"
        assert headers["anthropic-beta"] == "tools-2024"

    def test_version_falls_back_to_target_then_default(self) -> None:
        """Without a client version, the deployment's api_version, else the codec default."""
        pinned = Target("anthropic", "https://a.test", "k", "m", {}, api_version="2024-10-22")
        assert CODEC.encode_request(_call(), pinned).headers["anthropic-version"] == "2024-10-22"
        assert CODEC.encode_request(_call(), TARGET).headers["anthropic-version"] == "2023-06-01"
        assert "anthropic-beta" not in CODEC.encode_request(_call(), TARGET).headers

    def test_stream_asks_for_events(self) -> None:
        """A streamed call is a streamed upstream request."""
        prepared = CODEC.encode_request(_call(stream=True), TARGET)
        assert prepared.stream and prepared.headers["accept"] == "text/event-stream"

    def test_count_tokens_path(self) -> None:
        """count_tokens goes to its own path with the model replaced."""
        prepared = CODEC.encode_request(_call(Endpoint.COUNT_TOKENS), TARGET)
        assert prepared.url == "https://api.anthropic.test/v1/messages/count_tokens"
        assert b'"claude-sonnet-4-5-x"' in (prepared.body or b"")
        assert not prepared.stream


class TestDecode:
    """Complete answers."""

    def test_model_rewritten_and_usage_read(self) -> None:
        """The client's model name comes back; cache reads and writes are in usage."""
        body, usage = CODEC.decode_response(_call(), (FIXTURES / "chat_cached.json").read_bytes())
        message = Message.model_validate_json(body)
        assert message.model == "smart"
        assert message.usage.cache_read_input_tokens == 1800
        assert usage == Usage(
            input_tokens=21 + 188 + 1800,
            output_tokens=14,
            cached_tokens=1800,
            cache_write_tokens=188,
        )

    def test_count_tokens_body_back_as_is(self) -> None:
        """The count is relayed untouched."""
        body = b'{"input_tokens": 14}'
        assert CODEC.decode_response(_call(Endpoint.COUNT_TOKENS), body) == (body, None)

    def test_invalid_body_is_a_protocol_error(self) -> None:
        """A non-message body is a 502."""
        with pytest.raises(UpstreamProtocolError):
            CODEC.decode_response(_call(), b"[1]")


class TestStream:
    """Streamed answers."""

    def test_events_relayed_with_model_rewritten(self) -> None:
        """Every event comes through, valid for the SDK, message_start naming the client model."""
        events, _ = _relay("chat_tools_stream.sse")
        upstream = (FIXTURES / "chat_tools_stream.sse").read_text().count("event: ")
        assert len(events) == upstream
        assert events[0]["message"]["model"] == "smart"
        for event in events:
            if event["type"] != "ping":
                EVENTS.validate_python(event)

    def test_usage_from_start_and_delta(self) -> None:
        """Input tokens from message_start, output tokens from the final message_delta."""
        _, usage = _relay("chat_stream.sse")
        assert usage is not None and usage.input_tokens == 12 and usage.output_tokens == 12

    def test_error_event_raises(self) -> None:
        """An upstream error event becomes an UpstreamError after the events before it."""
        decoder = CODEC.stream_decoder(_call(stream=True))
        frames = decoder.feed((FIXTURES / "chat_error_stream.sse").read_bytes())
        assert len(frames) == 3
        with pytest.raises(UpstreamError) as info:
            decoder.finish()
        assert info.value.http_status == 503

    def test_missing_message_stop_is_a_protocol_error(self) -> None:
        """A stream cut before message_stop fails."""
        decoder = CODEC.stream_decoder(_call(stream=True))
        data = (FIXTURES / "chat_stream.sse").read_bytes()
        decoder.feed(data[: data.index(b"event: message_stop")])
        with pytest.raises(UpstreamProtocolError):
            decoder.finish()

    def test_error_frame_is_anthropic_shaped(self) -> None:
        """The final error event has Anthropic's shape."""
        frame = CODEC.stream_decoder(_call(stream=True)).error_frame(
            UpstreamError("slow down", status=429)
        )
        assert frame == (
            b'event: error\ndata: {"type":"error","error":'
            b'{"type":"rate_limit_error","message":"slow down"}}\n\n'
        )

    def test_chat_streams_still_translate(self) -> None:
        """The chat endpoint keeps the chat translation."""
        chat = Call(
            Endpoint.CHAT,
            "smart",
            decode_body(b'{"model":"smart","messages":[{"role":"user","content":"Hi"}]}'),
            True,
            False,
            "req1",
        )
        decoder = CODEC.stream_decoder(chat)
        frames = decoder.feed((FIXTURES / "chat_stream.sse").read_bytes())
        assert frames[0].startswith(b"data: {")
