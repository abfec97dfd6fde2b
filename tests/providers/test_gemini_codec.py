"""The Gemini codec's answer side: responses, streams, embeddings and errors -> OpenAI shapes."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from llmux.errors import UpstreamError, UpstreamProtocolError
from llmux.intake import parse_call
from llmux.providers.base import Call
from llmux.providers.gemini import GeminiProvider
from llmux.providers.gemini.response import tool_call_id
from llmux.sse import DONE_FRAME
from llmux.types import Endpoint, Usage

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gemini"
CODEC = GeminiProvider()
SIGNATURE = "CiQBVKhc7mGJ3ZcX9Q0uKs0H2tq1d7VkYV1dOpm5QWhcQf1xqg4KZQFUqFzuY3TqQ7lVYGyHqv2Lgq3tYw=="


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _call(stream: bool = False, include_usage: bool = True) -> Call:
    body: dict[str, Any] = {"model": "gem", "messages": [{"role": "user", "content": "Hi"}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": include_usage}
    return parse_call(Endpoint.CHAT, json.dumps(body).encode(), "req-1", created=1700000000)


def _decode(name: str) -> tuple[Any, Usage | None]:
    body, usage = CODEC.decode_response(_call(), _fixture(name))
    return json.loads(body), usage


def _message(name: str) -> Any:
    return _decode(name)[0]["choices"][0]


def _stream(data: bytes, call: Call | None = None, step: int = 0) -> tuple[list[Any], Any]:
    """Feed `data` (in `step`-byte pieces when step > 0); the payloads and the decoder."""
    decoder = CODEC.stream_decoder(call or _call(stream=True))
    pieces = [data[i : i + step] for i in range(0, len(data), step)] if step else [data]
    frames = [frame for piece in pieces for frame in decoder.feed(piece)]
    frames += decoder.finish()
    assert frames[-1] == DONE_FRAME
    payloads = [json.loads(frame.removeprefix(b"data: ")) for frame in frames[:-1]]
    return payloads, decoder


class TestResponse:
    """Non-streaming generateContent -> chat.completion."""

    def test_text_answer(self) -> None:
        """Text parts become content; STOP becomes stop; the client's model name is used."""
        body, _ = _decode("generate.json")
        assert body["model"] == "gem"
        assert body["object"] == "chat.completion"
        assert body["created"] == 1700000000
        assert body["choices"][0]["message"]["content"] == "Hello! How can I help you today?"
        assert body["choices"][0]["finish_reason"] == "stop"

    def test_usage(self) -> None:
        """usageMetadata becomes OpenAI usage with details."""
        body, usage = _decode("generate.json")
        assert usage == Usage(input_tokens=8, output_tokens=9)
        assert body["usage"]["total_tokens"] == 17

    def test_function_calls(self) -> None:
        """functionCall parts become tool_calls with JSON arguments; finish is tool_calls."""
        choice = _message("generate_tools.json")
        calls = choice["message"]["tool_calls"]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] is None
        assert [json.loads(c["function"]["arguments"]) for c in calls] == [
            {"location": "Paris"},
            {"location": "Tokyo"},
        ]
        assert [c["id"] for c in calls] == [
            tool_call_id(_call(), 0, "get_weather"),
            tool_call_id(_call(), 1, "get_weather"),
        ]
        assert calls[0]["id"].startswith("call_0_") and calls[0]["type"] == "function"

    def test_thought_signature_in_extra_content(self) -> None:
        """A functionCall's thoughtSignature rides in extra_content.google.thought_signature."""
        calls = _message("generate_tools.json")["message"]["tool_calls"]
        assert calls[0]["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
        assert "extra_content" not in calls[1]

    def test_upstream_call_id_is_kept(self) -> None:
        """A functionCall that carries an id keeps it."""
        answer = {
            "candidates": [
                {
                    "content": {"parts": [{"functionCall": {"id": "fc-9", "name": "f"}}]},
                    "finishReason": "STOP",
                }
            ]
        }
        body, _ = CODEC.decode_response(_call(), json.dumps(answer).encode())
        tool = json.loads(body)["choices"][0]["message"]["tool_calls"][0]
        assert (tool["id"], tool["function"]["arguments"]) == ("fc-9", "{}")

    def test_thoughts_and_cached_tokens(self) -> None:
        """Thought parts become reasoning_content; cached and thought tokens become details."""
        body, usage = _decode("generate_thinking.json")
        message = body["choices"][0]["message"]
        assert message["content"] == 'There are 3 r\'s in "strawberry".'
        assert message["reasoning_content"].startswith("**Counting letters**")
        assert usage == Usage(
            input_tokens=1250, output_tokens=111, cached_tokens=1024, reasoning_tokens=99
        )
        assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 1024
        assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 99

    def test_blocked_prompt(self) -> None:
        """A blocked prompt gives content_filter with empty content."""
        choice = _message("generate_blocked.json")
        assert choice["finish_reason"] == "content_filter"
        assert choice["message"]["content"] == ""

    def test_max_tokens(self) -> None:
        """MAX_TOKENS becomes length."""
        assert _message("generate_max_tokens.json")["finish_reason"] == "length"

    @pytest.mark.parametrize(
        ("reason", "expected"),
        [
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("SPII", "content_filter"),
            ("OTHER", "stop"),
            ("MALFORMED_FUNCTION_CALL", "stop"),
            ("FINISH_REASON_UNSPECIFIED", "stop"),
        ],
    )
    def test_finish_reasons(self, reason: str, expected: str) -> None:
        """Every finishReason maps to an OpenAI finish_reason."""
        answer = {"candidates": [{"content": {"parts": []}, "finishReason": reason}]}
        body, _ = CODEC.decode_response(_call(), json.dumps(answer).encode())
        assert json.loads(body)["choices"][0]["finish_reason"] == expected

    def test_not_json_is_protocol_error(self) -> None:
        """A body that is not a Gemini response is a protocol error."""
        with pytest.raises(UpstreamProtocolError):
            CODEC.decode_response(_call(), b"<html>")

    def test_no_candidates_is_protocol_error(self) -> None:
        """A response with neither candidates nor a block reason is a protocol error."""
        with pytest.raises(UpstreamProtocolError):
            CODEC.decode_response(_call(), b"{}")


class TestStream:
    """streamGenerateContent SSE -> chat.completion.chunk frames."""

    def test_text_chunks(self) -> None:
        """Role first, then one content delta per upstream chunk, then the finish chunk."""
        payloads, _ = _stream(_fixture("stream.sse"))
        deltas = [p["choices"][0]["delta"] for p in payloads if p["choices"]]
        assert deltas[0] == {"role": "assistant", "content": ""}
        text = "".join(d.get("content", "") for d in deltas)
        assert text == "Hello! How can I help you today?"
        assert payloads[-2]["choices"][0]["finish_reason"] == "stop"
        assert {p["model"] for p in payloads} == {"gem"}

    def test_usage_chunk_from_last_metadata(self) -> None:
        """The closing usage chunk carries the last usageMetadata."""
        payloads, decoder = _stream(_fixture("stream.sse"))
        assert payloads[-1]["choices"] == []
        assert payloads[-1]["usage"]["prompt_tokens"] == 8
        assert decoder.usage == Usage(input_tokens=8, output_tokens=9)

    def test_no_usage_chunk_unless_asked(self) -> None:
        """Without include_usage no usage chunk is sent, but usage is still known."""
        payloads, decoder = _stream(_fixture("stream.sse"), _call(True, include_usage=False))
        assert all(p["choices"] for p in payloads)
        assert decoder.usage is not None

    def test_split_at_every_byte(self) -> None:
        """Feeding one byte at a time gives the same frames as one read."""
        whole, _ = _stream(_fixture("stream_thinking.sse"))
        split, _ = _stream(_fixture("stream_thinking.sse"), step=1)
        assert split == whole

    def test_function_calls_are_complete_chunks(self) -> None:
        """Each functionCall is one tool-call chunk with index, id, name and arguments."""
        payloads, _ = _stream(_fixture("stream_tools.sse"))
        calls = [
            p["choices"][0]["delta"]["tool_calls"][0]
            for p in payloads
            if p["choices"] and "tool_calls" in p["choices"][0]["delta"]
        ]
        assert [(c["index"], c["function"]["name"]) for c in calls] == [
            (0, "get_weather"),
            (1, "get_weather"),
        ]
        assert calls[1]["id"] == tool_call_id(_call(), 1, "get_weather")
        assert json.loads(calls[0]["function"]["arguments"]) == {"location": "Paris"}
        assert payloads[-2]["choices"][0]["finish_reason"] == "tool_calls"

    def test_streamed_thought_signature(self) -> None:
        """A streamed functionCall carries its thoughtSignature in extra_content."""
        payloads, _ = _stream(_fixture("stream_tools.sse"))
        first = payloads[1]["choices"][0]["delta"]["tool_calls"][0]
        assert first["extra_content"] == {"google": {"thought_signature": SIGNATURE}}

    def test_thoughts_are_reasoning_deltas(self) -> None:
        """Thought parts stream as reasoning_content deltas."""
        payloads, _ = _stream(_fixture("stream_thinking.sse"))
        deltas = [p["choices"][0]["delta"] for p in payloads if p["choices"]]
        assert deltas[1] == {
            "reasoning_content": "**Counting letters**\n\nStrawberry has three r's."
        }

    def test_stream_and_non_stream_usage_equal(self) -> None:
        """The same answer gives equal usage streamed and not."""
        _, streamed = _stream(_fixture("stream_thinking.sse"))
        _, whole = _decode("generate_thinking.json")
        assert streamed.usage == whole

    def test_missing_finish_reason_is_protocol_error(self) -> None:
        """A stream that ends without a finishReason is a protocol error at finish()."""
        decoder = CODEC.stream_decoder(_call(stream=True))
        assert decoder.feed(_fixture("stream_truncated.sse"))
        with pytest.raises(UpstreamProtocolError):
            decoder.finish()

    def test_error_mid_stream(self) -> None:
        """An error object inside the stream raises an UpstreamError with its message."""
        decoder = CODEC.stream_decoder(_call(stream=True))
        with pytest.raises(UpstreamError) as info:
            decoder.feed(_fixture("stream_error.sse"))
        assert info.value.message == "The model is overloaded. Please try again later."
        assert info.value.code == "unavailable"
        frame = json.loads(decoder.error_frame(info.value).removeprefix(b"data: "))
        assert frame["error"]["code"] == "unavailable"

    def test_blocked_prompt_stream(self) -> None:
        """A stream whose prompt is blocked ends with content_filter."""
        payload = _fixture("generate_blocked.json").replace(b"\n", b"")
        payloads, _ = _stream(b"data: " + payload + b"\r\n\r\n")
        assert payloads[-2]["choices"][0]["finish_reason"] == "content_filter"


def _embed_call(encoding: str | None) -> Call:
    body: dict[str, Any] = {"model": "gem-embed", "input": ["a", "b"]}
    if encoding:
        body["encoding_format"] = encoding
    return parse_call(Endpoint.EMBEDDINGS, json.dumps(body).encode(), "req-1")


class TestEmbeddings:
    """batchEmbedContents -> OpenAI embeddings list."""

    def test_floats(self) -> None:
        """Values become embedding float lists with index, in order."""
        body, usage = CODEC.decode_response(_embed_call("float"), _fixture("embeddings.json"))
        decoded = json.loads(body)
        assert decoded["object"] == "list" and decoded["model"] == "gem-embed"
        assert [d["index"] for d in decoded["data"]] == [0, 1]
        assert decoded["data"][1] == {
            "object": "embedding",
            "index": 1,
            "embedding": [-0.5, 0.125, 0.0, 1.0],
        }
        assert decoded["usage"] == {"prompt_tokens": 0, "total_tokens": 0}
        assert usage == Usage()

    def test_base64(self) -> None:
        """encoding_format base64 gives little-endian float32 bytes in base64."""
        body, _ = CODEC.decode_response(_embed_call("base64"), _fixture("embeddings.json"))
        encoded = json.loads(body)["data"][1]["embedding"]
        assert struct.unpack("<4f", base64.b64decode(encoded)) == (-0.5, 0.125, 0.0, 1.0)

    def test_default_is_floats(self) -> None:
        """Without encoding_format the vectors are floats."""
        body, _ = CODEC.decode_response(_embed_call(None), _fixture("embeddings.json"))
        assert isinstance(json.loads(body)["data"][0]["embedding"], list)


class TestErrors:
    """Google error bodies -> UpstreamError."""

    @pytest.mark.parametrize(
        ("name", "status", "code", "error_type", "retryable"),
        [
            ("error_429.json", 429, "resource_exhausted", "rate_limit_error", True),
            ("error_400.json", 400, "invalid_argument", "invalid_request_error", False),
            ("error_403.json", 403, "permission_denied", "permission_error", False),
            ("error_404.json", 404, "not_found", "invalid_request_error", False),
            ("error_500.json", 500, "internal", "api_error", True),
            ("error_503.json", 503, "unavailable", "api_error", True),
        ],
    )
    def test_status_code_and_type(
        self, name: str, status: int, code: str, error_type: str, retryable: bool
    ) -> None:
        """The status and message are kept; code is the lowercased Google status."""
        body = _fixture(name)
        error = CODEC.decode_error(status, body, {})
        assert (error.http_status, error.code, error.error_type) == (status, code, error_type)
        assert error.retryable is retryable
        assert error.message == json.loads(body)["error"]["message"]

    def test_retry_info(self) -> None:
        """A RetryInfo retryDelay becomes the retry hint."""
        assert CODEC.decode_error(429, _fixture("error_429.json"), {}).retry_after == 13.0

    def test_retry_after_header_wins(self) -> None:
        """A Retry-After header is preferred over RetryInfo."""
        error = CODEC.decode_error(429, _fixture("error_429.json"), {"retry-after": "2"})
        assert error.retry_after == 2.0

    def test_context_length(self) -> None:
        """A too-many-tokens 400 gets the context_length_exceeded code."""
        error = CODEC.decode_error(400, _fixture("error_400_tokens.json"), {})
        assert error.code == "context_length_exceeded"

    def test_non_json_body(self) -> None:
        """A non-JSON error body keeps the status and quotes the text."""
        error = CODEC.decode_error(502, b"Bad Gateway", {})
        assert error.http_status == 502 and "Bad Gateway" in error.message
