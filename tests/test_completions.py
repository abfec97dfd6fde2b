"""Legacy `POST /v1/completions` through the official SDK: JSON and SSE, upstream and mock."""

from __future__ import annotations

import openai

from tests.helpers.upstream import FakeUpstream, Stream, sse_frames

PROMPT = "Say this is a test"
MOCK_REPLY = "Hello from the llmux mock provider. This reply is deterministic."


async def test_completion_returns_upstream_text(client: openai.AsyncOpenAI) -> None:
    """A completion returns the upstream's text, finish_reason, usage and the client's model."""
    completion = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt=PROMPT)
    assert completion.choices[0].text == "\n\nThis is indeed a test"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "total_tokens": 12,
    }
    assert completion.model == "gpt-3.5-turbo-instruct"


async def test_completion_forwards_request_unchanged(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """The upstream receives the prompt, options and unknown fields exactly as sent."""
    await client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt=[PROMPT, "and another"],
        max_tokens=7,
        temperature=0,
        echo=False,
        extra_body={"x_vendor_flag": True},
    )
    assert upstream.received[0].path == "/v1/completions"
    assert upstream.received[0].json == {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": [PROMPT, "and another"],
        "max_tokens": 7,
        "temperature": 0,
        "echo": False,
        "x_vendor_flag": True,
    }


async def test_completion_stream_from_upstream_concatenates(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """Streamed text pieces concatenate to the reply and the last finish_reason is kept."""
    upstream.enqueue(Stream(sse_frames("completions_stream.sse")))
    stream = await client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt=PROMPT, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(chunk.choices[0].text for chunk in chunks) == "\n\nThis is indeed a test"
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(chunk.model == "gpt-3.5-turbo-instruct" for chunk in chunks)


async def test_completion_stream_strips_unrequested_usage_chunk(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """Usage is requested upstream but its chunk is dropped when the client did not ask."""
    upstream.enqueue(Stream(sse_frames("completions_stream.sse")))
    stream = await client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt=PROMPT, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert upstream.received[0].json["stream_options"] == {"include_usage": True}
    assert len(chunks) == 6
    assert all(chunk.choices and "usage" not in chunk.model_fields_set for chunk in chunks)


async def test_completion_stream_with_include_usage_ends_with_usage(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """With include_usage the final chunk has no choices and the upstream's usage."""
    upstream.enqueue(Stream(sse_frames("completions_stream.sse")))
    stream = await client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt=PROMPT,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 7)


async def test_completion_from_mock_is_deterministic(client: openai.AsyncOpenAI) -> None:
    """The mock provider answers a completion with its fixed reply and honest usage."""
    completion = await client.completions.create(model="mock-gpt", prompt=PROMPT)
    assert completion.choices[0].text == MOCK_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == len(PROMPT.split())
    assert completion.usage.completion_tokens == len(MOCK_REPLY.split())
    assert completion.model == "mock-gpt"


async def test_completion_stream_from_mock_concatenates(client: openai.AsyncOpenAI) -> None:
    """The mock provider streams its reply in pieces that concatenate back to it."""
    stream = await client.completions.create(model="mock-gpt", prompt=PROMPT, stream=True)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) > 2
    assert "".join(chunk.choices[0].text for chunk in chunks) == MOCK_REPLY
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None and chunk.model == "mock-gpt" for chunk in chunks)


async def test_completion_stream_from_mock_with_include_usage(client: openai.AsyncOpenAI) -> None:
    """The mock provider's streamed completion ends with a usage chunk when asked."""
    stream = await client.completions.create(
        model="mock-gpt", prompt=PROMPT, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == len(PROMPT.split())
    assert chunks[-1].usage.completion_tokens == len(MOCK_REPLY.split())
