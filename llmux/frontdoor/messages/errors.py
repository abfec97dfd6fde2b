"""llmux errors in Anthropic's shape, for clients of /v1/messages: bodies and stream events.

The mapping from HTTP status to Anthropic's `error.type` lives with the Anthropic codec (its
passthrough stream needs it too, and codecs sit below the front doors); this module is the
front door's name for it. Docs: https://docs.anthropic.com/en/api/errors
"""

from __future__ import annotations

from llmux.errors import LlmuxError
from llmux.providers.anthropic.errors import anthropic_error_body, anthropic_error_type
from llmux.sse import named_frame

__all__ = ["anthropic_error_body", "anthropic_error_type", "error_event"]


def error_event(error: LlmuxError) -> bytes:
    """The `event: error` frame that ends a Messages stream which failed after it started."""
    return named_frame("error", anthropic_error_body(error))
