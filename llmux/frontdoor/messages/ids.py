"""Tool-use ids that carry a Gemini thought signature through Anthropic clients.

Gemini 3 wants each function call's `thoughtSignature` back in the next request, and chat
clients return it in `extra_content.google.thought_signature`. Anthropic clients have no such
field, but they echo every tool_use `id` exactly (in the assistant turn and in each tool_result),
so the signature rides in the id: `<id>_llmuxsig_<signature as unpadded base64url>`, which stays
within Anthropic's id alphabet `[a-zA-Z0-9_-]` should the conversation move to Claude.
Docs: https://ai.google.dev/gemini-api/docs/thought-signatures
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

__all__ = ["join_signature", "split_signature"]

_MARKER: Final = "_llmuxsig_"


def join_signature(tool_id: str, signature: str | None) -> str:
    """The tool_use id for a call id and its thought signature (the id alone without one)."""
    if not signature:
        return tool_id
    try:
        raw = base64.b64decode(signature, validate=True)
    except binascii.Error:
        return tool_id  # not base64: cannot ride in an id, and Gemini never sends such
    return tool_id + _MARKER + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def split_signature(tool_use_id: str) -> tuple[str, str | None]:
    """The original call id and thought signature (standard base64) inside a tool_use id."""
    tool_id, marker, encoded = tool_use_id.partition(_MARKER)
    if not marker or not encoded:
        return tool_use_id, None
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return tool_use_id, None
    return tool_id, base64.b64encode(raw).decode()
