"""The Anthropic Messages API (/v1/messages) served over any provider that speaks chat.

`MessagesOverChat` wraps a chat codec: `request` translates the client's Messages body into a
chat body, the inner codec talks to its upstream, and `response` / `stream` turn its chat output
back into an Anthropic Message or event stream. `errors` renders failures in Anthropic's shape
and `count` estimates count_tokens for providers that cannot count. Pure: no I/O.
Docs: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final, final

from llmux.errors import UpstreamError
from llmux.frontdoor.messages.count import count_tokens_body, estimate_input_tokens
from llmux.frontdoor.messages.errors import (
    anthropic_error_body,
    anthropic_error_type,
    error_event,
)
from llmux.frontdoor.messages.request import to_chat_body
from llmux.frontdoor.messages.response import to_message
from llmux.frontdoor.messages.stream import MessagesStream
from llmux.providers.base import Call, Provider, StreamDecoder, Target
from llmux.types import Endpoint, PreparedRequest, RawBody, Usage

__all__ = [
    "MessagesOverChat",
    "anthropic_error_body",
    "anthropic_error_type",
    "count_tokens_body",
    "error_event",
    "estimate_input_tokens",
]

_NO_BODY: Final[RawBody] = {}


@final
class MessagesOverChat:
    """Serves /v1/messages by translation over a codec that serves chat completions."""

    __slots__ = ("_inner",)

    endpoints = frozenset({Endpoint.MESSAGES})

    def __init__(self, inner: Provider) -> None:
        self._inner = inner

    def encode_request(self, call: Call, target: Target) -> PreparedRequest:
        """Translate the Messages body to chat and let the inner codec build the request."""
        chat_body = to_chat_body(call.body, stream=call.stream)
        chat_call = dataclasses.replace(
            call, endpoint=Endpoint.CHAT, body=chat_body, include_usage=True
        )
        return self._inner.encode_request(chat_call, target)

    def decode_response(self, call: Call, body: bytes) -> tuple[bytes, Usage | None]:
        """The inner codec's chat completion, as an Anthropic Message."""
        completion, usage = self._inner.decode_response(_reply_call(call), body)
        return to_message(call, completion, usage), usage

    def stream_decoder(self, call: Call) -> StreamDecoder:
        """The inner codec's chunk stream, translated into Anthropic events."""
        return MessagesStream(call, self._inner.stream_decoder(_reply_call(call)))

    def decode_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        """Upstream errors are in the inner codec's dialect."""
        return self._inner.decode_error(status, body, headers)


def _reply_call(call: Call) -> Call:
    """The chat call the inner decoders see.

    Decoders read only the call's identity (model name, request id, timestamp, usage wish), not
    the request body, so the body is left out instead of translating the request a second time.
    """
    return dataclasses.replace(call, endpoint=Endpoint.CHAT, body=_NO_BODY, include_usage=True)
