"""Context windows of current upstream models, by upstream model name. Pure data, no I/O.

A name matches its own entry or, for dated and suffixed names (`gpt-4o-2024-08-06`,
`claude-3-5-sonnet-20241022`), the longest entry it starts with followed by `-` or `@`. A
`vendor/` prefix (`models/gemini-2.5-pro`, `openai/gpt-4o`) is ignored. Unknown models are
never filtered. A model entry's own `context_window` wins over this table.
"""

from __future__ import annotations

__all__ = ["CONTEXT_WINDOWS", "known_context_window"]

_GEMINI_1M = 1_048_576

CONTEXT_WINDOWS: dict[str, int] = {
    # OpenAI
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "chatgpt-4o-latest": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1-nano": 1_047_576,
    "gpt-5": 400_000,
    "gpt-5-mini": 400_000,
    "gpt-5-nano": 400_000,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o1-preview": 128_000,
    "o1-pro": 200_000,
    "o3": 200_000,
    "o3-mini": 200_000,
    "o3-pro": 200_000,
    "o4-mini": 200_000,
    # Anthropic
    "claude-3-5-sonnet": 200_000,
    "claude-3-5-haiku": 200_000,
    "claude-3-7-sonnet": 200_000,
    "claude-sonnet-4": 200_000,
    "claude-sonnet-4-5": 200_000,
    "claude-opus-4": 200_000,
    "claude-opus-4-1": 200_000,
    "claude-haiku-4-5": 200_000,
    # Google
    "gemini-1.5-pro": 2_097_152,
    "gemini-1.5-flash": _GEMINI_1M,
    "gemini-1.5-flash-8b": _GEMINI_1M,
    "gemini-2.0-flash": _GEMINI_1M,
    "gemini-2.0-flash-lite": _GEMINI_1M,
    "gemini-2.5-pro": _GEMINI_1M,
    "gemini-2.5-flash": _GEMINI_1M,
    "gemini-2.5-flash-lite": _GEMINI_1M,
}
"""Tokens of input (plus output, where the vendor counts both) each model accepts."""


def known_context_window(upstream_model: str) -> int | None:
    """The catalogue's context window for `upstream_model`, or None when it is unknown."""
    name = upstream_model.rsplit("/", 1)[-1].lower()
    while name:
        found = CONTEXT_WINDOWS.get(name)
        if found is not None:
            return found
        cut = max(name.rfind("-"), name.rfind("@"))
        if cut <= 0:
            return None
        name = name[:cut]
    return None
