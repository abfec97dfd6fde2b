"""The transport seam: `Transport.send(PreparedRequest) -> UpstreamResponse`, and its timeouts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from llmux.types import PreparedRequest

__all__ = ["Timeouts", "Transport", "UpstreamResponse"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed to connect, to get response headers, between stream reads, and in total.

    `total` bounds a whole non-streaming exchange; streams have no total, only `idle`.
    """

    connect: float
    first_byte: float
    idle: float
    total: float


class UpstreamResponse(Protocol):
    """An upstream answer whose headers have arrived; the body is read once, whole or chunked."""

    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes:
        """The whole body (non-streaming), within the call's total deadline."""
        ...

    async def read_chunk(self) -> bytes:
        """The next body bytes as they arrive, b"" at the end; `UpstreamTimeout` after `idle`."""
        ...

    def release(self) -> None:
        """Give the connection back (or drop it when the body was not read to the end)."""
        ...


class Transport(Protocol):
    """Sends one prepared request; maps every transport failure to `llmux.errors` once."""

    async def send(self, request: PreparedRequest, timeouts: Timeouts) -> UpstreamResponse:
        """Send `request` and return once response headers are in."""
        ...
