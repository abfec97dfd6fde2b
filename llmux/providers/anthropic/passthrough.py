"""Native /v1/messages and /v1/messages/count_tokens on Anthropic upstreams: bytes relayed.

The client's body goes upstream with only `model` replaced by the deployment's model; answers
come back with the client's model name. Streams are relayed event by event: only
`message_start`'s `message.model` is rewritten, and usage is read from `message_start` plus the
cumulative `message_delta`. Headers: `x-api-key` from the deployment, `anthropic-version` from the
client (else the deployment, else the codec default) and the client's `anthropic-beta`.
Docs: https://docs.anthropic.com/en/api/messages, https://docs.anthropic.com/en/api/messages-count-tokens
"""

from __future__ import annotations

from typing import Final

import msgspec

from llmux.errors import LlmuxError, UpstreamError, UpstreamProtocolError
from llmux.providers.anthropic.errors import anthropic_error_body, error_from_detail
from llmux.providers.anthropic.request import DEFAULT_VERSION
from llmux.providers.anthropic.response import to_usage
from llmux.providers.base import Call, HeldError, Target
from llmux.sse import SSEParser, named_frame
from llmux.types import Endpoint, PreparedRequest, Usage
from llmux.wire import anthropic as wire
from llmux.wire.openai import decode_body, encode, encode_body

__all__ = ["PassthroughStream", "decode", "encode_request"]

_PATHS: Final = {
    Endpoint.MESSAGES: "/v1/messages",
    Endpoint.COUNT_TOKENS: "/v1/messages/count_tokens",
}
_FORWARDED: Final = ("anthropic-beta",)


class _Typed(msgspec.Struct):
    type: str = ""


_typed_decoder = msgspec.json.Decoder(_Typed)


def encode_request(call: Call, target: Target) -> PreparedRequest:
    """The client's body with `model` patched, sent to the endpoint's native path."""
    body = dict(call.body)
    body["model"] = msgspec.Raw(encode(target.upstream_model))
    stream = call.stream and call.endpoint is Endpoint.MESSAGES
    url = target.base_url.removesuffix("/v1") + _PATHS[call.endpoint]
    return PreparedRequest("POST", url, _headers(call, target, stream), encode_body(body), stream)


def _headers(call: Call, target: Target, stream: bool) -> dict[str, str]:
    version = call.client_headers.get("anthropic-version") or target.api_version
    headers = {
        "content-type": "application/json",
        "anthropic-version": version or DEFAULT_VERSION,
        **target.headers,
    }
    for name in _FORWARDED:
        if value := call.client_headers.get(name):
            headers[name] = value
    if target.api_key:
        headers["x-api-key"] = target.api_key
    if stream:
        headers["accept"] = "text/event-stream"
    return headers


def decode(call: Call, body: bytes) -> tuple[bytes, Usage | None]:
    """The upstream body with the client's model name; usage for messages, none for counts."""
    if call.endpoint is Endpoint.COUNT_TOKENS:
        return body, None
    try:
        decoded = decode_body(body)
        message = wire.decode_message(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamProtocolError(f"upstream sent an invalid Anthropic message: {exc}") from None
    if "model" in decoded:
        decoded["model"] = call.model_raw
    return encode_body(decoded), to_usage(message.usage)


class PassthroughStream:
    """Relays one Anthropic event stream to a Messages client; not thread-safe."""

    __slots__ = ("_call", "_done", "_held", "_parser", "_usage", "usage")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._parser = SSEParser()
        self._usage = wire.Usage()
        self._done = False
        self._held = HeldError()
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        """Relay every complete event in `chunk`."""
        self._held.release()
        frames: list[bytes] = []
        try:
            for event in self._parser.feed(chunk):
                frames.append(self._relay(event.event, event.data))
        except UpstreamError as error:
            self._held.hold(error, frames)
        return frames

    def finish(self) -> list[bytes]:
        """Relay a final unterminated event; a protocol error when message_stop never came."""
        self._held.release()
        frames = [self._relay(event.event, event.data) for event in self._parser.flush()]
        if not self._done:
            raise UpstreamProtocolError("upstream stream ended before message_stop")
        return frames

    def error_frame(self, error: LlmuxError) -> bytes:
        """Anthropic's `error` event."""
        return named_frame("error", anthropic_error_body(error))

    def _relay(self, name: str | None, data: bytes) -> bytes:
        try:
            kind = name or _typed_decoder.decode(data).type
            if kind == "message_start":
                data = self._message_start(data)
            elif kind == "message_delta":
                self._merge_usage(wire.decode_event(data).usage)
            elif kind == "error":
                event = wire.decode_event(data)
                raise error_from_detail(event.error or wire.ErrorDetail(), 502)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamProtocolError(f"upstream sent an invalid stream event: {exc}") from None
        if kind == "message_stop":
            self._done = True
        return named_frame(kind, data)

    def _message_start(self, data: bytes) -> bytes:
        event = decode_body(data)
        if "message" not in event:
            raise UpstreamProtocolError("upstream sent a message_start without a message")
        message = decode_body(event["message"])
        if "model" in message:
            message["model"] = self._call.model_raw
        event["message"] = msgspec.Raw(encode_body(message))
        shell = wire.decode_message(event["message"])
        self._merge_usage(shell.usage)
        return encode_body(event)

    def _merge_usage(self, update: wire.Usage | None) -> None:
        """message_delta usage is cumulative: fields it sets override message_start's."""
        if update is None:
            return
        current = self._usage
        for field in update.__struct_fields__:
            value = getattr(update, field)
            if value is not None:
                setattr(current, field, value)
        self.usage = to_usage(current)
