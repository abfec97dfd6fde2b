"""A fake OpenAI upstream on loopback that replays recorded wire fixtures.

By default each endpoint replays `tests/fixtures/openai/*` the way the real API does (the usage
chunk only when `stream_options.include_usage` was sent, base64 embeddings when asked). Tests
queue scripted behaviours (an error status, a hang, a cut stream) that are consumed in order.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).parent.parent / "fixtures" / "openai"


def fixture_bytes(name: str) -> bytes:
    """The raw bytes of a recorded fixture."""
    return (FIXTURES / name).read_bytes()


def sse_frames(name: str) -> list[bytes]:
    """The frames of a recorded SSE fixture, each ending with a blank line."""
    text = fixture_bytes(name).decode()
    return [block.strip("\n").encode() + b"\n\n" for block in text.split("\n\n") if block.strip()]


@dataclass(frozen=True)
class Reply:
    """Answer with this status and body."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stream:
    """Stream these frames, `delay` apart; `cut` drops the connection after them."""

    frames: list[bytes]
    delay: float = 0.0
    cut: bool = False


@dataclass(frozen=True)
class Hang:
    """Accept the request and answer nothing for `seconds`."""

    seconds: float


@dataclass
class Received:
    """One request the fake saw."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


Behaviour = Reply | Stream | Hang


class FakeUpstream:
    """An OpenAI-shaped server with scripted failures and a record of what it received."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: deque[Behaviour] = deque()
        self.active_streams = 0
        self.aborted_streams = 0
        self.stream_delay = 0.0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL including /v1, as a provider's `base_url`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Use these behaviours, in order, for the next requests."""
        self.script.extend(behaviours)

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Close the server."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            Received(request.method, request.path, dict(request.headers), body, dict(request.query))
        )
        if self.script:
            return await self._perform(request, self.script.popleft())
        return await self._perform(request, self._default(request.path, body))

    def _default(self, path: str, body: bytes) -> Behaviour:
        payload = json.loads(body) if body else {}
        stream = bool(payload.get("stream"))
        if path.endswith("/chat/completions"):
            if not stream:
                return Reply(200, fixture_bytes("chat.json"), {"content-type": "application/json"})
            frames = sse_frames("chat_stream.sse")
            return Stream(_as_openai_would(frames, payload), self.stream_delay)
        if path.endswith("/completions"):
            return Reply(200, fixture_bytes("completions.json"))
        if path.endswith("/embeddings"):
            return Reply(200, _embeddings(payload))
        if path.endswith("/responses"):
            if stream:
                return Stream(sse_frames("responses_stream.sse"), self.stream_delay)
            return Reply(200, fixture_bytes("responses.json"))
        return Reply(404, b'{"error":{"message":"not found","type":"invalid_request_error"}}')

    async def _perform(self, request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
        if isinstance(behaviour, Hang):
            await asyncio.sleep(behaviour.seconds)
            return web.Response(status=200, body=b"{}")
        if isinstance(behaviour, Reply):
            headers = {"content-type": "application/json", **behaviour.headers}
            return web.Response(status=behaviour.status, body=behaviour.body, headers=headers)
        return await self._stream(request, behaviour)

    async def _stream(self, request: web.Request, stream: Stream) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        self.active_streams += 1
        try:
            for frame in stream.frames:
                await response.write(frame)
                if stream.delay:
                    await asyncio.sleep(stream.delay)
            if stream.cut:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.aborted_streams += 1
            raise
        finally:
            self.active_streams -= 1
        return response


def _as_openai_would(frames: list[bytes], payload: dict[str, Any]) -> list[bytes]:
    """Without include_usage OpenAI sends no `usage` keys and no usage-only chunk."""
    if (payload.get("stream_options") or {}).get("include_usage"):
        return frames
    out = []
    for frame in frames:
        if frame.startswith(b"data: {"):
            chunk = json.loads(frame[6:])
            if chunk.get("choices") == []:
                continue
            chunk.pop("usage", None)
            frame = b"data: " + json.dumps(chunk).encode() + b"\n\n"
        out.append(frame)
    return out


def _embeddings(payload: dict[str, Any]) -> bytes:
    data = json.loads(fixture_bytes("embeddings.json"))
    if payload.get("encoding_format") == "base64":
        for item in data["data"]:
            vector = item["embedding"]
            item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return json.dumps(data).encode()


@asynccontextmanager
async def started_fakes(count: int) -> AsyncIterator[list[FakeUpstream]]:
    """`count` fake upstreams, listening until the block ends."""
    fakes = [FakeUpstream() for _ in range(count)]
    for fake in fakes:
        await fake.start()
    try:
        yield fakes
    finally:
        for fake in fakes:
            await fake.stop()
