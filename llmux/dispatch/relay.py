"""The stream relay: an upstream stream opened up to its first client frame, then the rest.

Once `relay()` has written the first frame the client has bytes, so no retry is possible any
more: an upstream failure becomes the decoder's final error frame, never a truncation.

When the client goes away mid-stream, `drain()` keeps reading the upstream (writing nothing) so
the decoder sees the usage the upstream reports at the end and the call is billed exactly what
the upstream generated. Draining is bounded in time and bytes; past either bound the upstream
is released and the usage is estimated (`estimated_usage`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from llmux.errors import LlmuxError
from llmux.providers.base import StreamDecoder
from llmux.types import Usage
from llmux.upstream.base import UpstreamResponse

__all__ = ["DRAIN_BYTES", "DRAIN_SECONDS", "OpenStream", "Write", "first_frames"]

DRAIN_SECONDS = 60.0
"""The longest an abandoned stream is read on for its usage."""
DRAIN_BYTES = 8 * 1024 * 1024
"""The most bytes an abandoned stream is read on for its usage."""


async def first_frames(response: UpstreamResponse, decoder: StreamDecoder) -> list[bytes]:
    """Read until the decoder has something for the client (or the stream ended)."""
    while chunk := await response.read_chunk():
        frames = decoder.feed(chunk)
        if frames:
            return frames
    return decoder.finish()


Write = Callable[[bytes], Awaitable[object]]
"""Sends bytes to the client (the HTTP layer's `StreamResponse.write`)."""


class OpenStream:
    """A stream whose first frames are ready; `relay()` sends them and the rest."""

    __slots__ = ("_first", "_response", "decoder", "error", "frames", "on_close")

    def __init__(
        self, response: UpstreamResponse, decoder: StreamDecoder, first: list[bytes]
    ) -> None:
        self._response = response
        self._first = first
        self.decoder = decoder
        self.error: LlmuxError | None = None
        self.frames = len(first)
        """Client frames produced so far (an output-token estimate when usage never came)."""
        self.on_close: Callable[[LlmuxError | None], None] | None = None
        """Called once by `close()` (the router stats' end of the attempt)."""

    async def relay(self, write: Write) -> None:
        """Send every frame, one write per upstream read; end with [DONE] or an error frame.

        Client write failures (a disconnect) propagate to the caller, which must `close()`.
        """
        decoder, read_chunk = self.decoder, self._response.read_chunk
        await write(b"".join(self._first))
        try:
            while chunk := await read_chunk():
                frames = decoder.feed(chunk)
                if frames:
                    self.frames += len(frames)
                    await write(frames[0] if len(frames) == 1 else b"".join(frames))
            closing = decoder.finish()
        except LlmuxError as error:
            self.error = error
            await write(decoder.error_frame(error))
            return
        if closing:
            await write(b"".join(closing))

    async def drain(self, *, seconds: float = DRAIN_SECONDS, max_bytes: int = DRAIN_BYTES) -> bool:
        """Read the rest of an abandoned stream for its usage; False when a bound cut it short."""
        decoder, read_chunk = self.decoder, self._response.read_chunk
        read = 0
        deadline = time.monotonic() + seconds
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + seconds):
                while chunk := await read_chunk():
                    read += len(chunk)
                    self.frames += len(decoder.feed(chunk))
                    if read > max_bytes or time.monotonic() > deadline:
                        return False
                decoder.finish()
        except TimeoutError:
            return False
        except LlmuxError as error:
            self.error = error
        return True

    def estimated_usage(self, input_tokens: int) -> Usage:
        """Usage when the upstream never reported it: one output token per frame produced."""
        return Usage(input_tokens=input_tokens, output_tokens=self.frames)

    def close(self) -> None:
        """Release the upstream connection; safe on every exit path, including disconnects."""
        self._response.release()
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close(self.error)
