"""The governance records every store holds: msgspec Structs with LiteLLM's field names.

Conventions shared by every record and every backend:

* Timestamps are timezone-aware UTC `datetime`s (microsecond precision; the SQLite backend
  stores integer microseconds since the epoch, Postgres `timestamptz`). Days are `date`s in UTC.
* Money is float USD. Budgets compare against it with a tolerance of a fraction of a cent, so
  float rounding never matters; the ledger keeps the exact per-request float cost.
* Records are plain values: a store never mutates one it was handed, it returns new ones.

Entities with a spend (`Key`, `User`, `Team`, `Organization`, `EndUser`) share `Governed`:
the limit and budget fields LiteLLM puts on each level. `spend`, `budget_reset_at`,
`Key.last_used_at` and `Key.version` are maintained by the store (`add_spend`,
`reset_budget`, `touch_keys`, `update`); callers read them, and only `put` overwrites them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, Final, Literal

import msgspec

__all__ = [
    "DIMENSION_KINDS",
    "SPEND_KINDS",
    "AuditEntry",
    "Budget",
    "DailySpend",
    "DimensionKind",
    "DueReset",
    "EndUser",
    "Entity",
    "Governed",
    "Key",
    "KeyType",
    "Membership",
    "ModelBudget",
    "OrgMembership",
    "OrgRole",
    "Organization",
    "SpendKind",
    "SpendRow",
    "SpendTotals",
    "StoredResponse",
    "Team",
    "TeamMembership",
    "TeamRole",
    "User",
    "UserRole",
    "utcnow",
]

KeyType = Literal["default", "llm_api", "management", "read_only"]
UserRole = Literal["proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"]
TeamRole = Literal["admin", "user"]
OrgRole = Literal["org_admin", "internal_user", "internal_user_viewer"]

SpendKind = Literal["key", "user", "team", "organization", "end_user"]
"""The entities that carry a `spend` and a `budget_reset_at`."""
SPEND_KINDS: Final[tuple[SpendKind, ...]] = ("key", "user", "team", "organization", "end_user")

DimensionKind = Literal["key", "user", "team", "org", "model", "provider", "end_user", "tag"]
"""The dimensions daily aggregates are kept for (`org` is an organization id)."""
DIMENSION_KINDS: Final[tuple[DimensionKind, ...]] = (
    "key",
    "user",
    "team",
    "org",
    "model",
    "provider",
    "end_user",
    "tag",
)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the default clock of every store)."""
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


class ModelBudget(msgspec.Struct, kw_only=True):
    """A per-model budget inside `model_max_budget`: USD limit over an optional period."""

    budget_limit: float
    time_period: str | None = None


class Budget(msgspec.Struct, kw_only=True):
    """A reusable budget (`/budget/new`) attached to keys, organizations and end users."""

    budget_id: str
    max_budget: float | None = None
    soft_budget: float | None = None
    max_parallel_requests: int | None = None
    tpm_limit: int | None = None
    rpm_limit: int | None = None
    model_max_budget: dict[str, ModelBudget] = {}
    budget_duration: str | None = None
    budget_reset_at: datetime | None = None
    created_by: str | None = None
    created_at: datetime = msgspec.field(default_factory=utcnow)
    updated_at: datetime = msgspec.field(default_factory=utcnow)


class Governed(msgspec.Struct, kw_only=True):
    """The limit, budget and bookkeeping fields shared by every entity that spends."""

    models: list[str] = []
    budget_id: str | None = None
    max_budget: float | None = None
    soft_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: datetime | None = None
    max_parallel_requests: int | None = None
    tpm_limit: int | None = None
    rpm_limit: int | None = None
    model_rpm_limit: dict[str, int] = {}
    model_tpm_limit: dict[str, int] = {}
    model_max_budget: dict[str, ModelBudget] = {}
    spend: float = 0.0
    blocked: bool = False
    metadata: dict[str, Any] = {}
    created_by: str | None = None
    created_at: datetime = msgspec.field(default_factory=utcnow)
    updated_at: datetime = msgspec.field(default_factory=utcnow)


class Organization(Governed, kw_only=True):
    """An organization: the top of the hierarchy (`/organization/new`)."""

    organization_id: str
    organization_alias: str | None = None


class Team(Governed, kw_only=True):
    """A team inside an optional organization (`/team/new`)."""

    team_id: str
    team_alias: str | None = None
    organization_id: str | None = None
    model_aliases: dict[str, str] = {}
    tags: list[str] = []
    team_member_budget: float | None = None
    team_member_rpm_limit: int | None = None
    team_member_tpm_limit: int | None = None


class User(Governed, kw_only=True):
    """An internal user (`/user/new`); `user_role` is the proxy-wide role."""

    user_id: str
    user_email: str | None = None
    user_alias: str | None = None
    user_role: UserRole = "internal_user"
    organization_id: str | None = None


class EndUser(Governed, kw_only=True):
    """An end user: the `user` field of a request (`/customer/new`)."""

    user_id: str
    alias: str | None = None
    allowed_model_region: Literal["eu", "us"] | None = None
    default_model: str | None = None


class Key(Governed, kw_only=True):
    """A virtual key, stored only as `token`: the SHA-256 hex digest of the `sk-...` value.

    `version` starts at 1 and is bumped by every `update`, so caches can refuse to write back
    an older copy; spend increments and `touch_keys` do not bump it.
    """

    token: str
    key_name: str | None = None
    key_alias: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    aliases: dict[str, str] = {}
    expires: datetime | None = None
    key_type: KeyType = "default"
    tags: list[str] = []
    last_used_at: datetime | None = None
    version: int = 1


class TeamMembership(msgspec.Struct, kw_only=True):
    """A user's membership of a team, with an optional budget inside that team."""

    team_id: str
    user_id: str
    role: TeamRole = "user"
    max_budget_in_team: float | None = None
    spend: float = 0.0
    created_at: datetime = msgspec.field(default_factory=utcnow)
    updated_at: datetime = msgspec.field(default_factory=utcnow)


class OrgMembership(msgspec.Struct, kw_only=True):
    """A user's membership of an organization and their role in it."""

    organization_id: str
    user_id: str
    user_role: OrgRole = "internal_user"
    created_at: datetime = msgspec.field(default_factory=utcnow)
    updated_at: datetime = msgspec.field(default_factory=utcnow)


Membership = TeamMembership | OrgMembership
Entity = Budget | Organization | Team | User | EndUser | Key


class SpendRow(msgspec.Struct, kw_only=True):
    """One request in the spend ledger; `request_id` is unique, so writes are idempotent.

    `status` is the HTTP status the client got; 2xx counts as a success in the aggregates.
    `token` is the key hash (None for the master key or when auth is off).
    """

    request_id: str
    token: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    end_user: str | None = None
    model_group: str | None = None
    deployment: str | None = None
    provider: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: int = 200
    error_code: str | None = None
    tags: list[str] = []
    started_at: datetime
    ended_at: datetime


class DailySpend(msgspec.Struct, kw_only=True):
    """Per-day totals of one dimension value (`kind`, `value`), kept up to date by `add_spend`."""

    day: date
    kind: DimensionKind
    value: str
    requests: int = 0
    successes: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0
    latency_ms_sum: float = 0.0


class SpendTotals(msgspec.Struct, kw_only=True):
    """Sums over the spend rows that match a filter."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


class DueReset(msgspec.Struct, frozen=True, kw_only=True):
    """An entity whose `budget_reset_at` has passed, as returned by `due_budget_resets`."""

    kind: SpendKind
    id: str
    budget_duration: str | None
    budget_reset_at: datetime


class AuditEntry(msgspec.Struct, kw_only=True):
    """One append-only audit record, written in the same transaction as its mutation.

    When a mutation is given an entry whose `before`/`after` are None, the store fills them
    with the record as it was and as it became (builtins, JSON-ready).
    """

    id: str = msgspec.field(default_factory=_new_id)
    at: datetime = msgspec.field(default_factory=utcnow)
    actor: str
    action: str
    object_type: str
    object_id: str
    before: Any = None
    after: Any = None
    request_id: str | None = None
    client_ip: str | None = None


class StoredResponse(msgspec.Struct, kw_only=True):
    """A stored Responses API response, readable only by its owner (key hash or "master")."""

    response_id: str
    owner: str
    team_id: str | None = None
    created_at: datetime = msgspec.field(default_factory=utcnow)
    model: str | None = None
    input_items: list[msgspec.Raw] = []
    output: list[msgspec.Raw] = []
    response: msgspec.Raw = msgspec.Raw(b"{}")
