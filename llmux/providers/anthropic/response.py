"""A complete Anthropic message -> an OpenAI `chat.completion` body and usage.

Text blocks join into `content`, tool_use blocks become `tool_calls` (arguments as the JSON
text of `input`), thinking blocks become `reasoning_content`. In JSON mode the `json_response`
tool's input is the content. Docs: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from llmux.errors import UpstreamProtocolError
from llmux.providers import chat_out
from llmux.providers.anthropic.request import JSON_TOOL, json_mode
from llmux.providers.base import Call
from llmux.types import Usage
from llmux.wire import anthropic as wire

__all__ = ["decode", "finish_reason", "to_usage"]

_FINISH: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: str | None, has_tool_calls: bool) -> str:
    """OpenAI finish_reason for an Anthropic stop_reason (a JSON-mode tool answer is `stop`)."""
    reason = _FINISH.get(stop_reason or "", "stop")
    if reason == "tool_calls" and not has_tool_calls:
        return "stop"
    return reason


def to_usage(usage: wire.Usage | None) -> Usage:
    """OpenAI-style usage: prompt tokens include cache reads and cache writes."""
    if usage is None:
        return Usage()
    cached = usage.cache_read_input_tokens or 0
    details = usage.output_tokens_details
    return Usage(
        input_tokens=(usage.input_tokens or 0) + cached + (usage.cache_creation_input_tokens or 0),
        output_tokens=usage.output_tokens or 0,
        cached_tokens=cached,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
        reasoning_tokens=(details.thinking_tokens or 0) if details is not None else 0,
    )


def decode(call: Call, body: bytes) -> tuple[bytes, Usage]:
    """The client's body and the call's usage."""
    try:
        message = wire.decode_message(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamProtocolError(f"upstream sent an invalid Anthropic message: {exc}") from None
    json_tool = json_mode(call)
    texts: list[str] = []
    thinking: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text" and block.text:
            texts.append(block.text)
        elif block.type == "thinking" and block.thinking:
            thinking.append(block.thinking)
        elif block.type == "tool_use":
            arguments = bytes(block.input).decode() if block.input else "{}"
            if json_tool and block.name == JSON_TOOL:
                texts.append(arguments)
            else:
                tool_calls.append(_tool_call(block, arguments))
    usage = to_usage(message.usage)
    out = chat_out.completion_body(
        call,
        content="".join(texts) if texts else None,
        finish_reason=finish_reason(message.stop_reason, bool(tool_calls)),
        usage=usage,
        tool_calls=tool_calls or None,
        reasoning="".join(thinking) or None,
    )
    return out, usage


def _tool_call(block: wire.ContentBlock, arguments: str) -> dict[str, Any]:
    return {
        "id": block.id,
        "type": "function",
        "function": {"name": block.name, "arguments": arguments},
    }
