"""One call end to end: route -> encode -> send -> decode or relay -> usage; retries first.

The only module where codecs and transports meet. Retries happen only before the client has
received a byte: for streams, an attempt counts as started once the decoder produced its first
frame; after that an upstream failure becomes a final SSE error frame, never a truncation.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from llmux.errors import InvalidRequest, LlmuxError, NoDeploymentAvailable, UpstreamError
from llmux.metrics import Metrics
from llmux.providers.base import Call, Provider, StreamDecoder, Target
from llmux.routing import Deployment, RoutingTable, attempt_order
from llmux.types import Usage
from llmux.upstream.base import Timeouts, Transport, UpstreamResponse

__all__ = ["Binding", "CallRecord", "Dispatcher", "OpenStream", "Write"]

T = TypeVar("T")

_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 2.0
_RETRY_AFTER_CAP = 10.0


@dataclass(frozen=True, slots=True)
class Binding:
    """How to call one deployment: its codec, transport, target and timeouts."""

    deployment: Deployment
    provider: Provider
    transport: Transport
    target: Target
    timeouts: Timeouts


@dataclass(slots=True)
class CallRecord:
    """What happened to one client call, for the access log and metrics."""

    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    client_closed: bool = False
    deployment: str | None = None
    attempts: int = 0
    upstream_seconds: float | None = None
    first_frame_seconds: float | None = None
    usage: Usage | None = None


class Dispatcher:
    """Runs calls against the routing table with retries; one per loaded config."""

    def __init__(
        self,
        table: RoutingTable,
        bindings: Mapping[str, Binding],
        retry_count: int,
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> None:
        self._table = table
        self._bindings = bindings
        self._attempts = 1 + max(retry_count, 0)
        self._metrics = metrics
        self._rng = rng or random.Random()

    async def complete(self, call: Call, record: CallRecord) -> bytes:
        """A non-streaming call: the client's response body."""
        started, (body, usage) = await self._with_retries(call, record, self._complete_once)
        record.upstream_seconds = time.perf_counter() - started
        self._finish(call, record, usage)
        return body

    async def open_stream(self, call: Call, record: CallRecord) -> OpenStream:
        """A streaming call, opened up to its first client frame (retries end there)."""
        _, stream = await self._with_retries(call, record, self._open_once)
        record.first_frame_seconds = time.perf_counter() - record.started
        self._metrics.observe_first_token(call.model, record.first_frame_seconds)
        return stream

    async def _with_retries(
        self, call: Call, record: CallRecord, attempt: Callable[[Call, Binding], Awaitable[T]]
    ) -> tuple[float, T]:
        """Run `attempt` on the planned deployments until one succeeds or fails for good.

        Returns when the successful attempt started, and its result.
        """
        last: UpstreamError | None = None
        for binding in self._plan(call):
            if record.attempts:
                await self._before_retry(call, record, last)
            record.attempts += 1
            started = time.perf_counter()
            try:
                result = await attempt(call, binding)
            except UpstreamError as error:
                self._observe_attempt(binding, started, "error")
                if not error.retryable:
                    raise
                last = error
                continue
            self._observe_attempt(binding, started, "success")
            record.deployment = binding.deployment.id
            return started, result
        raise _exhausted(last)

    def finish_stream(self, call: Call, record: CallRecord, stream: OpenStream) -> None:
        """Account a stream once it ended, however it ended."""
        record.upstream_seconds = time.perf_counter() - record.started
        self._finish(call, record, stream.decoder.usage)

    def _plan(self, call: Call) -> list[Binding]:
        deployments = self._table.lookup(call.model)
        able = [d for d in deployments if call.endpoint in self._bindings[d.id].provider.endpoints]
        if not able:
            raise InvalidRequest(
                f"The model `{call.model}` cannot serve /v1{call.endpoint.value}: its provider"
                f" ({self._bindings[deployments[0].id].target.provider}) does not support it.",
                param="model",
                code="unsupported_endpoint_for_model",
            )
        return [self._bindings[d.id] for d in attempt_order(able, self._attempts, self._rng)]

    async def _before_retry(
        self, call: Call, record: CallRecord, last: UpstreamError | None
    ) -> None:
        self._metrics.observe_retry(call.model)
        await asyncio.sleep(self._backoff(record.attempts, last))

    def _backoff(self, retry: int, last: UpstreamError | None) -> float:
        if last is not None and last.retry_after is not None:
            return min(float(last.retry_after), _RETRY_AFTER_CAP)
        ceiling: float = min(_BACKOFF_BASE * 2.0 ** (retry - 1), _BACKOFF_CAP)
        return ceiling * (0.5 + self._rng.random() / 2)

    async def _complete_once(self, call: Call, binding: Binding) -> tuple[bytes, Usage | None]:
        prepared = binding.provider.encode_request(call, binding.target)
        response = await binding.transport.send(prepared, binding.timeouts)
        try:
            body = await response.read()
        finally:
            response.release()
        if response.status >= 400:
            raise binding.provider.decode_error(response.status, body, response.headers)
        return binding.provider.decode_response(call, body)

    async def _open_once(self, call: Call, binding: Binding) -> OpenStream:
        prepared = binding.provider.encode_request(call, binding.target)
        response = await binding.transport.send(prepared, binding.timeouts)
        if response.status >= 400:
            try:
                body = await response.read()
            finally:
                response.release()
            raise binding.provider.decode_error(response.status, body, response.headers)
        decoder = binding.provider.stream_decoder(call)
        try:
            first = await _first_frames(response, decoder)
        except BaseException:
            response.release()
            raise
        return OpenStream(response, decoder, first)

    def _observe_attempt(self, binding: Binding, started: float, outcome: str) -> None:
        self._metrics.observe_attempt(binding.deployment.id, outcome, time.perf_counter() - started)

    def _finish(self, call: Call, record: CallRecord, usage: Usage | None) -> None:
        record.usage = usage
        if usage is not None:
            self._metrics.observe_tokens(
                call.model,
                (
                    ("input", usage.input_tokens),
                    ("output", usage.output_tokens),
                    ("cached", usage.cached_tokens),
                    ("reasoning", usage.reasoning_tokens),
                ),
            )


async def _first_frames(response: UpstreamResponse, decoder: StreamDecoder) -> list[bytes]:
    while chunk := await response.read_chunk():
        frames = decoder.feed(chunk)
        if frames:
            return frames
    return decoder.finish()


def _exhausted(last: UpstreamError | None) -> LlmuxError:
    if last is not None:
        return last
    return NoDeploymentAvailable("No deployment could take the request.")


Write = Callable[[bytes], Awaitable[object]]
"""Sends bytes to the client (the HTTP layer's `StreamResponse.write`)."""


class OpenStream:
    """A stream whose first frames are ready; `relay()` sends them and the rest."""

    __slots__ = ("_first", "_response", "decoder", "error")

    def __init__(
        self, response: UpstreamResponse, decoder: StreamDecoder, first: list[bytes]
    ) -> None:
        self._response = response
        self._first = first
        self.decoder = decoder
        self.error: LlmuxError | None = None

    async def relay(self, write: Write) -> None:
        """Send every frame, one write per upstream read; end with [DONE] or an error frame.

        Client write failures (a disconnect) propagate to the caller, which must `close()`.
        """
        decoder, read_chunk = self.decoder, self._response.read_chunk
        await write(b"".join(self._first))
        try:
            while chunk := await read_chunk():
                frames = decoder.feed(chunk)
                if frames:
                    await write(frames[0] if len(frames) == 1 else b"".join(frames))
            closing = decoder.finish()
        except LlmuxError as error:
            self.error = error
            await write(decoder.error_frame(error))
            return
        if closing:
            await write(b"".join(closing))

    def close(self) -> None:
        """Release the upstream connection; safe on every exit path, including disconnects."""
        self._response.release()
