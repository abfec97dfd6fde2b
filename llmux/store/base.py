"""The `Store` Protocol: what governance and the admin API may ask of persistent state.

Three implementations satisfy it identically (one contract suite runs against each):
`MemoryStore` (development), `SqliteStore` (standalone default) and `PostgresStore`
(distributed). Rules every implementation keeps:

* Each mutation is one transaction. Every mutation takes `audit=`; the entry is written in
  that same transaction, so a mutation that fails (or changes nothing) leaves no audit row.
* `atomic()` groups the calls made inside it, by the task that entered it, into one
  transaction: all of them (audit rows included) or, if the block raises, none. Blocks nest
  by joining the outermost one.
* `Key.key_alias` is unique (None aside): a create, put or update that would give a second
  key the same alias raises `ValueTaken` and changes nothing. Only the database can enforce
  this across concurrent requests and replicas; callers check first for a friendly error.
* Deleting something missing is not an error: it returns False. Updating something missing
  returns None.
* `add_spend` is idempotent on `request_id`: a retried batch never counts a row twice.
* `StoreUnavailable` means the backend could not be reached: callers buffer or serve from cache;
  it is never shown to a user as a 500.
* Bad paging or filter arguments raise `llmux.errors.InvalidRequest` naming the parameter.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from llmux.store.records import (
    AuditEntry,
    DailySpend,
    DimensionKind,
    DueReset,
    Entity,
    Key,
    Membership,
    SpendKind,
    SpendRow,
    SpendTotals,
    StoredResponse,
)

__all__ = [
    "AlreadyExists",
    "AuditFilter",
    "E",
    "FilterValue",
    "M",
    "Page",
    "SpendFilter",
    "Store",
    "StoreError",
    "StoreUnavailable",
]

E = TypeVar("E", bound=Entity)
M = TypeVar("M", bound=Membership)
T = TypeVar("T")

FilterValue = str | int | bool | None | Sequence[str]
"""An equality filter: a value, None for "is null", or a sequence meaning "any of these"."""


class StoreError(Exception):
    """Base of the errors a store raises on purpose."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached (connection refused, pool timeout): buffer or fall back."""


class AlreadyExists(StoreError):
    """`create` or `add_member` found a record with the same id."""

    def __init__(self, object_type: str, object_id: str) -> None:
        super().__init__(f"{object_type} {object_id!r} already exists")
        self.object_type = object_type
        self.object_id = object_id


class ValueTaken(StoreError):
    """A write would give a unique field (`Key.key_alias`) a value another record holds."""

    def __init__(self, field: str, value: str | None) -> None:
        shown = "" if value is None else f" {value!r}"
        super().__init__(f"{field}{shown} is taken by another record")
        self.field = field
        self.value = value


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a listing: `items` on page `page` (1-based) of `size`, out of `total`."""

    items: list[T]
    total: int
    page: int
    size: int


class SpendFilter(msgspec.Struct, kw_only=True):
    """Filters over spend rows; every given field must match. `start` <= started_at < `end`."""

    token: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    end_user: str | None = None
    model_group: str | None = None
    provider: str | None = None
    request_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None


class AuditFilter(msgspec.Struct, kw_only=True):
    """Filters over the audit log; every given field must match. `start` <= at < `end`."""

    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    request_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None


class Store(Protocol):
    """Async persistent state for governance. See the module docstring for the shared rules.

    Entities (`Budget`, `Organization`, `Team`, `User`, `EndUser`, `Key`) are addressed by
    their class and primary key (`Key` by `token`, the SHA-256 hex of the key). Listings are
    ordered by `created_at` then primary key; `filters` are equality on the primary key and
    the indexed columns (`Key`: key_alias, user_id, team_id, organization_id, budget_id,
    blocked; `Team`: team_alias, organization_id, budget_id, blocked; `User`: user_email,
    user_role, organization_id, budget_id; `Organization`: organization_alias, budget_id;
    `EndUser`: alias, budget_id, blocked; every spending entity also budget_duration).
    """

    async def migrate(self) -> builtins.list[int]:
        """Apply pending schema migrations; return the versions applied (none: already current)."""
        ...

    async def close(self) -> None:
        """Release connections. The store is unusable afterwards."""
        ...

    async def ping(self) -> None:
        """Return when the backend answers; raise `StoreUnavailable` when it does not."""
        ...

    def atomic(self) -> AbstractAsyncContextManager[None]:
        """One transaction for every call this task makes inside the block (see the rules).

        The SQL stores begin it at the block's first call and hold its connection (SQLite: its
        lock) until the block ends, so keep the block to store calls.
        """
        ...

    # --- entities -------------------------------------------------------------------------

    async def get(self, cls: type[E], id: str) -> E | None:
        """The record of class `cls` with primary key `id`, or None."""
        ...

    async def create(self, obj: Entity, *, audit: AuditEntry | None = None) -> None:
        """Insert a new record; raise `AlreadyExists` if its primary key is taken."""
        ...

    async def put(self, obj: Entity, *, audit: AuditEntry | None = None) -> None:
        """Insert or replace a record wholesale (store-maintained fields included)."""
        ...

    async def update(
        self,
        cls: type[E],
        id: str,
        changes: Mapping[str, Any],
        *,
        audit: AuditEntry | None = None,
    ) -> E | None:
        """Apply `changes` (field -> new value), set `updated_at`, bump `Key.version`.

        Returns the new record, or None when there is none. Unknown fields, the primary key and
        ill-typed values raise `InvalidRequest` naming the field.
        """
        ...

    async def delete(self, cls: type[E], id: str, *, audit: AuditEntry | None = None) -> bool:
        """Delete a record; False if it did not exist (then no audit row is written)."""
        ...

    async def list(
        self,
        cls: type[E],
        *,
        filters: Mapping[str, FilterValue] | None = None,
        page: int = 1,
        size: int = 50,
    ) -> Page[E]:
        """A page of records matching `filters`, with the total count of matches."""
        ...

    async def get_key(self, token: str) -> Key | None:
        """The key whose hash is `token`, or None."""
        ...

    async def get_key_by_alias(self, key_alias: str) -> Key | None:
        """The key with this `key_alias`, or None."""
        ...

    # --- memberships ----------------------------------------------------------------------

    async def add_member(self, member: Membership, *, audit: AuditEntry | None = None) -> None:
        """Add a team or organization membership; `AlreadyExists` if the user is a member."""
        ...

    async def update_member(
        self,
        cls: type[M],
        group_id: str,
        user_id: str,
        changes: Mapping[str, Any],
        *,
        audit: AuditEntry | None = None,
    ) -> M | None:
        """Change a membership of `group_id` (team or organization id); None if absent."""
        ...

    async def remove_member(
        self, cls: type[M], group_id: str, user_id: str, *, audit: AuditEntry | None = None
    ) -> bool:
        """Remove a membership; False if there was none."""
        ...

    async def list_members(
        self, cls: type[M], *, group_id: str | None = None, user_id: str | None = None
    ) -> builtins.list[M]:
        """Memberships of a group, of a user, or both, ordered by created_at then ids."""
        ...

    # --- spend ----------------------------------------------------------------------------

    async def add_spend(self, rows: Sequence[SpendRow]) -> int:
        """Record rows, daily aggregates and entity spend in one transaction; idempotent.

        Increments `spend` of the row's key, user, team, organization, end user and the
        (team, user) membership. Rows whose `request_id` is already stored are skipped.
        Returns the number of rows newly recorded.
        """
        ...

    async def spend_logs(
        self, filters: SpendFilter, *, page: int = 1, size: int = 50
    ) -> Page[SpendRow]:
        """Spend rows matching `filters`, newest first (started_at desc, request_id)."""
        ...

    async def spend_totals(self, filters: SpendFilter) -> SpendTotals:
        """Request count, tokens and cost over the rows matching `filters`."""
        ...

    async def daily_spend(
        self,
        kind: DimensionKind,
        *,
        start: date,
        end: date,
        values: Sequence[str] | None = None,
    ) -> builtins.list[DailySpend]:
        """Daily aggregates of one dimension for start <= day <= end, by day then value."""
        ...

    # --- budgets and keys bookkeeping -----------------------------------------------------

    async def reset_budget(
        self,
        kind: SpendKind,
        id: str,
        next_reset_at: datetime | None,
        *,
        audit: AuditEntry | None = None,
    ) -> bool:
        """Set spend to 0 and `budget_reset_at` to `next_reset_at`; False if no such entity."""
        ...

    async def due_budget_resets(self, now: datetime) -> builtins.list[DueReset]:
        """Entities of every spend kind whose `budget_reset_at` <= now."""
        ...

    async def touch_keys(self, last_used: Mapping[str, datetime]) -> None:
        """Record when keys were last used (never moves `last_used_at` backwards)."""
        ...

    # --- stored responses -----------------------------------------------------------------

    async def put_response(self, response: StoredResponse) -> None:
        """Store (or replace) a Responses API response."""
        ...

    async def get_response(self, response_id: str, *, owner: str | None) -> StoredResponse | None:
        """The response if it exists and belongs to `owner` (None: any owner, for admins)."""
        ...

    async def delete_response(self, response_id: str, *, owner: str | None) -> bool:
        """Delete the owner's response; False if absent or owned by someone else."""
        ...

    # --- audit ----------------------------------------------------------------------------

    async def add_audit(self, entry: AuditEntry) -> None:
        """Append an event that changes no record (a budget refusal); `AlreadyExists` if its
        id is taken. Mutations write theirs through `audit=` instead."""
        ...

    async def audit_log(
        self, filters: AuditFilter, *, page: int = 1, size: int = 50
    ) -> Page[AuditEntry]:
        """Audit entries matching `filters`, newest first."""
        ...

    async def get_audit(self, entry_id: str) -> AuditEntry | None:
        """One audit entry by id, or None."""
        ...
