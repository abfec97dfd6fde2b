"""A fake OpenAI upstream for load tests: canned JSON and SSE served from pre-encoded bytes.

It answers ``POST /v1/chat/completions`` (plain and ``"stream": true``), ``POST /v1/embeddings``,
``GET /v1/models`` and ``GET /health``, waiting ``--latency-ms`` before the first byte and
``--chunk-delay-ms`` between stream frames. It also speaks Anthropic's Messages API on
``POST /v1/messages`` (plain and ``"stream": true``, with the same timing) for the
``anthropic-streaming`` scenario. ``POST /_bench/config`` changes those settings at run
time, so the harness can keep one upstream (and the proxies' pooled connections to it) across
scenarios. Bodies are encoded once per model name, so the fake itself costs little CPU.

Standalone script: it imports only aiohttp, uvloop and msgspec, never llmux.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import msgspec
import uvloop
from aiohttp import web

CREATED = 1_700_000_000
FINGERPRINT = "fp_llmux_bench"
REPLY = "Hello! How can I help you today?"
STREAM_TOKENS = ("Hello", "!", " How", " can", " I", " help", " you", " today", "?")
PROMPT_TOKENS = 9
T = TypeVar("T")
JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
DONE_FRAME = b"data: [DONE]\n\n"
ERROR_BODY = msgspec.json.encode(
    {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
)


ANTHROPIC_ERROR_BODY = msgspec.json.encode(
    {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
)
ANTHROPIC_MESSAGE_ID = "msg_01LlmuxBench000000000000"


class StreamOptions(msgspec.Struct):
    """The ``stream_options`` object of a chat request."""

    include_usage: bool = False


class ChatRequest(msgspec.Struct):
    """The few chat request fields the fake reads; the rest are skipped by the decoder."""

    model: str = "bench-model"
    stream: bool = False
    stream_options: StreamOptions | None = None


class MessagesRequest(msgspec.Struct):
    """The few Anthropic Messages request fields the fake reads."""

    model: str = "bench-claude"
    stream: bool = False


class EmbeddingRequest(msgspec.Struct):
    """The embedding request fields the fake reads."""

    model: str = "bench-embedding"
    input: str | list[Any] = ""


class ConfigPatch(msgspec.Struct):
    """Body of ``POST /_bench/config``: any subset of the timing settings."""

    latency_ms: float | None = None
    jitter_ms: float | None = None
    chunks: int | None = None
    chunk_delay_ms: float | None = None
    error_rate: float | None = None


@dataclass
class Settings:
    """Timing and failure settings, changeable at run time."""

    latency_ms: float = 50.0
    jitter_ms: float = 0.0
    chunks: int = 20
    chunk_delay_ms: float = 5.0
    error_rate: float = 0.0
    embedding_dims: int = 1536


def usage(completion_tokens: int) -> dict[str, Any]:
    """An OpenAI ``usage`` object with the detail blocks current models return."""
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_body(model: str) -> bytes:
    """A ``chat.completion`` object for a non-streaming request."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": REPLY,
        "refusal": None,
        "annotations": [],
    }
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    return msgspec.json.encode(
        {
            "id": "chatcmpl-llmuxbench0000000000000000",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [choice],
            "usage": usage(len(STREAM_TOKENS)),
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
    )


def chunk_frame(
    model: str,
    choices: list[dict[str, Any]],
    include_usage: bool,
    usage_tokens: int | None = None,
) -> bytes:
    """One ``data: {chat.completion.chunk}`` SSE frame.

    With ``include_usage`` OpenAI sends ``"usage": null`` on every chunk, then one last chunk
    with ``"choices": []`` and the usage filled in (``usage_tokens`` set).
    Docs: https://platform.openai.com/docs/api-reference/chat/create#chat-create-stream_options
    """
    chunk: dict[str, Any] = {
        "id": "chatcmpl-llmuxbench0000000000000000",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
        "choices": choices,
    }
    if include_usage:
        chunk["usage"] = None if usage_tokens is None else usage(usage_tokens)
    return b"data: " + msgspec.json.encode(chunk) + b"\n\n"


def delta_choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    """A streaming choice carrying ``delta``."""
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def stream_frames(model: str, chunks: int, include_usage: bool) -> list[bytes]:
    """The writes of one stream: role chunk, content chunks, then the finish chunk.

    ``chunks`` counts all three kinds (at least 2). The tail (the usage chunk when asked for,
    then ``[DONE]``) rides on the last write, as it follows the finish chunk at once.
    """
    contents = max(chunks - 2, 0)
    role = {"role": "assistant", "content": "", "refusal": None}
    frames = [chunk_frame(model, [delta_choice(role)], include_usage)]
    for i in range(contents):
        token = STREAM_TOKENS[i % len(STREAM_TOKENS)]
        frames.append(chunk_frame(model, [delta_choice({"content": token})], include_usage))
    last = chunk_frame(model, [delta_choice({}, "stop")], include_usage)
    if include_usage:
        last += chunk_frame(model, [], include_usage, usage_tokens=contents)
    frames.append(last + DONE_FRAME)
    return frames


def anthropic_usage(output_tokens: int) -> dict[str, Any]:
    """An Anthropic ``usage`` object as ``message_start`` and complete messages carry it."""
    return {
        "input_tokens": PROMPT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def message_body(model: str) -> bytes:
    """A complete Anthropic ``message`` for a non-streaming ``POST /v1/messages``."""
    return msgspec.json.encode(
        {
            "id": ANTHROPIC_MESSAGE_ID,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": REPLY}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": anthropic_usage(len(STREAM_TOKENS)),
        }
    )


def event_frame(event: dict[str, Any]) -> bytes:
    """One ``event: <type>`` + ``data: {...}`` SSE frame, as the Messages API sends them."""
    return (
        b"event: "
        + str(event["type"]).encode()
        + b"\ndata: "
        + msgspec.json.encode(event)
        + b"\n\n"
    )


def message_stream_frames(model: str, chunks: int) -> list[bytes]:
    """The writes of one Messages stream, with ``chunks`` (at least 1) ``text_delta`` events.

    The first write carries ``message_start`` (usage with ``output_tokens: 1``, as the API
    sends), ``content_block_start``, a ``ping`` and the first delta; the tail
    (``content_block_stop``, ``message_delta`` with the final usage, ``message_stop``) rides on
    the last delta's write. So a stream makes as many writes as it has deltas, and takes as
    long as the chat stream with the same ``chunks``.
    Docs: https://docs.anthropic.com/en/docs/build-with-claude/streaming
    """
    chunks = max(chunks, 1)
    start: dict[str, Any] = {
        "id": ANTHROPIC_MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": anthropic_usage(1),
    }
    head = (
        event_frame({"type": "message_start", "message": start})
        + event_frame(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        )
        + event_frame({"type": "ping"})
    )
    frames = []
    for i in range(chunks):
        token = STREAM_TOKENS[i % len(STREAM_TOKENS)]
        delta = {"type": "text_delta", "text": token}
        frames.append(event_frame({"type": "content_block_delta", "index": 0, "delta": delta}))
    frames[0] = head + frames[0]
    frames[-1] += (
        event_frame({"type": "content_block_stop", "index": 0})
        + event_frame(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": chunks},
            }
        )
        + event_frame({"type": "message_stop"})
    )
    return frames


def embedding_body(model: str, count: int, dims: int) -> bytes:
    """A ``list`` of ``count`` embeddings with ``dims`` deterministic floats each."""
    vector = [round(math.sin(i) * 0.05, 6) for i in range(dims)]
    data = [{"object": "embedding", "index": i, "embedding": vector} for i in range(count)]
    tokens = 8 * count
    return msgspec.json.encode(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def models_body() -> bytes:
    """The ``GET /v1/models`` list."""
    entry = {"object": "model", "created": CREATED, "owned_by": "llmux-bench"}
    models = [{"id": name, **entry} for name in ("bench-model", "bench-embedding")]
    return msgspec.json.encode({"object": "list", "data": models})


@dataclass
class Canned:
    """Pre-encoded bodies, built on first use per key and dropped when settings change."""

    settings: Settings
    cache: dict[tuple[object, ...], object] = field(default_factory=dict)

    def get(self, key: tuple[object, ...], build: Callable[..., T], *args: object) -> T:
        """Return the cached value for ``key``, building it with ``build(*args)`` once."""
        value = self.cache.get(key)
        if value is None:
            if len(self.cache) > 256:  # clients choose model names: keep memory bounded
                self.cache.clear()
            value = self.cache[key] = build(*args)
        return cast(T, value)


CANNED = web.AppKey("canned", Canned)


async def decode(request: web.Request, kind: type[T]) -> T:
    """Decode the JSON body into ``kind``; a body that does not fit is a 400."""
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except msgspec.DecodeError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc


async def wait_and_maybe_fail(
    settings: Settings, error_body: bytes = ERROR_BODY
) -> web.Response | None:
    """Sleep the latency (plus up to ``jitter_ms``); return a 500 when the dice say so."""
    latency_ms = settings.latency_ms
    if settings.jitter_ms > 0:
        latency_ms += random.uniform(0, settings.jitter_ms)
    if latency_ms > 0:
        await asyncio.sleep(latency_ms / 1000)
    if settings.error_rate > 0 and random.random() < settings.error_rate:
        return web.Response(status=500, body=error_body, headers=JSON_HEADERS)
    return None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``."""
    canned = request.app[CANNED]
    settings = canned.settings
    chat = await decode(request, ChatRequest)
    failed = await wait_and_maybe_fail(settings)
    if failed is not None:
        return failed
    if not chat.stream:
        body = canned.get(("chat", chat.model), completion_body, chat.model)
        return web.Response(body=body, headers=JSON_HEADERS)
    include_usage = chat.stream_options is not None and chat.stream_options.include_usage
    key = ("stream", chat.model, settings.chunks, include_usage)
    frames = canned.get(key, stream_frames, chat.model, settings.chunks, include_usage)
    return await send_stream(request, frames, settings.chunk_delay_ms)


async def send_stream(
    request: web.Request, frames: list[bytes], chunk_delay_ms: float
) -> web.StreamResponse:
    """Write ``frames`` as an SSE response, ``chunk_delay_ms`` apart."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    delay = chunk_delay_ms / 1000
    try:
        await response.prepare(request)
        for i, frame in enumerate(frames):
            if i and delay > 0:
                await asyncio.sleep(delay)
            await response.write(frame)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client left mid-stream (a load run ending)
    return response


def anthropic_error(status: int, kind: str, message: str) -> web.Response:
    """An Anthropic error envelope."""
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return web.Response(status=status, body=msgspec.json.encode(body), headers=JSON_HEADERS)


async def messages(request: web.Request) -> web.StreamResponse:
    """``POST /v1/messages`` (Anthropic), answered like the real API for a text reply.

    It checks only that ``x-api-key`` and ``anthropic-version`` are present, as the API does.
    """
    if "x-api-key" not in request.headers:
        return anthropic_error(401, "authentication_error", "x-api-key header is required")
    if "anthropic-version" not in request.headers:
        return anthropic_error(400, "invalid_request_error", "anthropic-version header is required")
    canned = request.app[CANNED]
    settings = canned.settings
    msg = await decode(request, MessagesRequest)
    failed = await wait_and_maybe_fail(settings, ANTHROPIC_ERROR_BODY)
    if failed is not None:
        return failed
    if not msg.stream:
        body = canned.get(("message", msg.model), message_body, msg.model)
        return web.Response(body=body, headers=JSON_HEADERS)
    key = ("message-stream", msg.model, settings.chunks)
    frames = canned.get(key, message_stream_frames, msg.model, settings.chunks)
    return await send_stream(request, frames, settings.chunk_delay_ms)


async def embeddings(request: web.Request) -> web.Response:
    """``POST /v1/embeddings``."""
    canned = request.app[CANNED]
    emb = await decode(request, EmbeddingRequest)
    failed = await wait_and_maybe_fail(canned.settings)
    if failed is not None:
        return failed
    many = isinstance(emb.input, list) and bool(emb.input) and not isinstance(emb.input[0], int)
    count = len(emb.input) if many else 1
    dims = canned.settings.embedding_dims
    body = canned.get(("emb", emb.model, count, dims), embedding_body, emb.model, count, dims)
    return web.Response(body=body, headers=JSON_HEADERS)


async def models(request: web.Request) -> web.Response:
    """``GET /v1/models``."""
    body = request.app[CANNED].get(("models",), models_body)
    return web.Response(body=body, headers=JSON_HEADERS)


async def health(request: web.Request) -> web.Response:
    """``GET /health``: always 200 once the server listens."""
    return web.Response(text="ok")


async def configure(request: web.Request) -> web.Response:
    """``POST /_bench/config``: patch the timing settings and drop the canned bodies."""
    canned = request.app[CANNED]
    patch = await decode(request, ConfigPatch)
    for name in msgspec.structs.fields(patch):
        value = getattr(patch, name.name)
        if value is not None:
            setattr(canned.settings, name.name, value)
    canned.cache.clear()
    return web.Response(body=msgspec.json.encode(canned.settings), headers=JSON_HEADERS)


def make_app(settings: Settings) -> web.Application:
    """Build the fake upstream application."""
    app = web.Application()
    app[CANNED] = Canned(settings)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_post("/_bench/config", configure)
    return app


async def serve(host: str, port: int, settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    runner = web.AppRunner(make_app(settings), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=4096).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="time to first byte")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="extra 0..J ms, uniform")
    parser.add_argument(
        "--chunks",
        type=int,
        default=20,
        help="chunk frames per stream (text_delta events on /v1/messages)",
    )
    parser.add_argument("--chunk-delay-ms", type=float, default=5.0, help="gap between frames")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of 500 answers")
    parser.add_argument("--embedding-dims", type=int, default=1536)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    settings = Settings(
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        chunks=args.chunks,
        chunk_delay_ms=args.chunk_delay_ms,
        error_rate=args.error_rate,
        embedding_dims=args.embedding_dims,
    )
    uvloop.run(serve(args.host, args.port, settings))


if __name__ == "__main__":
    main()
