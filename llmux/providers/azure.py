"""Azure OpenAI (type `azure`): the OpenAI codec with Azure's URL layout and authentication.

`{base_url}/openai/deployments/{deployment}/{path}?api-version=...`, where `base_url` is the
resource endpoint (`https://NAME.openai.azure.com`) and the deployment is the model entry's
`upstream_model`. `api_key` goes in the `api-key` header; a value starting with `Bearer ` (a
Microsoft Entra ID token) is sent as `Authorization` instead. Bodies, streams and errors are
OpenAI's, so everything else (content-filter finish reasons, 400 `content_filter` errors with
Azure's message) passes through the OpenAI codec unchanged.
Docs: https://learn.microsoft.com/azure/ai-services/openai/reference
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from llmux.errors import UpstreamError
from llmux.providers.base import Call, StreamDecoder, Target
from llmux.providers.openai import OpenAIProvider
from llmux.types import Endpoint, PreparedRequest, Usage

__all__ = ["DEFAULT_API_VERSION", "AzureProvider"]

DEFAULT_API_VERSION = "2024-10-21"
"""The current GA data-plane API version, used when the provider sets no `api_version`."""


class AzureProvider:
    """Codec for Azure OpenAI deployments; composes the OpenAI codec."""

    __slots__ = ("_openai",)

    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})

    def __init__(self) -> None:
        self._openai = OpenAIProvider()

    def encode_request(self, call: Call, target: Target) -> PreparedRequest:
        """The OpenAI request, sent to the deployment's URL with Azure's auth header."""
        prepared = self._openai.encode_request(call, target)
        headers = {k: v for k, v in prepared.headers.items() if k != "Authorization"}
        if target.api_key:
            if target.api_key.startswith("Bearer "):
                headers["Authorization"] = target.api_key
            else:
                headers["api-key"] = target.api_key
        return PreparedRequest(
            prepared.method, _url(call.endpoint, target), headers, prepared.body, prepared.stream
        )

    def decode_response(self, call: Call, body: bytes) -> tuple[bytes, Usage | None]:
        """As OpenAI."""
        return self._openai.decode_response(call, body)

    def stream_decoder(self, call: Call) -> StreamDecoder:
        """As OpenAI (Azure's leading `prompt_filter_results` chunk passes through)."""
        return self._openai.stream_decoder(call)

    def decode_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        """As OpenAI: Azure keeps OpenAI's error envelope."""
        return self._openai.decode_error(status, body, headers)


def _url(endpoint: Endpoint, target: Target) -> str:
    base = target.base_url.removesuffix("/openai")
    deployment = quote(target.upstream_model, safe="")
    version = quote(target.api_version or DEFAULT_API_VERSION, safe="")
    return f"{base}/openai/deployments/{deployment}{endpoint.value}?api-version={version}"
