"""An OpenAI `chat.completion` -> an Anthropic `Message`, plus the pieces streams share.

Content blocks come out in Anthropic's order: thinking (from `reasoning_content`, with an empty
`signature`: there is nothing Anthropic could verify), text, then one tool_use per tool call
with `input` parsed from the arguments string (invalid or non-object JSON becomes `{}`, so a
client's tool loop keeps going) and any Gemini thought signature inside its id (see `ids`).
finish_reason stop -> end_turn (or tool_use when tool calls came back), length -> max_tokens,
tool_calls -> tool_use, content_filter -> refusal. Which stop sequence matched is not reported
by chat providers, so `stop_sequence` stays null. Usage follows Anthropic's accounting:
`input_tokens` excludes cache reads and cache writes.
Docs: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from llmux.errors import UpstreamProtocolError
from llmux.frontdoor.messages.ids import join_signature
from llmux.providers.base import Call
from llmux.types import Usage
from llmux.wire.openai import encode
from llmux.wire.openai_chat import ExtraContent

__all__ = [
    "message_id",
    "stop_reason",
    "to_message",
    "tool_input",
    "tool_use_id",
    "usage_object",
]

_STOP_REASONS: Final = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


class _Function(msgspec.Struct):
    name: str = ""
    arguments: str = ""


class _ToolCall(msgspec.Struct):
    id: str = ""
    function: _Function | None = None
    extra_content: ExtraContent | None = None


class _Message(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    """Some OpenAI-compatible servers (vLLM, OpenRouter) name the thinking text `reasoning`."""
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice] = []


_completion_decoder = msgspec.json.Decoder(_Completion)
_any_decoder = msgspec.json.Decoder()


def message_id(call: Call) -> str:
    """A stable message id derived from the gateway's request id."""
    return f"msg_{call.request_id}"


def stop_reason(finish_reason: str | None, *, used_tools: bool, refused: bool) -> str:
    """Anthropic's stop_reason for a chat finish_reason."""
    if refused:
        return "refusal"
    reason = _STOP_REASONS.get(finish_reason or "stop", "end_turn")
    # Some providers finish a tool-calling turn with "stop"; agents loop on tool_use.
    return "tool_use" if used_tools and reason == "end_turn" else reason


def usage_object(usage: Usage | None) -> dict[str, int]:
    """Anthropic `usage`: input tokens exclude cache reads and writes, which are listed apart."""
    if usage is None:
        usage = Usage()
    cached = usage.cached_tokens
    written = usage.cache_write_tokens
    return {
        "input_tokens": max(usage.input_tokens - cached - written, 0),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


def tool_input(arguments: str) -> Any:
    """The arguments string as a JSON object; `{}` when it is empty, invalid or not an object."""
    try:
        value = _any_decoder.decode(arguments)
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def to_message(call: Call, body: bytes, usage: Usage | None) -> bytes:
    """The Anthropic Message for a chat completion body."""
    try:
        completion = _completion_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamProtocolError(f"upstream sent an invalid chat completion: {exc}") from None
    if not completion.choices:
        raise UpstreamProtocolError("upstream sent a chat completion without choices")
    choice = completion.choices[0]
    message = choice.message or _Message()
    blocks = _content(call, message)
    used_tools = any(block["type"] == "tool_use" for block in blocks)
    refused = bool(message.refusal) or choice.finish_reason == "content_filter"
    return encode(
        {
            "id": message_id(call),
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": blocks,
            "stop_reason": stop_reason(
                choice.finish_reason, used_tools=used_tools, refused=refused
            ),
            "stop_sequence": None,
            "usage": usage_object(usage),
        }
    )


def _content(call: Call, message: _Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    thinking = message.reasoning_content or message.reasoning
    if thinking:
        blocks.append({"type": "thinking", "thinking": thinking, "signature": ""})
    text = message.content or message.refusal
    if text:
        blocks.append({"type": "text", "text": text})
    for i, tool_call in enumerate(message.tool_calls or ()):
        function = tool_call.function or _Function()
        blocks.append(
            {
                "type": "tool_use",
                "id": tool_use_id(call, i, tool_call.id, tool_call.extra_content),
                "name": function.name,
                "input": tool_input(function.arguments),
            }
        )
    return blocks


def tool_use_id(call: Call, index: int, given: str | None, extra: ExtraContent | None) -> str:
    """The tool_use id: the provider's (made up when missing) with any thought signature."""
    tool_id = given or f"toolu_{call.request_id}_{index}"
    return join_signature(tool_id, extra.signature if extra is not None else None)
