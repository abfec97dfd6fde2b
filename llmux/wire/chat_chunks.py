"""The `chat.completion.chunk` frames the front doors read back from an inner chat codec.

The Responses and Messages front doors translate a chat stream that a chat codec (OpenAI,
Anthropic, Gemini) already produced; both decode its chunks with these views. Only what they
read is declared; an `error` payload is the frame a codec writes after the stream started.
Docs: https://platform.openai.com/docs/api-reference/chat-streaming
"""

from __future__ import annotations

import msgspec

from llmux.wire.openai_chat import ExtraContent

__all__ = [
    "Chunk",
    "ChunkChoice",
    "ChunkDelta",
    "ChunkError",
    "FunctionDelta",
    "ToolDelta",
    "chunk_decoder",
]


class FunctionDelta(msgspec.Struct):
    """A tool call's name (first fragment) and a fragment of its JSON arguments."""

    name: str | None = None
    arguments: str | None = None


class ToolDelta(msgspec.Struct):
    """A fragment of one tool call; `index` says which call it continues."""

    index: int = 0
    id: str | None = None
    function: FunctionDelta | None = None
    extra_content: ExtraContent | None = None


class ChunkDelta(msgspec.Struct):
    """What one chunk adds to the assistant message."""

    content: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    """Some OpenAI-compatible servers (vLLM, OpenRouter) name the reasoning text this way."""
    tool_calls: list[ToolDelta] | None = None


class ChunkChoice(msgspec.Struct):
    """Choice 0 of a chunk."""

    delta: ChunkDelta | None = None
    finish_reason: str | None = None


class ChunkError(msgspec.Struct):
    """The `error` of a failure frame."""

    message: str = "the upstream stream failed"
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class Chunk(msgspec.Struct):
    """One chunk: choices (none in the usage-only chunk) or an error."""

    choices: list[ChunkChoice] = []
    error: ChunkError | None = None


chunk_decoder = msgspec.json.Decoder(Chunk)
