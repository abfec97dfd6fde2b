"""Gateway bodies, read as raw bytes, validate against the OpenAI OpenAPI spec's schemas.

Every JSON body and every SSE payload is checked against the named schema of
`../shared/specs/openai-openapi.yaml` (normalised by `tests.helpers.spec`), for the fake
OpenAI upstream (passthrough) and for the built-in mock provider where both apply.
"""

from __future__ import annotations

import base64
import copy
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from llmux.serve import Gateway
from tests.helpers.spec import load_spec, schema_error
from tests.helpers.upstream import FakeUpstream, Reply, Stream, fixture_bytes, sse_frames

CHAT_MODELS = pytest.mark.parametrize("model", ["gpt-4o-mini", "mock-gpt"])
HELLO = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module", autouse=True)
def openai_spec() -> dict[str, Any]:
    """Load (and normalise) the spec once, before the first test of this module."""
    return load_spec()


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[aiohttp.ClientSession]:
    """A raw HTTP client on the gateway port, so the exact bytes are validated."""
    async with aiohttp.ClientSession(f"http://127.0.0.1:{gateway.port}") as session:
        yield session


def assert_valid(schema: str, instance: Any) -> None:
    """Fail with the most relevant schema error unless `instance` is valid."""
    error = schema_error(schema, instance)
    assert error is None, error


async def post_json(
    http: aiohttp.ClientSession, path: str, body: dict[str, Any], status: int = 200
) -> Any:
    """POST `body` and return the decoded JSON answer, checking status and content type."""
    async with http.post(path, json=body) as response:
        assert response.status == status, await response.text()
        assert response.content_type == "application/json"
        return json.loads(await response.read())


async def get_json(http: aiohttp.ClientSession, path: str, status: int = 200) -> Any:
    """GET `path` and return the decoded JSON answer, checking status and content type."""
    async with http.get(path) as response:
        assert response.status == status, await response.text()
        assert response.content_type == "application/json"
        return json.loads(await response.read())


async def post_sse(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> list[Any]:
    """POST a streaming request and return every JSON `data:` payload, in order."""
    async with http.post(path, json=body) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/event-stream"
        raw = await response.read()
    payloads = []
    for block in raw.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                payloads.append(json.loads(line[6:]))
    assert payloads
    return payloads


def decode_base64_embedding(value: Any) -> list[float]:
    """A base64 embedding as the float list the spec describes (it only knows `float`).

    The wire form is little-endian float32, base64-encoded, as the official SDKs decode it.
    """
    assert isinstance(value, str), f"base64 embedding is not a string: {value!r}"
    packed = base64.b64decode(value, validate=True)
    assert packed and len(packed) % 4 == 0, f"not a float32 vector: {len(packed)} bytes"
    return list(struct.unpack(f"<{len(packed) // 4}f", packed))


def spec_current_response(response: dict[str, Any]) -> dict[str, Any]:
    """The recorded Responses object brought to this spec revision.

    The recording predates it: the spec forbids a null `user` or `usage` and requires
    `usage.input_tokens_details.cache_write_tokens`.
    """
    fixed = copy.deepcopy(response)
    for key in ("user", "usage"):
        if fixed.get(key, "") is None:
            del fixed[key]
    if "usage" in fixed:
        fixed["usage"]["input_tokens_details"].setdefault("cache_write_tokens", 0)
    return fixed


def spec_current_response_stream() -> list[bytes]:
    """The recorded Responses stream with each embedded response brought to this spec revision."""
    frames = []
    for frame in sse_frames("responses_stream.sse"):
        head, _, data = frame.rstrip(b"\n").partition(b"\ndata: ")
        event = json.loads(data)
        if "response" in event:
            event["response"] = spec_current_response(event["response"])
        assert_valid("ResponseStreamEvent", event)
        frames.append(head + b"\ndata: " + json.dumps(event).encode() + b"\n\n")
    return frames


@CHAT_MODELS
async def test_chat_completion_conforms(http: aiohttp.ClientSession, model: str) -> None:
    """A chat completion body is a valid CreateChatCompletionResponse."""
    body = await post_json(http, "/v1/chat/completions", {"model": model, "messages": HELLO})
    assert_valid("CreateChatCompletionResponse", body)


@CHAT_MODELS
@pytest.mark.parametrize("include_usage", [False, True])
async def test_chat_stream_chunks_conform(
    http: aiohttp.ClientSession, model: str, include_usage: bool
) -> None:
    """Every chat stream chunk, usage chunk included, is a CreateChatCompletionStreamResponse."""
    request = {
        "model": model,
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": include_usage},
    }
    chunks = await post_sse(http, "/v1/chat/completions", request)
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    assert (chunks[-1]["choices"] == []) is include_usage


async def test_chat_tool_call_stream_chunks_conform(
    http: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    """Every chunk of a streamed tool call is a CreateChatCompletionStreamResponse."""
    upstream.enqueue(Stream(sse_frames("chat_tools_stream.sse")))
    request = {"model": "smart", "messages": HELLO, "stream": True}
    for chunk in await post_sse(http, "/v1/chat/completions", request):
        assert_valid("CreateChatCompletionStreamResponse", chunk)


@pytest.mark.parametrize("model", ["gpt-3.5-turbo-instruct", "mock-gpt"])
async def test_completion_conforms(http: aiohttp.ClientSession, model: str) -> None:
    """A legacy completion body is a valid CreateCompletionResponse."""
    body = await post_json(http, "/v1/completions", {"model": model, "prompt": "Say hi"})
    assert_valid("CreateCompletionResponse", body)


@pytest.mark.parametrize("model", ["text-embedding-3-small", "mock-embed"])
@pytest.mark.parametrize("encoding_format", ["float", "base64"])
async def test_embeddings_conform(
    http: aiohttp.ClientSession, model: str, encoding_format: str
) -> None:
    """An embeddings body in either encoding is a valid CreateEmbeddingResponse."""
    request = {"model": model, "input": ["a", "b"], "encoding_format": encoding_format}
    body = await post_json(http, "/v1/embeddings", request)
    if encoding_format == "base64":
        for item in body["data"]:
            item["embedding"] = decode_base64_embedding(item["embedding"])
    assert_valid("CreateEmbeddingResponse", body)


async def test_models_list_conforms(http: aiohttp.ClientSession) -> None:
    """The model list is a valid ListModelsResponse."""
    body = await get_json(http, "/v1/models")
    assert_valid("ListModelsResponse", body)
    assert len(body["data"]) == 6


@pytest.mark.parametrize("model", ["gpt-4o-mini", "mock-embed", "upstream/gpt-4o-mini"])
async def test_model_retrieve_conforms(http: aiohttp.ClientSession, model: str) -> None:
    """A retrieved model, by group or provider/model, is a valid Model."""
    body = await get_json(http, f"/v1/models/{model}")
    assert_valid("Model", body)
    assert body["id"] == model


async def test_response_from_upstream_conforms(
    http: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    """A passthrough of a spec-valid upstream response is still a valid Response."""
    recorded = spec_current_response(json.loads(fixture_bytes("responses.json")))
    assert_valid("Response", recorded)
    upstream.enqueue(Reply(200, json.dumps(recorded).encode()))
    body = await post_json(http, "/v1/responses", {"model": "smart", "input": "Hi"})
    assert_valid("Response", body)


async def test_response_from_mock_conforms(http: aiohttp.ClientSession) -> None:
    """The mock provider's response is a valid Response."""
    body = await post_json(http, "/v1/responses", {"model": "mock-gpt", "input": "Hi"})
    assert_valid("Response", body)


async def test_response_stream_from_upstream_conforms(
    http: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    """Each relayed event of a spec-valid upstream Responses stream is a ResponseStreamEvent."""
    upstream.enqueue(Stream(spec_current_response_stream()))
    request = {"model": "gpt-4o-mini", "input": "Hi", "stream": True}
    events = await post_sse(http, "/v1/responses", request)
    for event in events:
        assert_valid("ResponseStreamEvent", event)
    assert len(events) == 10


async def test_response_stream_from_mock_conforms(http: aiohttp.ClientSession) -> None:
    """Each event of the mock provider's Responses stream is a ResponseStreamEvent."""
    request = {"model": "mock-gpt", "input": "Hi", "stream": True}
    events = await post_sse(http, "/v1/responses", request)
    for event in events:
        assert_valid("ResponseStreamEvent", event)
    assert events[-1]["type"] == "response.completed"


@pytest.mark.parametrize(
    "path", ["/v1/models/no-such-model", "/v1/no-such-endpoint"], ids=["model", "path"]
)
async def test_not_found_error_conforms(http: aiohttp.ClientSession, path: str) -> None:
    """A 404 for an unknown model or path is a valid ErrorResponse."""
    body = await get_json(http, path, status=404)
    assert_valid("ErrorResponse", body)


async def test_unknown_model_error_conforms(http: aiohttp.ClientSession) -> None:
    """A chat request for an unknown model gets a valid 404 ErrorResponse."""
    body = await post_json(
        http, "/v1/chat/completions", {"model": "nope", "messages": HELLO}, status=404
    )
    assert_valid("ErrorResponse", body)
    assert body["error"]["code"] == "model_not_found"


async def test_bad_request_error_conforms(http: aiohttp.ClientSession) -> None:
    """A 400 for a request missing `messages` is a valid ErrorResponse."""
    body = await post_json(http, "/v1/chat/completions", {"model": "gpt-4o-mini"}, status=400)
    assert_valid("ErrorResponse", body)
    assert body["error"]["param"] == "messages"


async def test_upstream_bad_request_error_conforms(
    http: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    """An upstream 400 relayed to the client is a valid ErrorResponse."""
    upstream.enqueue(Reply(400, fixture_bytes("error_400_context.json")))
    body = await post_json(
        http, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HELLO}, status=400
    )
    assert_valid("ErrorResponse", body)
    assert body["error"]["code"] == "context_length_exceeded"
