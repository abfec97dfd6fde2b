"""The Google Gemini codec (type `gemini`, Generative Language API), chat and embeddings.

`base_url` is the server root (`https://generativelanguage.googleapis.com`); the codec appends
`/v1beta/models/{upstream_model}:generateContent`, `:streamGenerateContent?alt=sse` or
`:batchEmbedContents`, and authenticates with `x-goog-api-key`. The mappings are documented in
`request`, `response`, `stream`, `embeddings` and `errors`.
Docs: https://ai.google.dev/api/generate-content
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from llmux.errors import UpstreamError
from llmux.providers.base import Call, StreamDecoder, Target
from llmux.providers.gemini.embeddings import build_embed_request, decode_embeddings
from llmux.providers.gemini.errors import map_error
from llmux.providers.gemini.request import build_generate_request
from llmux.providers.gemini.response import decode_chat
from llmux.providers.gemini.stream import GeminiStream
from llmux.types import Endpoint, PreparedRequest, Usage

__all__ = ["GeminiProvider"]

_API_PATH: Final = "/v1beta/models/"


class GeminiProvider:
    """Codec for Google's Generative Language API."""

    __slots__ = ()

    endpoints = frozenset({Endpoint.CHAT, Endpoint.EMBEDDINGS})

    def encode_request(self, call: Call, target: Target) -> PreparedRequest:
        """A generateContent, streamGenerateContent or batchEmbedContents request."""
        model = target.upstream_model.removeprefix("models/")
        url = target.base_url + _API_PATH + model
        if call.endpoint is Endpoint.EMBEDDINGS:
            url += ":batchEmbedContents"
            body = build_embed_request(call, target)
        else:
            url += ":streamGenerateContent?alt=sse" if call.stream else ":generateContent"
            body = build_generate_request(call, target)
        headers = {"Content-Type": "application/json", **target.headers}
        if target.api_key:
            headers["x-goog-api-key"] = target.api_key
        if call.stream:
            headers["Accept"] = "text/event-stream"
        return PreparedRequest("POST", url, headers, body, stream=call.stream)

    def decode_response(self, call: Call, body: bytes) -> tuple[bytes, Usage | None]:
        """The OpenAI chat completion or embeddings list for a Gemini answer."""
        if call.endpoint is Endpoint.EMBEDDINGS:
            return decode_embeddings(call, body)
        return decode_chat(call, body)

    def stream_decoder(self, call: Call) -> StreamDecoder:
        """A fresh Gemini stream translator."""
        return GeminiStream(call)

    def decode_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        """Map a Google error body, keeping status and message."""
        return map_error(status, body, headers)
