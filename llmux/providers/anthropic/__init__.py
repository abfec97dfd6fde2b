"""The Anthropic Messages API codec (type `anthropic`): chat translated, Messages relayed.

For chat, `request` builds `POST {base_url}/v1/messages`, `response` and `stream` translate
answers into the shared OpenAI shapes of `chat_out`, `errors` maps Anthropic error bodies.
For the Messages and count_tokens endpoints, `passthrough` forwards the client's own bytes with
only `model` rewritten. Pure: no I/O.
Docs: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import final

from llmux.errors import UpstreamError
from llmux.providers.anthropic import errors, passthrough, request, response
from llmux.providers.anthropic.passthrough import PassthroughStream
from llmux.providers.anthropic.stream import AnthropicStream
from llmux.providers.base import Call, StreamDecoder, Target
from llmux.types import Endpoint, PreparedRequest, Usage

__all__ = ["AnthropicProvider"]


@final
class AnthropicProvider:
    """Codec for Anthropic's Messages API: chat translated, Messages and count_tokens relayed."""

    __slots__ = ()

    endpoints = frozenset({Endpoint.CHAT, Endpoint.MESSAGES, Endpoint.COUNT_TOKENS})

    def encode_request(self, call: Call, target: Target) -> PreparedRequest:
        """A Messages request: translated from chat, or the client's own with `model` patched."""
        if call.endpoint is Endpoint.CHAT:
            return request.encode(call, target)
        return passthrough.encode_request(call, target)

    def decode_response(self, call: Call, body: bytes) -> tuple[bytes, Usage | None]:
        """A `chat.completion` for chat; the upstream body with the client's model otherwise."""
        if call.endpoint is Endpoint.CHAT:
            return response.decode(call, body)
        return passthrough.decode(call, body)

    def stream_decoder(self, call: Call) -> StreamDecoder:
        """A Messages-stream -> chunk translator for chat, an event relay for Messages."""
        if call.endpoint is Endpoint.CHAT:
            return AnthropicStream(call)
        return PassthroughStream(call)

    def decode_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        """Map an Anthropic error body to the error tree."""
        return errors.decode_error(status, body, headers)
