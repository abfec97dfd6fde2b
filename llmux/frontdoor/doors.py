"""One codec per deployment that serves every front door: native endpoints plus translations.

A provider codec serves the endpoints its upstream speaks natively (the OpenAI codec passes
/v1/responses through, the Anthropic codec passes /v1/messages through). Every codec that
serves chat completions also serves the Responses and Messages front doors by translating them
over chat. `FrontDoors` picks the codec for each call by its endpoint, so the dispatcher, the
router and the retry loop never know which dialect the client spoke.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import final

from llmux.errors import UpstreamError
from llmux.frontdoor.messages import MessagesOverChat
from llmux.frontdoor.responses import ResponsesOverChat
from llmux.providers.base import Call, Provider, StreamDecoder, Target
from llmux.types import Endpoint, PreparedRequest, Usage

__all__ = ["FrontDoors"]


@final
class FrontDoors:
    """A native codec plus the front doors it serves by translation over chat."""

    __slots__ = ("_codecs", "_native", "endpoints")

    def __init__(self, native: Provider) -> None:
        codecs: dict[Endpoint, Provider] = dict.fromkeys(native.endpoints, native)
        if Endpoint.CHAT in native.endpoints:
            codecs.setdefault(Endpoint.RESPONSES, ResponsesOverChat(native))
            codecs.setdefault(Endpoint.MESSAGES, MessagesOverChat(native))
        self._codecs = codecs
        self._native = native
        self.endpoints = frozenset(codecs)

    def translates(self, endpoint: Endpoint) -> bool:
        """Whether `endpoint` is served by translation rather than by the upstream itself."""
        return endpoint in self._codecs and endpoint not in self._native.endpoints

    def encode_request(self, call: Call, target: Target) -> PreparedRequest:
        """The upstream request, built by the codec for the call's endpoint."""
        return self._codecs[call.endpoint].encode_request(call, target)

    def decode_response(self, call: Call, body: bytes) -> tuple[bytes, Usage | None]:
        """The client's body in the dialect of the call's endpoint."""
        return self._codecs[call.endpoint].decode_response(call, body)

    def stream_decoder(self, call: Call) -> StreamDecoder:
        """A stream decoder that speaks the dialect of the call's endpoint."""
        return self._codecs[call.endpoint].stream_decoder(call)

    def decode_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        """Upstream errors are in the upstream's dialect whatever the front door."""
        return self._native.decode_error(status, body, headers)
