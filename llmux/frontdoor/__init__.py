"""Front doors: client dialects llmux serves on every provider by translating them over chat.

`responses` serves OpenAI's Responses API (`/v1/responses`) over any chat-capable codec;
`messages` serves Anthropic's Messages API (`/v1/messages`) the same way.
Front doors are codecs too: pure, they implement `llmux.providers.base.Provider` and wrap the
deployment's own chat codec. They may import `llmux.providers`, `llmux.wire`, `llmux.sse`,
`llmux.errors` and `llmux.types`, never aiohttp.
"""

from llmux.frontdoor.responses import ResponsesOverChat, expand_history, input_items, response_id

__all__ = ["ResponsesOverChat", "expand_history", "input_items", "response_id"]

from llmux.frontdoor.messages import (
    MessagesOverChat,
    anthropic_error_body,
    anthropic_error_type,
    count_tokens_body,
    estimate_input_tokens,
)

__all__ += [
    "MessagesOverChat",
    "anthropic_error_body",
    "anthropic_error_type",
    "count_tokens_body",
    "estimate_input_tokens",
]
