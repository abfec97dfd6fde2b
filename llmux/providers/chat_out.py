"""OpenAI chat-completions output built from another dialect's answer: bodies and chunks.

Shared by the translating codecs (Anthropic, Gemini) so every provider answers in exactly the
same shape: same keys, same usage details, same streaming frames. Pure: the timestamp and ids
come from the `Call`.
"""

from __future__ import annotations

from typing import Any

from llmux.providers.base import Call
from llmux.sse import DONE_FRAME, data_frame
from llmux.types import Usage
from llmux.wire.openai import encode

__all__ = ["ChunkWriter", "completion_body", "completion_id", "usage_object"]


def completion_id(call: Call) -> str:
    """A stable completion id derived from the gateway's request id."""
    return f"chatcmpl-{call.request_id}"


def usage_object(usage: Usage) -> dict[str, Any]:
    """OpenAI `usage`: prompt tokens include cached ones; details always present."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_body(
    call: Call,
    *,
    content: str | None,
    finish_reason: str,
    usage: Usage,
    tool_calls: list[dict[str, Any]] | None = None,
    reasoning: str | None = None,
    refusal: str | None = None,
) -> bytes:
    """A `chat.completion` object with one choice."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = reasoning
    return encode(
        {
            "id": completion_id(call),
            "object": "chat.completion",
            "created": call.created,
            "model": call.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": usage_object(usage),
        }
    )


class ChunkWriter:
    """Builds the `chat.completion.chunk` frames of one stream, in the client's model name."""

    __slots__ = ("_head", "_include_usage")

    def __init__(self, call: Call) -> None:
        self._head = {
            "id": completion_id(call),
            "object": "chat.completion.chunk",
            "created": call.created,
            "model": call.model,
        }
        self._include_usage = call.include_usage

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        """One frame carrying `delta` for choice 0."""
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return data_frame(encode({**self._head, "choices": [choice]}))

    def closing(self, usage: Usage | None) -> list[bytes]:
        """The usage-only chunk (when the client asked for it) and `[DONE]`."""
        frames: list[bytes] = []
        if self._include_usage and usage is not None:
            body = {**self._head, "choices": [], "usage": usage_object(usage)}
            frames.append(data_frame(encode(body)))
        frames.append(DONE_FRAME)
        return frames
