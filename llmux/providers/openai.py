"""The OpenAI dialect (types `openai` and `openai-compatible`): passthrough with `model` patched.

Requests forward the client's top-level fields byte for byte; only `model` is replaced by the
deployment's upstream model, and streaming chat/completions get `stream_options.include_usage`
so usage is always known. Responses get the client's model name back, and the usage-only chunk
is dropped when the client did not ask for it.
Docs: https://platform.openai.com/docs/api-reference/chat/streaming
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Final

import msgspec

from llmux.errors import LlmuxError, UpstreamError, UpstreamProtocolError
from llmux.providers.base import Call, StreamDecoder, Target
from llmux.sse import DONE_FRAME, SSEParser, data_frame, named_frame
from llmux.types import Endpoint, PreparedRequest, Usage
from llmux.wire.openai import decode_body, decode_usage, encode, encode_body, error_body

__all__ = ["OpenAIProvider", "parse_retry_after"]

_NULL: Final = msgspec.Raw(b"null")
_EMPTY_LIST: Final = b"[]"
_EMPTY_STRING: Final = msgspec.Raw(b'""')
_COMMA_USAGE_NULL: Final = b',"usage":null'
_INCLUDE_USAGE: Final = msgspec.Raw(b'{"include_usage":true}')
_USAGE_STREAMS: Final = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})
_TERMINAL_RESPONSE_EVENTS: Final = frozenset(
    {"response.completed", "response.incomplete", "response.failed"}
)


class _ErrorDetail(msgspec.Struct):
    message: str | None = None
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorDetail | str | None = None
    message: str | None = None


class _Typed(msgspec.Struct):
    type: str | None = None


class _Choice(msgspec.Struct):
    finish_reason: str | None = None


_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)
_typed_decoder = msgspec.json.Decoder(_Typed)
_choices_decoder = msgspec.json.Decoder(list[_Choice] | None)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if (millis := _seconds(headers.get("retry-after-ms"))) is not None:
        return millis / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    if (seconds := _seconds(value)) is not None:
        return seconds
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):  # not a date either; raises since Python 3.10
        return None
    return max(parsed.timestamp() - time.time(), 0.0)


def _seconds(value: str | None) -> float | None:
    """A finite, non-negative number, or None for anything else (including nan and inf)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return max(number, 0.0) if math.isfinite(number) else None


class OpenAIProvider:
    """Codec for OpenAI and every server that speaks its dialect."""

    __slots__ = ()

    endpoints = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.RESPONSES}
    )

    def encode_request(self, call: Call, target: Target) -> PreparedRequest:
        """Patch `model` (and `stream_options` for streams) into the client's body."""
        body = dict(call.body)
        body["model"] = msgspec.Raw(encode(target.upstream_model))
        if call.stream and call.endpoint in _USAGE_STREAMS:
            body["stream_options"] = _with_include_usage(body.get("stream_options"))
        headers = {"Content-Type": "application/json", **target.headers}
        if target.api_key:
            headers["Authorization"] = f"Bearer {target.api_key}"
        if call.stream:
            headers["Accept"] = "text/event-stream"
        url = target.base_url + call.endpoint.value
        return PreparedRequest("POST", url, headers, encode_body(body), stream=call.stream)

    def decode_response(self, call: Call, body: bytes) -> tuple[bytes, Usage | None]:
        """Give the client back its own model name; read usage on the way."""
        try:
            decoded = decode_body(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamProtocolError(
                f"upstream sent a body that is not a JSON object: {exc}"
            ) from None
        usage = decode_usage(decoded.get("usage"))
        if "model" in decoded:
            decoded["model"] = call.model_raw
        return encode_body(decoded), usage

    def stream_decoder(self, call: Call) -> StreamDecoder:
        """A chat/completions or Responses stream relay, depending on the endpoint."""
        if call.endpoint is Endpoint.RESPONSES:
            return _ResponsesStream(call)
        return _ChunkStream(call)

    def decode_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        """Keep the upstream's status, message, type, param and code."""
        retry_after = parse_retry_after(headers)
        try:
            envelope = _error_decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            text = body[:300].decode("utf-8", "replace").strip() or "no body"
            return UpstreamError(
                f"upstream returned HTTP {status}: {text}", status=status, retry_after=retry_after
            )
        detail = envelope.error
        if isinstance(detail, _ErrorDetail):
            message = detail.message or f"upstream returned HTTP {status}"
            code = str(detail.code) if detail.code is not None else None
            return UpstreamError(
                message,
                status=status,
                error_type=detail.type,
                param=detail.param,
                code=code,
                retry_after=retry_after,
            )
        message = detail or envelope.message or f"upstream returned HTTP {status}"
        return UpstreamError(message, status=status, retry_after=retry_after)


def _with_include_usage(existing: msgspec.Raw | None) -> msgspec.Raw:
    if existing is None or existing == _NULL:
        return _INCLUDE_USAGE
    try:
        options = decode_body(existing)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _INCLUDE_USAGE
    options["include_usage"] = msgspec.Raw(b"true")
    return msgspec.Raw(encode_body(options))


def stream_error_payload(error: LlmuxError) -> bytes:
    """The `{"error": {...}}` payload of a mid-stream failure."""
    return error_body(error.message, error.error_type, error.param, error.code)


class _ChunkStream:
    """Relays chat.completion.chunk / text_completion frames, fixing model and usage.

    Frames are decoded one level deep until the first one shows how the upstream spells its
    model. After that, an upstream read made only of whole single-line `data:` events with no
    usage object and no error takes a byte-level fast path: the model is swapped in place and a
    `,"usage":null` the client did not ask for is cut out. Both patterns can only occur
    unescaped as JSON keys, never inside a string value, so the swap cannot touch content.
    Anything else (usage, errors, [DONE], split events, CRs) goes through the full decode.
    """

    __slots__ = (
        "_call",
        "_done",
        "_include_usage",
        "_last",
        "_model_in",
        "_model_out",
        "_model_raw",
        "_parser",
        "usage",
    )

    def __init__(self, call: Call) -> None:
        self._call = call
        self._include_usage = call.include_usage
        self._model_raw = call.model_raw
        self._parser = SSEParser()
        self._done = False
        self._last: bytes | None = None
        self._model_in: bytes | None = None
        self._model_out = b""
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        fast = self._fast(chunk)
        if fast is not None:
            return [fast]
        frames: list[bytes] = []
        for event in self._parser.feed(chunk):
            frame = self._relay(event.data)
            if frame is not None:
                frames.append(frame)
        return frames

    def finish(self) -> list[bytes]:
        for event in self._parser.flush():
            self._relay(event.data)
        if not self._done and not self._ended_cleanly():
            raise UpstreamProtocolError("upstream stream ended before it was complete")
        return [DONE_FRAME]

    def error_frame(self, error: LlmuxError) -> bytes:
        return data_frame(stream_error_payload(error))

    def _fast(self, chunk: bytes) -> bytes | None:
        """The patched chunk when it holds only whole plain frames, else None (decode it)."""
        if (
            self._model_in is None
            or not chunk.endswith(b"\n\n")
            or not self._parser.idle
            or b"\r" in chunk
        ):
            return None
        if chunk.find(b"\n") == len(chunk) - 2:
            return self._patch_frame(chunk)
        # Several frames in one read: the upstream outpaced the relay.
        patched = [self._patch_frame(frame + b"\n\n") for frame in chunk[:-2].split(b"\n\n")]
        if None in patched:
            return None
        return b"".join(patched)  # type: ignore[arg-type]

    def _patch_frame(self, frame: bytes) -> bytes | None:
        """One single-line `data: {...}\\n\\n` frame with the model swapped, or None."""
        model_in = self._model_in
        if (
            model_in is None
            or not frame.startswith(b"data: {")
            or frame.find(b"\n") != len(frame) - 2
            or b'"error"' in frame
        ):
            return None
        at = frame.find(model_in)
        if at < 0 or frame.find(model_in, at + 1) >= 0:
            return None
        usage = frame.find(b'"usage"')
        if usage >= 0:
            if (
                not frame.startswith(_COMMA_USAGE_NULL, usage - 1)
                or frame.find(b'"usage"', usage + 1) >= 0
            ):
                return None
            if not self._include_usage:
                frame = frame[: usage - 1] + frame[usage - 1 + len(_COMMA_USAGE_NULL) :]
                if usage < at:
                    at -= len(_COMMA_USAGE_NULL)
        self._last = frame
        return frame[:at] + self._model_out + frame[at + len(model_in) :]

    def _relay(self, payload: bytes) -> bytes | None:
        if self._done:
            return None
        if payload.startswith(b"[DONE]"):
            self._done = True
            return None
        return self._slow(payload)

    def _slow(self, payload: bytes) -> bytes | None:
        try:
            body = decode_body(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamProtocolError(f"upstream sent an invalid stream frame: {exc}") from None
        if "error" in body:
            raise _mid_stream_error(body["error"])
        self._last = payload
        usage_raw = body.get("usage")
        if usage_raw is not None and usage_raw != _NULL:
            self.usage = decode_usage(usage_raw)
        if not self._include_usage and "usage" in body:
            del body["usage"]
            if body.get("choices") == msgspec.Raw(_EMPTY_LIST):
                return None
        if "model" in body:
            self._learn_model(payload, body["model"])
            body["model"] = self._model_raw
        return data_frame(encode_body(body))

    def _learn_model(self, payload: bytes, raw: msgspec.Raw) -> None:
        # Azure's leading prompt-filter chunk names no model (""): learn from a real one.
        if self._model_in is not None or raw == _EMPTY_STRING:
            return
        for separator in (b":", b": "):
            pattern = b'"model"' + separator + bytes(raw)
            if pattern in payload:
                self._model_in = pattern
                self._model_out = b'"model"' + separator + bytes(self._model_raw)
                return

    def _ended_cleanly(self) -> bool:
        """Servers that omit [DONE] still finish with a finish_reason or a usage chunk."""
        if self.usage is not None:
            return True
        if self._last is None:
            return False
        last = self._last.removeprefix(b"data: ").rstrip(b"\n")
        choices = decode_body(last).get("choices")
        if choices is None:
            return False
        try:
            decoded = _choices_decoder.decode(choices)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        return bool(decoded) and all(c.finish_reason for c in decoded)


class _ResponsesStream:
    """Relays Responses API events, fixing `response.model` and reading final usage."""

    __slots__ = ("_call", "_done", "_parser", "_sequence", "usage")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._parser = SSEParser()
        self._done = False
        self._sequence = 0
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        frames: list[bytes] = []
        for event in self._parser.feed(chunk):
            frame = self._relay(event.event, event.data)
            if frame is not None:
                frames.append(frame)
        return frames

    def finish(self) -> list[bytes]:
        for event in self._parser.flush():
            self._relay(event.event, event.data)
        if not self._done:
            raise UpstreamProtocolError("upstream response stream ended before response.completed")
        return []

    def error_frame(self, error: LlmuxError) -> bytes:
        payload = encode(
            {
                "type": "error",
                "code": error.code,
                "message": error.message,
                "param": error.param,
                "sequence_number": self._sequence,
            }
        )
        return named_frame("error", payload)

    def _relay(self, name: str | None, payload: bytes) -> bytes | None:
        if payload.startswith(b"[DONE]"):
            return None
        try:
            body = decode_body(payload)
            kind = name or _typed_decoder.decode(payload).type or "message"
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamProtocolError(f"upstream sent an invalid stream event: {exc}") from None
        if kind == "error":
            raise _mid_stream_error(msgspec.Raw(payload))
        if "response" in body:
            body["response"] = self._patch_response(body["response"], kind)
        if kind in _TERMINAL_RESPONSE_EVENTS:
            self._done = True
        self._sequence += 1
        return named_frame(kind, encode_body(body))

    def _patch_response(self, raw: msgspec.Raw, kind: str) -> msgspec.Raw:
        try:
            response = decode_body(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return raw
        if kind in _TERMINAL_RESPONSE_EVENTS:
            self.usage = decode_usage(response.get("usage"))
        if "model" in response:
            response["model"] = self._call.model_raw
        return msgspec.Raw(encode_body(response))


def _mid_stream_error(raw: msgspec.Raw) -> UpstreamError:
    try:
        detail = msgspec.json.decode(raw, type=_ErrorDetail)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return UpstreamError("upstream reported an error mid-stream", status=502)
    code = str(detail.code) if detail.code is not None else None
    message = detail.message or "upstream reported an error mid-stream"
    return UpstreamError(message, status=502, error_type=detail.type, code=code)
