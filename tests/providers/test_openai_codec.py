"""The OpenAI-dialect codec: byte-preserving requests, responses, errors and stream relays."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from llmux.errors import UpstreamError, UpstreamProtocolError
from llmux.intake import parse_call
from llmux.providers.base import Call, Target
from llmux.providers.openai import OpenAIProvider, parse_retry_after
from llmux.sse import DONE_FRAME, SSEParser
from llmux.types import Endpoint, Usage
from llmux.wire.openai import decode_body

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openai"
CODEC = OpenAIProvider()
TARGET = Target(
    provider="up",
    base_url="https://up.example/v1",
    api_key="sk-upstream",
    upstream_model="gpt-4o-2024-08-06",
    headers={"OpenAI-Project": "proj_1"},
)
_CHAT = b'{"model":"smart","messages":[{"role": "user", "content":"hi"}]'


def _call(endpoint: Endpoint, body: bytes) -> Call:
    return parse_call(endpoint, body, "req-1")


def _json(data: bytes) -> Any:
    return json.loads(data)


def _raw_fields(data: bytes) -> dict[str, bytes]:
    """Top-level fields of a JSON object with each value as its exact bytes."""
    return {key: bytes(value) for key, value in decode_body(data).items()}


class TestEncodeRequest:
    """encode_request forwards the client's bytes with only `model` (and usage) patched."""

    def test_only_model_is_patched(self) -> None:
        """Every other top-level value keeps its exact bytes, spacing and number format."""
        body = (
            b'{"model": "smart", "messages": [{"role": "user", "content": "hi"}],'
            b' "temperature": 0.50, "response_format": {"type" : "json_object"},'
            b' "x_vendor_extra": [1, 2 ,3], "logprobs": true}'
        )
        prepared = CODEC.encode_request(_call(Endpoint.CHAT, body), TARGET)
        assert prepared.body is not None
        sent = _raw_fields(prepared.body)
        original = _raw_fields(body)
        assert sent.pop("model") == b'"gpt-4o-2024-08-06"'
        del original["model"]
        assert sent == original

    def test_url_method_and_headers(self) -> None:
        """The request goes to base_url + endpoint with the key and the provider's headers."""
        prepared = CODEC.encode_request(_call(Endpoint.CHAT, _CHAT + b"}"), TARGET)
        assert (prepared.method, prepared.url) == ("POST", "https://up.example/v1/chat/completions")
        assert prepared.headers == {
            "Content-Type": "application/json",
            "OpenAI-Project": "proj_1",
            "Authorization": "Bearer sk-upstream",
        }
        assert prepared.stream is False

    def test_no_authorization_without_key(self) -> None:
        """A keyless provider (e.g. a local server) gets no Authorization header."""
        keyless = Target("local", "http://127.0.0.1:8000/v1", None, "llama", {})
        prepared = CODEC.encode_request(_call(Endpoint.CHAT, _CHAT + b"}"), keyless)
        assert "Authorization" not in prepared.headers

    def test_chat_stream_gets_include_usage(self) -> None:
        """A streaming chat request asks the upstream for the usage chunk."""
        call = _call(Endpoint.CHAT, _CHAT + b',"stream":true}')
        prepared = CODEC.encode_request(call, TARGET)
        assert prepared.body is not None
        assert _json(prepared.body)["stream_options"] == {"include_usage": True}
        assert prepared.headers["Accept"] == "text/event-stream"
        assert prepared.stream is True

    def test_completions_stream_gets_include_usage(self) -> None:
        """A streaming legacy completion asks the upstream for the usage chunk."""
        call = _call(Endpoint.COMPLETIONS, b'{"model":"m","prompt":"Say","stream":true}')
        prepared = CODEC.encode_request(call, TARGET)
        assert prepared.body is not None
        assert _json(prepared.body)["stream_options"] == {"include_usage": True}

    def test_existing_stream_options_keep_other_keys(self) -> None:
        """include_usage is forced on while the client's other stream_options keys stay."""
        body = _CHAT + b',"stream":true,"stream_options":{"include_usage":false,"x_keep":[1]}}'
        prepared = CODEC.encode_request(_call(Endpoint.CHAT, body), TARGET)
        assert prepared.body is not None
        assert _json(prepared.body)["stream_options"] == {"include_usage": True, "x_keep": [1]}

    def test_null_stream_options_become_include_usage(self) -> None:
        """`stream_options: null` is replaced by `{"include_usage": true}`."""
        body = _CHAT + b',"stream":true,"stream_options":null}'
        prepared = CODEC.encode_request(_call(Endpoint.CHAT, body), TARGET)
        assert prepared.body is not None
        assert _json(prepared.body)["stream_options"] == {"include_usage": True}

    def test_non_stream_chat_is_not_given_stream_options(self) -> None:
        """A non-streaming request gets no stream_options."""
        prepared = CODEC.encode_request(_call(Endpoint.CHAT, _CHAT + b"}"), TARGET)
        assert prepared.body is not None
        assert "stream_options" not in _json(prepared.body)

    def test_responses_stream_is_not_given_stream_options(self) -> None:
        """The Responses API reports usage itself, so its stream request is left alone."""
        body = b'{"model":"m","input":"hi","stream":true}'
        prepared = CODEC.encode_request(_call(Endpoint.RESPONSES, body), TARGET)
        assert prepared.body is not None
        assert "stream_options" not in _json(prepared.body)
        assert prepared.url == "https://up.example/v1/responses"

    def test_embeddings_are_not_given_stream_options(self) -> None:
        """Embeddings keep the client's encoding_format and get no stream_options."""
        body = b'{"model":"m","input":["a","b"],"encoding_format":"base64"}'
        prepared = CODEC.encode_request(_call(Endpoint.EMBEDDINGS, body), TARGET)
        assert prepared.body is not None
        sent = _json(prepared.body)
        assert "stream_options" not in sent
        assert sent["encoding_format"] == "base64"


class TestDecodeResponse:
    """decode_response gives the client its model name back and reads usage."""

    def test_model_is_the_clients_and_other_fields_keep_their_bytes(self) -> None:
        """Only `model` changes in a chat body; every other value keeps its exact bytes."""
        upstream = (FIXTURES / "chat.json").read_bytes()
        body, _ = CODEC.decode_response(_call(Endpoint.CHAT, _CHAT + b"}"), upstream)
        sent = _raw_fields(body)
        original = _raw_fields(upstream)
        assert sent.pop("model") == b'"smart"'
        del original["model"]
        assert sent == original

    def test_usage_is_read(self) -> None:
        """Prompt and completion tokens come back as Usage."""
        upstream = (FIXTURES / "chat.json").read_bytes()
        _, usage = CODEC.decode_response(_call(Endpoint.CHAT, _CHAT + b"}"), upstream)
        assert usage == Usage(input_tokens=19, output_tokens=10)

    def test_embeddings_usage_without_completion_tokens(self) -> None:
        """An embeddings body has prompt tokens only."""
        upstream = (FIXTURES / "embeddings.json").read_bytes()
        call = _call(Endpoint.EMBEDDINGS, b'{"model":"e","input":"hi"}')
        body, usage = CODEC.decode_response(call, upstream)
        assert usage is not None and usage.output_tokens == 0 and usage.input_tokens > 0
        assert _json(body)["model"] == "e"

    def test_body_that_is_not_json_is_a_protocol_error(self) -> None:
        """An HTML page with status 200 is the upstream's protocol error."""
        with pytest.raises(UpstreamProtocolError) as caught:
            CODEC.decode_response(_call(Endpoint.CHAT, _CHAT + b"}"), b"<html>oops</html>")
        assert caught.value.http_status == 502
        assert caught.value.message.startswith("upstream sent a body that is not a JSON object")


class TestDecodeError:
    """decode_error keeps the upstream's status, message, type, param and code."""

    def test_rate_limit(self) -> None:
        """A 429 keeps every field and its retry-after seconds."""
        body = (FIXTURES / "error_429.json").read_bytes()
        error = CODEC.decode_error(429, body, {"retry-after": "20"})
        assert isinstance(error, UpstreamError)
        assert (error.http_status, error.error_type) == (429, "requests")
        assert (error.param, error.code, error.retry_after) == (None, "rate_limit_exceeded", 20.0)
        assert error.message == _json(body)["error"]["message"]
        assert error.retryable

    def test_bad_request_keeps_param(self) -> None:
        """A 400 keeps param and code and is not retryable."""
        body = (FIXTURES / "error_400_context.json").read_bytes()
        error = CODEC.decode_error(400, body, {})
        assert (error.http_status, error.error_type) == (400, "invalid_request_error")
        assert (error.param, error.code) == ("messages", "context_length_exceeded")
        assert error.retry_after is None
        assert not error.retryable

    def test_integer_code_becomes_string(self) -> None:
        """A numeric error code is rendered as a string."""
        error = CODEC.decode_error(500, b'{"error":{"message":"boom","code":503}}', {})
        assert (error.message, error.code, error.error_type) == ("boom", "503", "api_error")

    def test_string_error(self) -> None:
        """`{"error": "text"}` keeps the text as the message."""
        error = CODEC.decode_error(503, b'{"error":"overloaded"}', {})
        assert (error.http_status, error.message) == (503, "overloaded")

    def test_top_level_message(self) -> None:
        """`{"message": "text"}` (some compatible servers) keeps the text."""
        error = CODEC.decode_error(404, b'{"message":"no such model"}', {})
        assert (error.http_status, error.message) == (404, "no such model")

    def test_non_json_body(self) -> None:
        """A non-JSON error body is quoted in the message with the status."""
        error = CODEC.decode_error(502, b"<html>Bad Gateway</html>\n", {})
        assert error.message == "upstream returned HTTP 502: <html>Bad Gateway</html>"
        assert error.http_status == 502

    def test_empty_body(self) -> None:
        """An empty error body still gives a message."""
        error = CODEC.decode_error(500, b"", {})
        assert error.message == "upstream returned HTTP 500: no body"

    def test_retry_after_ms_wins(self) -> None:
        """`retry-after-ms` is preferred and converted to seconds."""
        error = CODEC.decode_error(429, b"{}", {"retry-after-ms": "1500", "retry-after": "9"})
        assert error.retry_after == 1.5

    def test_malformed_retry_after_is_ignored(self) -> None:
        """A retry-after that is neither seconds nor a date does not break error decoding."""
        error = CODEC.decode_error(429, b'{"error":{"message":"slow down"}}', {"retry-after": "x"})
        assert (error.message, error.retry_after) == ("slow down", None)


class TestRetryAfter:
    """parse_retry_after reads seconds, milliseconds and HTTP dates."""

    def test_seconds(self) -> None:
        """A number of seconds is taken as is."""
        assert parse_retry_after({"retry-after": "7"}) == 7.0

    def test_bad_milliseconds_fall_back_to_seconds(self) -> None:
        """An unparsable retry-after-ms falls back to retry-after."""
        assert parse_retry_after({"retry-after-ms": "soon", "retry-after": "3"}) == 3.0

    def test_negative_is_zero(self) -> None:
        """A negative delay means retry now."""
        assert parse_retry_after({"retry-after": "-5"}) == 0.0

    def test_past_http_date_is_zero(self) -> None:
        """An HTTP date in the past means retry now."""
        past = format_datetime(datetime(2020, 1, 1, tzinfo=UTC), usegmt=True)
        assert parse_retry_after({"retry-after": past}) == 0.0

    def test_future_http_date(self) -> None:
        """An HTTP date in the future is a positive number of seconds."""
        future = format_datetime(datetime(2999, 1, 1, tzinfo=UTC), usegmt=True)
        delay = parse_retry_after({"retry-after": future})
        assert delay is not None and delay > 0

    def test_garbage_is_none(self) -> None:
        """An unparsable value is ignored."""
        assert parse_retry_after({"retry-after": "later"}) is None

    def test_absent_is_none(self) -> None:
        """No header, no delay."""
        assert parse_retry_after({}) is None


_STREAMS = [
    ("chat_stream.sse", Endpoint.CHAT),
    ("chat_tools_stream.sse", Endpoint.CHAT),
    ("completions_stream.sse", Endpoint.COMPLETIONS),
    ("responses_stream.sse", Endpoint.RESPONSES),
]
_STREAM_BODIES = {
    Endpoint.CHAT: _CHAT + b',"stream":true}',
    Endpoint.COMPLETIONS: b'{"model":"smart","prompt":"Say","stream":true}',
    Endpoint.RESPONSES: b'{"model":"smart","input":"hi","stream":true}',
}


def _relay(call: Call, chunks: list[bytes]) -> tuple[list[bytes], Usage | None]:
    decoder = CODEC.stream_decoder(call)
    frames: list[bytes] = []
    for chunk in chunks:
        frames.extend(decoder.feed(chunk))
    frames.extend(decoder.finish())
    return frames, decoder.usage


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class TestStreams:
    """Stream decoders relay frame by frame, whatever the chunking."""

    @pytest.mark.parametrize(("fixture", "endpoint"), _STREAMS)
    def test_odd_chunks_equal_whole(self, fixture: str, endpoint: Endpoint) -> None:
        """Fed 7 bytes at a time, a recorded stream gives the same frames and usage as whole."""
        data = (FIXTURES / fixture).read_bytes()
        call = _call(endpoint, _STREAM_BODIES[endpoint])
        whole = _relay(call, [data])
        assert _relay(call, _split(data, 7)) == whole
        assert whole[1] is not None and whole[1].input_tokens > 0

    @pytest.mark.parametrize(("fixture", "endpoint"), _STREAMS)
    def test_frames_carry_the_clients_model(self, fixture: str, endpoint: Endpoint) -> None:
        """Every relayed frame that names a model names the one the client asked for."""
        data = (FIXTURES / fixture).read_bytes()
        frames, _ = _relay(_call(endpoint, _STREAM_BODIES[endpoint]), [data])
        models = {
            model
            for frame in frames
            for event in SSEParser().feed(frame)
            if event.data != b"[DONE]"
            for model in _find_models(_json(event.data))
        }
        assert models == {"smart"}

    def test_usage_chunk_stripped_unless_asked(self) -> None:
        """Without include_usage the client gets no usage-only chunk but usage is still read."""
        data = (FIXTURES / "chat_stream.sse").read_bytes()
        frames, usage = _relay(_call(Endpoint.CHAT, _STREAM_BODIES[Endpoint.CHAT]), [data])
        assert frames[-1] == DONE_FRAME
        assert len(frames) == 6
        assert all(b'"usage"' not in frame for frame in frames)
        assert usage == Usage(input_tokens=19, output_tokens=6)

    def test_usage_chunk_kept_when_asked(self) -> None:
        """With include_usage the client gets the usage chunk before [DONE]."""
        data = (FIXTURES / "chat_stream.sse").read_bytes()
        body = _CHAT + b',"stream":true,"stream_options":{"include_usage":true}}'
        frames, _ = _relay(_call(Endpoint.CHAT, body), [data])
        assert len(frames) == 7
        assert _json(frames[-2][len(b"data: ") :])["usage"]["total_tokens"] == 25

    def test_truncated_chat_stream_is_an_error(self) -> None:
        """A chat stream that stops mid-answer (no finish_reason, no [DONE]) raises."""
        data = (FIXTURES / "chat_stream.sse").read_bytes()
        truncated = data[: data.index(b'"finish_reason":"stop"')].rsplit(b"\n\n", 1)[0] + b"\n\n"
        decoder = CODEC.stream_decoder(_call(Endpoint.CHAT, _STREAM_BODIES[Endpoint.CHAT]))
        decoder.feed(truncated)
        with pytest.raises(UpstreamProtocolError):
            decoder.finish()

    def test_mid_stream_error_event_raises(self) -> None:
        """An `error` payload inside a chat stream becomes an UpstreamError with its message."""
        decoder = CODEC.stream_decoder(_call(Endpoint.CHAT, _STREAM_BODIES[Endpoint.CHAT]))
        with pytest.raises(UpstreamError) as caught:
            decoder.feed(b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n')
        assert (caught.value.message, caught.value.error_type) == ("overloaded", "server_error")

    def test_responses_stream_without_completion_is_an_error(self) -> None:
        """A Responses stream that ends before response.completed raises."""
        data = (FIXTURES / "responses_stream.sse").read_bytes()
        cut = data[: data.index(b"event: response.completed")]
        decoder = CODEC.stream_decoder(
            _call(Endpoint.RESPONSES, _STREAM_BODIES[Endpoint.RESPONSES])
        )
        decoder.feed(cut)
        with pytest.raises(UpstreamProtocolError):
            decoder.finish()

    def test_responses_stream_keeps_event_names(self) -> None:
        """Every relayed Responses frame keeps its `event:` name and ends with completed."""
        data = (FIXTURES / "responses_stream.sse").read_bytes()
        call = _call(Endpoint.RESPONSES, _STREAM_BODIES[Endpoint.RESPONSES])
        frames, usage = _relay(call, [data])
        names = [event.event for frame in frames for event in SSEParser().feed(frame)]
        assert names[0] == "response.created"
        assert names[-1] == "response.completed"
        assert usage == Usage(input_tokens=37, output_tokens=11)


def _find_models(value: Any) -> list[str]:
    """Every `model` value anywhere inside a decoded JSON document."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "model" and isinstance(item, str):
                found.append(item)
            else:
                found.extend(_find_models(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_find_models(item))
    return sorted(set(found))


def _frames_of(fixture: str) -> list[bytes]:
    text = (FIXTURES / fixture).read_bytes()
    return [block + b"\n\n" for block in text.split(b"\n\n") if block.strip()]


def _payloads(frames: list[bytes]) -> list[Any]:
    return [
        _json(event.data)
        for frame in frames
        for event in SSEParser().feed(frame)
        if event.data != b"[DONE]"
    ]


class TestStreamFastPath:
    """Reads of whole frames take the byte-level path; it must match the decoding path."""

    @pytest.mark.parametrize("include_usage", [False, True], ids=["no-usage", "usage"])
    @pytest.mark.parametrize("fixture", ["chat_stream.sse", "chat_tools_stream.sse"])
    def test_frame_by_frame_equals_whole(self, fixture: str, include_usage: bool) -> None:
        """One frame per read (the fast path) relays the same JSON and usage as one big read."""
        options = b',"stream_options":{"include_usage":true}' if include_usage else b""
        call = _call(Endpoint.CHAT, _CHAT + b',"stream":true' + options + b"}")
        by_frame, usage_by_frame = _relay(call, _frames_of(fixture))
        whole, usage_whole = _relay(call, [(FIXTURES / fixture).read_bytes()])
        assert _payloads(by_frame) == _payloads(whole)
        assert usage_by_frame == usage_whole
        assert by_frame[-1] == DONE_FRAME

    def test_several_frames_in_one_read_are_all_patched(self) -> None:
        """A read holding several whole frames gets the client's model in each of them."""
        frames = _frames_of("chat_stream.sse")
        call = _call(Endpoint.CHAT, _STREAM_BODIES[Endpoint.CHAT])
        relayed, _ = _relay(call, [frames[0], b"".join(frames[1:4]), b"".join(frames[4:])])
        payloads = _payloads(relayed)
        assert {payload["model"] for payload in payloads} == {"smart"}
        assert all("usage" not in payload for payload in payloads)
        assert "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads) == (
            "Hello! How can I help?"
        )

    def test_content_that_looks_like_a_key_is_untouched(self) -> None:
        """Text quoting `"model":"..."` or `"usage":null` inside content is never rewritten."""
        first, second = _frames_of("chat_stream.sse")[:2]
        upstream_model = b"gpt-4o-mini-2024-07-18"
        sneaky = json.dumps(
            {"content": f'"model":"{upstream_model.decode()}","usage":null data: x'}
        ).encode()
        second = second.replace(b'{"content":"Hello"}', sneaky)
        call = _call(Endpoint.CHAT, _STREAM_BODIES[Endpoint.CHAT])
        decoder = CODEC.stream_decoder(call)
        decoder.feed(first)
        relayed = decoder.feed(second)
        payload = _payloads(relayed)[0]
        assert payload["model"] == "smart"
        assert payload["choices"][0]["delta"]["content"] == (
            f'"model":"{upstream_model.decode()}","usage":null data: x'
        )
