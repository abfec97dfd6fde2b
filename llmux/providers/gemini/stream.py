"""Gemini `streamGenerateContent?alt=sse` -> OpenAI `chat.completion.chunk` frames.

Each SSE `data:` payload is a whole `GenerateContentResponse` carrying the next parts. The
decoder sends the role first, then text deltas as `content`, thought parts as
`reasoning_content`, each `functionCall` as one complete tool-call chunk (index, id, name and
the whole arguments), then one chunk with the finish reason. Usage is the last
`usageMetadata` seen. A stream that ends without a `finishReason` (or a blocked prompt) is a
protocol error; an `error` object inside the stream becomes an `UpstreamError`.
"""

from __future__ import annotations

from typing import Any

from llmux.errors import LlmuxError, UpstreamProtocolError
from llmux.providers.base import Call
from llmux.providers.chat_out import ChunkWriter
from llmux.providers.gemini.errors import mid_stream_error
from llmux.providers.gemini.response import (
    decode_generate_response,
    finish_reason,
    tool_call,
    usage_from,
)
from llmux.providers.openai import stream_error_payload
from llmux.sse import SSEParser, data_frame
from llmux.types import Usage
from llmux.wire import gemini as g

__all__ = ["GeminiStream"]


class GeminiStream:
    """Per-request translation of one Gemini SSE stream."""

    __slots__ = ("_call", "_finished", "_parser", "_started", "_tool_calls", "_writer", "usage")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._writer = ChunkWriter(call)
        self._parser = SSEParser()
        self._started = False
        self._finished = False
        self._tool_calls = 0
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        """Frames for every complete upstream event in `chunk`."""
        frames: list[bytes] = []
        for event in self._parser.feed(chunk):
            self._translate(event.data, frames)
        return frames

    def finish(self) -> list[bytes]:
        """The closing frames; a protocol error when the answer never finished."""
        frames: list[bytes] = []
        for event in self._parser.flush():
            self._translate(event.data, frames)
        if not self._finished:
            raise UpstreamProtocolError("upstream stream ended before a finishReason")
        return frames + self._writer.closing(self.usage)

    def error_frame(self, error: LlmuxError) -> bytes:
        """The final `data:` frame reporting `error`."""
        return data_frame(stream_error_payload(error))

    def _translate(self, payload: bytes, frames: list[bytes]) -> None:
        if not payload.strip():
            return
        response = decode_generate_response(payload)
        if response.error is not None:
            raise mid_stream_error(response.error)
        if response.usage_metadata is not None:
            self.usage = usage_from(response.usage_metadata)
        if self._finished:
            return
        if not self._started:
            self._started = True
            frames.append(self._writer.delta({"role": "assistant", "content": ""}))
        if not response.candidates:
            feedback = response.prompt_feedback
            if feedback is not None and feedback.block_reason:
                self._finished = True
                frames.append(self._writer.delta({}, "content_filter"))
            return
        candidate = response.candidates[0]
        if candidate.content is not None:
            frames.extend(self._writer.delta(d) for d in self._deltas(candidate.content.parts))
        if candidate.finish_reason:
            self._finished = True
            reason = finish_reason(candidate.finish_reason, self._tool_calls > 0)
            frames.append(self._writer.delta({}, reason))

    def _deltas(self, parts: list[g.Part]) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = []
        for part in parts:
            if part.function_call is not None:
                function, signature = part.function_call, part.thought_signature
                entry = tool_call(self._call, self._tool_calls, function, signature)
                deltas.append({"tool_calls": [{"index": self._tool_calls, **entry}]})
                self._tool_calls += 1
            elif part.text:
                key = "reasoning_content" if part.thought else "content"
                deltas.append({key: part.text})
        return deltas
