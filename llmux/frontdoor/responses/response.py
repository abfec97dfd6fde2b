"""Chat-completions answers -> Responses `Response` objects, and the shapes streams share.

The Response echoes the request's parameters (the client's raw bytes where it sent them, the
documented defaults otherwise), so every field the spec requires is present. Output items:
`reasoning` (from `reasoning_content`) with one `summary_text`, then a `message` with
`output_text` (and `refusal`) parts, then one `function_call` per tool call. finish_reason
`length` / `content_filter` -> status `incomplete` with that reason. Pure: ids derive from the
call's request id and the item's output index, `created_at` is `call.created`.
Docs: https://platform.openai.com/docs/api-reference/responses/object
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from llmux.errors import UpstreamProtocolError
from llmux.frontdoor.responses.ids import function_call_id, item_id, response_id
from llmux.frontdoor.responses.wire import FunctionTool
from llmux.providers.base import Call
from llmux.types import Usage
from llmux.wire.openai import encode
from llmux.wire.openai_chat import ExtraContent

__all__ = [
    "Echo",
    "decode",
    "echo_of",
    "function_call_item",
    "message_item",
    "reasoning_item",
    "refusal_part",
    "response_object",
    "status_of",
    "text_part",
]

Echo = dict[str, Any]
"""The request parameters a Response repeats, ready to encode (raw client bytes included)."""

_DEFAULTS: Final[Echo] = {
    "instructions": None,
    "max_output_tokens": None,
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "top_p": 1.0,
    "truncation": "disabled",
    "metadata": {},
}
"""Echoed request parameters and what a Response shows when the client left one out."""
_NULL: Final = msgspec.Raw(b"null")
_INCOMPLETE: Final = {"length": "max_output_tokens", "content_filter": "content_filter"}


def echo_of(call: Call, tools: list[FunctionTool]) -> Echo:
    """The echoed parameters: the client's own bytes, else the documented default."""
    body = call.body
    fields: Echo = {name: body.get(name, default) for name, default in _DEFAULTS.items()}
    if call.continues is not None:
        fields["previous_response_id"] = call.continues
    user = body.get("user")
    if user is not None and user != _NULL:
        fields["user"] = user  # the spec's `user` is a string, never null: absent when unset
    # Tools are echoed normalised: the spec requires `strict` and `parameters` on each.
    fields["tools"] = [_tool_echo(tool) for tool in tools]
    return fields


def _tool_echo(tool: FunctionTool) -> dict[str, Any]:
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters or None,
        "strict": tool.strict,
    }


def status_of(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    """The Response `status` and `incomplete_details` a chat finish_reason means."""
    reason = _INCOMPLETE.get(finish_reason or "")
    if reason is None:
        return "completed", None
    return "incomplete", {"reason": reason}


def text_part(text: str) -> dict[str, Any]:
    """An `output_text` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(refusal: str) -> dict[str, Any]:
    """A `refusal` content part."""
    return {"type": "refusal", "refusal": refusal}


def message_item(item: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    """An assistant `message` output item."""
    return {"id": item, "type": "message", "status": status, "role": "assistant", "content": parts}


def reasoning_item(item: str, summary: str | None) -> dict[str, Any]:
    """A `reasoning` output item; `summary` None means no summary part yet."""
    parts = [] if summary is None else [{"type": "summary_text", "text": summary}]
    return {"id": item, "type": "reasoning", "summary": parts}


def function_call_item(
    item: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    """A `function_call` output item."""
    return {
        "id": item,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def _usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def response_object(
    call: Call,
    echo: Echo,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None = None,
    incomplete: dict[str, str] | None = None,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A full Response object; without `usage` when it is not known (yet)."""
    body = {
        "id": response_id(call),
        "object": "response",
        "created_at": call.created,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "model": call.model,
        "output": output,
        **echo,
    }
    if usage is not None:
        body["usage"] = _usage_object(usage)
    return body


class _Function(msgspec.Struct):
    name: str
    arguments: str = ""


class _ToolCall(msgspec.Struct):
    id: str
    function: _Function
    extra_content: ExtraContent | None = None


class _Message(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    """Some OpenAI-compatible servers (vLLM, OpenRouter) name the reasoning text this way."""


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice]


_completion_decoder = msgspec.json.Decoder(_Completion)


def decode(call: Call, echo: Echo, completion: bytes, usage: Usage | None) -> bytes:
    """The Response for a `chat.completion` body (as the inner chat codec produced it)."""
    try:
        choices = _completion_decoder.decode(completion).choices
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamProtocolError(f"upstream answer is not a chat completion: {exc}") from None
    if not choices:
        raise UpstreamProtocolError("upstream answer has no choices")
    choice = choices[0]
    status, incomplete = status_of(choice.finish_reason)
    output = _output(call, choice.message, "incomplete" if incomplete else "completed")
    body = response_object(
        call, echo, status=status, output=output, usage=usage, incomplete=incomplete
    )
    return encode(body)


def _output(call: Call, message: _Message, status: str) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    reasoning = message.reasoning_content or message.reasoning
    if reasoning:
        output.append(reasoning_item(item_id(call, "reasoning", len(output)), reasoning))
    parts = [text_part(message.content)] if message.content else []
    if message.refusal:
        parts.append(refusal_part(message.refusal))
    if parts or not message.tool_calls:
        item = item_id(call, "message", len(output))
        output.append(message_item(item, parts or [text_part("")], status))
    for tool in message.tool_calls or ():
        item = function_call_id(
            call, len(output), tool.extra_content.signature if tool.extra_content else None
        )
        function = tool.function
        output.append(
            function_call_item(item, tool.id, function.name, function.arguments, "completed")
        )
    return output
