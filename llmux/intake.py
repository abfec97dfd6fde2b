"""Front-door validation: client body bytes -> a `Call`, or a 400 that names the bad field.

Only what llmux reads is decoded (`model`, `stream`, `stream_options`, and the shape of the
required fields); everything else stays as raw bytes for the upstream. Pure: no aiohttp.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import msgspec

from llmux.errors import InvalidRequest
from llmux.providers.base import Call
from llmux.types import Endpoint, RawBody
from llmux.wire.openai import ChatMessageView, decode_body

__all__ = ["parse_call"]


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


_str = msgspec.json.Decoder(str)
_bool = msgspec.json.Decoder(bool | None)
_messages = msgspec.json.Decoder(list[ChatMessageView])
_stream_options = msgspec.json.Decoder(_StreamOptions | None)
_NULL = msgspec.Raw(b"null")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def parse_call(
    endpoint: Endpoint,
    data: bytes,
    request_id: str,
    created: int = 0,
    client_headers: Mapping[str, str] | None = None,
) -> Call:
    """Validate `data` for `endpoint` and return the call every attempt will use."""
    if not data.strip():
        raise InvalidRequest("The request body is empty; expected a JSON object.")
    try:
        body = decode_body(data)
    except msgspec.ValidationError:
        raise InvalidRequest("The request body must be a JSON object.") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from None
    model = _model(body)
    stream = _flag(body, "stream")
    _REQUIRED[endpoint](body)
    if stream and endpoint is Endpoint.EMBEDDINGS:
        raise InvalidRequest("Embeddings cannot be streamed.", param="stream")
    include_usage = _include_usage(body) if stream else False
    return Call(
        endpoint, model, body, stream, include_usage, request_id, created, client_headers or {}
    )


def _model(body: RawBody) -> str:
    raw = body.get("model")
    if raw is None:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    try:
        model = _str.decode(raw)
    except msgspec.ValidationError:
        raise InvalidRequest("'model' must be a string.", param="model") from None
    if not model.strip():
        raise InvalidRequest("'model' must not be empty.", param="model")
    return model


def _flag(body: RawBody, name: str) -> bool:
    raw = body.get(name)
    if raw is None:
        return False
    try:
        return bool(_bool.decode(raw))
    except msgspec.ValidationError:
        raise InvalidRequest(f"'{name}' must be a boolean.", param=name) from None


def _include_usage(body: RawBody) -> bool:
    raw = body.get("stream_options")
    if raw is None:
        return False
    try:
        options = _stream_options.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(
            f"'stream_options' is invalid: {_where(exc, 'stream_options')}", param="stream_options"
        ) from None
    return bool(options and options.include_usage)


def _require(body: RawBody, name: str) -> msgspec.Raw:
    raw = body.get(name)
    if raw is None or raw == _NULL:
        raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name)
    return raw


def _chat(body: RawBody) -> None:
    raw = _require(body, "messages")
    try:
        messages = _messages.decode(raw)
    except msgspec.ValidationError as exc:
        detail = _where(exc, "messages")
        param = detail.rsplit(" at ", 1)[-1] if " at " in detail else "messages"
        raise InvalidRequest(f"Invalid 'messages': {detail}", param=param) from None
    if not messages:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")


def _completions(body: RawBody) -> None:
    _require(body, "prompt")


def _embeddings(body: RawBody) -> None:
    raw = _require(body, "input")
    if raw in (msgspec.Raw(b'""'), msgspec.Raw(b"[]")):
        raise InvalidRequest("'input' must not be empty.", param="input")


def _responses(body: RawBody) -> None:
    if "input" not in body and "previous_response_id" not in body and "prompt" not in body:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")


def _anthropic_messages(body: RawBody) -> None:
    raw = _require(body, "messages")
    if raw == msgspec.Raw(b"[]"):
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    _require(body, "max_tokens")


def _count_tokens(body: RawBody) -> None:
    _require(body, "messages")


_REQUIRED: dict[Endpoint, Callable[[RawBody], None]] = {
    Endpoint.CHAT: _chat,
    Endpoint.COMPLETIONS: _completions,
    Endpoint.EMBEDDINGS: _embeddings,
    Endpoint.RESPONSES: _responses,
    Endpoint.MESSAGES: _anthropic_messages,
    Endpoint.COUNT_TOKENS: _count_tokens,
}


def _where(exc: msgspec.ValidationError, root: str) -> str:
    """msgspec's `Expected ... - at `$[0].role`` rewritten with the field's real name."""
    text, _, where = str(exc).partition(" - at `")
    text = text.replace("Object missing required field", "missing required field")
    location = f"{root}{where.rstrip('`').removeprefix('$')}"
    # A missing field is reported at its parent object; name the field itself, as OpenAI does.
    if missing := _MISSING.match(text):
        location = f"{location}.{missing.group(1)}"
    return f"{text} at {location}"
