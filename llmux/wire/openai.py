"""OpenAI wire types: the small views llmux reads from requests, responses and stream chunks.

Only the fields llmux acts on are declared; everything else stays as `msgspec.Raw` bytes and is
forwarded untouched. Docs: https://platform.openai.com/docs/api-reference/chat/create
"""

from __future__ import annotations

import msgspec

from llmux.types import RawBody, Usage

__all__ = [
    "ChatMessageView",
    "OpenAIUsage",
    "decode_body",
    "decode_usage",
    "encode",
    "encode_body",
    "error_body",
]


class ChatMessageView(msgspec.Struct):
    """One chat message, as far as validation needs: it must be an object with a string role."""

    role: str


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = 0


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = 0


class OpenAIUsage(msgspec.Struct):
    """`usage` of chat/completions/embeddings (prompt_*) and of responses (input_*)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None
    input_tokens_details: _PromptDetails | None = None
    output_tokens_details: _CompletionDetails | None = None

    def to_usage(self) -> Usage:
        """Normalise either naming scheme to llmux's `Usage`."""
        prompt = self.prompt_details or _PromptDetails()
        completion = self.completion_details or _CompletionDetails()
        return Usage(
            input_tokens=self.prompt_tokens or self.input_tokens or 0,
            output_tokens=self.completion_tokens or self.output_tokens or 0,
            cached_tokens=prompt.cached_tokens or 0,
            reasoning_tokens=completion.reasoning_tokens or 0,
        )

    @property
    def prompt_details(self) -> _PromptDetails | None:
        """Cached-token details under either name."""
        return self.prompt_tokens_details or self.input_tokens_details

    @property
    def completion_details(self) -> _CompletionDetails | None:
        """Reasoning-token details under either name."""
        return self.completion_tokens_details or self.output_tokens_details


_body_decoder = msgspec.json.Decoder(RawBody)
_usage_decoder = msgspec.json.Decoder(OpenAIUsage | None)
_encoder = msgspec.json.Encoder()

encode = _encoder.encode
"""Encode any msgspec-supported value to JSON bytes."""


def decode_body(data: bytes) -> RawBody:
    """Decode a JSON object one level deep; raises `msgspec.DecodeError` or `ValidationError`."""
    return _body_decoder.decode(data)


def encode_body(body: RawBody) -> bytes:
    """Re-encode a one-level-deep body; the untouched values are copied byte for byte."""
    return _encoder.encode(body)


def decode_usage(raw: msgspec.Raw | None) -> Usage | None:
    """Decode a `usage` value (object or null); malformed usage is treated as absent."""
    if raw is None:
        return None
    try:
        usage = _usage_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    return usage.to_usage() if usage is not None else None


def error_body(message: str, error_type: str, param: str | None, code: str | None) -> bytes:
    """The OpenAI error envelope; all four keys are present (the spec requires them)."""
    return _encoder.encode(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    )
