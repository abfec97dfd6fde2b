"""OpenAI chat request -> Gemini `GenerateContentRequest`.

- `system`/`developer` messages -> `systemInstruction` (text parts, in order).
- `user` -> role `user`; `assistant` -> role `model`; `tool` -> `functionResponse` parts in a
  `user` turn. Consecutive turns of the same role are merged (Gemini wants them alternating).
- Images: `data:` URLs -> `inlineData`; `http(s)` URLs -> `fileData` with a MIME type guessed
  from the path (default `image/jpeg`); any other scheme -> 400.
- Assistant `tool_calls` -> `functionCall` parts, with the `thoughtSignature` the client echoes
  in `extra_content.google.thought_signature` (Gemini 3 requires it back). A `tool` message's
  function name is recovered from the earlier tool call with its `tool_call_id` (Gemini has
  no call ids); its content is sent as `response` when it is a JSON object, else as
  `{"content": <text>}`.
- Function parameter schemas lose the keys Gemini's OpenAPI-subset `Schema` rejects: `$schema`,
  `$id`, `$comment`, `additionalProperties`, `unevaluatedProperties`, `patternProperties`,
  `strict` and `examples`, at every depth (property names are kept); a `type` list such as
  `["string", "null"]` becomes `type` + `nullable`.
- `response_format` json_object -> `responseMimeType: application/json`; json_schema -> also
  `responseJsonSchema` (standard JSON Schema, sent verbatim).
- `reasoning_effort` (other than `none`) + a configured `thinking_budget` -> `thinkingConfig`.
- Not translatable, so refused with a 400: `n` > 1 (one choice is returned), non-function
  tools, unknown `tool_choice` strings, image URLs that are neither `data:` nor http(s).
  Ignored (no Gemini equivalent): `user`, `metadata`, `parallel_tool_calls`, an assistant's
  `reasoning_content`.
"""

from __future__ import annotations

import mimetypes
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from llmux.errors import InvalidRequest
from llmux.providers.base import Call, Target
from llmux.wire import gemini as g
from llmux.wire.openai_chat import (
    ChatMessage,
    ChatRequest,
    ContentPart,
    ImagePart,
    NamedToolChoice,
    RefusalPart,
    TextPart,
    decode_chat_request,
)

__all__ = ["build_generate_request", "clean_schema"]

_UNSUPPORTED_SCHEMA_KEYS: Final = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "additionalProperties",
        "unevaluatedProperties",
        "patternProperties",
        "strict",
        "examples",
    }
)
"""JSON-schema keywords Gemini's function `parameters` schema rejects with a 400."""

_TOOL_CHOICE_MODES: Final = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_SYSTEM_ROLES: Final = frozenset({"system", "developer"})
_DEFAULT_IMAGE_TYPE: Final = "image/jpeg"


def build_generate_request(call: Call, target: Target) -> bytes:
    """The JSON body of a generateContent call for `call`."""
    request = decode_chat_request(call.body)
    system, contents = _contents(request.messages)
    tools, tool_config = _tools(request)
    body = g.GenerateContentRequest(
        contents=contents,
        system_instruction=g.Content(parts=system) if system else None,
        tools=tools,
        tool_config=tool_config,
        generation_config=_generation_config(request, target),
    )
    return g.encode(body)


def _contents(messages: list[ChatMessage]) -> tuple[list[g.Part], list[g.Content]]:
    system: list[g.Part] = []
    turns: list[tuple[str, list[g.Part]]] = []
    names: dict[str, str] = {}
    for at, message in enumerate(messages):
        where = f"messages[{at}]"
        if message.role in _SYSTEM_ROLES:
            system.extend(g.Part(text=text) for text in _texts(message, where))
            continue
        role, parts = _turn(message, where, names)
        if not parts:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(parts)
        else:
            turns.append((role, parts))
    if not turns:
        raise InvalidRequest("`messages` must contain a user message.", param="messages")
    return system, [g.Content(parts=parts, role=role) for role, parts in turns]


def _turn(message: ChatMessage, where: str, names: dict[str, str]) -> tuple[str, list[g.Part]]:
    if message.role == "user":
        return "user", _user_parts(message, where)
    if message.role == "assistant":
        return "model", _assistant_parts(message, where, names)
    if message.role == "tool":
        return "user", [_function_response(message, where, names)]
    raise InvalidRequest(
        f"Unsupported message role {message.role!r} for a Gemini model.", param=f"{where}.role"
    )


def _texts(message: ChatMessage, where: str) -> list[str]:
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content else []
    texts: list[str] = []
    for index, part in enumerate(content):
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, RefusalPart):
            texts.append(part.refusal)
        else:
            raise InvalidRequest(
                f"Only text parts are allowed in a {message.role} message.",
                param=f"{where}.content[{index}]",
            )
    return texts


def _user_parts(message: ChatMessage, where: str) -> list[g.Part]:
    content = message.content
    if content is None or isinstance(content, str):
        return [g.Part(text=content)] if content else []
    return [_user_part(part, f"{where}.content[{index}]") for index, part in enumerate(content)]


def _user_part(part: ContentPart, where: str) -> g.Part:
    if isinstance(part, TextPart):
        return g.Part(text=part.text)
    if isinstance(part, ImagePart):
        return _image(part.image_url.url, f"{where}.image_url.url")
    return g.Part(text=part.refusal)


def _image(url: str, where: str) -> g.Part:
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        mime_type, _, encoding = header.partition(";")
        if not comma or encoding != "base64" or not mime_type or not data:
            raise InvalidRequest(
                "Image data URLs must look like `data:<mime>;base64,<data>`.", param=where
            )
        return g.Part(inline_data=g.Blob(mime_type=mime_type, data=data))
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidRequest(
            "Image URLs must be `data:` URLs or http(s) URLs for a Gemini model.", param=where
        )
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    mime_type = guessed if guessed and guessed.startswith("image/") else _DEFAULT_IMAGE_TYPE
    return g.Part(file_data=g.FileData(file_uri=url, mime_type=mime_type))


def _assistant_parts(message: ChatMessage, where: str, names: dict[str, str]) -> list[g.Part]:
    parts = [g.Part(text=text) for text in _texts(message, where)]
    for index, tool_call in enumerate(message.tool_calls or ()):
        names[tool_call.id] = tool_call.function.name
        args = _arguments(tool_call.function.arguments, f"{where}.tool_calls[{index}]")
        function_call = g.FunctionCall(name=tool_call.function.name, args=args)
        parts.append(
            g.Part(function_call=function_call, thought_signature=tool_call.thought_signature)
        )
    return parts


def _arguments(arguments: str, where: str) -> msgspec.Raw:
    if not arguments.strip():
        return msgspec.Raw(b"{}")
    try:
        decoded = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        decoded = None
    if not isinstance(decoded, dict):
        raise InvalidRequest(
            "Tool call arguments must be a JSON object.", param=f"{where}.function.arguments"
        )
    return msgspec.Raw(arguments.encode())


def _function_response(message: ChatMessage, where: str, names: dict[str, str]) -> g.Part:
    call_id = message.tool_call_id
    name = names.get(call_id) if call_id else None
    if name is None:
        raise InvalidRequest(
            "A tool message must answer a tool call of an earlier assistant message"
            f" (unknown tool_call_id {call_id!r}).",
            param=f"{where}.tool_call_id",
        )
    text = "".join(_texts(message, where))
    return g.Part(function_response=g.FunctionResponse(name=name, response=_response(text)))


def _response(text: str) -> msgspec.Raw:
    try:
        decoded = msgspec.json.decode(text)
    except msgspec.DecodeError:
        decoded = None
    if isinstance(decoded, dict):
        return msgspec.Raw(text.encode())
    return msgspec.Raw(g.encode({"content": text}))


def _tools(request: ChatRequest) -> tuple[list[g.Tool] | None, g.ToolConfig | None]:
    declarations: list[g.FunctionDeclaration] = []
    for index, tool in enumerate(request.tools or ()):
        if tool.type != "function":
            raise InvalidRequest(
                "Only function tools are supported for a Gemini model.",
                param=f"tools[{index}].type",
            )
        function = tool.function
        parameters = function.parameters
        declarations.append(
            g.FunctionDeclaration(
                name=function.name,
                description=function.description,
                parameters=_clean_raw(parameters) if _present(parameters) else None,
            )
        )
    tools = [g.Tool(function_declarations=declarations)] if declarations else None
    return tools, _tool_config(request.tool_choice)


def _tool_config(choice: str | NamedToolChoice | None) -> g.ToolConfig | None:
    if choice is None:
        return None
    if isinstance(choice, NamedToolChoice):
        config = g.FunctionCallingConfig(mode="ANY", allowed_function_names=[choice.function.name])
        return g.ToolConfig(function_calling_config=config)
    mode = _TOOL_CHOICE_MODES.get(choice)
    if mode is None:
        raise InvalidRequest(
            "`tool_choice` must be auto, none, required or a named function.",
            param="tool_choice",
        )
    return g.ToolConfig(function_calling_config=g.FunctionCallingConfig(mode=mode))


def _present(raw: msgspec.Raw) -> bool:
    return bool(raw) and bytes(raw) != b"null"


def _clean_raw(schema: msgspec.Raw) -> msgspec.Raw:
    return msgspec.Raw(g.encode(clean_schema(msgspec.json.decode(schema))))


def clean_schema(schema: Any) -> Any:
    """A JSON schema without the keywords Gemini rejects, type lists made `nullable`."""
    if isinstance(schema, list):
        return [clean_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _UNSUPPORTED_SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            cleaned[key] = {name: clean_schema(sub) for name, sub in value.items()}
        elif key == "type" and isinstance(value, list):
            kinds = [kind for kind in value if kind != "null"]
            cleaned[key] = kinds[0] if len(kinds) == 1 else kinds
            if "null" in value:
                cleaned["nullable"] = True
        else:
            cleaned[key] = clean_schema(value)
    return cleaned


def _generation_config(request: ChatRequest, target: Target) -> g.GenerationConfig | None:
    if request.n is not None and request.n > 1:
        raise InvalidRequest("A Gemini model answers with one choice: `n` must be 1.", param="n")
    mime_type, schema = _response_format(request)
    config = g.GenerationConfig(
        temperature=request.temperature,
        top_p=request.top_p,
        max_output_tokens=request.output_limit or target.max_output_tokens,
        stop_sequences=request.stop_sequences or None,
        candidate_count=request.n,
        seed=request.seed,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        response_mime_type=mime_type,
        response_json_schema=schema,
        thinking_config=_thinking(request, target),
    )
    return config if config != g.GenerationConfig() else None


def _response_format(request: ChatRequest) -> tuple[str | None, msgspec.Raw | None]:
    response_format = request.response_format
    if response_format is None or response_format.type == "text":
        return None, None
    if response_format.type == "json_object":
        return "application/json", None
    if response_format.type == "json_schema":
        json_schema = response_format.json_schema
        if json_schema is None or not _present(json_schema.schema):
            raise InvalidRequest(
                "`response_format.json_schema.schema` is required.",
                param="response_format.json_schema",
            )
        return "application/json", json_schema.schema
    raise InvalidRequest(
        f"Unsupported response_format type {response_format.type!r}.",
        param="response_format.type",
    )


def _thinking(request: ChatRequest, target: Target) -> g.ThinkingConfig | None:
    effort = request.reasoning_effort
    if effort is None or effort == "none" or target.thinking_budget is None:
        return None
    return g.ThinkingConfig(thinking_budget=target.thinking_budget, include_thoughts=True)
