"""`x-llmux-overhead-ms`: the time spent in the gateway itself, upstream waits excluded.

Only logical bounds are checked (a number, never negative, never more than the client saw, and
an upstream delay is not in it); how small it is belongs to the benchmarks.
"""

from __future__ import annotations

import time

import openai
from openai.types.chat import ChatCompletionMessageParam

from tests.helpers.upstream import FakeUpstream, Stream, fixture_bytes

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
UPSTREAM_DELAY = 0.3


def overhead_ms(value: str | None) -> float:
    """The header's value as milliseconds; fails when it is missing or not a number."""
    assert value is not None
    milliseconds = float(value)
    assert milliseconds >= 0
    return milliseconds


async def test_json_response_reports_overhead(client: openai.AsyncOpenAI) -> None:
    """A non-streaming answer carries the overhead, at most the client's whole wait."""
    started = time.perf_counter()
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert overhead_ms(raw.headers.get("x-llmux-overhead-ms")) <= elapsed_ms


async def test_stream_reports_overhead(client: openai.AsyncOpenAI) -> None:
    """A streamed answer carries the overhead up to its headers."""
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, stream=True
    )
    overhead_ms(raw.headers.get("x-llmux-overhead-ms"))
    await raw.parse().close()


async def test_error_response_reports_overhead(client: openai.AsyncOpenAI) -> None:
    """A refused request (unknown model) carries the overhead too."""
    try:
        await client.chat.completions.create(model="no-such-model", messages=HELLO)
    except openai.NotFoundError as error:
        overhead_ms(error.response.headers.get("x-llmux-overhead-ms"))
    else:
        raise AssertionError("an unknown model must be refused")


async def test_upstream_delay_is_not_overhead(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """A slow upstream's wait is excluded: the overhead stays below the rest of the wait."""
    # The whole body is written at once, then the upstream holds the response open.
    upstream.enqueue(Stream([fixture_bytes("chat.json")], delay=UPSTREAM_DELAY))
    started = time.perf_counter()
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert raw.parse().choices
    overhead = overhead_ms(raw.headers.get("x-llmux-overhead-ms"))
    assert overhead <= elapsed_ms - UPSTREAM_DELAY * 1000
