"""The built-in `mock` provider: an in-process fake OpenAI server behind the Transport seam.

It answers chat completions, legacy completions, embeddings and responses (JSON and SSE) with
deterministic content and honest usage (one token per whitespace-separated word), after the
configured latency, in the configured number of chunks. Because it speaks the OpenAI dialect
through the same codec as real upstreams, the quickstart and the benchmarks exercise the real
relay path, not a shortcut.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import struct
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec

from llmux.config.schema import MockOptions
from llmux.sse import DONE_FRAME, data_frame, named_frame
from llmux.types import PreparedRequest
from llmux.upstream.base import Timeouts, UpstreamResponse
from llmux.wire.openai import encode, error_body

__all__ = ["MockTransport"]

_REPLY = "Hello from the llmux mock provider. This reply is deterministic."
_JSON_HEADERS: Mapping[str, str] = {"content-type": "application/json"}
_SSE_HEADERS: Mapping[str, str] = {"content-type": "text/event-stream"}
_ids = itertools.count(1)


class _Request(msgspec.Struct):
    model: str = "mock"
    messages: list[dict[str, Any]] | None = None
    prompt: Any = None
    input: Any = None
    instructions: str | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    max_output_tokens: int | None = None
    encoding_format: str | None = None
    dimensions: int | None = None


_request_decoder = msgspec.json.Decoder(_Request)


class MockTransport:
    """Answers prepared OpenAI-dialect requests without a network."""

    def __init__(self, options: MockOptions) -> None:
        self._options = options

    async def send(self, request: PreparedRequest, timeouts: Timeouts) -> UpstreamResponse:
        """Produce the answer an OpenAI server would give to `request`."""
        try:
            parsed = _request_decoder.decode(request.body or b"{}")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _Response(400, _JSON_HEADERS, _error(f"mock: {exc}"))
        if self._options.latency:
            await asyncio.sleep(self._options.latency)
        path = request.url.rsplit("/v1", 1)[-1] if "/v1" in request.url else request.url
        handler = _ROUTES.get(path.split("?", 1)[0])
        if handler is None:
            return _Response(404, _JSON_HEADERS, _error(f"mock: no route {path}"))
        return handler(self._options, parsed)


def _error(message: str) -> bytes:
    return error_body(message, "invalid_request_error", None, None)


def _count(text: str) -> int:
    return len(text.split())


def _text_of(value: Any) -> str:
    """Plain text inside a message content, a prompt or a Responses input."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text_of(item) for item in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return str(value["text"])
        return _text_of(value.get("content"))
    return ""


def _reply_words(limit: int | None) -> tuple[list[str], str]:
    words = _REPLY.split()
    if limit is not None and limit < len(words):
        return words[: max(limit, 0)], "length"
    return words, "stop"


def _pieces(words: list[str], chunks: int) -> list[str]:
    """Split the reply into `chunks` pieces that concatenate back to the reply."""
    if not words:
        return []
    count = max(1, min(chunks, len(words)))
    size = -(-len(words) // count)
    groups = [words[i : i + size] for i in range(0, len(words), size)]
    return [(" " if i else "") + " ".join(group) for i, group in enumerate(groups)]


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat(options: MockOptions, req: _Request) -> UpstreamResponse:
    if not req.messages:
        return _Response(400, _JSON_HEADERS, _error("mock: messages is required"))
    prompt = max(sum(_count(_text_of(m)) for m in req.messages), 1)
    words, finish = _reply_words(req.max_completion_tokens or req.max_tokens)
    ident, created = f"chatcmpl-mock{next(_ids)}", int(time.time())
    if not req.stream:
        message = {"role": "assistant", "content": " ".join(words), "refusal": None}
        body = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": _usage(prompt, len(words)),
            "system_fingerprint": "fp_llmux_mock",
        }
        return _Response(200, _JSON_HEADERS, encode(body))
    head = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": req.model}

    def chunk(delta: dict[str, Any], reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return data_frame(encode({**head, "choices": [choice]}))

    frames = [chunk({"role": "assistant", "content": ""}, None)]
    frames += [chunk({"content": piece}, None) for piece in _pieces(words, options.chunks)]
    frames.append(chunk({}, finish))
    if (req.stream_options or {}).get("include_usage"):
        frames.append(
            data_frame(encode({**head, "choices": [], "usage": _usage(prompt, len(words))}))
        )
    frames.append(DONE_FRAME)
    return _Response(200, _SSE_HEADERS, stream=_paced(frames, options.chunk_delay))


def _completions(options: MockOptions, req: _Request) -> UpstreamResponse:
    if req.prompt is None:
        return _Response(400, _JSON_HEADERS, _error("mock: prompt is required"))
    prompt = max(_count(_text_of(req.prompt)), 1)
    words, finish = _reply_words(req.max_tokens)
    ident, created = f"cmpl-mock{next(_ids)}", int(time.time())
    head = {"id": ident, "object": "text_completion", "created": created, "model": req.model}
    if not req.stream:
        choice = {"index": 0, "text": " ".join(words), "logprobs": None, "finish_reason": finish}
        body = {**head, "choices": [choice], "usage": _usage(prompt, len(words))}
        return _Response(200, _JSON_HEADERS, encode(body))

    def chunk(text: str, reason: str | None) -> bytes:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        return data_frame(encode({**head, "choices": [choice]}))

    frames = [chunk(piece, None) for piece in _pieces(words, options.chunks)]
    frames.append(chunk("", finish))
    if (req.stream_options or {}).get("include_usage"):
        frames.append(
            data_frame(encode({**head, "choices": [], "usage": _usage(prompt, len(words))}))
        )
    frames.append(DONE_FRAME)
    return _Response(200, _SSE_HEADERS, stream=_paced(frames, options.chunk_delay))


def _embeddings(options: MockOptions, req: _Request) -> UpstreamResponse:
    inputs = req.input if isinstance(req.input, list) else [req.input]
    if req.input is None or not inputs:
        return _Response(400, _JSON_HEADERS, _error("mock: input is required"))
    if inputs and all(isinstance(item, int) for item in inputs):
        inputs = [inputs]
    dimensions = req.dimensions or options.embedding_dimensions
    data = []
    for index, item in enumerate(inputs):
        vector = _vector(str(item), dimensions)
        embedding: Any = vector
        if req.encoding_format == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(len(i) if isinstance(i, list) else max(_count(str(i)), 1) for i in inputs)
    body = {
        "object": "list",
        "data": data,
        "model": req.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return _Response(200, _JSON_HEADERS, encode(body))


def _vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-length vector derived from the text's SHA-256."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [(seed[i % len(seed)] - 127.5) / 127.5 for i in range(dimensions)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in raw]


def _responses(options: MockOptions, req: _Request) -> UpstreamResponse:
    if req.input is None:
        return _Response(400, _JSON_HEADERS, _error("mock: input is required"))
    prompt = max(_count(_text_of(req.input)) + _count(req.instructions or ""), 1)
    words, finish = _reply_words(req.max_output_tokens)
    text = " ".join(words)
    ident = f"resp_mock{next(_ids)}"
    item_id = f"msg_mock{next(_ids)}"
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": len(words),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + len(words),
    }
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    item = {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    final = _response_object(ident, req, [item], usage, finish)
    if not req.stream:
        return _Response(200, _JSON_HEADERS, encode(final))
    return _Response(200, _SSE_HEADERS, stream=_paced(_response_events(final, options), 0.0))


def _response_object(
    ident: str, req: _Request, output: list[Any], usage: Any, finish: str
) -> dict[str, Any]:
    incomplete = finish == "length"
    return {
        "id": ident,
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "model": req.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    }


def _response_events(final: dict[str, Any], options: MockOptions) -> list[bytes]:
    """The full Responses event sequence the SDK's strict stream helper expects."""
    item = final["output"][0]
    text = item["content"][0]["text"]
    # The spec forbids `usage: null`, so an unfinished response carries no usage key at all.
    pending = {key: value for key, value in final.items() if key != "usage"}
    pending.update(status="in_progress", output=[])
    empty_item = {**item, "status": "in_progress", "content": []}
    empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": pending}),
        ("response.in_progress", {"response": pending}),
        ("response.output_item.added", {"output_index": 0, "item": empty_item}),
        ("response.content_part.added", {**where, "part": empty_part}),
    ]
    for piece in _pieces(text.split(), options.chunks):
        events.append(("response.output_text.delta", {**where, "delta": piece, "logprobs": []}))
    events += [
        ("response.output_text.done", {**where, "text": text, "logprobs": []}),
        ("response.content_part.done", {**where, "part": item["content"][0]}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
        (f"response.{final['status']}", {"response": final}),
    ]
    return [
        named_frame(kind, encode({"type": kind, "sequence_number": n, **payload}))
        for n, (kind, payload) in enumerate(events)
    ]


async def _paced(frames: list[bytes], delay: float) -> AsyncIterator[bytes]:
    for index, frame in enumerate(frames):
        if delay and index:
            await asyncio.sleep(delay)
        yield frame


_ROUTES = {
    "/chat/completions": _chat,
    "/completions": _completions,
    "/embeddings": _embeddings,
    "/responses": _responses,
}


class _Response:
    __slots__ = ("_body", "_stream", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes = b"",
        stream: AsyncIterator[bytes] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self._body = body
        self._stream = stream

    async def read(self) -> bytes:
        if self._stream is None:
            return self._body
        return b"".join([chunk async for chunk in self._stream])

    async def read_chunk(self) -> bytes:
        if self._stream is None:
            body, self._body = self._body, b""
            return body
        try:
            return await anext(self._stream)
        except StopAsyncIteration:
            return b""

    def release(self) -> None:
        return None
