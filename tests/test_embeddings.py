"""`POST /v1/embeddings` through the official SDK: float and base64, upstream and mock."""

from __future__ import annotations

import json
import struct

import openai

from tests.helpers.upstream import FakeUpstream, fixture_bytes

INPUTS = ["The food was delicious", "and the waiter was kind"]


def as_float32(vector: list[float]) -> list[float]:
    """`vector` rounded to float32, the precision base64 embeddings carry."""
    return list(struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector)))


def fixture_vectors() -> list[list[float]]:
    """The recorded embeddings, at float32 precision."""
    data = json.loads(fixture_bytes("embeddings.json"))["data"]
    return [as_float32(item["embedding"]) for item in data]


async def test_embeddings_float_match_upstream(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """float embeddings equal the upstream's vectors and the format reaches it unchanged."""
    result = await client.embeddings.create(
        model="text-embedding-3-small", input=INPUTS, encoding_format="float"
    )
    assert [as_float32(item.embedding) for item in result.data] == fixture_vectors()
    assert upstream.received[0].json == {
        "model": "text-embedding-3-small",
        "input": INPUTS,
        "encoding_format": "float",
    }


async def test_embeddings_base64_by_default_decode_to_upstream_vectors(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """The SDK's default base64 request is forwarded as is and decodes to the upstream's floats."""
    raw = await client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=INPUTS
    )
    assert upstream.received[0].json["encoding_format"] == "base64"
    assert all(isinstance(item["embedding"], str) for item in json.loads(raw.content)["data"])
    result = raw.parse()
    assert [item.embedding for item in result.data] == fixture_vectors()


async def test_embeddings_report_usage_and_client_model(client: openai.AsyncOpenAI) -> None:
    """The embeddings response keeps the upstream's usage and names the client's model."""
    result = await client.embeddings.create(
        model="text-embedding-3-small", input=INPUTS, encoding_format="float"
    )
    assert result.model == "text-embedding-3-small"
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (8, 8)
    assert [item.index for item in result.data] == [0, 1]


async def test_mock_embeddings_float_and_base64_agree(client: openai.AsyncOpenAI) -> None:
    """The mock provider's base64 vectors decode to its float vectors at float32 precision."""
    floats = await client.embeddings.create(
        model="mock-embed", input=INPUTS, encoding_format="float"
    )
    packed = await client.embeddings.create(model="mock-embed", input=INPUTS)
    assert [as_float32(item.embedding) for item in floats.data] == [
        item.embedding for item in packed.data
    ]
    assert all(len(item.embedding) == 8 for item in floats.data)
    assert floats.model == packed.model == "mock-embed"


async def test_mock_embeddings_are_deterministic(client: openai.AsyncOpenAI) -> None:
    """The same input always gets the same mock vector, and different inputs differ."""
    first = await client.embeddings.create(
        model="mock-embed", input=INPUTS, encoding_format="float"
    )
    again = await client.embeddings.create(
        model="mock-embed", input=INPUTS[0], encoding_format="float"
    )
    assert again.data[0].embedding == first.data[0].embedding
    assert first.data[0].embedding != first.data[1].embedding
