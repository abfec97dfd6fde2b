"""Anthropic Messages API wire types: the request llmux builds and the answers it reads.

Request blocks are tagged Structs encoded once; response and stream types declare only the
fields the codec reads, with text fragments kept as `msgspec.Raw` so they are spliced into
OpenAI chunks without a decode/encode round trip. Imports msgspec only.
Docs: https://docs.anthropic.com/en/api/messages and
https://docs.anthropic.com/en/docs/build-with-claude/streaming
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "Base64Source",
    "ContentBlock",
    "ErrorEnvelope",
    "ImageBlock",
    "InboundBlock",
    "InboundMessage",
    "InboundRequest",
    "InboundSource",
    "InboundThinking",
    "InboundTool",
    "InboundToolChoice",
    "Message",
    "MessageParam",
    "MessagesRequest",
    "StreamEvent",
    "TextBlock",
    "ToolDef",
    "ToolResultBlock",
    "ToolUseBlock",
    "URLSource",
    "Usage",
    "decode_error",
    "decode_event",
    "decode_inbound_request",
    "decode_message",
    "encode_request",
]


class Base64Source(msgspec.Struct, tag="base64", tag_field="type"):
    """Inline image bytes (from an OpenAI `data:` URL)."""

    media_type: str
    data: str


class URLSource(msgspec.Struct, tag="url", tag_field="type"):
    """An image the API fetches itself."""

    url: str


class TextBlock(msgspec.Struct, tag="text", tag_field="type"):
    """A text content block."""

    text: str


class ImageBlock(msgspec.Struct, tag="image", tag_field="type"):
    """An image content block."""

    source: Base64Source | URLSource


class ToolUseBlock(msgspec.Struct, tag="tool_use", tag_field="type"):
    """A tool call the assistant made; `input` is the arguments object, spliced as sent."""

    id: str
    name: str
    input: msgspec.Raw


class ToolResultBlock(msgspec.Struct, tag="tool_result", tag_field="type"):
    """The result of a tool call, sent back in a user turn."""

    tool_use_id: str
    content: str | list[TextBlock]


RequestBlock = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock
"""Content blocks llmux sends."""


class MessageParam(msgspec.Struct):
    """One conversation turn (`user` or `assistant`)."""

    role: str
    content: list[RequestBlock]


class ToolDef(msgspec.Struct, omit_defaults=True):
    """A client tool; `input_schema` is the OpenAI `parameters` bytes."""

    name: str
    input_schema: msgspec.Raw
    description: str | UnsetType = UNSET


class ToolChoice(msgspec.Struct, omit_defaults=True):
    """`tool_choice`: auto, any, none or tool (with `name`)."""

    type: str
    name: str | UnsetType = UNSET
    disable_parallel_tool_use: bool | UnsetType = UNSET


class Thinking(msgspec.Struct):
    """Extended thinking with a token budget."""

    budget_tokens: int
    type: str = "enabled"


class Metadata(msgspec.Struct):
    """Request metadata: an opaque end-user id."""

    user_id: str


class MessagesRequest(msgspec.Struct, omit_defaults=True):
    """`POST /v1/messages` body. Docs: https://docs.anthropic.com/en/api/messages"""

    model: str
    messages: list[MessageParam]
    max_tokens: int
    system: str | UnsetType = UNSET
    tools: list[ToolDef] | UnsetType = UNSET
    tool_choice: ToolChoice | UnsetType = UNSET
    stop_sequences: list[str] | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET
    thinking: Thinking | UnsetType = UNSET
    stream: bool | UnsetType = UNSET


class _OutputDetails(msgspec.Struct):
    thinking_tokens: int | None = None


class Usage(msgspec.Struct):
    """`usage` of a message, message_start or (cumulative) message_delta."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: _OutputDetails | None = None


class ContentBlock(msgspec.Struct):
    """A response content block of any type; unknown types (server tools) are skipped."""

    type: str
    text: str | None = None
    thinking: str | None = None
    id: str | None = None
    name: str | None = None
    input: msgspec.Raw = msgspec.Raw()
    """Empty bytes when absent (msgspec cannot decode `Raw | None`)."""


class Message(msgspec.Struct):
    """A complete (non-streaming) message, or the shell in `message_start`."""

    content: list[ContentBlock] = []
    stop_reason: str | None = None
    usage: Usage | None = None


class _Delta(msgspec.Struct):
    """A content_block_delta or message_delta payload; fragments stay raw JSON strings.

    An absent fragment is empty bytes (falsy): msgspec cannot decode `Raw | None`.
    """

    type: str | None = None
    text: msgspec.Raw = msgspec.Raw()
    partial_json: msgspec.Raw = msgspec.Raw()
    thinking: msgspec.Raw = msgspec.Raw()
    stop_reason: str | None = None


class ErrorDetail(msgspec.Struct):
    """`error` of an error body or stream event."""

    type: str | None = None
    message: str | None = None


class StreamEvent(msgspec.Struct):
    """Any stream event, flattened: which fields are set depends on `type`."""

    type: str
    index: int = 0
    message: Message | None = None
    content_block: ContentBlock | None = None
    delta: _Delta | None = None
    usage: Usage | None = None
    error: ErrorDetail | None = None


class ErrorEnvelope(msgspec.Struct):
    """`{"type": "error", "error": {"type", "message"}}`."""

    error: ErrorDetail | None = None


_request_encoder = msgspec.json.Encoder()
_message_decoder = msgspec.json.Decoder(Message)
_event_decoder = msgspec.json.Decoder(StreamEvent)
_error_decoder = msgspec.json.Decoder(ErrorEnvelope)

encode_request = _request_encoder.encode
"""Encode a `MessagesRequest` to JSON bytes."""

decode_message = _message_decoder.decode
"""Decode a non-streaming response body; raises msgspec errors when malformed."""

decode_event = _event_decoder.decode
"""Decode one stream event's data; raises msgspec errors when malformed."""

decode_error = _error_decoder.decode
"""Decode an error body; raises msgspec errors when malformed."""


# Inbound: a client's Messages request, as the /v1/messages front door reads it when the
# provider behind it is not Anthropic. Blocks are flattened (one Struct for every block type)
# so an unsupported type is reported by name instead of as a failed tagged-union match.


class InboundSource(msgspec.Struct):
    """An image `source`: `base64` (media_type + data), `url` or an unsupported kind (`file`)."""

    type: str
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class InboundBlock(msgspec.Struct):
    """Any content block a client sends; which fields are set depends on `type`."""

    type: str
    text: str | None = None
    source: InboundSource | None = None
    id: str | None = None
    name: str | None = None
    input: msgspec.Raw = msgspec.Raw()
    """A tool_use block's arguments object; empty bytes when absent."""
    tool_use_id: str | None = None
    content: str | list[InboundBlock] | None = None
    """A tool_result block's content: a string or text/image blocks."""
    is_error: bool | None = None


class InboundMessage(msgspec.Struct):
    """One client turn: `user` or `assistant`, string or block content."""

    role: str
    content: str | list[InboundBlock]


class InboundTool(msgspec.Struct):
    """A client tool; `type` is absent or `custom` for client tools, else a server tool."""

    name: str
    type: str | None = None
    description: str | None = None
    input_schema: msgspec.Raw = msgspec.Raw()
    """The JSON schema bytes; empty when absent."""


class InboundToolChoice(msgspec.Struct):
    """`tool_choice`: auto, any, tool (with `name`) or none."""

    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class InboundThinking(msgspec.Struct):
    """`thinking`: `{"type": "enabled", "budget_tokens": n}` or `{"type": "disabled"}`."""

    type: str
    budget_tokens: int | None = None


class InboundMetadata(msgspec.Struct):
    """`metadata`: an opaque end-user id."""

    user_id: str | None = None


class InboundRequest(msgspec.Struct):
    """`POST /v1/messages` as a client sends it, as far as translation reads it.

    Docs: https://docs.anthropic.com/en/api/messages
    """

    model: str
    messages: list[InboundMessage]
    max_tokens: int | None = None
    system: str | list[InboundBlock] | None = None
    tools: list[InboundTool] | None = None
    tool_choice: InboundToolChoice | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    metadata: InboundMetadata | None = None
    thinking: InboundThinking | None = None
    stream: bool | None = None


_inbound_decoder = msgspec.json.Decoder(InboundRequest)

decode_inbound_request = _inbound_decoder.decode
"""Decode a client's Messages request; raises msgspec errors when malformed."""
