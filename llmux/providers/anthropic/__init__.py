"""The Anthropic Messages API codec (type `anthropic`): OpenAI chat in, OpenAI chat out.

`request` builds `POST {base_url}/v1/messages`, `response` and `stream` translate answers into
the shared OpenAI shapes of `chat_out`, `errors` maps Anthropic error bodies. Pure: no I/O.
Docs: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import final

from llmux.errors import UpstreamError
from llmux.providers.anthropic import errors, request, response
from llmux.providers.anthropic.stream import AnthropicStream
from llmux.providers.base import Call, StreamDecoder, Target
from llmux.types import Endpoint, PreparedRequest, Usage

__all__ = ["AnthropicProvider"]


@final
class AnthropicProvider:
    """Codec for Anthropic's Messages API; serves chat completions only."""

    __slots__ = ()

    endpoints = frozenset({Endpoint.CHAT})

    def encode_request(self, call: Call, target: Target) -> PreparedRequest:
        """Translate the client's chat request into a Messages request."""
        return request.encode(call, target)

    def decode_response(self, call: Call, body: bytes) -> tuple[bytes, Usage | None]:
        """Translate a complete message into a `chat.completion`."""
        return response.decode(call, body)

    def stream_decoder(self, call: Call) -> StreamDecoder:
        """A fresh Messages-stream -> chunk translator."""
        return AnthropicStream(call)

    def decode_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        """Map an Anthropic error body to the error tree."""
        return errors.decode_error(status, body, headers)
