"""The full OpenAI chat-completions request, for codecs that translate it to another dialect.

OpenAI-dialect upstreams never decode this (they get the client's bytes); the Anthropic and
Gemini codecs do, to rebuild the request in their own format. Opaque subtrees (JSON schemas)
stay `msgspec.Raw`. Docs: https://platform.openai.com/docs/api-reference/chat/create
"""

from __future__ import annotations

from typing import Any

import msgspec

from llmux.errors import InvalidRequest
from llmux.types import RawBody
from llmux.wire.openai import encode_body

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "ContentPart",
    "ExtraContent",
    "FunctionCall",
    "FunctionDefinition",
    "GoogleExtra",
    "ImagePart",
    "ImageURL",
    "JSONSchemaFormat",
    "NamedToolChoice",
    "RefusalPart",
    "ResponseFormat",
    "TextPart",
    "Tool",
    "ToolCall",
    "decode_chat_request",
]


class ImageURL(msgspec.Struct):
    """`image_url` of an image part: an http(s) URL or a `data:` URL with base64 bytes."""

    url: str
    detail: str | None = None


class TextPart(msgspec.Struct, tag="text", tag_field="type"):
    """A text content part."""

    text: str


class ImagePart(msgspec.Struct, tag="image_url", tag_field="type"):
    """An image content part."""

    image_url: ImageURL


class RefusalPart(msgspec.Struct, tag="refusal", tag_field="type"):
    """An assistant refusal part (sent back in multi-turn conversations)."""

    refusal: str


ContentPart = TextPart | ImagePart | RefusalPart
"""The content parts a translated request may carry."""


class FunctionCall(msgspec.Struct):
    """A function call the assistant made: its name and JSON-encoded arguments."""

    name: str
    arguments: str


class GoogleExtra(msgspec.Struct):
    """`extra_content.google` of a tool call (Google's OpenAI-compatible convention)."""

    thought_signature: str | None = None


class ExtraContent(msgspec.Struct):
    """`extra_content` of a tool call: vendor data a client echoes back unchanged."""

    google: GoogleExtra | None = None

    @property
    def signature(self) -> str | None:
        """Gemini's thought signature, if any (it must come back with the tool call)."""
        return self.google.thought_signature if self.google is not None else None


class ToolCall(msgspec.Struct):
    """One tool call in an assistant message."""

    id: str
    function: FunctionCall
    type: str = "function"
    extra_content: ExtraContent | None = None
    """Gemini's thought signature rides here, as Google's own OpenAI endpoint sends it."""

    @property
    def thought_signature(self) -> str | None:
        """The Gemini thought signature echoed back with this call, if any."""
        google = self.extra_content.google if self.extra_content is not None else None
        return google.thought_signature if google is not None else None


class ChatMessage(msgspec.Struct):
    """One message; which fields matter depends on `role`."""

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class FunctionDefinition(msgspec.Struct):
    """A function tool the model may call."""

    name: str
    description: str | None = None
    parameters: msgspec.Raw = msgspec.Raw()
    """The JSON schema bytes; empty (falsy) when absent. (`Raw | None` cannot decode objects.)"""
    strict: bool | None = None


class Tool(msgspec.Struct):
    """A tool definition (only `function` tools translate)."""

    function: FunctionDefinition
    type: str = "function"


class _NamedFunction(msgspec.Struct):
    name: str


class NamedToolChoice(msgspec.Struct):
    """`tool_choice` naming one function."""

    function: _NamedFunction
    type: str = "function"


class JSONSchemaFormat(msgspec.Struct):
    """`response_format.json_schema`."""

    name: str
    schema: msgspec.Raw = msgspec.Raw()
    """The JSON schema bytes; empty (falsy) when absent."""
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(msgspec.Struct):
    """`response_format`: text, json_object or json_schema."""

    type: str
    json_schema: JSONSchemaFormat | None = None


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


class ChatRequest(msgspec.Struct):
    """A chat-completions request, as far as translating codecs read it."""

    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[Tool] | None = None
    tool_choice: str | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None

    @property
    def output_limit(self) -> int | None:
        """`max_completion_tokens`, else the legacy `max_tokens`."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def stop_sequences(self) -> list[str]:
        """`stop` as a list."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


_decoder = msgspec.json.Decoder(ChatRequest)


def decode_chat_request(body: RawBody) -> ChatRequest:
    """The full request behind a validated call; a 400 naming the field when it is malformed."""
    try:
        return _decoder.decode(encode_body(body))
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).partition(" - at `")
        param = where.rstrip("`").removeprefix("$.").removeprefix("$") or None
        raise InvalidRequest(f"Invalid request: {text}.", param=param) from None
