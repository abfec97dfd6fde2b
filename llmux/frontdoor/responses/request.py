"""Responses request -> chat-completions request, for providers that only speak chat.

- `instructions` -> a leading `system` message; `input` as a string -> one user message.
- Message items: user parts `input_text` / `input_image` (URL or `data:` URL) -> text and
  image_url parts; `system` and `developer` -> `system` messages (text only).
- Consecutive assistant-side items (an assistant message, `function_call`s, `reasoning`) become
  one assistant message: content, `tool_calls` and `reasoning_content` (reasoning alone, with
  no content or call to attach to, is dropped). `function_call_output` -> a `tool` message.
  A function_call item id that carries a Gemini thought signature (see `ids`) gives it back
  in the tool call's `extra_content.google.thought_signature`.
- Flat function tools -> nested chat tools; `tool_choice`, `parallel_tool_calls` (sent only
  with tools), `max_output_tokens` -> `max_completion_tokens`, `temperature`, `top_p`, `user`,
  `text.format` -> `response_format`, `reasoning.effort` -> `reasoning_effort`.
- Echoed only (no chat equivalent): `metadata`, `store`, `previous_response_id` (the gateway
  expands stored history into `input` before translating), `truncation`, `include`, and the
  prompt-cache and service-tier hints.
- Refused with a 400 naming the field: unknown fields, non-function tools, hosted
  `tool_choice`s, `file_id` images and file parts, `item_reference` and other item types,
  `background: true`, `top_logprobs`, `conversation`, `prompt`.
Docs: https://platform.openai.com/docs/api-reference/responses/create
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from llmux.errors import InvalidRequest
from llmux.frontdoor.responses import wire
from llmux.frontdoor.responses.ids import thought_signature
from llmux.frontdoor.responses.wire import (
    ContentPart,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    InputFile,
    InputImage,
    InputText,
    Item,
    MessageItem,
    OutputText,
    ReasoningItem,
    Refusal,
    ResponsesRequest,
)
from llmux.providers.base import Call
from llmux.types import Endpoint, RawBody
from llmux.wire.openai import encode, encode_body

__all__ = ["Translation", "translate"]

_ECHOED: Final = frozenset(
    {
        "include",
        "max_tool_calls",
        "previous_response_id",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "safety_identifier",
        "service_tier",
        "store",
        "stream_options",
        "truncation",
    }
)
"""Accepted fields with no chat equivalent: echoed in the Response, never sent upstream."""
_REFUSED: Final = frozenset({"conversation", "prompt", "context_management", "moderation"})
"""Fields that need OpenAI's server-side state or features; a 400 unless null."""
_TRANSLATED: Final = frozenset(ResponsesRequest.__struct_fields__)
_CHOICES: Final = frozenset({"auto", "none", "required"})
_NULL: Final = msgspec.Raw(b"null")

_request_decoder = msgspec.json.Decoder(ResponsesRequest)
_typed_decoder = msgspec.json.Decoder(wire.Typed)
_function_decoder = msgspec.json.Decoder(FunctionTool)
_item_decoders: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    "message": msgspec.json.Decoder(MessageItem),
    "function_call": msgspec.json.Decoder(FunctionCallItem),
    "function_call_output": msgspec.json.Decoder(FunctionCallOutputItem),
    "reasoning": msgspec.json.Decoder(ReasoningItem),
}


@dataclass(frozen=True, slots=True)
class Translation:
    """A Responses call seen as chat: the chat call to send and what the answer echoes."""

    chat: Call
    """The call the inner chat codec encodes and decodes."""
    request: ResponsesRequest
    tools: list[FunctionTool]


def translate(call: Call) -> Translation:
    """The chat form of a Responses call; a 400 naming the field for anything untranslatable."""
    _check_fields(call.body)
    request = wire.decode(_request_decoder, encode_body(call.body), "")
    _check_unsupported(request)
    tools = _tools(request.tools or [])
    body = _chat_body(request, tools, _items(request.input), stream=call.stream)
    chat = dataclasses.replace(call, endpoint=Endpoint.CHAT, body=body, include_usage=True)
    return Translation(chat, request, tools)


def _check_fields(body: RawBody) -> None:
    for name, raw in body.items():
        if name == "previous_response_id" and raw != _NULL:
            # The gateway swaps a stored id for its history before translating; one still here
            # is unknown to the store, and this upstream has no server state to resolve it.
            raise InvalidRequest(
                f"Previous response with id {bytes(raw).decode()} not found.",
                param=name,
                code="previous_response_not_found",
            )
        if name in _TRANSLATED or name in _ECHOED:
            continue
        if name in _REFUSED:
            if raw == _NULL:
                continue
            raise InvalidRequest(f"'{name}' is not supported on this provider.", param=name)
        raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name)


def _check_unsupported(request: ResponsesRequest) -> None:
    if request.background:
        raise InvalidRequest(
            "Background responses are not supported on this provider.", param="background"
        )
    if request.top_logprobs:
        raise InvalidRequest(
            "'top_logprobs' is not supported on this provider.", param="top_logprobs"
        )


def _items(value: str | list[msgspec.Raw] | None) -> list[Item]:
    if value is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    if isinstance(value, str):
        return [MessageItem(role="user", content=value)]
    return [_item(raw, f"input[{index}]") for index, raw in enumerate(value)]


def _item(raw: msgspec.Raw, where: str) -> Item:
    kind = wire.decode(_typed_decoder, raw, where).type
    decoder = _item_decoders.get(kind)
    if decoder is None:
        raise InvalidRequest(
            f"Input items of type '{kind}' are not supported on this provider.",
            param=f"{where}.type",
        )
    item: Item = wire.decode(decoder, raw, where)
    return item


def _tools(raws: list[msgspec.Raw]) -> list[FunctionTool]:
    tools: list[FunctionTool] = []
    for index, raw in enumerate(raws):
        where = f"tools[{index}]"
        kind = wire.decode(_typed_decoder, raw, where).type
        if kind != "function":
            raise InvalidRequest(
                f"Tool type '{kind}' is not supported on this provider; only function tools are.",
                param=f"{where}.type",
            )
        tools.append(wire.decode(_function_decoder, raw, where))
    return tools


def _chat_body(
    request: ResponsesRequest, tools: list[FunctionTool], items: list[Item], *, stream: bool
) -> RawBody:
    body: dict[str, Any] = {"model": request.model, "messages": _messages(request, items)}
    body.update(_tool_fields(request, tools))
    optional = {
        "max_completion_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "user": request.user,
        "response_format": _response_format(request),
        "reasoning_effort": request.reasoning.effort if request.reasoning else None,
    }
    body.update((name, value) for name, value in optional.items() if value is not None)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return {name: msgspec.Raw(encode(value)) for name, value in body.items()}


def _messages(request: ResponsesRequest, items: list[Item]) -> list[dict[str, Any]]:
    conversation = _Conversation()
    if request.instructions:
        conversation.messages.append({"role": "system", "content": request.instructions})
    for index, item in enumerate(items):
        conversation.add(item, f"input[{index}]")
    return conversation.close()


class _Conversation:
    """Chat messages built item by item; assistant-side items gather into one turn."""

    __slots__ = ("messages", "turn")

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.turn: dict[str, Any] | None = None

    def add(self, item: Item, where: str) -> None:
        """Append `item` (found at `where` in the request) to the conversation."""
        if isinstance(item, FunctionCallItem):
            self._turn().setdefault("tool_calls", []).append(_tool_call(item))
        elif isinstance(item, ReasoningItem):
            self._fresh_turn()["reasoning_content"] = item.text
        elif isinstance(item, MessageItem) and item.role == "assistant":
            self._fresh_turn()["content"] = _assistant_content(item.content, where)
        else:
            self._flush()
            self.messages.append(_message(item, where))

    def close(self) -> list[dict[str, Any]]:
        """The messages, with the last assistant turn included."""
        self._flush()
        return self.messages

    def _turn(self) -> dict[str, Any]:
        if self.turn is None:
            self.turn = {"role": "assistant", "content": None}
        return self.turn

    def _fresh_turn(self) -> dict[str, Any]:
        """The open turn, or a new one when the open one already has content or calls."""
        if self.turn is not None and (
            self.turn["content"] is not None or "tool_calls" in self.turn
        ):
            self._flush()
        return self._turn()

    def _flush(self) -> None:
        turn, self.turn = self.turn, None
        # Reasoning alone has nothing in chat to attach to.
        if turn is not None and (turn["content"] is not None or "tool_calls" in turn):
            self.messages.append(turn)


def _tool_call(item: FunctionCallItem) -> dict[str, Any]:
    function = {"name": item.name, "arguments": item.arguments}
    call: dict[str, Any] = {"id": item.call_id, "type": "function", "function": function}
    signature = thought_signature(item.id)
    if signature is not None:
        call["extra_content"] = {"google": {"thought_signature": signature}}
    return call


def _message(item: MessageItem | FunctionCallOutputItem, where: str) -> dict[str, Any]:
    if isinstance(item, FunctionCallOutputItem):
        output = _text_only(item.output, f"{where}.output")
        return {"role": "tool", "tool_call_id": item.call_id, "content": output}
    if item.role == "user":
        return {"role": "user", "content": _user_content(item.content, where)}
    return {"role": "system", "content": _text_only(item.content, f"{where}.content")}


def _user_content(content: str | list[ContentPart], where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    return [_user_part(part, f"{where}.content[{index}]") for index, part in enumerate(content)]


def _user_part(part: ContentPart, where: str) -> dict[str, Any]:
    if isinstance(part, InputText | OutputText):
        return {"type": "text", "text": part.text}
    if isinstance(part, InputImage):
        if part.image_url is None:
            raise InvalidRequest(
                "Uploaded files are not available on this provider; send the image as an"
                " http(s) or data: URL in 'image_url'.",
                param=f"{where}.file_id" if part.file_id else f"{where}.image_url",
            )
        image = {"url": part.image_url}
        if part.detail is not None:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    raise _unsupported_part(part, where)


def _assistant_content(content: str | list[ContentPart], where: str) -> str | list[Any]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        if isinstance(part, OutputText | InputText):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, Refusal):
            parts.append({"type": "refusal", "refusal": part.refusal})
        else:
            raise _unsupported_part(part, f"{where}.content[{index}]")
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _text_only(content: str | list[ContentPart], where: str) -> str:
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for index, part in enumerate(content):
        if not isinstance(part, InputText | OutputText):
            raise _unsupported_part(part, f"{where}[{index}]")
        texts.append(part.text)
    return "".join(texts)


def _unsupported_part(part: ContentPart, where: str) -> InvalidRequest:
    kind = type(part).__struct_config__.tag
    if isinstance(part, InputFile):
        return InvalidRequest("File inputs are not supported on this provider.", param=where)
    return InvalidRequest(f"A '{kind}' part is not allowed here.", param=where)


def _tool_fields(request: ResponsesRequest, tools: list[FunctionTool]) -> dict[str, Any]:
    choice = _tool_choice(request, tools)
    if not tools:
        return {}
    fields: dict[str, Any] = {"tools": [_chat_tool(tool) for tool in tools]}
    if choice is not None:
        fields["tool_choice"] = choice
    if request.parallel_tool_calls is not None:
        fields["parallel_tool_calls"] = request.parallel_tool_calls
    return fields


def _chat_tool(tool: FunctionTool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters:
        function["parameters"] = tool.parameters
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _tool_choice(request: ResponsesRequest, tools: list[FunctionTool]) -> Any:
    choice = request.tool_choice
    if choice is None or choice in ("auto", "none"):
        return choice
    if isinstance(choice, str):
        if choice not in _CHOICES:
            raise InvalidRequest(f"Invalid 'tool_choice': '{choice}'.", param="tool_choice")
    elif choice.type != "function":
        raise InvalidRequest(
            f"tool_choice type '{choice.type}' is not supported on this provider.",
            param="tool_choice.type",
        )
    elif choice.name not in {tool.name for tool in tools}:
        raise InvalidRequest(
            "tool_choice names a function that is not in 'tools'.", param="tool_choice.name"
        )
    if not tools:
        raise InvalidRequest("tool_choice requires 'tools'.", param="tool_choice")
    if isinstance(choice, str):
        return choice
    return {"type": "function", "function": {"name": choice.name}}


def _response_format(request: ResponsesRequest) -> dict[str, Any] | None:
    form = request.text.format if request.text is not None else None
    if form is None or form.type == "text":
        return None
    if form.type == "json_object":
        return {"type": "json_object"}
    if form.type != "json_schema":
        raise InvalidRequest(f"Unknown text format type '{form.type}'.", param="text.format.type")
    if form.name is None:
        raise InvalidRequest("A json_schema format needs a 'name'.", param="text.format.name")
    if not form.schema:
        raise InvalidRequest("A json_schema format needs a 'schema'.", param="text.format.schema")
    schema: dict[str, Any] = {"name": form.name, "schema": form.schema}
    if form.strict is not None:
        schema["strict"] = form.strict
    if form.description is not None:
        schema["description"] = form.description
    return {"type": "json_schema", "json_schema": schema}
