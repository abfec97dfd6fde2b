"""Responses API request types: the request itself, its input items and its function tools.

Only what the translation over chat reads is declared; opaque subtrees (JSON schemas) stay
`msgspec.Raw`. Input items are decoded one by one, by their `type`, so a malformed item gets a
400 naming its position. Imports msgspec and llmux.errors only.
Docs: https://platform.openai.com/docs/api-reference/responses/create
"""

from __future__ import annotations

from typing import Literal, TypeVar

import msgspec

from llmux.errors import InvalidRequest

__all__ = [
    "ContentPart",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "FunctionTool",
    "InputFile",
    "InputImage",
    "InputText",
    "Item",
    "MessageItem",
    "OutputText",
    "ReasoningConfig",
    "ReasoningItem",
    "Refusal",
    "ResponsesRequest",
    "TextConfig",
    "TextFormat",
    "ToolChoiceObject",
    "Typed",
    "decode",
]


class InputText(msgspec.Struct, tag="input_text", tag_field="type"):
    """A text part of an input message or a function call's output."""

    text: str


class InputImage(msgspec.Struct, tag="input_image", tag_field="type"):
    """An image part: a URL (http(s) or `data:`) or an uploaded file's id."""

    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class InputFile(msgspec.Struct, tag="input_file", tag_field="type"):
    """A file part; declared so it can be refused by name (chat has no file parts)."""

    file_id: str | None = None
    filename: str | None = None


class OutputText(msgspec.Struct, tag="output_text", tag_field="type"):
    """Text the assistant produced earlier in the conversation."""

    text: str


class Refusal(msgspec.Struct, tag="refusal", tag_field="type"):
    """A refusal the assistant produced earlier in the conversation."""

    refusal: str


ContentPart = InputText | InputImage | InputFile | OutputText | Refusal
"""The content parts a message item (or a function call output) may carry."""


class MessageItem(msgspec.Struct):
    """A message; `type` is optional on the wire (the SDK's "easy" input message omits it)."""

    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]


class FunctionCallItem(msgspec.Struct):
    """A function call the model made in an earlier turn."""

    call_id: str
    name: str
    arguments: str
    id: str | None = None
    """Ours may carry a Gemini thought signature (see `ids`)."""


class FunctionCallOutputItem(msgspec.Struct):
    """The client's result for a function call."""

    call_id: str
    output: str | list[ContentPart]


class SummaryText(msgspec.Struct):
    """A `summary_text` (or `reasoning_text`) part of a reasoning item."""

    text: str


class ReasoningItem(msgspec.Struct):
    """Reasoning from an earlier turn: its summary and, when given, its full text."""

    summary: list[SummaryText] = []
    content: list[SummaryText] | None = None

    @property
    def text(self) -> str:
        """The reasoning text: the full content when present, else the summary."""
        parts = self.content if self.content else self.summary
        return "\n\n".join(part.text for part in parts)


Item = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem
"""The input items translated over chat."""


class Typed(msgspec.Struct):
    """The `type` of an input item or a tool; a missing item type means a message."""

    type: str = "message"


class FunctionTool(msgspec.Struct):
    """A function tool; Responses tools are flat (no nested `function` object)."""

    name: str
    description: str | None = None
    parameters: msgspec.Raw = msgspec.Raw()
    """The JSON schema bytes; empty (falsy) when absent."""
    strict: bool | None = None


class ToolChoiceObject(msgspec.Struct):
    """`tool_choice` as an object: `{"type": "function", "name": ...}` or a hosted tool."""

    type: str
    name: str | None = None


class TextFormat(msgspec.Struct):
    """`text.format`: text, json_object or json_schema (flat: name and schema inline)."""

    type: str
    name: str | None = None
    schema: msgspec.Raw = msgspec.Raw()
    strict: bool | None = None
    description: str | None = None


class TextConfig(msgspec.Struct):
    """`text`: the output format (and a verbosity chat has no equivalent for)."""

    format: TextFormat | None = None


class ReasoningConfig(msgspec.Struct):
    """`reasoning`: only `effort` translates; `summary` is echoed."""

    effort: str | None = None


class ResponsesRequest(msgspec.Struct):
    """A Responses request, as far as the translation over chat reads it."""

    model: str
    input: str | list[msgspec.Raw] | None = None
    instructions: str | None = None
    tools: list[msgspec.Raw] | None = None
    tool_choice: str | ToolChoiceObject | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    stream: bool | None = None
    background: bool | None = None
    top_logprobs: int | None = None


_T = TypeVar("_T")


def decode(decoder: msgspec.json.Decoder[_T], raw: bytes, where: str) -> _T:
    """Decode `raw`; a 400 whose `param` is `where` plus the path inside it on failure."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text, _, path = str(exc).partition(" - at `")
        text = text.replace("Object missing required field", "missing required field")
        param = (where + path.rstrip("`").removeprefix("$")).lstrip(".")
        raise InvalidRequest(f"Invalid '{param or 'body'}': {text}.", param=param or None) from None
