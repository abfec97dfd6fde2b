"""An Anthropic Messages request -> the OpenAI chat-completions body of the inner codec.

Mapping (Anthropic -> chat): `system` -> a leading system message; user text/image blocks ->
content parts (base64 sources become `data:` URLs); user `tool_result` blocks -> `tool` messages
placed before the rest of that turn (OpenAI wants them right after the assistant's tool_calls;
`is_error` results are prefixed with "Error: ", images inside results move to the user message
that follows); assistant `tool_use` -> `tool_calls`; assistant thinking blocks are dropped (other
providers cannot verify their signatures); `tools` -> function tools; `tool_choice`
auto/any/tool/none -> auto/required/named/none with `disable_parallel_tool_use` ->
`parallel_tool_calls: false`; `max_tokens` -> `max_completion_tokens` (the only output cap
OpenAI's reasoning models accept); `stop_sequences` -> `stop`; `metadata.user_id` -> `user`;
`thinking.budget_tokens` -> `reasoning_effort` (under 4096 low, under 16384 medium, else high);
`top_k` has no chat equivalent and is dropped. Other block types -> 400 naming the block.
Gemini thought signatures come back out of tool_use ids (see `ids`).
Docs: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from llmux.errors import InvalidRequest
from llmux.frontdoor.messages.ids import split_signature
from llmux.types import RawBody
from llmux.wire import anthropic as wire
from llmux.wire.openai import encode, encode_body

__all__ = ["decode_request", "reasoning_effort", "to_chat_body"]

_CHOICES: Final = {"auto": "auto", "any": "required", "none": "none"}
_CLIENT_TOOL_TYPES: Final = frozenset({None, "custom"})
_THINKING_DROPPED: Final = frozenset({"thinking", "redacted_thinking"})
_EMPTY_SCHEMA: Final = {"type": "object", "properties": {}}
_LOW_BUDGET: Final = 4096
_MEDIUM_BUDGET: Final = 16384


def decode_request(body: RawBody) -> wire.InboundRequest:
    """The typed Messages request; a 400 naming the field when it is malformed."""
    try:
        return wire.decode_inbound_request(encode_body(body))
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).partition(" - at `")
        param = where.rstrip("`").removeprefix("$.").removeprefix("$") or None
        raise InvalidRequest(f"Invalid request: {text}.", param=param) from None


def to_chat_body(body: RawBody, *, stream: bool) -> RawBody:
    """The chat-completions body for a client's Messages body."""
    request = decode_request(body)
    chat: dict[str, Any] = {
        "model": request.model,
        "messages": _system(request.system) + _messages(request.messages),
        "max_completion_tokens": _max_tokens(request.max_tokens),
    }
    chat.update(_tools(request))
    chat.update(_sampling(request))
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return {key: msgspec.Raw(encode(value)) for key, value in chat.items()}


def reasoning_effort(budget_tokens: int) -> str:
    """The OpenAI `reasoning_effort` closest to an Anthropic thinking budget."""
    if budget_tokens < _LOW_BUDGET:
        return "low"
    return "medium" if budget_tokens < _MEDIUM_BUDGET else "high"


def _max_tokens(value: int | None) -> int:
    if value is None:
        raise InvalidRequest("Missing required parameter: 'max_tokens'.", param="max_tokens")
    if value < 1:
        raise InvalidRequest("'max_tokens' must be at least 1.", param="max_tokens")
    return value


def _sampling(request: wire.InboundRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if request.stop_sequences:
        out["stop"] = request.stop_sequences
    if request.temperature is not None:
        out["temperature"] = request.temperature
    if request.top_p is not None:
        out["top_p"] = request.top_p
    if request.metadata is not None and request.metadata.user_id:
        out["user"] = request.metadata.user_id
    thinking = request.thinking
    if thinking is not None and thinking.type == "enabled":
        if thinking.budget_tokens is None:
            raise InvalidRequest(
                "'thinking.budget_tokens' is required when thinking is enabled.",
                param="thinking.budget_tokens",
            )
        out["reasoning_effort"] = reasoning_effort(thinking.budget_tokens)
    return out


def _system(system: str | list[wire.InboundBlock] | None) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    texts = [_text_only(block, f"system[{j}]") for j, block in enumerate(system)]
    text = "\n\n".join(t for t in texts if t)
    return [{"role": "system", "content": text}] if text else []


def _text_only(block: wire.InboundBlock, param: str) -> str:
    if block.type != "text":
        raise InvalidRequest(
            f"{param}.type {block.type!r} is not supported here; only 'text' blocks are.",
            param=f"{param}.type",
        )
    return block.text or ""


def _messages(messages: list[wire.InboundMessage]) -> list[dict[str, Any]]:
    if not messages:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if message.role == "user":
            out.extend(_user(message.content, i))
        elif message.role == "assistant":
            out.append(_assistant(message.content, i))
        else:
            raise InvalidRequest(
                f"messages[{i}].role {message.role!r} must be 'user' or 'assistant'.",
                param=f"messages[{i}].role",
            )
    return out


def _user(content: str | list[wire.InboundBlock], i: int) -> list[dict[str, Any]]:
    """Tool results first (as `tool` messages), then one user message with the other parts."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        param = f"messages[{i}].content[{j}]"
        if block.type == "tool_result":
            results.append(_tool_result(block, param, parts))
        else:
            parts.append(_user_part(block, param))
    if parts or not results:
        results.append({"role": "user", "content": parts})
    return results


def _user_part(block: wire.InboundBlock, param: str) -> dict[str, Any]:
    if block.type == "text":
        return {"type": "text", "text": block.text or ""}
    if block.type == "image":
        return _image(block, param)
    raise InvalidRequest(
        f"{param}.type {block.type!r} is not supported for this model; "
        "use text, image or tool_result blocks.",
        param=f"{param}.type",
    )


def _image(block: wire.InboundBlock, param: str) -> dict[str, Any]:
    """base64 sources become `data:` URLs, url sources stay URLs."""
    source = block.source
    if source is not None and source.type == "base64" and source.media_type and source.data:
        url = f"data:{source.media_type};base64,{source.data}"
    elif source is not None and source.type == "url" and source.url:
        url = source.url
    else:
        raise InvalidRequest(
            f"{param}.source must be a base64 source (media_type, data) or a url source.",
            param=f"{param}.source",
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(
    block: wire.InboundBlock, param: str, images: list[dict[str, Any]]
) -> dict[str, Any]:
    """A `tool` message; images in the result are appended to `images` (the user turn)."""
    if not block.tool_use_id:
        raise InvalidRequest(
            f"{param}.tool_use_id is required for tool_result blocks.",
            param=f"{param}.tool_use_id",
        )
    content = block.content
    texts: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for k, part in enumerate(content):
            inner = f"{param}.content[{k}]"
            if part.type == "image":
                images.append(_image(part, inner))
            else:
                texts.append(_text_only(part, inner))
    text = "\n".join(texts)
    if block.is_error:
        text = f"Error: {text}" if text else "Error"
    tool_call_id, _ = split_signature(block.tool_use_id)
    return {"role": "tool", "tool_call_id": tool_call_id, "content": text}


def _assistant(content: str | list[wire.InboundBlock], i: int) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        param = f"messages[{i}].content[{j}]"
        if block.type == "text":
            texts.append(block.text or "")
        elif block.type == "tool_use":
            calls.append(_tool_call(block, param))
        elif block.type not in _THINKING_DROPPED:
            raise InvalidRequest(
                f"{param}.type {block.type!r} is not supported in assistant turns for this "
                "model; use text or tool_use blocks.",
                param=f"{param}.type",
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_call(block: wire.InboundBlock, param: str) -> dict[str, Any]:
    if not block.id or not block.name:
        raise InvalidRequest(f"{param} needs an 'id' and a 'name'.", param=param)
    arguments = bytes(block.input).decode() if block.input else "{}"
    tool_id, signature = split_signature(block.id)
    call: dict[str, Any] = {
        "id": tool_id,
        "type": "function",
        "function": {"name": block.name, "arguments": arguments},
    }
    if signature:
        call["extra_content"] = {"google": {"thought_signature": signature}}
    return call


def _tools(request: wire.InboundRequest) -> dict[str, Any]:
    if not request.tools:
        return {}
    out: dict[str, Any] = {"tools": [_tool(tool, i) for i, tool in enumerate(request.tools)]}
    choice = request.tool_choice
    if choice is not None:
        out["tool_choice"] = _choice(choice)
        if choice.disable_parallel_tool_use and choice.type != "none":
            out["parallel_tool_calls"] = False
    return out


def _tool(tool: wire.InboundTool, i: int) -> dict[str, Any]:
    if tool.type not in _CLIENT_TOOL_TYPES:
        raise InvalidRequest(
            f"tools[{i}].type {tool.type!r} is a server tool this model cannot run; "
            "only client tools (name, description, input_schema) are supported.",
            param=f"tools[{i}].type",
        )
    function: dict[str, Any] = {
        "name": tool.name,
        "parameters": tool.input_schema if tool.input_schema else _EMPTY_SCHEMA,
    }
    if tool.description is not None:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _choice(choice: wire.InboundToolChoice) -> str | dict[str, Any]:
    if choice.type in _CHOICES:
        return _CHOICES[choice.type]
    if choice.type == "tool":
        if not choice.name:
            raise InvalidRequest(
                "tool_choice.name is required when tool_choice.type is 'tool'.",
                param="tool_choice.name",
            )
        return {"type": "function", "function": {"name": choice.name}}
    raise InvalidRequest(
        f"tool_choice.type {choice.type!r} must be 'auto', 'any', 'tool' or 'none'.",
        param="tool_choice.type",
    )
