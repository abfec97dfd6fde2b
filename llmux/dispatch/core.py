"""The Dispatcher: one call end to end (route -> encode -> send -> decode or relay -> usage).

Retries, cooldowns and fallbacks live here; the only module where codecs and transports
meet. Retries happen only before the client has received a byte: for streams, an attempt
counts as started once the decoder produced its first frame; after that an upstream failure
becomes a final SSE error frame, never a truncation.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TypeVar

from llmux.cooldown import Breaker, CooldownPolicy, counts_as_failure
from llmux.dispatch.estimates import estimate, input_tokens, needed_tokens
from llmux.dispatch.records import Binding, CallRecord, RouteTrace, start_trace
from llmux.dispatch.relay import OpenStream, first_frames
from llmux.errors import (
    AllDeploymentsCoolingDown,
    InvalidRequest,
    LlmuxError,
    NoDeploymentAvailable,
    UpstreamError,
    UpstreamTimeout,
)
from llmux.fallbacks import FallbackPolicy, FallbackWalk, Reason
from llmux.log import get_logger, info_enabled
from llmux.metrics import Metrics
from llmux.providers.base import Call
from llmux.routing import (
    LocalRouterStats,
    RouterStats,
    RoutingTable,
    SharedRouterStats,
    admit,
    fit_context,
    order,
)
from llmux.tracing import start_attempt, with_traceparent
from llmux.types import Usage

__all__ = ["Dispatcher"]

T = TypeVar("T")

_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 2.0
_RETRY_AFTER_CAP = 10.0


class Dispatcher:
    """Runs calls against the routing table with retries; one per loaded config."""

    def __init__(
        self,
        table: RoutingTable,
        bindings: Mapping[str, Binding],
        retry_count: int,
        metrics: Metrics,
        rng: random.Random | None = None,
        stats: RouterStats | None = None,
        clock: Callable[[], float] = time.monotonic,
        breaker: Breaker | None = None,
        fallbacks: FallbackPolicy | None = None,
    ) -> None:
        self._table = table
        self._bindings = bindings
        self._attempts = 1 + max(retry_count, 0)
        self._metrics = metrics
        self._rng = rng or random.Random()
        self.stats: RouterStats = stats if stats is not None else LocalRouterStats()
        self._shared = self.stats if isinstance(self.stats, SharedRouterStats) else None
        self._clock = clock
        self._breaker = breaker or Breaker(CooldownPolicy(enabled=False))
        self._fallbacks = fallbacks or FallbackPolicy(enabled=False)
        self._has_alternatives = {
            d.id: len(table.groups.get(d.group, ())) > 1 for d in table.by_id.values()
        }

    @property
    def breaker(self) -> Breaker:
        """The per-deployment circuit breakers (the admin control API reads and sets them)."""
        return self._breaker

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock routing and the breaker run on."""
        return self._clock

    def serves(self, call: Call) -> bool:
        """Whether any deployment of the call's model serves its endpoint (natively or not)."""
        deployments = self._table.lookup(call.model)
        return any(call.endpoint in self._bindings[d.id].provider.endpoints for d in deployments)

    async def complete(self, call: Call, record: CallRecord) -> bytes:
        """A non-streaming call: the client's response body."""
        started, (body, usage) = await self._with_retries(call, record, self._complete_once)
        record.upstream_seconds = time.perf_counter() - started
        self._finish(call, record, usage)
        return body

    async def open_stream(self, call: Call, record: CallRecord) -> OpenStream:
        """A streaming call, opened up to its first client frame (retries end there)."""
        started, stream = await self._with_retries(call, record, self._open_once)
        stream.on_close = self._stream_closer(record.deployment, started)
        record.first_frame_seconds = time.perf_counter() - record.started
        self._metrics.observe_first_token(call.model, record.first_frame_seconds)
        return stream

    async def _with_retries(
        self, call: Call, record: CallRecord, attempt: Callable[[Call, Binding], Awaitable[T]]
    ) -> tuple[float, T]:
        """Run `attempt` for the call's group, then for its fallback groups, until one succeeds.

        Each group gets its own retry budget. Returns when the successful attempt started, and
        its result.
        """
        if info_enabled():
            record.trace = RouteTrace()
        return await self._walk_groups(call, record, attempt)

    async def _walk_groups(
        self, call: Call, record: CallRecord, attempt: Callable[[Call, Binding], Awaitable[T]]
    ) -> tuple[float, T]:
        walk = FallbackWalk(self._fallbacks, call.model) if record.fallback_allowed else None
        current = call
        while True:
            try:
                return await self._run_group(current, record, attempt)
            except LlmuxError as error:
                reason = _fallback_reason(error)
                following = None
                if walk is not None and reason is not None:
                    following = walk.next(current.model, reason)
                if following is None or reason is None:
                    raise
                self._metrics.observe_fallback(current.model, following)
                get_logger().info(
                    "fallback",
                    from_group=current.model,
                    to_group=following,
                    reason=reason.value,
                    error_code=error.code,
                )
                record.fallback_from = call.model
                current = replace(call, model=following)

    async def _run_group(
        self, call: Call, record: CallRecord, attempt: Callable[[Call, Binding], Awaitable[T]]
    ) -> tuple[float, T]:
        """Attempts within one model group: each retry re-plans, preferring untried deployments.

        Deployments in cooldown are skipped; when none is left before the first attempt, the
        group waits for the soonest recovery if that is within `routing.cooldown.max_wait`,
        else answers 503 `all_deployments_cooling_down` with `Retry-After` at once.
        """
        last: UpstreamError | None = None
        failed: str | None = None
        tried: set[str] = set()
        for number in range(self._attempts):
            if self._shared is not None:
                # Distributed routing: one Redis round trip (a turn, the shared counts).
                deployments = self._table.lookup(call.model)
                await self._shared.refresh(deployments, self._table.policy(deployments[0].group))
            binding = self._pick(call, tried, record.trace)
            if binding is None and not number and await self._waited_for_recovery(call):
                binding = self._pick(call, tried, record.trace)
            if binding is None:
                break
            deployment = binding.deployment.id
            if number:
                # Retry-After speaks for the deployment that sent it; another deployment is
                # tried after the jittered backoff alone.
                await self._before_retry(call, number, last if deployment == failed else None)
            self._breaker.begin(deployment)
            record.attempts += 1
            started = time.perf_counter()
            self.stats.start(deployment, self._clock(), input_tokens(call))
            span = start_attempt(call, binding, record)
            try:
                result = await attempt(call, binding)
            except UpstreamError as error:
                if span is not None:
                    span.failed(error)
                record.upstream_wait += time.perf_counter() - started
                self._attempt_ended(call, binding, started, error)
                self._observe_attempt(binding, started, "error")
                self._report_failure(deployment, error)
                if not error.retryable:
                    raise
                last, failed = error, deployment
                tried.add(deployment)
                continue
            except BaseException as error:
                if span is not None:
                    span.failed(error)
                self._attempt_ended(call, binding, None, None)
                self._breaker.abandon(deployment)
                raise
            if span is not None:
                span.succeeded()
            record.upstream_wait += time.perf_counter() - started
            self._attempt_ended(call, binding, started, None)
            self._observe_attempt(binding, started, "success")
            self._breaker.record_success(deployment)
            record.deployment = deployment
            return started, result
        if last is not None:
            raise last
        raise self._cooling_down(call)

    def _pick(self, call: Call, tried: set[str], trace: RouteTrace | None) -> Binding | None:
        """The first planned deployment out of cooldown, untried ones first; None if all cool."""
        seen: set[str] = set()
        again: Binding | None = None
        for binding in self._plan(call, trace):
            deployment = binding.deployment.id
            if deployment in seen:
                continue
            seen.add(deployment)
            if not self._breaker.available(deployment):
                if trace is not None:
                    trace.excluded[deployment] = "cooldown"
                    trace.candidates.remove(deployment)
                continue
            if deployment not in tried:
                return binding
            if again is None:
                again = binding
        return again

    async def _waited_for_recovery(self, call: Call) -> bool:
        """Sleep until the soonest deployment recovers, if that is within `max_wait`."""
        wait = self._breaker.retry_in([d.id for d in self._table.lookup(call.model)])
        if not 0 < wait <= self._breaker.max_wait:
            return False
        await asyncio.sleep(wait)
        return True

    def _cooling_down(self, call: Call) -> LlmuxError:
        deployments = [d.id for d in self._table.lookup(call.model)]
        wait = self._breaker.retry_in(deployments)
        if wait <= 0:
            return _exhausted(None)
        seconds = max(1, math.ceil(wait))
        return AllDeploymentsCoolingDown(
            f"Every deployment of `{call.model}` is cooling down after upstream failures;"
            f" retry in {seconds}s.",
            retry_after=seconds,
        )

    def _report_failure(self, deployment: str, error: UpstreamError) -> None:
        """Tell the breaker; the client's own mistakes (400, 413, 422) show a working deployment."""
        status = error.http_status
        if not counts_as_failure(status):
            self._breaker.record_success(deployment)
            return
        reason = self._breaker.record_failure(
            deployment,
            status,
            retry_after=error.retry_after,
            alternatives=self._has_alternatives.get(deployment, False),
        )
        if reason is not None:
            self._metrics.observe_cooldown(deployment, reason)
            get_logger().warning(
                "deployment_cooldown", deployment=deployment, reason=reason, status=status
            )

    def finish_stream(self, call: Call, record: CallRecord, stream: OpenStream) -> None:
        """Account a stream once it ended, however it ended."""
        record.upstream_seconds = time.perf_counter() - record.started
        if isinstance(stream.error, UpstreamError) and record.deployment is not None:
            self._report_failure(record.deployment, stream.error)
        usage = stream.decoder.usage
        if usage is None and record.client_closed:
            # Abandoned and cut short while draining: bill an estimate rather than nothing.
            usage = stream.estimated_usage(input_tokens(call))
        self._finish(call, record, usage)
        # A failed stream or one the client left ends early: its pace would look fast.
        usage, whole = stream.decoder.usage, stream.error is None and not record.client_closed
        if whole and usage is not None and record.first_frame_seconds is not None:
            self._metrics.observe_time_per_output_token(
                call.model,
                record.upstream_seconds - record.first_frame_seconds,
                usage.output_tokens,
            )

    def _plan(self, call: Call, trace: RouteTrace | None = None) -> list[Binding]:
        deployments = self._table.lookup(call.model)
        able = [d for d in deployments if call.endpoint in self._bindings[d.id].provider.endpoints]
        if not able:
            raise InvalidRequest(
                f"The model `{call.model}` cannot serve /v1{call.endpoint.value}: its provider"
                f" ({self._bindings[deployments[0].id].target.provider}) does not support it.",
                param="model",
                code="unsupported_endpoint_for_model",
            )
        policy = self._table.policy(able[0].group)
        if trace is not None:
            start_trace(trace, able[0].group, policy.strategy, deployments, able)
        fitting, too_small = fit_context(able, call.model, lambda: needed_tokens(call))
        request = estimate(call, policy.strategy == "lowest-cost")
        now = self._clock()
        if trace is not None:
            trace.excluded.update(dict.fromkeys((d.id for d in too_small), "context_window"))
        candidates = admit(
            fitting, self.stats, request, now, strict=policy.strategy == "lowest-tpm-rpm"
        )
        if trace is not None and len(candidates) < len(fitting):
            kept = {d.id for d in candidates}
            trace.excluded.update({d.id: "capacity" for d in fitting if d.id not in kept})
        ranked = order(policy, candidates, self.stats, request, self._rng, now)
        if trace is not None:
            trace.candidates = [d.id for d in ranked]
        cycled = (ranked * (self._attempts // len(ranked) + 1))[: max(self._attempts, len(ranked))]
        return [self._bindings[d.id] for d in cycled]

    def _attempt_ended(
        self, call: Call, binding: Binding, started: float | None, error: UpstreamError | None
    ) -> None:
        """Report an attempt's end to the router stats; a started stream ends at `close()`."""
        deployment = binding.deployment.id
        elapsed = None if started is None else time.perf_counter() - started
        if error is None and call.stream and elapsed is not None:
            self.stats.first_token(deployment, elapsed)
            return
        self.stats.end(
            deployment,
            self._clock(),
            elapsed=elapsed,
            failed=error is not None,
            timed_out=isinstance(error, UpstreamTimeout),
        )

    def _stream_closer(
        self, deployment: str | None, started: float
    ) -> Callable[[LlmuxError | None], None]:
        def closed(error: LlmuxError | None) -> None:
            if deployment is None:
                return
            failed = error is not None
            self.stats.end(
                deployment,
                self._clock(),
                elapsed=time.perf_counter() - started if failed else None,
                failed=failed,
                timed_out=isinstance(error, UpstreamTimeout),
            )

        return closed

    async def _before_retry(self, call: Call, retry: int, last: UpstreamError | None) -> None:
        self._metrics.observe_retry(call.model)
        await asyncio.sleep(self._backoff(retry, last))

    def _backoff(self, retry: int, last: UpstreamError | None) -> float:
        if last is not None and last.retry_after is not None:
            return min(float(last.retry_after), _RETRY_AFTER_CAP)
        ceiling: float = min(_BACKOFF_BASE * 2.0 ** (retry - 1), _BACKOFF_CAP)
        return ceiling * (0.5 + self._rng.random() / 2)

    async def _complete_once(self, call: Call, binding: Binding) -> tuple[bytes, Usage | None]:
        prepared = with_traceparent(binding.provider.encode_request(call, binding.target))
        response = await binding.transport.send(prepared, binding.timeouts)
        try:
            body = await response.read()
        finally:
            response.release()
        if response.status >= 400:
            raise binding.provider.decode_error(response.status, body, response.headers)
        return binding.provider.decode_response(call, body)

    async def _open_once(self, call: Call, binding: Binding) -> OpenStream:
        prepared = with_traceparent(binding.provider.encode_request(call, binding.target))
        response = await binding.transport.send(prepared, binding.timeouts)
        if response.status >= 400:
            try:
                body = await response.read()
            finally:
                response.release()
            raise binding.provider.decode_error(response.status, body, response.headers)
        decoder = binding.provider.stream_decoder(call)
        try:
            first = await first_frames(response, decoder)
        except BaseException:
            response.release()
            raise
        return OpenStream(response, decoder, first)

    def _observe_attempt(self, binding: Binding, started: float, outcome: str) -> None:
        self._metrics.observe_attempt(binding.deployment.id, outcome, time.perf_counter() - started)

    def _finish(self, call: Call, record: CallRecord, usage: Usage | None) -> None:
        record.usage = usage
        if usage is not None and record.deployment is not None:
            actual = usage.input_tokens + usage.output_tokens
            self.stats.add_tokens(record.deployment, self._clock(), actual - input_tokens(call))
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


def _fallback_reason(error: LlmuxError) -> Reason | None:
    """Which fallback map a group's final error calls for, if any."""
    if error.code == "context_length_exceeded":
        return Reason.CONTEXT_WINDOW
    if error.code in ("content_filter", "content_policy_violation"):
        return Reason.CONTENT_POLICY
    if error.retryable or isinstance(error, NoDeploymentAvailable):
        return Reason.EXHAUSTED
    return None


def _exhausted(last: UpstreamError | None) -> LlmuxError:
    if last is not None:
        return last
    return NoDeploymentAvailable("No deployment could take the request.")
