"""Anthropic Messages SSE -> OpenAI `chat.completion.chunk` frames: a small state machine.

message_start -> the role chunk; content_block_start/delta -> content, tool_calls (index, id and
name on the first chunk, argument fragments after) and reasoning_content chunks;
message_delta -> the finish_reason chunk; message_stop -> done; `error` -> UpstreamError.
Text fragments are spliced as raw JSON strings, never decoded and re-encoded.
Docs: https://docs.anthropic.com/en/docs/build-with-claude/streaming
"""

from __future__ import annotations

from typing import Final

import msgspec

from llmux.errors import LlmuxError, UpstreamError, UpstreamProtocolError
from llmux.providers.anthropic.errors import error_from_detail
from llmux.providers.anthropic.request import JSON_TOOL, json_mode
from llmux.providers.anthropic.response import finish_reason, to_usage
from llmux.providers.base import Call, HeldError
from llmux.providers.chat_out import ChunkWriter
from llmux.providers.openai import stream_error_payload
from llmux.sse import SSEParser, data_frame
from llmux.types import Usage
from llmux.wire import anthropic as wire

__all__ = ["AnthropicStream"]

_TEXT: Final = 0
_TOOL: Final = 1
_THINKING: Final = 2
_JSON: Final = 3
_EMPTY_STRING: Final = msgspec.Raw(b'""')


class AnthropicStream:
    """Per-request translation of one Anthropic stream; not thread-safe."""

    __slots__ = (
        "_blocks",
        "_done",
        "_json_mode",
        "_parser",
        "_held",
        "_stop_reason",
        "_tools",
        "_usage",
        "_writer",
        "usage",
    )

    def __init__(self, call: Call) -> None:
        self._writer = ChunkWriter(call)
        self._parser = SSEParser()
        self._json_mode = json_mode(call)
        self._blocks: dict[int, tuple[int, int]] = {}
        """Content block index -> (kind, tool call index)."""
        self._tools = 0
        self._usage = wire.Usage()
        self._stop_reason: str | None = None
        self._done = False
        self._held = HeldError()
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        """Translate every complete event in `chunk`."""
        self._held.release()
        frames: list[bytes] = []
        try:
            for event in self._parser.feed(chunk):
                frame = self._event(event.data)
                if frame is not None:
                    frames.append(frame)
        except UpstreamError as error:
            self._held.hold(error, frames)
        return frames

    def finish(self) -> list[bytes]:
        """The usage chunk (if asked) and [DONE]; a protocol error without message_stop."""
        self._held.release()
        frames = [f for event in self._parser.flush() if (f := self._event(event.data))]
        if not self._done:
            raise UpstreamProtocolError("upstream stream ended before message_stop")
        return frames + self._writer.closing(self.usage)

    def error_frame(self, error: LlmuxError) -> bytes:
        """The OpenAI-style `{"error": ...}` frame."""
        return data_frame(stream_error_payload(error))

    def _event(self, data: bytes) -> bytes | None:
        try:
            event = wire.decode_event(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamProtocolError(f"upstream sent an invalid stream event: {exc}") from None
        kind = event.type
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "content_block_start":
            return self._start(event)
        if kind == "message_start":
            return self._message_start(event)
        if kind == "message_delta":
            return self._message_delta(event)
        if kind == "message_stop":
            self._done = True
        elif kind == "error":
            raise error_from_detail(event.error or wire.ErrorDetail(), 502)
        return None  # ping, content_block_stop and future event types

    def _message_start(self, event: wire.StreamEvent) -> bytes:
        if event.message is not None and event.message.usage is not None:
            self._merge_usage(event.message.usage)
        return self._writer.delta({"role": "assistant", "content": ""})

    def _start(self, event: wire.StreamEvent) -> bytes | None:
        block = event.content_block
        if block is None:
            return None
        if block.type == "tool_use":
            if self._json_mode and block.name == JSON_TOOL:
                self._blocks[event.index] = (_JSON, 0)
                return None
            index = self._tools
            self._tools += 1
            self._blocks[event.index] = (_TOOL, index)
            call = {
                "index": index,
                "id": block.id,
                "type": "function",
                "function": {"name": block.name, "arguments": ""},
            }
            return self._writer.delta({"tool_calls": [call]})
        if block.type == "text":
            self._blocks[event.index] = (_TEXT, 0)
            return self._writer.delta({"content": block.text}) if block.text else None
        if block.type == "thinking":
            self._blocks[event.index] = (_THINKING, 0)
            if block.thinking:
                return self._writer.delta({"reasoning_content": block.thinking})
        return None  # redacted_thinking, server tool blocks: nothing to show

    def _delta(self, event: wire.StreamEvent) -> bytes | None:
        delta = event.delta
        kind, tool = self._blocks.get(event.index, (-1, 0))
        if delta is None or kind < 0:
            return None
        if kind == _TEXT and delta.text:
            return self._writer.delta({"content": delta.text})
        if kind == _THINKING and delta.thinking:
            return self._writer.delta({"reasoning_content": delta.thinking})
        fragment = delta.partial_json
        if not fragment or fragment == _EMPTY_STRING:
            return None  # signature_delta, citations_delta, empty fragments
        if kind == _JSON:
            return self._writer.delta({"content": fragment})
        call = {"index": tool, "function": {"arguments": fragment}}
        return self._writer.delta({"tool_calls": [call]})

    def _message_delta(self, event: wire.StreamEvent) -> bytes:
        if event.usage is not None:
            self._merge_usage(event.usage)
        if event.delta is not None and event.delta.stop_reason is not None:
            self._stop_reason = event.delta.stop_reason
        return self._writer.delta({}, finish_reason(self._stop_reason, self._tools > 0))

    def _merge_usage(self, update: wire.Usage) -> None:
        """message_delta usage is cumulative: set fields override message_start's."""
        current = self._usage
        for field in update.__struct_fields__:
            value = getattr(update, field)
            if value is not None:
                setattr(current, field, value)
        self.usage = to_usage(current)
