"""chat.completion.chunk frames -> Responses stream events: a small state machine over items.

The inner chat codec's frames are parsed again (they are our own, well-formed output) and each
delta extends the open output item, opening a new one when the kind changes:
`reasoning_content` -> a `reasoning` item (reasoning_summary_part / _text events), `content`
and `refusal` -> parts of one `message` item (output_text / refusal events), each tool call
index -> a `function_call` item (function_call_arguments events). Items are opened and closed
in order, so every `output_item.done` precedes the next `output_item.added`.
`response.created` and `response.in_progress` go out with the first translated event, so an
upstream that fails before any output can still be retried. The stream ends with
`response.completed` or `response.incomplete`; a failure after the start with `error` and
`response.failed`. Every event carries its `sequence_number`.
Docs: https://platform.openai.com/docs/api-reference/responses-streaming
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from llmux.errors import LlmuxError, UpstreamError, UpstreamProtocolError
from llmux.frontdoor.responses.ids import function_call_id, item_id
from llmux.frontdoor.responses.response import (
    Echo,
    function_call_item,
    message_item,
    reasoning_item,
    refusal_part,
    response_object,
    status_of,
    text_part,
)
from llmux.providers.base import Call, HeldError, StreamDecoder
from llmux.sse import SSEParser, named_frame
from llmux.types import Usage
from llmux.wire.chat_chunks import ChunkDelta, ChunkError, ToolDelta, chunk_decoder
from llmux.wire.openai import encode

__all__ = ["ResponsesStream"]

_DONE: Final = b"[DONE]"
_TEXT: Final = "output_text"
_REFUSAL: Final = "refusal"


_Added = Callable[[str], dict[str, Any]]
"""Builds an output item, as `response.output_item.added` shows it, from its id."""


class _Item:
    """One output item while it streams: its kind, ids and the text gathered so far."""

    __slots__ = ("call_id", "id", "index", "kind", "name", "parts", "tool_index")

    def __init__(self, kind: str, item: str, index: int) -> None:
        self.kind = kind
        self.id = item
        self.index = index
        self.parts: list[list[str]] = []
        """Message: [part type, text] per content part; reasoning and calls: one [_, text]."""
        self.call_id = ""
        self.name = ""
        self.tool_index = -1

    @property
    def text(self) -> str:
        """The text of the last part (reasoning summary, arguments or message part)."""
        return self.parts[-1][1] if self.parts else ""

    def add(self, fragment: str) -> None:
        """Append `fragment` to the last part."""
        self.parts[-1][1] += fragment


class ResponsesStream:
    """Per-request translation of a chat chunk stream into Responses events; not thread-safe."""

    __slots__ = (
        "_call",
        "_closed_tools",
        "_echo",
        "_finish_reason",
        "_inner",
        "_item",
        "_output",
        "_parser",
        "_held",
        "_sequence",
        "_started",
        "final_response",
        "usage",
    )

    def __init__(self, call: Call, echo: Echo, inner: StreamDecoder) -> None:
        self._call = call
        self._echo = echo
        self._inner = inner
        self._parser = SSEParser()
        self._sequence = 0
        self._started = False
        self._item: _Item | None = None
        self._output: list[dict[str, Any]] = []
        self._closed_tools: set[int] = set()
        self._finish_reason: str | None = None
        self._held = HeldError()
        self.usage: Usage | None = None
        self.final_response: bytes | None = None
        """The full Response (as in `response.completed`) once the stream ended normally."""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Feed upstream bytes to the chat codec and translate the chunks it produced."""
        self._held.release()
        frames = self._inner.feed(chunk)
        self.usage = self._inner.usage
        return self._translate(frames)

    def finish(self) -> list[bytes]:
        """Close the open item and end with `response.completed` or `response.incomplete`."""
        self._held.release()
        frames = self._inner.finish()
        self.usage = self._inner.usage
        out = self._translate(frames, final=True)
        self._held.release()
        self._close(out)
        return out

    def error_frame(self, error: LlmuxError) -> bytes:
        """The `error` event, then `response.failed` with the items finished so far."""
        out: list[bytes] = []
        fields = {"code": error.code, "message": error.message, "param": error.param}
        self._emit(out, "error", fields)
        failure = {"code": _failure_code(error), "message": error.message}
        response = self._response("failed", error=failure)
        self._emit(out, "response.failed", {"response": response})
        return b"".join(out)

    def _translate(self, frames: list[bytes], *, final: bool = False) -> list[bytes]:
        out: list[bytes] = []
        events = self._parser.feed(b"".join(frames)) if frames else []
        if final:
            events.extend(self._parser.flush())
        try:
            for event in events:
                self._chunk(event.data, out)
        except LlmuxError as error:
            # Events translated before it (response.created among them) go out first, or the
            # sequence numbers the client sees would skip.
            self._held.hold(error, out)
        return out

    def _chunk(self, data: bytes, out: list[bytes]) -> None:
        if data.strip() == _DONE:
            return
        try:
            chunk = chunk_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamProtocolError(f"unreadable chat chunk in the stream: {exc}") from None
        if chunk.error is not None:
            raise _upstream_error(chunk.error)
        for choice in chunk.choices[:1]:
            if choice.delta is not None:
                self._delta(choice.delta, out)
            if choice.finish_reason is not None:
                self._finish_reason = choice.finish_reason

    def _delta(self, delta: ChunkDelta, out: list[bytes]) -> None:
        reasoning = delta.reasoning_content or delta.reasoning
        if reasoning:
            self._reasoning(reasoning, out)
        if delta.content:
            self._content(_TEXT, delta.content, out)
        if delta.refusal:
            self._content(_REFUSAL, delta.refusal, out)
        for tool in delta.tool_calls or ():
            self._tool(tool, out)

    def _reasoning(self, fragment: str, out: list[bytes]) -> None:
        item = self._item
        if item is None or item.kind != "reasoning":
            item = self._open("reasoning", out, _empty_reasoning)
            item.parts.append(["summary_text", ""])
            part = {"type": "summary_text", "text": ""}
            self._emit(out, "response.reasoning_summary_part.added", self._summary(item, part=part))
        item.add(fragment)
        self._emit(
            out, "response.reasoning_summary_text.delta", self._summary(item, delta=fragment)
        )

    def _content(self, kind: str, fragment: str, out: list[bytes]) -> None:
        item = self._message_part(kind, out)
        item.add(fragment)
        if kind == _TEXT:
            self._emit(
                out, "response.output_text.delta", self._in_part(item, delta=fragment, logprobs=[])
            )
        else:
            self._emit(out, "response.refusal.delta", self._in_part(item, delta=fragment))

    def _message_part(self, kind: str, out: list[bytes]) -> _Item:
        """The open message item with an open part of `kind`, opening either as needed."""
        item = self._item
        if item is None or item.kind != "message":
            item = self._open("message", out, _empty_message)
        if not item.parts or item.parts[-1][0] != kind:
            self._close_part(item, out)
            item.parts.append([kind, ""])
            part = text_part("") if kind == _TEXT else refusal_part("")
            self._emit(out, "response.content_part.added", self._in_part(item, part=part))
        return item

    def _tool(self, tool: ToolDelta, out: list[bytes]) -> None:
        item = self._item
        if item is None or item.kind != "function_call" or item.tool_index != tool.index:
            item = self._open_call(tool, out)
        arguments = tool.function.arguments if tool.function is not None else None
        if arguments:
            item.add(arguments)
            self._emit(
                out, "response.function_call_arguments.delta", self._in_item(item, delta=arguments)
            )

    def _open_call(self, tool: ToolDelta, out: list[bytes]) -> _Item:
        if tool.index in self._closed_tools:
            raise UpstreamProtocolError("a tool call's arguments resumed after the next call began")
        name = tool.function.name if tool.function is not None else None
        if not name:
            raise UpstreamProtocolError("a streamed tool call began without a function name")
        call_id = tool.id or f"call_{self._call.request_id}_{tool.index}"

        def added(item: str) -> dict[str, Any]:
            return function_call_item(item, call_id, name, "", "in_progress")

        google = tool.extra_content.google if tool.extra_content is not None else None
        signature = google.thought_signature if google is not None else None
        call_item = function_call_id(self._call, len(self._output), signature)
        item = self._open("function_call", out, added, call_item)
        item.call_id, item.name, item.tool_index = call_id, name, tool.index
        item.parts.append(["arguments", ""])
        return item

    def _open(
        self, kind: str, out: list[bytes], added: _Added, fixed_id: str | None = None
    ) -> _Item:
        self._close_item(out, "completed")
        index = len(self._output)
        item = _Item(kind, fixed_id or item_id(self._call, kind, index), index)
        self._item = item
        self._emit(
            out, "response.output_item.added", {"output_index": item.index, "item": added(item.id)}
        )
        return item

    def _close_part(self, item: _Item, out: list[bytes]) -> None:
        if not item.parts:
            return
        kind, text = item.parts[-1]
        if kind == _TEXT:
            self._emit(
                out, "response.output_text.done", self._in_part(item, text=text, logprobs=[])
            )
            part = text_part(text)
        else:
            self._emit(out, "response.refusal.done", self._in_part(item, refusal=text))
            part = refusal_part(text)
        self._emit(out, "response.content_part.done", self._in_part(item, part=part))

    def _close_item(self, out: list[bytes], status: str) -> None:
        item, self._item = self._item, None
        if item is None:
            return
        if item.kind == "message":
            self._close_part(item, out)
            parts = [text_part(t) if k == _TEXT else refusal_part(t) for k, t in item.parts]
            final = message_item(item.id, parts, status)
        elif item.kind == "reasoning":
            final = self._close_reasoning(item, out)
        else:
            fields = self._in_item(item, name=item.name, arguments=item.text)
            self._emit(out, "response.function_call_arguments.done", fields)
            self._closed_tools.add(item.tool_index)
            final = function_call_item(item.id, item.call_id, item.name, item.text, status)
        self._output.append(final)
        self._emit(out, "response.output_item.done", {"output_index": item.index, "item": final})

    def _close_reasoning(self, item: _Item, out: list[bytes]) -> dict[str, Any]:
        text = item.text
        self._emit(out, "response.reasoning_summary_text.done", self._summary(item, text=text))
        part = {"type": "summary_text", "text": text}
        self._emit(out, "response.reasoning_summary_part.done", self._summary(item, part=part))
        return reasoning_item(item.id, text)

    def _close(self, out: list[bytes]) -> None:
        status, incomplete = status_of(self._finish_reason)
        if self._item is None and not self._output:
            # An empty answer still gets its (empty) message, as in the non-streamed Response.
            self._message_part(_TEXT, out)
        self._close_item(out, "incomplete" if incomplete else "completed")
        response = self._response(status, incomplete=incomplete)
        self.final_response = encode(response)
        self._emit(out, f"response.{status}", {"response": response})

    def _response(self, status: str, **details: Any) -> dict[str, Any]:
        return response_object(
            self._call, self._echo, status=status, output=self._output, usage=self.usage, **details
        )

    def _emit(self, out: list[bytes], kind: str, fields: dict[str, Any]) -> None:
        if not self._started:
            self._started = True
            head = response_object(self._call, self._echo, status="in_progress", output=[])
            self._emit(out, "response.created", {"response": head})
            self._emit(out, "response.in_progress", {"response": head})
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        out.append(named_frame(kind, encode(event)))

    @staticmethod
    def _in_item(item: _Item, **fields: Any) -> dict[str, Any]:
        return {"item_id": item.id, "output_index": item.index, **fields}

    @staticmethod
    def _in_part(item: _Item, **fields: Any) -> dict[str, Any]:
        content_index = len(item.parts) - 1
        return {
            "item_id": item.id,
            "output_index": item.index,
            "content_index": content_index,
            **fields,
        }

    @staticmethod
    def _summary(item: _Item, **fields: Any) -> dict[str, Any]:
        return {"item_id": item.id, "output_index": item.index, "summary_index": 0, **fields}


def _empty_message(item: str) -> dict[str, Any]:
    return message_item(item, [], "in_progress")


def _empty_reasoning(item: str) -> dict[str, Any]:
    return reasoning_item(item, None)


def _upstream_error(detail: ChunkError) -> UpstreamError:
    code = str(detail.code) if detail.code is not None else None
    return UpstreamError(detail.message, error_type=detail.type, param=detail.param, code=code)


def _failure_code(error: LlmuxError) -> str:
    """The Response `error.code` (a closed enum in the spec) closest to `error`."""
    status = error.http_status
    if status == 429:
        return "rate_limit_exceeded"
    if 400 <= status < 500:
        return "invalid_prompt"
    return "server_error"
