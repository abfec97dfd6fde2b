"""Provider codecs, one per upstream dialect, looked up by config `type` in `REGISTRY`."""

from llmux.providers.anthropic import AnthropicProvider
from llmux.providers.azure import AzureProvider
from llmux.providers.base import Call, Provider, StreamDecoder, Target
from llmux.providers.gemini import GeminiProvider
from llmux.providers.openai import OpenAIProvider

__all__ = ["DEFAULT_BASE_URLS", "REGISTRY", "Call", "Provider", "StreamDecoder", "Target"]

REGISTRY: dict[str, Provider] = {
    "openai": OpenAIProvider(),
    "openai-compatible": OpenAIProvider(),
    "mock": OpenAIProvider(),
    "anthropic": AnthropicProvider(),
    "azure": AzureProvider(),
    "gemini": GeminiProvider(),
}
"""Config `type` -> codec. `mock` speaks the OpenAI dialect to an in-process transport."""

DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "mock": "mock://llmux/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
"""Base URLs used when a provider's config leaves `base_url` out."""
