"""Cheap request estimates for routing: no tokenizer, a quarter of the body's bytes.

Used by lowest-cost, the capacity filters (token windows) and the context-window filter.
"""

from __future__ import annotations

import msgspec

from llmux.providers.base import Call
from llmux.routing import RequestEstimate

__all__ = ["estimate", "input_tokens", "needed_tokens"]

_DEFAULT_OUTPUT_TOKENS = 1024
"""Output tokens lowest-cost assumes when the request sets no cap."""
_OUTPUT_CAPS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def input_tokens(call: Call) -> int:
    """Prompt tokens, estimated as a quarter of the body's bytes."""
    return sum(len(raw) for raw in call.body.values()) // 4


def needed_tokens(call: Call) -> int:
    """Input estimate plus the request's output cap (0 when it sets none): the context check."""
    return input_tokens(call) + _output_cap(call, 0)


def _output_cap(call: Call, default: int) -> int:
    for key in _OUTPUT_CAPS:
        raw = call.body.get(key)
        if raw is not None:
            value = msgspec.json.decode(raw)
            if isinstance(value, int) and value > 0:
                return value
    return default


def estimate(call: Call, with_output: bool) -> RequestEstimate:
    output = _output_cap(call, _DEFAULT_OUTPUT_TOKENS) if with_output else _DEFAULT_OUTPUT_TOKENS
    return RequestEstimate(input_tokens(call), output, call.stream)
