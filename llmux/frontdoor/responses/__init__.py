"""OpenAI's Responses API served over any chat-capable codec, by translation.

`ResponsesOverChat` wraps a deployment's chat codec: `request` turns the Responses request into
a chat request the inner codec encodes, `response` turns the chat answer into a Response object,
`stream` turns chat chunks into Responses stream events, `history` expands stored conversations
for `previous_response_id`. Pure, like every codec: no I/O, no clock.
Docs: https://platform.openai.com/docs/api-reference/responses
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import final

from llmux.errors import UpstreamError
from llmux.frontdoor.responses import request, response
from llmux.frontdoor.responses.history import expand_history, input_items
from llmux.frontdoor.responses.ids import response_id
from llmux.frontdoor.responses.stream import ResponsesStream
from llmux.providers.base import Call, Provider, Target
from llmux.types import Endpoint, PreparedRequest, Usage

__all__ = ["ResponsesOverChat", "ResponsesStream", "expand_history", "input_items", "response_id"]


@final
class ResponsesOverChat:
    """Serves /v1/responses through `inner`, a codec that serves chat completions."""

    __slots__ = ("_inner",)

    endpoints = frozenset({Endpoint.RESPONSES})

    def __init__(self, inner: Provider) -> None:
        if Endpoint.CHAT not in inner.endpoints:
            raise ValueError("ResponsesOverChat needs an inner codec that serves chat completions")
        self._inner = inner

    def encode_request(self, call: Call, target: Target) -> PreparedRequest:
        """Translate the Responses request to chat and let the inner codec build it."""
        return self._inner.encode_request(request.translate(call).chat, target)

    def decode_response(self, call: Call, body: bytes) -> tuple[bytes, Usage | None]:
        """The inner codec's chat completion, as a Response object."""
        translation = request.translate(call)
        completion, usage = self._inner.decode_response(translation.chat, body)
        echo = response.echo_of(call, translation.tools)
        return response.decode(call, echo, completion, usage), usage

    def stream_decoder(self, call: Call) -> ResponsesStream:
        """A fresh chunk -> Responses events translator around the inner codec's decoder."""
        translation = request.translate(call)
        echo = response.echo_of(call, translation.tools)
        return ResponsesStream(call, echo, self._inner.stream_decoder(translation.chat))

    def decode_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        """Upstream errors are in the inner codec's dialect."""
        return self._inner.decode_error(status, body, headers)
