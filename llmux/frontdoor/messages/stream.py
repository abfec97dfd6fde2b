"""`chat.completion.chunk` frames -> Anthropic Messages stream events: a small state machine.

The inner codec's decoder turns the upstream stream into chat chunks; this wraps it and emits
what Anthropic sends: message_start (then a ping), one content block at a time
(content_block_start, deltas, content_block_stop) for thinking (thinking_delta, then an empty
signature_delta), text (text_delta) and tool_use (input_json_delta), then message_delta
(stop_reason and cumulative usage) and message_stop once the upstream has finished. A tool call
whose arguments never arrive gets `partial_json: "{}"`: an empty input is not valid JSON to the
clients that parse the concatenated fragments. Frames are `event: <type>\\ndata: <json>\\n\\n`.
Docs: https://docs.anthropic.com/en/docs/build-with-claude/streaming
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from llmux.errors import LlmuxError, UpstreamProtocolError
from llmux.frontdoor.messages.errors import error_event
from llmux.frontdoor.messages.response import (
    message_id,
    stop_reason,
    tool_use_id,
    usage_object,
)
from llmux.providers.base import Call, StreamDecoder
from llmux.sse import SSEEvent, SSEParser, named_frame
from llmux.types import Usage
from llmux.wire.chat_chunks import ChunkChoice, FunctionDelta, ToolDelta, chunk_decoder
from llmux.wire.openai import encode

__all__ = ["MessagesStream"]

_TEXT: Final = "text"
_THINKING: Final = "thinking"
_TOOL: Final = "tool_use"
_PING: Final = named_frame("ping", b'{"type":"ping"}')
_MESSAGE_STOP: Final = named_frame("message_stop", b'{"type":"message_stop"}')


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return named_frame(kind, encode({"type": kind, **payload}))


class MessagesStream:
    """Per-request translation of one chat chunk stream into Anthropic events; not thread-safe."""

    __slots__ = (
        "_args_sent",
        "_block",
        "_call",
        "_finish_reason",
        "_inner",
        "_kind",
        "_next_block",
        "_parser",
        "_refused",
        "_started",
        "_tool_blocks",
        "_tool_ids",
        "usage",
    )

    def __init__(self, call: Call, inner: StreamDecoder) -> None:
        self._call = call
        self._inner = inner
        self._parser = SSEParser()
        self._started = False
        self._kind: str | None = None
        """The kind of the open content block; None when no block is open."""
        self._block = -1
        self._next_block = 0
        self._tool_blocks: dict[int, int] = {}
        """Chat tool call index -> Anthropic content block index."""
        self._tool_ids: dict[int, str] = {}
        self._args_sent = False
        self._finish_reason: str | None = None
        self._refused = False
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        """Translate the chat chunks the inner decoder makes of `chunk`."""
        frames = self._translate(self._inner.feed(chunk))
        self.usage = self._inner.usage
        return frames

    def finish(self) -> list[bytes]:
        """The inner decoder's last chunks, then the closing block stop, message_delta, stop."""
        frames = self._translate(self._inner.finish())
        frames.extend(self._translate_events(self._parser.flush()))
        self.usage = self._inner.usage
        if not self._started:
            frames.extend(self._message_start())
        frames.extend(self._close_block())
        frames.append(self._message_delta())
        frames.append(_MESSAGE_STOP)
        return frames

    def error_frame(self, error: LlmuxError) -> bytes:
        """Anthropic's `error` event."""
        return error_event(error)

    def _translate(self, chat_frames: list[bytes]) -> list[bytes]:
        frames: list[bytes] = []
        for chat_frame in chat_frames:
            frames.extend(self._translate_events(self._parser.feed(chat_frame)))
        return frames

    def _translate_events(self, events: list[SSEEvent]) -> list[bytes]:
        frames: list[bytes] = []
        for event in events:
            if event.data.startswith(b"[DONE]"):
                continue
            try:
                chunk = chunk_decoder.decode(event.data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise UpstreamProtocolError(f"invalid chat chunk from the codec: {exc}") from None
            if not self._started:
                frames.extend(self._message_start())
            for choice in chunk.choices[:1]:
                frames.extend(self._choice(choice))
        return frames

    def _message_start(self) -> list[bytes]:
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(self._call),
            "type": "message",
            "role": "assistant",
            "model": self._call.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_object(self._inner.usage),
        }
        return [_event("message_start", {"message": message}), _PING]

    def _choice(self, choice: ChunkChoice) -> list[bytes]:
        if choice.finish_reason:
            self._finish_reason = choice.finish_reason
        delta = choice.delta
        if delta is None:
            return []
        frames: list[bytes] = []
        thinking = delta.reasoning_content or delta.reasoning
        if thinking:
            frames.extend(self._text_like(_THINKING, "thinking_delta", "thinking", thinking))
        if delta.refusal:
            self._refused = True
        text = delta.content or delta.refusal
        if text:
            frames.extend(self._text_like(_TEXT, "text_delta", "text", text))
        for tool in delta.tool_calls or ():
            frames.extend(self._tool(tool))
        return frames

    def _text_like(self, kind: str, delta_type: str, field: str, text: str) -> list[bytes]:
        frames: list[bytes] = []
        if self._kind != kind:
            start: dict[str, Any] = {"type": kind, field: ""}
            if kind == _THINKING:
                start["signature"] = ""
            frames.extend(self._open_block(kind, start))
        frames.append(self._delta({"type": delta_type, field: text}))
        return frames

    def _tool(self, tool: ToolDelta) -> list[bytes]:
        function = tool.function or FunctionDelta()
        frames: list[bytes] = []
        block = self._tool_blocks.get(tool.index)
        # A new id at a known index is a new call: some servers number every call 0.
        if block is None or (tool.id and tool.id != self._tool_ids[tool.index]):
            start = {
                "type": "tool_use",
                "id": tool_use_id(self._call, tool.index, tool.id, tool.extra_content),
                "name": function.name or "",
                "input": {},
            }
            frames.extend(self._open_block(_TOOL, start))
            self._tool_blocks[tool.index] = self._block
            self._tool_ids[tool.index] = tool.id or ""
        elif block != self._block:
            # Anthropic streams one block at a time; arguments of an earlier call cannot be
            # sent once its block is closed. No known provider interleaves them.
            raise UpstreamProtocolError("upstream interleaved the arguments of two tool calls")
        if function.arguments:
            self._args_sent = True
            delta = {"type": "input_json_delta", "partial_json": function.arguments}
            frames.append(self._delta(delta))
        return frames

    def _open_block(self, kind: str, content_block: dict[str, Any]) -> list[bytes]:
        frames = self._close_block()
        self._kind = kind
        self._block = self._next_block
        self._next_block += 1
        self._args_sent = False
        start = {"index": self._block, "content_block": content_block}
        frames.append(_event("content_block_start", start))
        return frames

    def _close_block(self) -> list[bytes]:
        if self._kind is None:
            return []
        frames: list[bytes] = []
        if self._kind == _THINKING:
            frames.append(self._delta({"type": "signature_delta", "signature": ""}))
        elif self._kind == _TOOL and not self._args_sent:
            frames.append(self._delta({"type": "input_json_delta", "partial_json": "{}"}))
        frames.append(_event("content_block_stop", {"index": self._block}))
        self._kind = None
        return frames

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"index": self._block, "delta": delta})

    def _message_delta(self) -> bytes:
        reason = stop_reason(
            self._finish_reason, used_tools=bool(self._tool_blocks), refused=self._refused
        )
        delta = {"stop_reason": reason, "stop_sequence": None}
        return _event("message_delta", {"delta": delta, "usage": usage_object(self.usage)})
