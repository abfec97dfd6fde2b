"""Pure Server-Sent Events framing: an incremental parser and the frames llmux writes.

The parser splits a byte stream into events at blank lines (LF or CRLF), returning each event's
`event:` name and joined `data:` payload. No I/O, no clock.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DONE_FRAME", "SSEEvent", "SSEParser", "data_frame", "named_frame"]

DONE_FRAME = b"data: [DONE]\n\n"


class SSEEvent(NamedTuple):
    """One parsed event: its `event:` name (or None) and its data payload.

    A NamedTuple because one is built per stream frame and a frozen dataclass costs ~4x more.
    """

    event: str | None
    data: bytes


def data_frame(payload: bytes) -> bytes:
    """A `data:` frame carrying one JSON payload."""
    return b"data: " + payload + b"\n\n"


def named_frame(event: str, payload: bytes) -> bytes:
    """An `event:` + `data:` frame, as the Responses API streams them."""
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


class SSEParser:
    """Feed raw bytes, get complete events; keeps the partial tail between feeds."""

    __slots__ = ("_after_cr", "_buffer")

    def __init__(self) -> None:
        self._buffer = b""
        self._after_cr = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add `chunk` and return every event it completed, in order."""
        if not chunk:
            return []
        if (
            not self._buffer
            and chunk.startswith(b"data: ")
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk.endswith(b"\n\n")
            and b"\r" not in chunk
        ):
            # The common case, one single-line `data:` event per read, without the general
            # split-and-scan below.
            self._after_cr = False
            return [SSEEvent(None, chunk[6:-2])]
        # A CRLF can be split across chunks: the CR already ended the line, so an LF that
        # starts the next chunk is its second half, not another (event-ending) line break.
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._after_cr = chunk[-1:] == b"\r"
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *complete, self._buffer = buffer.split(b"\n\n")
        events: list[SSEEvent] = []
        for block in complete:
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SSEEvent]:
        """Events left when the stream ends without a final blank line."""
        block, self._buffer = self._buffer, b""
        self._after_cr = False
        event = _parse_block(block)
        return [event] if event is not None else []

    @property
    def idle(self) -> bool:
        """Whether no partial event is buffered (the next chunk starts a fresh event)."""
        return not self._buffer and not self._after_cr

    @property
    def pending(self) -> bool:
        """Whether unparsed bytes remain (a truncated event)."""
        return bool(self._buffer.strip())


def _parse_block(block: bytes) -> SSEEvent | None:
    if block.startswith(b"data: ") and b"\n" not in block:
        return SSEEvent(None, block[6:])
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data:
        return None
    return SSEEvent(name, b"\n".join(data))
