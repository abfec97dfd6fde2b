"""OpenAI embeddings <-> Gemini `batchEmbedContents`.

Request: one `{model: "models/<upstream_model>", content: {parts: [{text}]}}` per input (a
string or a list of strings; token-id inputs are refused with a 400 since Gemini takes text
only); `dimensions` -> `outputDimensionality`.
Response: `embeddings[].values` -> OpenAI `data[]` (`object: "embedding"`, `index`), as floats
or, when the client asked `encoding_format: "base64"` (the SDKs' default), as base64 of
little-endian float32. `batchEmbedContents` reports no token counts, so usage is 0 tokens.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec

from llmux.errors import InvalidRequest, UpstreamProtocolError
from llmux.providers.base import Call, Target
from llmux.types import Usage
from llmux.wire import gemini as g
from llmux.wire.openai import encode

__all__ = ["build_embed_request", "decode_embeddings"]


class _EmbeddingsRequest(msgspec.Struct):
    input: msgspec.Raw
    dimensions: int | None = None
    encoding_format: str | None = None


_request_decoder = msgspec.json.Decoder(_EmbeddingsRequest)
_input_decoder = msgspec.json.Decoder(str | list[str])


def _request(call: Call) -> _EmbeddingsRequest:
    try:
        return _request_decoder.decode(encode(call.body))
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"Invalid embeddings request: {exc}.") from None


def _inputs(raw: msgspec.Raw) -> list[str]:
    try:
        decoded = _input_decoder.decode(raw)
    except msgspec.ValidationError:
        raise InvalidRequest(
            "A Gemini embedding model takes `input` as a string or a list of strings"
            " (token arrays are not supported).",
            param="input",
        ) from None
    inputs = [decoded] if isinstance(decoded, str) else decoded
    if not inputs:
        raise InvalidRequest("`input` must not be empty.", param="input")
    return inputs


def build_embed_request(call: Call, target: Target) -> bytes:
    """The JSON body of a batchEmbedContents call for `call`."""
    request = _request(call)
    model = "models/" + target.upstream_model.removeprefix("models/")
    requests = [
        g.EmbedContentRequest(
            model=model,
            content=g.Content(parts=[g.Part(text=text)]),
            output_dimensionality=request.dimensions,
        )
        for text in _inputs(request.input)
    ]
    return g.encode(g.BatchEmbedContentsRequest(requests=requests))


def decode_embeddings(call: Call, body: bytes) -> tuple[bytes, Usage]:
    """The client's OpenAI embeddings list and (zero) usage."""
    try:
        response = g.decode_embeddings(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamProtocolError(f"upstream sent invalid Gemini embeddings: {exc}") from None
    as_base64 = _request(call).encoding_format == "base64"
    data = [
        {"object": "embedding", "index": index, "embedding": _vector(item.values, as_base64)}
        for index, item in enumerate(response.embeddings)
    ]
    usage = Usage()
    out = {
        "object": "list",
        "data": data,
        "model": call.model,
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }
    return encode(out), usage


def _vector(values: list[float], as_base64: bool) -> Any:
    if not as_base64:
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
