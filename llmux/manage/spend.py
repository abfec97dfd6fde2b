"""Spend reporting on the admin port: `/spend/*` and `/global/*` in LiteLLM's shapes.

Reads only: the spend ledger (`Store.spend_logs`, one row per request) and its daily
aggregates (`Store.daily_spend`, one per day and dimension value). Who sees what:

* `proxy_admin` and `proxy_admin_viewer` see every row.
* Everyone else sees the rows in their scope: their own (by `user_id`, or by the calling key
  for a key without a user), their admin teams' rows and their `org_admin` organizations' rows.
  `/spend/logs` and `/spend/keys|users|teams|tags` answer within that scope; a filter that
  points outside it matches nothing (never a 403 or 404, so nothing is confirmed).
* `/global/*` are proxy-wide reports: like LiteLLM, only the two admin roles may read them;
  anyone else gets a 403 naming the role it needs.

Dates are `YYYY-MM-DD` (a whole UTC day; `end_date` is inclusive) or ISO 8601 datetimes; a bad
one is a 422 naming the field. Daily reports default to the 30 days ending today (UTC).
Dates and scope are computed in `llmux.manage.spend_scope`; the shapes are in `spend_wire`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from llmux.governance.keys import hash_key
from llmux.manage.access import require
from llmux.manage.actor import Actor
from llmux.manage.routes import Ctx, endpoint
from llmux.manage.spend_scope import (
    FETCH_PAGE,
    day_range,
    narrow,
    page_of,
    parse_range,
    rows_of,
    scoped,
    spend_scope,
)
from llmux.manage.spend_wire import (
    ActivityDay,
    GlobalActivity,
    GlobalSpend,
    GroupSpend,
    KeySpend,
    ModelSpend,
    PageNo,
    ProviderSpend,
    ReportDay,
    Size,
    SpendLog,
    SpendLogsQuery,
    SpendRangeQuery,
    SpendReportQuery,
    SpendSummary,
    SpendTotal,
    TagSpend,
    TeamSpend,
    UserSpend,
    When,
)
from llmux.store.base import FilterValue, Page, SpendFilter
from llmux.store.records import DailySpend, DimensionKind, Key, SpendRow, Team, User

# Re-exported for llmux.manage.audit, which imports them from here: importing this module there
# also keeps the spend routes first in the route registry, so the OpenAPI document's order holds.
__all__ = ["PageNo", "Size", "When", "parse_range"]

_TAG = "Spend"
_Listed = TypeVar("_Listed", Key, User, Team)
_Total = TypeVar("_Total", bound=SpendTotal)
_ENCODER = msgspec.json.Encoder()


# --- /spend/logs --------------------------------------------------------------------------


def _log_filter(query: SpendLogsQuery) -> SpendFilter:
    start, end = parse_range(query.start_date, query.end_date)
    token = query.api_key
    if token is not None and token.startswith("sk-"):
        token = hash_key(token)
    return SpendFilter(
        token=token,
        user_id=query.user_id,
        team_id=query.team_id,
        organization_id=query.organization_id,
        model_group=query.model,
        request_id=query.request_id,
        start=start,
        end=end,
    )


def _spend_log(row: SpendRow) -> SpendLog:
    return SpendLog(
        request_id=row.request_id,
        api_key=row.token,
        user=row.user_id,
        team_id=row.team_id,
        organization_id=row.organization_id,
        end_user=row.end_user,
        model=row.model_group,
        model_group=row.model_group,
        model_id=row.deployment,
        provider=row.provider,
        prompt_tokens=row.input_tokens,
        completion_tokens=row.output_tokens,
        total_tokens=row.input_tokens + row.output_tokens,
        cached_tokens=row.cached_tokens,
        reasoning_tokens=row.reasoning_tokens,
        spend=row.cost,
        startTime=row.started_at,
        endTime=row.ended_at,
        latency_ms=row.latency_ms,
        ttft_ms=row.ttft_ms,
        status="success" if 200 <= row.status < 300 else "failure",
        http_status=row.status,
        error_code=row.error_code,
        request_tags=row.tags,
    )


def _summaries(rows: Iterable[SpendRow]) -> list[SpendSummary]:
    days: dict[date, SpendSummary] = {}
    for row in rows:
        day = row.started_at.astimezone(UTC).date()
        summary = days.get(day)
        if summary is None:
            summary = days[day] = SpendSummary(
                startTime=day, spend=0.0, requests=0, prompt_tokens=0, completion_tokens=0,
                total_tokens=0, models={}, api_keys={}, users={},
            )  # fmt: skip
        _add_to_summary(summary, row)
    return [days[day] for day in sorted(days)]


def _add_to_summary(summary: SpendSummary, row: SpendRow) -> None:
    summary.spend += row.cost
    summary.requests += 1
    summary.prompt_tokens += row.input_tokens
    summary.completion_tokens += row.output_tokens
    summary.total_tokens += row.input_tokens + row.output_tokens
    for breakdown, value in (
        (summary.models, row.model_group),
        (summary.api_keys, row.token),
        (summary.users, row.user_id),
    ):
        if value is not None:
            breakdown[value] = breakdown.get(value, 0.0) + row.cost


@endpoint(
    "GET",
    "/spend/logs",
    summary="Spend rows (newest first, `x-total-count` header) or daily summaries",
    tag=_TAG,
    query=SpendLogsQuery,
    response=list[SpendLog | SpendSummary],
)
async def spend_logs(ctx: Ctx, query: SpendLogsQuery) -> list[SpendSummary] | web.Response:
    """The visible ledger rows matching the filters, one page of them, or per-day summaries.

    `summarize=true` groups every matching row (not one page) per UTC day, with spend per
    model group, key and user, as LiteLLM's summarized `/spend/logs` does.
    """
    wanted = _log_filter(query)
    if query.summarize:
        filters = scoped(ctx.actor, wanted)
        return _summaries(await rows_of(ctx.store, [wanted] if filters is None else filters))
    rows, total = await page_of(ctx, wanted, query.page, query.size)
    # LiteLLM answers a bare list, so the count of all matches travels in a header.
    return web.Response(
        body=_ENCODER.encode([_spend_log(row) for row in rows]),
        content_type="application/json",
        headers={"x-total-count": str(total)},
    )


# --- /spend/keys|users|teams|tags ---------------------------------------------------------


@dataclass(slots=True)
class _Sum:
    spend: float = 0.0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, cost: float, requests: int, prompt: int, completion: int) -> None:
        self.spend += cost
        self.requests += requests
        self.prompt_tokens += prompt
        self.completion_tokens += completion

    def fields(self, **ids: str) -> dict[str, Any]:
        """The totals as `SpendTotal` fields, plus the `ids` naming what they belong to."""
        return {
            **ids,
            "spend": self.spend,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def _entries(cls: type[_Total], id_field: str, sums: dict[str, _Sum]) -> list[_Total]:
    return [
        msgspec.convert(total.fields(**{id_field: value}), cls) for value, total in sums.items()
    ]


def _sum_daily(aggregates: Iterable[DailySpend]) -> dict[str, _Sum]:
    sums: dict[str, _Sum] = defaultdict(_Sum)
    for agg in aggregates:
        sums[agg.value].add(agg.cost, agg.requests, agg.input_tokens, agg.output_tokens)
    return dict(sorted(sums.items(), key=lambda item: (-item[1].spend, item[0])))


async def _visible_keys(ctx: Ctx) -> list[str]:
    actor = ctx.actor
    tokens = {actor.id} if actor.key is not None else set()
    owners: list[Mapping[str, FilterValue]] = []
    if actor.user_id:
        owners.append({"user_id": actor.user_id})
    if actor.team_admin:
        owners.append({"team_id": sorted(actor.team_admin)})
    if actor.org_admin:
        owners.append({"organization_id": sorted(actor.org_admin)})
    for filters in owners:
        tokens.update(key.token for key in await _all(ctx, Key, filters))
    return sorted(tokens)


async def _visible_users(ctx: Ctx) -> list[str]:
    actor = ctx.actor
    users = {actor.user_id} if actor.user_id else set()
    if actor.org_admin:
        org = {"organization_id": sorted(actor.org_admin)}
        users.update(user.user_id for user in await _all(ctx, User, org))
    return sorted(users)


async def _visible_teams(ctx: Ctx) -> list[str]:
    teams = set(ctx.actor.team_admin)
    if ctx.actor.org_admin:
        org = {"organization_id": sorted(ctx.actor.org_admin)}
        teams.update(team.team_id for team in await _all(ctx, Team, org))
    return sorted(teams)


async def _all(ctx: Ctx, cls: type[_Listed], filters: Mapping[str, FilterValue]) -> list[_Listed]:
    found: list[_Listed] = []
    page = 1
    while True:
        listing: Page[_Listed] = await ctx.store.list(
            cls, filters=filters, page=page, size=FETCH_PAGE
        )
        found.extend(listing.items)
        if page * FETCH_PAGE >= listing.total:
            return found
        page += 1


async def _totals(
    ctx: Ctx, kind: DimensionKind, query: SpendRangeQuery, values: list[str] | None
) -> dict[str, _Sum]:
    first, last = day_range(query)
    if values is not None and not values:
        return {}
    return _sum_daily(await ctx.store.daily_spend(kind, start=first, end=last, values=values))


@endpoint(
    "GET", "/spend/keys", summary="Spend per key", tag=_TAG, query=SpendRangeQuery,
    response=list[KeySpend],
)  # fmt: skip
async def spend_keys(ctx: Ctx, query: SpendRangeQuery) -> list[KeySpend]:
    """Totals per key over the range: every key for admins, else the keys the actor sees."""
    values = None if ctx.actor.sees_all else await _visible_keys(ctx)
    sums = await _totals(ctx, "key", query, values)
    return _entries(KeySpend, "api_key", sums)


@endpoint(
    "GET", "/spend/users", summary="Spend per user", tag=_TAG, query=SpendRangeQuery,
    response=list[UserSpend],
)  # fmt: skip
async def spend_users(ctx: Ctx, query: SpendRangeQuery) -> list[UserSpend]:
    """Totals per user: all for admins, else the actor and its organizations' users.

    A team admin sees only itself: a member's total also holds spend outside the team.
    """
    values = None if ctx.actor.sees_all else await _visible_users(ctx)
    sums = await _totals(ctx, "user", query, values)
    return _entries(UserSpend, "user_id", sums)


@endpoint(
    "GET", "/spend/teams", summary="Spend per team", tag=_TAG, query=SpendRangeQuery,
    response=list[TeamSpend],
)  # fmt: skip
async def spend_teams(ctx: Ctx, query: SpendRangeQuery) -> list[TeamSpend]:
    """Totals per team: all for admins, else the teams the actor administers (directly or
    through its organizations); a plain member sees no team totals (they hold others' rows)."""
    values = None if ctx.actor.sees_all else await _visible_teams(ctx)
    sums = await _totals(ctx, "team", query, values)
    return _entries(TeamSpend, "team_id", sums)


@endpoint(
    "GET", "/spend/tags", summary="Spend per request tag", tag=_TAG, query=SpendRangeQuery,
    response=list[TagSpend],
)  # fmt: skip
async def spend_tags(ctx: Ctx, query: SpendRangeQuery) -> list[TagSpend]:
    """Totals per tag: from the daily aggregates for admins, else from the visible rows."""
    scope = spend_scope(ctx.actor)
    if scope is None:
        sums = await _totals(ctx, "tag", query, None)
    else:
        sums = await _tag_sums_in(ctx, query, scope)
    return [
        msgspec.convert(
            {
                "log_count": total.requests,
                "total_spend": total.spend,
                **total.fields(individual_request_tag=tag),
            },
            TagSpend,
        )
        for tag, total in sums.items()
    ]


async def _tag_sums_in(
    ctx: Ctx, query: SpendRangeQuery, scope: list[SpendFilter]
) -> dict[str, _Sum]:
    first, last = day_range(query)
    window = SpendFilter(
        start=datetime.combine(first, time(), UTC),
        end=datetime.combine(last + timedelta(days=1), time(), UTC),
    )
    filters = [f for f in (narrow(window, s) for s in scope) if f is not None]
    sums: dict[str, _Sum] = defaultdict(_Sum)
    for row in await rows_of(ctx.store, filters):
        for tag in dict.fromkeys(row.tags):
            sums[tag].add(row.cost, 1, row.input_tokens, row.output_tokens)
    return dict(sorted(sums.items(), key=lambda item: (-item[1].spend, item[0])))


# --- /global/* ----------------------------------------------------------------------------


def _require_admin_reader(actor: Actor) -> None:
    require(actor.sees_all, "the proxy_admin or proxy_admin_viewer role")


@endpoint("GET", "/global/spend", summary="Total proxy spend", tag=_TAG, response=GlobalSpend)
async def global_spend(ctx: Ctx, _: None) -> GlobalSpend:
    """Everything ever spent through the proxy (admins only)."""
    _require_admin_reader(ctx.actor)
    totals = await ctx.store.spend_totals(SpendFilter())
    return GlobalSpend(spend=totals.cost)


@endpoint(
    "GET", "/global/spend/report", summary="Daily spend per team, key, user, model or provider",
    tag=_TAG, query=SpendReportQuery, response=list[ReportDay],
)  # fmt: skip
async def global_spend_report(ctx: Ctx, query: SpendReportQuery) -> list[ReportDay]:
    """Per UTC day, each group's totals, biggest spender first (admins only)."""
    _require_admin_reader(ctx.actor)
    first, last = day_range(query)
    by_day: dict[date, list[DailySpend]] = defaultdict(list)
    # Each group_by value names its daily-aggregate dimension.
    for agg in await ctx.store.daily_spend(query.group_by, start=first, end=last):
        by_day[agg.day].append(agg)
    return [
        ReportDay(group_by_day=day, group_by=query.group_by, groups=_groups(by_day[day]))
        for day in sorted(by_day)
    ]


def _groups(aggregates: list[DailySpend]) -> list[GroupSpend]:
    return [
        GroupSpend(
            group=agg.value,
            total_spend=agg.cost,
            requests=agg.requests,
            prompt_tokens=agg.input_tokens,
            completion_tokens=agg.output_tokens,
            total_tokens=agg.input_tokens + agg.output_tokens,
        )
        for agg in sorted(aggregates, key=lambda agg: (-agg.cost, agg.value))
    ]


@endpoint(
    "GET", "/global/activity", summary="Daily requests, tokens, spend, latency and success rate",
    tag=_TAG, query=SpendRangeQuery, response=GlobalActivity,
)  # fmt: skip
async def global_activity(ctx: Ctx, query: SpendRangeQuery) -> GlobalActivity:
    """The proxy's daily activity, summed over models (every row has one; admins only)."""
    _require_admin_reader(ctx.actor)
    first, last = day_range(query)
    days: dict[date, list[DailySpend]] = defaultdict(list)
    # The gateway writes every row with its model group, so the "model" aggregates of a day
    # partition that day's rows: summing them counts each request once.
    for agg in await ctx.store.daily_spend("model", start=first, end=last):
        days[agg.day].append(agg)
    daily = [_activity_day(day, days[day]) for day in sorted(days)]
    return GlobalActivity(
        daily_data=daily,
        sum_api_requests=sum(day.api_requests for day in daily),
        sum_total_tokens=sum(day.total_tokens for day in daily),
        sum_spend=sum(day.spend for day in daily),
    )


def _activity_day(day: date, aggregates: list[DailySpend]) -> ActivityDay:
    requests = sum(agg.requests for agg in aggregates)
    return ActivityDay(
        date=day,
        api_requests=requests,
        total_tokens=sum(agg.input_tokens + agg.output_tokens for agg in aggregates),
        spend=sum(agg.cost for agg in aggregates),
        avg_latency_ms=sum(agg.latency_ms_sum for agg in aggregates) / requests,
        success_rate=sum(agg.successes for agg in aggregates) / requests,
    )


@endpoint(
    "GET", "/global/spend/models", summary="Spend per model group", tag=_TAG,
    query=SpendRangeQuery, response=list[ModelSpend],
)  # fmt: skip
async def global_spend_models(ctx: Ctx, query: SpendRangeQuery) -> list[ModelSpend]:
    """Spend per model group over the range, biggest first (admins only)."""
    _require_admin_reader(ctx.actor)
    sums = await _totals(ctx, "model", query, None)
    return [ModelSpend(model=model, spend=total.spend) for model, total in sums.items()]


@endpoint(
    "GET", "/global/spend/provider", summary="Spend per provider", tag=_TAG,
    query=SpendRangeQuery, response=list[ProviderSpend],
)  # fmt: skip
async def global_spend_provider(ctx: Ctx, query: SpendRangeQuery) -> list[ProviderSpend]:
    """Spend per provider over the range, biggest first (admins only)."""
    _require_admin_reader(ctx.actor)
    sums = await _totals(ctx, "provider", query, None)
    return [ProviderSpend(provider=name, spend=total.spend) for name, total in sums.items()]
