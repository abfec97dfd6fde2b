"""A fake Anthropic Messages API on loopback that replays `tests/fixtures/anthropic/*`.

It reuses the scripted behaviours and the request record of `FakeUpstream`; by default
`POST /v1/messages` answers `chat.json`, or `chat_stream.sse` when the body asks to stream.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.upstream import Behaviour, FakeUpstream, Reply, Stream

__all__ = ["FIXTURES", "AnthropicUpstream", "fixture", "frames", "json_reply", "sse_reply"]

FIXTURES = Path(__file__).parent.parent / "fixtures" / "anthropic"


def fixture(name: str) -> bytes:
    """The raw bytes of an Anthropic fixture."""
    return (FIXTURES / name).read_bytes()


def frames(name: str) -> list[bytes]:
    """The events of an SSE fixture, each ending with its blank line."""
    text = fixture(name).decode()
    return [block.strip("\n").encode() + b"\n\n" for block in text.split("\n\n") if block.strip()]


def json_reply(name: str, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """Answer with a JSON fixture."""
    return Reply(status, fixture(name), headers or {})


def sse_reply(name: str) -> Stream:
    """Stream an SSE fixture event by event."""
    return Stream(frames(name))


class AnthropicUpstream(FakeUpstream):
    """Anthropic-shaped defaults on top of `FakeUpstream`'s scripting."""

    @property
    def url(self) -> str:
        """The server root, as an `anthropic` provider's `base_url`."""
        return f"http://127.0.0.1:{self.port}"

    def _default(self, path: str, body: bytes) -> Behaviour:
        if path != "/v1/messages":
            return Reply(404, b'{"type":"error","error":{"type":"not_found_error","message":"x"}}')
        if json.loads(body).get("stream"):
            return sse_reply("chat_stream.sse")
        return json_reply("chat.json")
