"""The governance gate of one call: model access, rate limits and budgets in; spend out.

`admit` runs after the body is parsed and before any upstream call: it resolves key and team
model aliases, checks model access at every level, acquires every applicable rate limit (key,
user, team, organization, end user; all models and per model) in one limiter call, and reserves
the call's estimated cost on every budget line in one ledger call. A refusal releases whatever
was taken. `finish` runs once the call ended however it ended: it prices the usage, queues the
spend row for the background writer and queues the settlement of limits and budgets for one
settler task, which settles everything that ended meanwhile in one limiter call and one ledger
call (one Redis round trip each in distributed mode), so the client never waits on a store.

Estimates: tokens are the body's bytes / 4 plus the output cap (`DEFAULT_OUTPUT_TOKENS` when the
request sets none); the cost estimate is the highest any deployment of the group would charge
for them. A hard budget is therefore overshot only by calls whose real cost beats their
estimate, summed over the calls in flight: an output longer than `DEFAULT_OUTPUT_TOKENS` with
no cap set, or a prompt that tokenizes to more than bytes / 4 (short messages, where the chat
template's per-message tokens dominate, and scripts of few bytes per token). Each such call
overshoots by at most its real cost, so the overshoot stays below the cost of the calls in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from redis.exceptions import RedisError

from llmux.errors import BudgetExceeded, PermissionDenied, RateLimited, ServiceUnavailable
from llmux.governance.budget_events import BudgetEvents
from llmux.governance.budgets import BudgetLedger, BudgetLine, Hold, SoftBudgetCrossing
from llmux.governance.costing import Costing
from llmux.governance.durations import next_reset, parse_duration
from llmux.governance.limits import Lease, Limit, RateLimiter, applicable_limits
from llmux.governance.spend import SpendWriter
from llmux.governance.tenancy import Level, Tenancy, TenancyResolver, model_allowed
from llmux.log import get_logger
from llmux.metrics import Metrics
from llmux.store.records import EndUser, SpendRow
from llmux.types import Usage

__all__ = ["DEFAULT_OUTPUT_TOKENS", "Admission", "Gate", "Outcome"]

DEFAULT_OUTPUT_TOKENS = 4096
"""Output tokens reserved (rate limits and budgets) for a request that sets no output cap."""

_OUTPUT_CAPS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_int = msgspec.json.Decoder(int | None)
_str = msgspec.json.Decoder(str | None)


class _Metadata(msgspec.Struct):
    user_id: str | None = None


_metadata = msgspec.json.Decoder(_Metadata | None)


@dataclass(slots=True)
class Admission:
    """What `admit` took for one call, for `finish` to settle."""

    model: str
    """The model group the call runs on (after key and team aliases)."""
    tenancy: Tenancy | None
    end_user: str | None
    input_tokens: int
    reserved_tokens: int
    lease: Lease | None = None
    hold: Hold | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def headers(self) -> dict[str, str]:
        """The `x-ratelimit-*` headers of the most constraining limit (none without limits)."""
        return self.lease.headers() if self.lease is not None else {}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call ended, as `finish` prices and records it."""

    status: int
    deployment: str | None
    usage: Usage | None
    latency_ms: float
    ttft_ms: float | None = None
    error_code: str | None = None


class Gate:
    """Admits and settles calls; one per process, shared by every request."""

    def __init__(
        self,
        resolver: TenancyResolver | None,
        limiter: RateLimiter,
        ledger: BudgetLedger,
        writer: SpendWriter | None,
        metrics: Metrics,
        *,
        calendar_aligned: bool = False,
        fail_open: bool = True,
        clock: Callable[[], float] = time.time,
        budget_events: BudgetEvents | None = None,
    ) -> None:
        self.resolver = resolver
        self._budget_events = budget_events
        self._fail_open = fail_open
        self._limiter = limiter
        self._ledger = ledger
        self._writer = writer
        self._metrics = metrics
        self._aligned = calendar_aligned
        self._clock = clock
        self._pending: list[_Settlement] = []
        self._wake = asyncio.Event()
        self._settler: asyncio.Task[None] | None = None
        self._settling = False

    async def admit(
        self,
        tenancy: Tenancy | None,
        model: str,
        body: dict[str, msgspec.Raw],
        deployments: Callable[[str], Sequence[str]],
        costing: Costing,
        request_id: str | None = None,
    ) -> Admission:
        """Check and take what the call needs; raise 403 or 429 naming the level that refused."""
        if tenancy is not None:
            model = tenancy.resolve_model(model)
            refused_by = tenancy.denial(model)
            if refused_by is not None:
                raise PermissionDenied(
                    f"This key may not use the model '{model}': its {refused_by}'s model"
                    " list does not include it.",
                    param="model",
                    code="model_not_allowed",
                )
        input_tokens = sum(len(raw) for raw in body.values()) // 4
        output_cap = _output_cap(body)
        admission = Admission(
            model=model,
            tenancy=tenancy,
            end_user=_end_user(body),
            input_tokens=input_tokens,
            reserved_tokens=input_tokens + output_cap,
        )
        if tenancy is None:
            return admission
        end_user = await self._end_user(admission)
        limits, lines = self._rules(tenancy, end_user, model)
        if limits:
            admission.lease = await self._acquire(limits, admission.reserved_tokens)
        if lines:
            estimate = costing.estimate(deployments(model), input_tokens, output_cap)
            try:
                admission.hold = await self._ledger.reserve(lines, estimate)
            except BudgetExceeded as refusal:
                self._metrics.observe_budget_rejection(refusal.level)
                if self._budget_events is not None:
                    self._budget_events.report(refusal, request_id)
                self._release(admission)
                raise
            except (RedisError, OSError) as error:
                self._budgets_unavailable(admission, error)
        return admission

    def _budgets_unavailable(self, admission: Admission, error: Exception) -> None:
        """Redis cannot hold the reservation: go on unchecked (fail open) or refuse with 503."""
        self._metrics.observe_redis_error("budget")
        get_logger().warning(
            "budget_check_unavailable", error=str(error), fail_open=self._fail_open
        )
        if self._fail_open:
            return
        self._release(admission)
        raise ServiceUnavailable(
            "Budgets cannot be checked: Redis is unavailable.", code="budget_ledger_unavailable"
        ) from error

    async def _end_user(self, admission: Admission) -> EndUser | None:
        if admission.end_user is None or self.resolver is None:
            return None
        end_user = await self.resolver.end_user(admission.end_user)
        if end_user is not None and end_user.blocked:
            raise PermissionDenied(
                "The end user of this request is blocked.", param="user", code="end_user_blocked"
            )
        if end_user is not None and not model_allowed(end_user.models, admission.model):
            raise PermissionDenied(
                f"The end user of this request may not use the model '{admission.model}'.",
                param="model",
                code="model_not_allowed",
            )
        return end_user

    def _rules(
        self, tenancy: Tenancy, end_user: EndUser | None, model: str
    ) -> tuple[list[Limit], list[BudgetLine]]:
        levels: list[Level] = list(tenancy.levels)
        limits = applicable_limits(tenancy.limits, model)
        lines = list(tenancy.budget_lines)
        if end_user is not None:
            level = Level("end_user", end_user.user_id, end_user, None)
            levels.append(level)
            limits.extend(applicable_limits(level.limits(), model))
            line = level.budget_line()
            if line is not None:
                lines.append(line)
        now = datetime.fromtimestamp(self._clock(), UTC)
        for level in levels:
            budget = level.model_budgets().get(model)
            if budget is not None:
                period = ""
                if budget.time_period:
                    # Per-model budgets keep no reset time: their periods are calendar-aligned.
                    period = next_reset(parse_duration(budget.time_period), now, True).isoformat()
                lines.append(
                    BudgetLine(
                        f"{level.name}_model",
                        level.subject,
                        model,
                        budget.budget_limit,
                        None,
                        period,
                    )
                )
        return limits, lines

    async def _acquire(self, limits: list[Limit], tokens: int) -> Lease:
        try:
            return await self._limiter.acquire(limits, tokens, self._clock())
        except RateLimited as refusal:
            self._metrics.observe_rate_limited(refusal.level)
            raise

    def _release(self, admission: Admission) -> None:
        lease, admission.lease = admission.lease, None
        if lease is not None:
            self._queue((lease, None, 0, 0.0))

    def finish(
        self, admission: Admission, outcome: Outcome, costing: Costing, request_id: str
    ) -> float:
        """Price the call, queue its spend row, settle limits and budgets; returns the cost."""
        cost = costing.cost(outcome.deployment, outcome.usage)
        if cost is None:
            self._metrics.observe_unpriced(admission.model)
            cost = 0.0
        tenancy = admission.tenancy
        self._metrics.observe_cost(admission.model, tenancy.team_id if tenancy else None, cost)
        if self._writer is not None:
            self._writer.record(self._row(admission, outcome, costing, request_id, cost))
        usage = outcome.usage
        actual_tokens = usage.total_tokens if usage is not None else 0
        if admission.lease is not None or admission.hold is not None:
            self._queue((admission.lease, admission.hold, actual_tokens, cost))
        return cost

    def _row(
        self,
        admission: Admission,
        outcome: Outcome,
        costing: Costing,
        request_id: str,
        cost: float,
    ) -> SpendRow:
        tenancy = admission.tenancy
        usage = outcome.usage or Usage()
        priced = costing.deployment(outcome.deployment)
        return SpendRow(
            request_id=request_id,
            token=tenancy.key.token if tenancy else None,
            user_id=tenancy.key.user_id if tenancy else None,
            team_id=tenancy.team_id if tenancy else None,
            organization_id=tenancy.organization_id if tenancy else None,
            end_user=admission.end_user,
            model_group=admission.model,
            deployment=outcome.deployment,
            provider=priced.provider if priced else None,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost=cost,
            latency_ms=outcome.latency_ms,
            ttft_ms=outcome.ttft_ms,
            status=outcome.status,
            error_code=outcome.error_code,
            tags=list(tenancy.key.tags) if tenancy else [],
            started_at=admission.started_at,
            ended_at=datetime.now(UTC),
        )

    def _queue(self, settlement: _Settlement) -> None:
        """Hand a settlement to the settler task; every one queued meanwhile goes together."""
        self._pending.append(settlement)
        self._wake.set()
        if self._settler is None:
            self._settler = asyncio.create_task(self._settle_forever(), name="llmux-settle")

    async def _settle_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._settling = True
            try:
                await self._settle_pending()
            except Exception as exc:  # the settler must outlive any one failure
                get_logger().warning("settle_failed", error=str(exc))
            finally:
                self._settling = False

    async def _settle_pending(self) -> None:
        """Settle everything queued: one limiter call and one ledger call for the lot (in
        distributed mode, one Redis round trip each however many calls ended meanwhile)."""
        batch, self._pending = self._pending, []
        leases = [(lease, tokens) for lease, _, tokens, _ in batch if lease is not None]
        holds = [(hold, cost) for _, hold, _, cost in batch if hold is not None]
        if leases:
            await self._limiter.settle_many(leases, self._clock())
        if not holds:
            return
        try:
            crossed = await self._ledger.settle_many(holds)
        except Exception as exc:  # a lost settle must not stop the settler
            get_logger().warning("budget_settle_failed", error=str(exc), holds=len(holds))
            return
        for crossings in crossed:
            for crossing in crossings:
                self._soft_budget_crossed(crossing)

    def _soft_budget_crossed(self, crossing: SoftBudgetCrossing) -> None:
        line = crossing.line
        self._metrics.observe_soft_budget(line.level)
        get_logger().warning(
            "soft_budget_crossed",
            level=line.level,
            subject=line.subject,
            model=line.model,
            soft_budget=line.soft_budget,
            spent=round(crossing.spent, 6),
        )

    async def close(self) -> None:
        """Settle what is still queued and stop the settler (shutdown)."""
        for _ in range(_CLOSE_POLLS):
            if not self._settling:
                break
            await asyncio.sleep(_CLOSE_POLL)
        if self._settler is not None:
            self._settler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._settler
            self._settler = None
        if self._pending:
            await self._settle_pending()


_CLOSE_POLL = 0.01
_CLOSE_POLLS = 200
"""At shutdown, a batch being settled gets up to two seconds to finish."""

_Settlement = tuple[Lease | None, Hold | None, int, float]
"""A finished call's lease, hold, actual tokens and actual cost."""


def _output_cap(body: dict[str, msgspec.Raw]) -> int:
    for name in _OUTPUT_CAPS:
        raw = body.get(name)
        if raw is not None:
            try:
                value = _int.decode(raw)
            except msgspec.ValidationError:
                continue
            if isinstance(value, int) and value > 0:
                return int(value)
    return DEFAULT_OUTPUT_TOKENS


def _end_user(body: dict[str, msgspec.Raw]) -> str | None:
    """The request's end user: `user` (OpenAI dialects) or `metadata.user_id` (Anthropic)."""
    raw = body.get("user")
    try:
        if raw is not None:
            return _str.decode(raw) or None
        metadata = body.get("metadata")
        if metadata is not None:
            decoded = _metadata.decode(metadata)
            return decoded.user_id if decoded is not None else None
    except msgspec.ValidationError:
        return None
    return None
