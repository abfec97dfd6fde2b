"""Shared pieces of the Responses front door tests: calls, codecs, fixtures and stream runs.

The codecs are the real provider codecs wrapped in `ResponsesOverChat`; upstream answers are
the recorded fixtures under `tests/fixtures/<provider>/`. Nothing touches the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmux.frontdoor.responses import ResponsesOverChat, ResponsesStream
from llmux.intake import parse_call
from llmux.providers.anthropic import AnthropicProvider
from llmux.providers.base import Call, Target
from llmux.providers.gemini import GeminiProvider
from llmux.providers.openai import OpenAIProvider
from llmux.sse import SSEParser
from llmux.types import Endpoint

__all__ = [
    "ANTHROPIC",
    "CREATED",
    "GEMINI",
    "OPENAI",
    "TARGET",
    "Event",
    "chat_body",
    "fixture",
    "parse_events",
    "responses_call",
    "run_stream",
    "upstream_body",
]

FIXTURES = Path(__file__).parent.parent / "fixtures"
CREATED = 1700000000
TARGET = Target("test", "https://upstream.test", "sk-test", "upstream-model", {})
OPENAI = ResponsesOverChat(OpenAIProvider())
ANTHROPIC = ResponsesOverChat(AnthropicProvider())
GEMINI = ResponsesOverChat(GeminiProvider())

Event = tuple[str, dict[str, Any]]
"""One stream event: its SSE `event:` name and its decoded data."""


def fixture(path: str) -> bytes:
    """A recorded upstream answer, e.g. `anthropic/chat.json`."""
    return (FIXTURES / path).read_bytes()


def responses_call(*, stream: bool = False, **fields: Any) -> Call:
    """A validated /v1/responses call; `model` and `input` default to simple values."""
    body: dict[str, Any] = {"model": "client-model", "input": "Hi", **fields}
    if stream:
        body["stream"] = True
    return parse_call(Endpoint.RESPONSES, json.dumps(body).encode(), "req1", CREATED)


def upstream_body(codec: ResponsesOverChat, call: Call) -> dict[str, Any]:
    """The JSON body the wrapped codec would send upstream for `call`."""
    prepared = codec.encode_request(call, TARGET)
    assert prepared.body is not None
    body: dict[str, Any] = json.loads(prepared.body)
    return body


def chat_body(call: Call) -> dict[str, Any]:
    """The chat request a Responses call translates to (as the OpenAI chat codec sends it)."""
    return upstream_body(OPENAI, call)


def parse_events(raw: bytes) -> list[Event]:
    """Every SSE event in `raw`, with its data decoded."""
    events = SSEParser().feed(raw)
    return [(event.event or "", json.loads(event.data)) for event in events]


def run_stream(
    codec: ResponsesOverChat, call: Call, upstream: bytes, step: int = 7
) -> tuple[list[Event], ResponsesStream]:
    """Feed `upstream` in `step`-byte reads, finish, and return the events and the decoder."""
    decoder = codec.stream_decoder(call)
    frames: list[bytes] = []
    for start in range(0, len(upstream), step):
        frames.extend(decoder.feed(upstream[start : start + step]))
    frames.extend(decoder.finish())
    return parse_events(b"".join(frames)), decoder
