"""`POST /v1/messages/count_tokens` for providers that cannot count: a documented estimate.

Anthropic upstreams count natively (the Anthropic codec passes the request through); for every
other provider llmux estimates, without calling the upstream, as `estimate_input_tokens` says.
Docs: https://docs.anthropic.com/en/api/messages-count-tokens
"""

from __future__ import annotations

from typing import Final

from llmux.frontdoor.messages.request import decode_request
from llmux.types import RawBody
from llmux.wire import anthropic as wire
from llmux.wire.openai import encode

__all__ = ["CHARS_PER_TOKEN", "IMAGE_TOKENS", "count_tokens_body", "estimate_input_tokens"]

CHARS_PER_TOKEN: Final = 4
"""Characters per token: the usual rule of thumb for English text and code."""
IMAGE_TOKENS: Final = 1600
"""Tokens per image: Anthropic's cost of an image at its largest size (about 1.15 megapixels)."""
MESSAGE_TOKENS: Final = 4
"""Framing tokens per message (role and separators)."""
TOOLS_TOKENS: Final = 300
"""The hidden system prompt providers add when tools are defined."""


def estimate_input_tokens(body: RawBody) -> int:
    """Estimate the input tokens of a Messages request without asking a provider.

    The estimate counts ceil(characters / 4) over the system text, every text block, tool_use
    names and inputs, tool_result text, and each tool's name, description and input_schema
    JSON; each image costs a flat 1600 tokens; each message adds 4 framing tokens and defining
    any tools adds 300. Real tokenizers differ by model, so treat it as a budget, not a bill.
    Raises `InvalidRequest` (400, naming the field) when the body is not a Messages request.
    """
    request = decode_request(body)
    chars = _system_chars(request.system)
    images = 0
    for message in request.messages:
        if isinstance(message.content, str):
            chars += len(message.content)
            continue
        for block in message.content:
            block_chars, block_images = _block_size(block)
            chars += block_chars
            images += block_images
    tools = request.tools or []
    for tool in tools:
        chars += len(tool.name) + len(tool.description or "") + len(tool.input_schema)
    text_tokens = -(-chars // CHARS_PER_TOKEN)
    overhead = MESSAGE_TOKENS * len(request.messages) + (TOOLS_TOKENS if tools else 0)
    return text_tokens + images * IMAGE_TOKENS + overhead


def count_tokens_body(body: RawBody) -> bytes:
    """The count_tokens response, `{"input_tokens": n}`, with the estimate."""
    return encode({"input_tokens": estimate_input_tokens(body)})


def _system_chars(system: str | list[wire.InboundBlock] | None) -> int:
    if system is None:
        return 0
    if isinstance(system, str):
        return len(system)
    return sum(len(block.text or "") for block in system)


def _block_size(block: wire.InboundBlock) -> tuple[int, int]:
    """(characters, images) of one content block, tool_result contents included."""
    if block.type == "image":
        return 0, 1
    chars = len(block.text or "") + len(block.name or "") + len(block.input)
    images = 0
    content = block.content
    if isinstance(content, str):
        chars += len(content)
    elif content is not None:
        for part in content:
            part_chars, part_images = _block_size(part)
            chars += part_chars
            images += part_images
    return chars, images
