"""The wire shapes of the spend reports (`/spend/*`, `/global/*`): queries and answers.

Field names follow LiteLLM's spend endpoints (`startTime`, `api_key`, ...); `llmux.manage.spend`
declares the endpoints that decode and encode these, and `llmux.manage.audit` shares the date
and paging types.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "ActivityDay",
    "GlobalActivity",
    "GlobalSpend",
    "GroupSpend",
    "KeySpend",
    "ModelSpend",
    "PageNo",
    "ProviderSpend",
    "ReportDay",
    "Size",
    "SpendLog",
    "SpendLogsQuery",
    "SpendRangeQuery",
    "SpendReportQuery",
    "SpendSummary",
    "SpendTotal",
    "TagSpend",
    "TeamSpend",
    "UserSpend",
    "When",
]

Size = Annotated[int, msgspec.Meta(ge=1, le=1000, description="Rows per page (1..1000).")]
PageNo = Annotated[int, msgspec.Meta(ge=1, le=1_000_000, description="1-based page number.")]
When = Annotated[
    str | None, msgspec.Meta(description="YYYY-MM-DD (UTC day) or an ISO 8601 datetime.")
]


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
