"""Gemini `GenerateContentResponse` -> OpenAI `chat.completion`, plus the shared mappings.

- Text parts -> `content`; parts with `thought: true` -> `reasoning_content`; `functionCall`
  parts -> `tool_calls` with `arguments` = the JSON of `args`, the call's own `id` if Gemini
  sent one, else a synthesized `call_<index>_<hash of request id, index, name>` (identical
  streamed or not), and any `thoughtSignature` in `extra_content.google.thought_signature`.
- `finishReason`: STOP -> `stop` (`tool_calls` when the answer calls functions), MAX_TOKENS ->
  `length`, SAFETY / RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII / IMAGE_SAFETY ->
  `content_filter`, anything else -> `stop`. A blocked prompt (`promptFeedback.blockReason`,
  no candidates) -> `content_filter` with empty content.
- `usageMetadata`: prompt_tokens = promptTokenCount (it already includes the cached ones),
  completion_tokens = candidatesTokenCount + thoughtsTokenCount, cached_tokens =
  cachedContentTokenCount, reasoning_tokens = thoughtsTokenCount.
Only candidate 0 is read (the request codec refuses `n` > 1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from llmux.errors import UpstreamProtocolError
from llmux.providers.base import Call
from llmux.providers.chat_out import completion_body
from llmux.types import Usage
from llmux.wire import gemini as g

__all__ = [
    "Answer",
    "decode_chat",
    "decode_generate_response",
    "finish_reason",
    "read_answer",
    "tool_call",
    "tool_call_id",
    "usage_from",
]

_FILTERED: Final = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)
_EMPTY_ARGS: Final = "{}"


def tool_call_id(call: Call, index: int, name: str) -> str:
    """A stable id for the `index`-th function call of this answer (same when streamed)."""
    digest = hashlib.sha256(f"{call.request_id}:{index}:{name}".encode()).hexdigest()
    return f"call_{index}_{digest[:16]}"


def tool_call(
    call: Call, index: int, function: g.FunctionCall, signature: str | None
) -> dict[str, Any]:
    """The OpenAI `tool_calls[]` entry for a Gemini function call and its thought signature.

    A `thoughtSignature` travels in `extra_content.google.thought_signature`, as Google's own
    OpenAI-compatible endpoint sends it, so clients echo it back on the next turn.
    """
    raw = bytes(function.args)
    arguments = raw.decode() if raw and raw != b"null" else _EMPTY_ARGS
    entry: dict[str, Any] = {
        "id": function.id or tool_call_id(call, index, function.name),
        "type": "function",
        "function": {"name": function.name, "arguments": arguments},
    }
    if signature:
        entry["extra_content"] = {"google": {"thought_signature": signature}}
    return entry


def finish_reason(reason: str, has_tool_calls: bool) -> str:
    """The OpenAI finish_reason for a Gemini `finishReason`."""
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if has_tool_calls else "stop"


def usage_from(metadata: g.UsageMetadata | None) -> Usage | None:
    """llmux `Usage` from `usageMetadata`, or None when the answer had none."""
    if metadata is None:
        return None
    return Usage(
        input_tokens=metadata.prompt_token_count,
        output_tokens=metadata.candidates_token_count + metadata.thoughts_token_count,
        cached_tokens=metadata.cached_content_token_count,
        reasoning_tokens=metadata.thoughts_token_count,
    )


def decode_generate_response(body: bytes) -> g.GenerateContentResponse:
    """Decode one response object; a protocol error when it is not one."""
    try:
        return g.decode_response(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamProtocolError(f"upstream sent an invalid Gemini response: {exc}") from None


@dataclass(slots=True)
class Answer:
    """The parts of candidate 0, sorted into OpenAI message fields."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def read_answer(call: Call, parts: list[g.Part], answer: Answer) -> None:
    """Append `parts` to `answer` (tool call indexes continue from those already there)."""
    for part in parts:
        if part.function_call is not None:
            index = len(answer.tool_calls)
            answer.tool_calls.append(
                tool_call(call, index, part.function_call, part.thought_signature)
            )
        elif part.text is not None:
            (answer.reasoning if part.thought else answer.text).append(part.text)


def decode_chat(call: Call, body: bytes) -> tuple[bytes, Usage]:
    """The client's `chat.completion` body and the usage of a non-streaming answer."""
    response = decode_generate_response(body)
    usage = usage_from(response.usage_metadata) or Usage()
    answer = Answer()
    if not response.candidates:
        blocked = response.prompt_feedback is not None and response.prompt_feedback.block_reason
        if not blocked:
            raise UpstreamProtocolError("upstream sent a Gemini response without candidates")
        return completion_body(call, content="", finish_reason="content_filter", usage=usage), usage
    candidate = response.candidates[0]
    if candidate.content is not None:
        read_answer(call, candidate.content.parts, answer)
    reason = finish_reason(candidate.finish_reason or "STOP", bool(answer.tool_calls))
    content = "".join(answer.text) if answer.text or not answer.tool_calls else None
    body_out = completion_body(
        call,
        content=content,
        finish_reason=reason,
        usage=usage,
        tool_calls=answer.tool_calls or None,
        reasoning="".join(answer.reasoning) or None,
    )
    return body_out, usage
