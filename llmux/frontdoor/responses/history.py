"""Stored conversation state for `previous_response_id`, for providers without server state.

The gateway stores, per Response, its full input item list (history included) and its output
items. `expand_history` splices them in front of a follow-up request's own input, so the
translation over chat sees the whole conversation. As OpenAI documents, the previous
request's `instructions` are not carried over (they were never input items).
Docs: https://platform.openai.com/docs/guides/conversation-state
"""

from __future__ import annotations

import uuid
from typing import Final

import msgspec

from llmux.errors import InvalidRequest
from llmux.types import RawBody
from llmux.wire.openai import decode_body, encode, encode_body

__all__ = ["expand_history", "input_items"]

_PREFIXES: Final = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}
_input_decoder: msgspec.json.Decoder[str | list[msgspec.Raw] | None] = msgspec.json.Decoder(
    str | list[msgspec.Raw] | None
)
_type_decoder = msgspec.json.Decoder(str)


def expand_history(
    body: RawBody, previous_input: list[msgspec.Raw], previous_output: list[msgspec.Raw]
) -> RawBody:
    """`body` with the stored conversation before its own input and no `previous_response_id`."""
    expanded = {name: raw for name, raw in body.items() if name != "previous_response_id"}
    items = [*previous_input, *previous_output, *_own_items(body)]
    expanded["input"] = msgspec.Raw(b"[" + b",".join(items) + b"]")
    return expanded


def input_items(body: RawBody) -> list[msgspec.Raw]:
    """This request's input as item objects, each with an `id` (string input: one user message).

    Items the client sent keep their bytes; a missing `id` (and a missing message `type`) is
    added, as `GET /v1/responses/{id}/input_items` shows them.
    """
    return [_with_id(raw, f"input[{index}]") for index, raw in enumerate(_own_items(body))]


def _own_items(body: RawBody) -> list[msgspec.Raw]:
    raw = body.get("input")
    try:
        value = _input_decoder.decode(raw) if raw is not None else None
    except msgspec.ValidationError:
        raise InvalidRequest(
            "'input' must be a string or a list of items.", param="input"
        ) from None
    if value is None:
        return []
    if isinstance(value, str):
        message = {"type": "message", "role": "user", "content": [_text(value)]}
        return [msgspec.Raw(encode(message))]
    return value


def _text(text: str) -> dict[str, str]:
    return {"type": "input_text", "text": text}


def _with_id(raw: msgspec.Raw, where: str) -> msgspec.Raw:
    try:
        item = decode_body(raw)
    except msgspec.ValidationError:
        raise InvalidRequest(f"'{where}' must be an object.", param=where) from None
    if "id" in item and "type" in item:
        return raw
    kind = _kind(item, where)
    item.setdefault("type", msgspec.Raw(encode(kind)))
    prefix = _PREFIXES.get(kind, "item")
    item.setdefault("id", msgspec.Raw(encode(f"{prefix}_{uuid.uuid4().hex}")))
    return msgspec.Raw(encode_body(item))


def _kind(item: RawBody, where: str) -> str:
    raw = item.get("type")
    if raw is None:
        return "message"
    try:
        return _type_decoder.decode(raw)
    except msgspec.ValidationError:
        raise InvalidRequest(f"'{where}.type' must be a string.", param=f"{where}.type") from None
