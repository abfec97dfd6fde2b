"""Ids of Responses and their output items, derived from the gateway's request id.

A Gemini thought signature (which Gemini 3 needs back with each function call on the next
turn) has no field in a Responses `function_call` item, so it rides in the item's `id` after
`SIGNATURE_MARK`: clients send output items back unchanged, as input or through stored
history, and the translation over chat restores it. Pure; imports llmux.providers.base only.
"""

from __future__ import annotations

from typing import Final

from llmux.providers.base import Call

__all__ = ["SIGNATURE_MARK", "function_call_id", "item_id", "response_id", "thought_signature"]

SIGNATURE_MARK: Final = ".ts."
"""Separates a function_call item id from the thought signature it carries (not base64)."""
_PREFIXES: Final = {"message": "msg", "reasoning": "rs", "function_call": "fc"}


def response_id(call: Call) -> str:
    """The Response id of a call: stable across attempts, unique per gateway request."""
    return f"resp_{call.request_id}"


def item_id(call: Call, kind: str, output_index: int) -> str:
    """The id of the output item of type `kind` at `output_index`."""
    return f"{_PREFIXES[kind]}_{call.request_id}_{output_index}"


def function_call_id(call: Call, output_index: int, signature: str | None) -> str:
    """A function_call item id, carrying the call's thought signature when it has one."""
    plain = item_id(call, "function_call", output_index)
    return f"{plain}{SIGNATURE_MARK}{signature}" if signature else plain


def thought_signature(item: str | None) -> str | None:
    """The thought signature a function_call item id carries, if any."""
    if item is None or SIGNATURE_MARK not in item:
        return None
    return item.partition(SIGNATURE_MARK)[2] or None
