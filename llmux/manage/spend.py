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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from aiohttp import web

from llmux.errors import UnprocessableEntity
from llmux.governance.keys import hash_key
from llmux.manage.access import require
from llmux.manage.actor import Actor
from llmux.manage.routes import Ctx, endpoint
from llmux.store.base import FilterValue, Page, SpendFilter, Store
from llmux.store.records import DailySpend, DimensionKind, Key, SpendRow, Team, User

__all__ = [
    "ActivityDay",
    "GlobalActivity",
    "GlobalSpend",
    "GroupSpend",
    "ReportDay",
    "PageNo",
    "Size",
    "SpendLog",
    "SpendLogsQuery",
    "SpendRangeQuery",
    "SpendReportQuery",
    "SpendSummary",
    "When",
    "parse_range",
    "parse_when",
    "spend_scope",
]

_TAG = "Spend"
_FETCH = 1000
"""Rows per store page when a report needs every row of a scope."""
_DEFAULT_DAYS = 30
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_Listed = TypeVar("_Listed", Key, User, Team)
_Total = TypeVar("_Total", bound="SpendTotal")
_ENCODER = msgspec.json.Encoder()

Size = Annotated[int, msgspec.Meta(ge=1, le=1000, description="Rows per page (1..1000).")]
PageNo = Annotated[int, msgspec.Meta(ge=1, le=1_000_000, description="1-based page number.")]
When = Annotated[
    str | None, msgspec.Meta(description="YYYY-MM-DD (UTC day) or an ISO 8601 datetime.")
]


# --- wire types ---------------------------------------------------------------------------


class SpendLogsQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Filters of `/spend/logs`; every given one must match."""

    api_key: str | None = None
    """A raw `sk-` key or its hash (`token`)."""
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    model: str | None = None
    """The model group the client asked for."""
    request_id: str | None = None
    start_date: When = None
    end_date: When = None
    summarize: bool = False
    """Group the matching rows per UTC day instead of listing them."""
    page: PageNo = 1
    size: Size = 50


class SpendRangeQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A date range over the daily aggregates (default: the 30 days ending today)."""

    start_date: When = None
    end_date: When = None


class SpendReportQuery(SpendRangeQuery, kw_only=True, forbid_unknown_fields=True):
    """`/global/spend/report`: a date range and the dimension to group each day by."""

    group_by: Literal["team", "key", "user", "model", "provider"] = "team"


class SpendLog(msgspec.Struct, kw_only=True, tag_field="object", tag="spend_log"):
    """One request in the ledger (LiteLLM's SpendLogs row names where they exist)."""

    request_id: str
    api_key: str | None
    """The key's hash; null for the master key."""
    user: str | None
    team_id: str | None
    organization_id: str | None
    end_user: str | None
    model: str | None
    model_group: str | None
    model_id: str | None
    """The deployment that served the request."""
    provider: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    spend: float
    startTime: datetime  # LiteLLM's field name
    endTime: datetime
    latency_ms: float
    ttft_ms: float | None
    status: Literal["success", "failure"]
    http_status: int
    error_code: str | None
    request_tags: list[str]


class SpendSummary(msgspec.Struct, kw_only=True, tag_field="object", tag="spend_summary"):
    """One UTC day of matching rows (`summarize=true`), spend broken down like LiteLLM's."""

    startTime: date  # LiteLLM's field name
    spend: float
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    models: dict[str, float]
    """Spend per model group."""
    api_keys: dict[str, float]
    """Spend per key hash."""
    users: dict[str, float]
    """Spend per user id."""


class SpendTotal(msgspec.Struct, kw_only=True):
    """Totals of one key, user, team or tag over a date range."""

    spend: float
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class KeySpend(SpendTotal, kw_only=True):
    """`/spend/keys` entry."""

    api_key: str


class UserSpend(SpendTotal, kw_only=True):
    """`/spend/users` entry."""

    user_id: str


class TeamSpend(SpendTotal, kw_only=True):
    """`/spend/teams` entry."""

    team_id: str


class TagSpend(SpendTotal, kw_only=True):
    """`/spend/tags` entry (LiteLLM's tag names plus the token totals)."""

    individual_request_tag: str
    log_count: int
    total_spend: float


class GlobalSpend(msgspec.Struct, kw_only=True):
    """`/global/spend`: everything ever spent; llmux has no proxy-wide budget (null)."""

    spend: float
    max_budget: float | None = None


class GroupSpend(msgspec.Struct, kw_only=True):
    """One group's totals within one day of `/global/spend/report`."""

    group: str
    total_spend: float
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ReportDay(msgspec.Struct, kw_only=True):
    """One day of `/global/spend/report`."""

    group_by_day: date
    group_by: str
    groups: list[GroupSpend]


class ActivityDay(msgspec.Struct, kw_only=True):
    """One day of `/global/activity`."""

    date: date
    api_requests: int
    total_tokens: int
    spend: float
    avg_latency_ms: float
    success_rate: float


class GlobalActivity(msgspec.Struct, kw_only=True):
    """`/global/activity`: LiteLLM's daily series and sums, plus spend, latency, successes."""

    daily_data: list[ActivityDay]
    sum_api_requests: int
    sum_total_tokens: int
    sum_spend: float


class ModelSpend(msgspec.Struct, kw_only=True):
    """`/global/spend/models` entry."""

    model: str
    spend: float


class ProviderSpend(msgspec.Struct, kw_only=True):
    """`/global/spend/provider` entry."""

    provider: str
    spend: float


# --- dates --------------------------------------------------------------------------------


def parse_when(value: str, field: str, *, end: bool = False) -> datetime:
    """`value` as an aware UTC instant; a bare day is its midnight (the next one when `end`).

    Only 1970..8999 is accepted, so day arithmetic and every backend stay far from overflow.
    """
    try:
        whole_day = len(value) == 10
        if whole_day:
            moment = datetime.combine(date.fromisoformat(value), time(), UTC)
        else:
            parsed = datetime.fromisoformat(value)
            moment = parsed.replace(tzinfo=parsed.tzinfo or UTC).astimezone(UTC)
    except (ValueError, OverflowError):
        raise UnprocessableEntity(
            f"Invalid '{field}': expected YYYY-MM-DD or an ISO 8601 datetime, got {value!r}.",
            param=field,
        ) from None
    if not _EARLIEST <= moment < _LATEST:
        raise UnprocessableEntity(
            f"Invalid '{field}': it must fall between 1970-01-01 and 8999-12-31.", param=field
        )
    return moment + timedelta(days=1) if end and whole_day else moment


def parse_range(
    start_date: str | None, end_date: str | None
) -> tuple[datetime | None, datetime | None]:
    """`start_date` <= t < `end_date` as UTC instants (None: open); 422 if the end comes first."""
    start = parse_when(start_date, "start_date") if start_date else None
    end = parse_when(end_date, "end_date", end=True) if end_date else None
    if start is not None and end is not None and end <= start:
        raise UnprocessableEntity(
            "Invalid 'end_date': it must not be before start_date.", param="end_date"
        )
    return start, end


def _day_range(query: SpendRangeQuery) -> tuple[date, date]:
    """Inclusive UTC days of a daily report."""
    start, end = parse_range(query.start_date, query.end_date)
    last = (end - timedelta(microseconds=1)).date() if end else datetime.now(UTC).date()
    first = start.date() if start else last - timedelta(days=_DEFAULT_DAYS - 1)
    return first, last


# --- scope --------------------------------------------------------------------------------


def spend_scope(actor: Actor) -> list[SpendFilter] | None:
    """The rows `actor` may read, as filters any of which a row must match (None: all)."""
    if actor.sees_all:
        return None
    own = SpendFilter(user_id=actor.user_id) if actor.user_id else SpendFilter(token=actor.id)
    teams = [SpendFilter(team_id=team) for team in sorted(actor.team_admin)]
    orgs = [SpendFilter(organization_id=org) for org in sorted(actor.org_admin)]
    return [own, *teams, *orgs]


def _narrow(wanted: SpendFilter, scope: SpendFilter) -> SpendFilter | None:
    """`wanted` restricted to `scope`, or None when the two cannot both hold."""
    merged = msgspec.structs.replace(wanted)
    for name in ("token", "user_id", "team_id", "organization_id"):
        limit = getattr(scope, name)
        if limit is None:
            continue
        if getattr(wanted, name) not in (None, limit):
            return None
        setattr(merged, name, limit)
    return merged


def _scoped(actor: Actor, wanted: SpendFilter) -> list[SpendFilter] | None:
    """The filters to run for `wanted` within the actor's scope (None: `wanted` as is)."""
    scope = spend_scope(actor)
    if scope is None:
        return None
    return [f for f in (_narrow(wanted, s) for s in scope) if f is not None]


async def _every_row(store: Store, filters: SpendFilter) -> list[SpendRow]:
    rows: list[SpendRow] = []
    page = 1
    while True:
        found = await store.spend_logs(filters, page=page, size=_FETCH)
        rows.extend(found.items)
        if page * _FETCH >= found.total:
            return rows
        page += 1


async def _rows_of(store: Store, filters: Sequence[SpendFilter]) -> list[SpendRow]:
    """Every row matching any of `filters`, once each, newest first (the store's order)."""
    unique: dict[str, SpendRow] = {}
    for each in filters:
        for row in await _every_row(store, each):
            unique.setdefault(row.request_id, row)
    rows = sorted(unique.values(), key=lambda row: row.request_id)
    rows.sort(key=lambda row: row.started_at, reverse=True)
    return rows


async def _page_of(
    ctx: Ctx, wanted: SpendFilter, page: int, size: int
) -> tuple[list[SpendRow], int]:
    """One page of the visible rows matching `wanted`, and how many match in all."""
    filters = _scoped(ctx.actor, wanted)
    if filters is None or len(filters) == 1:
        found = await ctx.store.spend_logs(filters[0] if filters else wanted, page=page, size=size)
        return found.items, found.total
    # Overlapping scopes (a team inside an admin's organization) share rows: merge, then page.
    rows = await _rows_of(ctx.store, filters)
    start = (page - 1) * size
    return rows[start : start + size], len(rows)


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
        filters = _scoped(ctx.actor, wanted)
        return _summaries(await _rows_of(ctx.store, [wanted] if filters is None else filters))
    rows, total = await _page_of(ctx, wanted, query.page, query.size)
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
        listing: Page[_Listed] = await ctx.store.list(cls, filters=filters, page=page, size=_FETCH)
        found.extend(listing.items)
        if page * _FETCH >= listing.total:
            return found
        page += 1


async def _totals(
    ctx: Ctx, kind: DimensionKind, query: SpendRangeQuery, values: list[str] | None
) -> dict[str, _Sum]:
    first, last = _day_range(query)
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
    first, last = _day_range(query)
    window = SpendFilter(
        start=datetime.combine(first, time(), UTC),
        end=datetime.combine(last + timedelta(days=1), time(), UTC),
    )
    filters = [f for f in (_narrow(window, s) for s in scope) if f is not None]
    sums: dict[str, _Sum] = defaultdict(_Sum)
    for row in await _rows_of(ctx.store, filters):
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
    first, last = _day_range(query)
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
    first, last = _day_range(query)
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
