"""Shared value types that cross layers: endpoints, usage, prepared upstream requests.

Imports msgspec only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

__all__ = ["Endpoint", "PreparedRequest", "RawBody", "Usage"]

RawBody = dict[str, msgspec.Raw]
"""A JSON object decoded one level deep: every top-level value stays as its original bytes."""


class Endpoint(enum.Enum):
    """The OpenAI endpoints llmux dispatches to providers; the value is the path under /v1."""

    CHAT = "/chat/completions"
    COMPLETIONS = "/completions"
    EMBEDDINGS = "/embeddings"
    RESPONSES = "/responses"
    MESSAGES = "/messages"
    """Anthropic's Messages API, served on the gateway's /v1/messages."""
    COUNT_TOKENS = "/messages/count_tokens"
    """Anthropic's token counting for a Messages request."""

    @property
    def label(self) -> str:
        """A short, bounded name for logs and metric labels."""
        return _LABELS[self]


_LABELS = {
    Endpoint.CHAT: "chat",
    Endpoint.COMPLETIONS: "completions",
    Endpoint.EMBEDDINGS: "embeddings",
    Endpoint.RESPONSES: "responses",
    Endpoint.MESSAGES: "messages",
    Endpoint.COUNT_TOKENS: "count_tokens",
}


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Token counts of one call, as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    """Input tokens read from the provider's prompt cache (part of `input_tokens`)."""
    cache_write_tokens: int = 0
    """Input tokens written to the provider's prompt cache (part of `input_tokens`)."""
    reasoning_tokens: int = 0
    """Output tokens spent on reasoning (part of `output_tokens`)."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """Everything the transport needs to send one upstream request; no schema knowledge."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None
    stream: bool = False
