"""The stream relay: an upstream stream opened up to its first client frame, then the rest.

Once `relay()` has written the first frame the client has bytes, so no retry is possible any
more: an upstream failure becomes the decoder's final error frame, never a truncation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from llmux.errors import LlmuxError
from llmux.providers.base import StreamDecoder
from llmux.upstream.base import UpstreamResponse

__all__ = ["OpenStream", "Write", "first_frames"]


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

    __slots__ = ("_first", "_response", "decoder", "error", "on_close")

    def __init__(
        self, response: UpstreamResponse, decoder: StreamDecoder, first: list[bytes]
    ) -> None:
        self._response = response
        self._first = first
        self.decoder = decoder
        self.error: LlmuxError | None = None
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
                    await write(frames[0] if len(frames) == 1 else b"".join(frames))
            closing = decoder.finish()
        except LlmuxError as error:
            self.error = error
            await write(decoder.error_frame(error))
            return
        if closing:
            await write(b"".join(closing))

    def close(self) -> None:
        """Release the upstream connection; safe on every exit path, including disconnects."""
        self._response.release()
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close(self.error)
