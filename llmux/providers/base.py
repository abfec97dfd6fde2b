"""The Provider and StreamDecoder protocols every codec implements, and the per-call inputs.

Codecs are pure: bytes and Structs in, a `PreparedRequest` or client-ready bytes out. They do no
network I/O, read no clock and never import aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from llmux.errors import LlmuxError, UpstreamError
from llmux.types import Endpoint, PreparedRequest, RawBody, Usage

__all__ = ["Call", "HeldError", "Provider", "StreamDecoder", "Target"]


@dataclass(frozen=True, slots=True)
class Call:
    """One client request, decoded one level deep, as every attempt of it sees it."""

    endpoint: Endpoint
    model: str
    body: RawBody
    stream: bool
    include_usage: bool
    request_id: str
    created: int = 0
    """Unix seconds when the gateway received the call; codecs stamp synthesized responses."""
    client_headers: Mapping[str, str] = field(default_factory=dict)
    """Client headers a passthrough codec forwards (e.g. `anthropic-beta`); lower-case names."""
    continues: str | None = None
    """The stored response whose conversation the gateway put into `body` (the Responses
    `previous_response_id`, kept out of the body so no upstream is sent an id it never saw);
    a translated Response echoes it."""

    @property
    def model_raw(self) -> msgspec.Raw:
        """The client's model name as JSON, ready to splice into responses."""
        return msgspec.Raw(msgspec.json.encode(self.model))


@dataclass(frozen=True, slots=True)
class Target:
    """Where and as what one deployment is called: static, built once from config."""

    provider: str
    base_url: str
    api_key: str | None
    upstream_model: str
    headers: Mapping[str, str]
    api_version: str | None = None
    """Azure `api-version`, Anthropic `anthropic-version`; None means the codec's default."""
    max_output_tokens: int | None = None
    """Output cap sent when the client gives none (Anthropic requires one)."""
    thinking_budget: int | None = None
    """Token budget for extended thinking when the client asks for reasoning; None = off."""


class HeldError:
    """An upstream error found after some frames of the same read were already translated.

    Those frames must still reach the client (a truncated stream would skip events), so the
    error is held and raised by the decoder's next `feed` or `finish`.
    """

    __slots__ = ("_error",)

    def __init__(self) -> None:
        self._error: LlmuxError | None = None

    def hold(self, error: LlmuxError, frames: list[bytes]) -> None:
        """Raise `error` now when no frame is waiting, else keep it for `release`."""
        if not frames:
            raise error
        self._error = error

    def release(self) -> None:
        """Raise the held error, if any (once)."""
        error, self._error = self._error, None
        if error is not None:
            raise error


class StreamDecoder(Protocol):
    """Per-request, stateful translation of an upstream stream into client SSE frames."""

    usage: Usage | None

    def feed(self, chunk: bytes) -> list[bytes]:
        """Consume upstream bytes; return the frames to send to the client now."""
        ...

    def finish(self) -> list[bytes]:
        """The upstream ended cleanly; return the closing frames or raise `UpstreamError`."""
        ...

    def error_frame(self, error: LlmuxError) -> bytes:
        """The final frame that reports `error` after the stream has started."""
        ...


class Provider(Protocol):
    """One upstream dialect: builds requests and turns answers into OpenAI-shaped bytes."""

    endpoints: frozenset[Endpoint]
    """The client endpoints this codec can serve; others get a 400 before any upstream call."""

    def encode_request(self, call: Call, target: Target) -> PreparedRequest:
        """Build the upstream request for `call` sent to `target`."""
        ...

    def decode_response(self, call: Call, body: bytes) -> tuple[bytes, Usage | None]:
        """Turn a successful non-streaming upstream body into the client's body and usage."""
        ...

    def stream_decoder(self, call: Call) -> StreamDecoder:
        """A fresh decoder for one streaming response."""
        ...

    def decode_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        """Map an upstream error answer to the error tree, keeping its status and message."""
        ...
