"""OpenAI chat request -> Anthropic Messages request (body, URL and headers).

JSON modes (`response_format` json_schema / json_object) use a forced tool named
`json_response` whose `input_schema` is the client's schema: it works on every Claude model and
API version (the newer `output_config.format` is model-dependent), and the tool's input is
mapped back to the message content as a JSON string with finish_reason `stop`. Forced tool use
cannot be combined with extended thinking, so thinking stays off in JSON mode, with a forced
tool_choice, and while the last assistant turn used tools (Anthropic would want that turn's signed
thinking blocks back, and OpenAI clients have no way to send them).
Docs: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from typing import Final

import msgspec
from msgspec import UNSET, UnsetType

from llmux.errors import InvalidRequest
from llmux.providers.base import Call, Target
from llmux.types import PreparedRequest
from llmux.wire import anthropic as wire
from llmux.wire.openai_chat import (
    ChatMessage,
    ChatRequest,
    ImagePart,
    NamedToolChoice,
    RefusalPart,
    TextPart,
    decode_chat_request,
)

__all__ = ["DEFAULT_MAX_TOKENS", "DEFAULT_VERSION", "JSON_TOOL", "encode", "json_mode"]

DEFAULT_VERSION: Final = "2023-06-01"
DEFAULT_MAX_TOKENS: Final = 4096
JSON_TOOL: Final = "json_response"
_ANY_OBJECT: Final = msgspec.Raw(b'{"type":"object"}')
_EMPTY_SCHEMA: Final = msgspec.Raw(b'{"type":"object","properties":{}}')
_EMPTY_INPUT: Final = msgspec.Raw(b"{}")
_CHOICES: Final = {"auto": "auto", "none": "none", "required": "any"}
_JSON_FORMATS: Final = frozenset({"json_object", "json_schema"})
_SYSTEM_ROLES: Final = frozenset({"system", "developer"})


class _FormatView(msgspec.Struct):
    type: str | None = None


_format_decoder = msgspec.json.Decoder(_FormatView | None)


def json_mode(call: Call) -> bool:
    """Whether the client asked for a JSON `response_format` (answered via `JSON_TOOL`)."""
    raw = call.body.get("response_format")
    if raw is None:
        return False
    try:
        view = _format_decoder.decode(raw)
    except msgspec.ValidationError:
        return False
    return view is not None and view.type in _JSON_FORMATS


def encode(call: Call, target: Target) -> PreparedRequest:
    """The `POST /v1/messages` request for `call`."""
    chat = decode_chat_request(call.body)
    body = wire.encode_request(_request(chat, target, call.stream))
    headers = {
        "content-type": "application/json",
        "anthropic-version": target.api_version or DEFAULT_VERSION,
        **target.headers,
    }
    if target.api_key:
        headers["x-api-key"] = target.api_key
    if call.stream:
        headers["accept"] = "text/event-stream"
    return PreparedRequest("POST", _url(target.base_url), headers, body, stream=call.stream)


def _url(base_url: str) -> str:
    # Users may paste the SDK's root or a URL that already ends with /v1.
    return base_url.removesuffix("/v1") + "/v1/messages"


def _request(chat: ChatRequest, target: Target, stream: bool) -> wire.MessagesRequest:
    if chat.n is not None and chat.n > 1:
        raise InvalidRequest("Anthropic models return one choice; 'n' must be 1.", param="n")
    system, messages = _conversation(chat.messages)
    tools, choice = _tools(chat)
    max_tokens = chat.output_limit or target.max_output_tokens or DEFAULT_MAX_TOKENS
    thinking: wire.Thinking | UnsetType = UNSET
    budget = target.thinking_budget
    wanted = chat.reasoning_effort not in (None, "none")
    if budget and wanted and _thinking_ok(choice) and not _in_tool_loop(messages):
        thinking = wire.Thinking(budget_tokens=budget)
        # The budget counts within max_tokens and must stay below it.
        if max_tokens <= budget:
            max_tokens += budget
    return wire.MessagesRequest(
        model=target.upstream_model,
        messages=messages,
        max_tokens=max_tokens,
        system=system,
        tools=tools,
        tool_choice=choice,
        stop_sequences=chat.stop_sequences or UNSET,
        temperature=_opt(chat.temperature),
        top_p=_opt(chat.top_p),
        metadata=wire.Metadata(chat.user) if chat.user else UNSET,
        thinking=thinking,
        stream=True if stream else UNSET,
    )


def _thinking_ok(choice: wire.ToolChoice | UnsetType) -> bool:
    """Extended thinking only allows tool_choice auto or none (forced tools turn it off)."""
    return not isinstance(choice, wire.ToolChoice) or choice.type in ("auto", "none")


def _in_tool_loop(turns: list[wire.MessageParam]) -> bool:
    """Whether the last assistant turn used tools: with thinking on, Anthropic would need that
    turn's signed thinking blocks back, which OpenAI clients cannot send."""
    assistant = next((t for t in reversed(turns) if t.role == "assistant"), None)
    return assistant is not None and any(
        isinstance(block, wire.ToolUseBlock) for block in assistant.content
    )


def _opt(value: float | None) -> float | UnsetType:
    return UNSET if value is None else value


def _conversation(
    messages: list[ChatMessage],
) -> tuple[str | UnsetType, list[wire.MessageParam]]:
    """Hoist system text; merge consecutive same-role turns (tool results join the user)."""
    system: list[str] = []
    turns: list[wire.MessageParam] = []
    for i, message in enumerate(messages):
        if message.role in _SYSTEM_ROLES:
            system.append(_text(message, i))
            continue
        role, blocks = _turn(message, i)
        if not blocks:
            continue
        if turns and turns[-1].role == role:
            turns[-1].content.extend(blocks)
        else:
            turns.append(wire.MessageParam(role, blocks))
    if not turns:
        raise InvalidRequest(
            "'messages' must contain at least one user or assistant message.", param="messages"
        )
    return ("\n\n".join(t for t in system if t) or UNSET), turns


def _turn(message: ChatMessage, i: int) -> tuple[str, list[wire.RequestBlock]]:
    if message.role == "user":
        return "user", _user_blocks(message, i)
    if message.role == "assistant":
        return "assistant", _assistant_blocks(message, i)
    if message.role == "tool":
        return "user", [_tool_result(message, i)]
    raise InvalidRequest(
        f"messages[{i}].role {message.role!r} is not supported by Anthropic models.",
        param=f"messages[{i}].role",
    )


def _text(message: ChatMessage, i: int) -> str:
    """Text-only content (system, tool) as one string."""
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    texts: list[str] = []
    for j, part in enumerate(content):
        if not isinstance(part, TextPart):
            raise InvalidRequest(
                f"messages[{i}].content[{j}] must be a text part for role {message.role!r}.",
                param=f"messages[{i}].content[{j}]",
            )
        texts.append(part.text)
    return "".join(texts)


def _user_blocks(message: ChatMessage, i: int) -> list[wire.RequestBlock]:
    content = message.content
    if content is None or isinstance(content, str):
        return [wire.TextBlock(content)] if content else []
    blocks: list[wire.RequestBlock] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text:
                blocks.append(wire.TextBlock(part.text))
        elif isinstance(part, ImagePart):
            blocks.append(_image(part.image_url.url, f"messages[{i}].content[{j}].image_url.url"))
        else:
            blocks.append(wire.TextBlock(part.refusal))
    return blocks


def _image(url: str, param: str) -> wire.ImageBlock:
    """`data:` URLs become base64 sources, http(s) URLs url sources."""
    if url.startswith(("http://", "https://")):
        return wire.ImageBlock(wire.URLSource(url))
    header, comma, data = url.partition(",")
    if url.startswith("data:") and comma and header.endswith(";base64"):
        media_type = header[5:].removesuffix(";base64")
        if media_type and data:
            return wire.ImageBlock(wire.Base64Source(media_type, data))
    raise InvalidRequest(
        f"{param} must be an http(s) URL or a base64 data URL (data:<type>;base64,...).",
        param=param,
    )


def _assistant_blocks(message: ChatMessage, i: int) -> list[wire.RequestBlock]:
    blocks: list[wire.RequestBlock] = []
    content = message.content
    if isinstance(content, str):
        if content:
            blocks.append(wire.TextBlock(content))
    elif content:
        for part in content:
            text = part.refusal if isinstance(part, RefusalPart) else _part_text(part)
            if text:
                blocks.append(wire.TextBlock(text))
    for j, call in enumerate(message.tool_calls or ()):
        param = f"messages[{i}].tool_calls[{j}].function.arguments"
        blocks.append(
            wire.ToolUseBlock(
                call.id, call.function.name, _arguments(call.function.arguments, param)
            )
        )
    return blocks


def _part_text(part: TextPart | ImagePart) -> str:
    return part.text if isinstance(part, TextPart) else ""


def _arguments(arguments: str, param: str) -> msgspec.Raw:
    """The arguments string as a JSON object for `input`; a 400 naming it when it is not one."""
    if not arguments.strip():
        return _EMPTY_INPUT
    try:
        value = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{param} must be a JSON object encoded as a string.", param=param)
    return msgspec.Raw(arguments.encode())


def _tool_result(message: ChatMessage, i: int) -> wire.ToolResultBlock:
    if not message.tool_call_id:
        raise InvalidRequest(
            f"messages[{i}].tool_call_id is required for role 'tool'.",
            param=f"messages[{i}].tool_call_id",
        )
    return wire.ToolResultBlock(message.tool_call_id, _text(message, i))


def _tools(
    chat: ChatRequest,
) -> tuple[list[wire.ToolDef] | UnsetType, wire.ToolChoice | UnsetType]:
    tools = [_tool(chat, i) for i in range(len(chat.tools or ()))]
    choice = _choice(chat) if tools else UNSET
    if chat.response_format is not None and chat.response_format.type in _JSON_FORMATS:
        tools.append(_json_tool(chat))
        if choice is UNSET or choice.type in ("auto", "none"):
            choice = wire.ToolChoice("tool", name=JSON_TOOL)
    return (tools or UNSET), choice


def _tool(chat: ChatRequest, i: int) -> wire.ToolDef:
    tool = (chat.tools or [])[i]
    if tool.type != "function":
        raise InvalidRequest(
            f"tools[{i}].type {tool.type!r} is not supported; only 'function' tools are.",
            param=f"tools[{i}].type",
        )
    function = tool.function
    return wire.ToolDef(
        name=function.name,
        input_schema=function.parameters if _present(function.parameters) else _EMPTY_SCHEMA,
        description=function.description if function.description is not None else UNSET,
    )


def _json_tool(chat: ChatRequest) -> wire.ToolDef:
    fmt = chat.response_format
    schema = fmt.json_schema if fmt is not None else None
    return wire.ToolDef(
        name=JSON_TOOL,
        input_schema=(
            schema.schema if schema is not None and _present(schema.schema) else _ANY_OBJECT
        ),
        description=(
            schema.description
            if schema is not None and schema.description
            else "Respond with the answer as this tool's input."
        ),
    )


def _present(raw: msgspec.Raw) -> bool:
    """Whether an optional schema was given (absent decodes as empty bytes)."""
    return bool(raw) and bytes(raw) != b"null"


def _choice(chat: ChatRequest) -> wire.ToolChoice:
    raw = chat.tool_choice or "auto"
    if isinstance(raw, NamedToolChoice):
        choice = wire.ToolChoice("tool", name=raw.function.name)
    elif raw in _CHOICES:
        choice = wire.ToolChoice(_CHOICES[raw])
    else:
        raise InvalidRequest(
            f"tool_choice {raw!r} is not one of 'auto', 'none', 'required' or a named function.",
            param="tool_choice",
        )
    if chat.parallel_tool_calls is False and choice.type != "none":
        choice.disable_parallel_tool_use = True
    return choice
