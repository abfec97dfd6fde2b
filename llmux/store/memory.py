"""`MemoryStore`: the development store, everything in process and gone on exit.

Each method runs without an `await` between its first read and its last write, so on one
event loop every mutation is atomic, exactly like a transaction in the SQL backends. An
`atomic()` block keeps an undo log of the task's writes and replays it backwards if the block
raises; unlike SQL, other tasks see the block's writes before it ends.
Records are copied on the way in and out, so callers can never alter stored state in place.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any

import msgspec

from llmux.store._tables import (
    KIND_SPECS,
    SPECS,
    SPEND_MATCH_FIELDS,
    TableSpec,
    apply_changes,
    check_filters,
    check_paging,
    daily_deltas,
    dedupe_rows,
    fill_audit,
    matches,
    merge_daily,
    spec_for,
    spend_increments,
    unique_clash,
)
from llmux.store.base import (
    AlreadyExists,
    AuditFilter,
    E,
    FilterValue,
    M,
    Page,
    SpendFilter,
    ValueTaken,
)
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
    utcnow,
)

__all__ = ["MemoryStore"]


def _copy(obj: Any) -> Any:
    """A deep copy, normalised the way a JSON round trip through a database would be."""
    return msgspec.json.decode(msgspec.json.encode(obj), type=type(obj))


_ABSENT: Any = object()
"""An undo entry's previous value when the key was not in the mapping."""

_Undo = builtins.list[tuple[dict[Any, Any], Any, Any]]
"""(mapping, key, previous value or _ABSENT) per write, oldest first."""


def _page(items: builtins.list[Any], page: int, size: int) -> Page[Any]:
    start = (page - 1) * size
    return Page(items=items[start : start + size], total=len(items), page=page, size=size)


def _spend_match(row: SpendRow, f: SpendFilter) -> bool:
    for name in SPEND_MATCH_FIELDS:
        wanted = getattr(f, name)
        if wanted is not None and getattr(row, name) != wanted:
            return False
    return _in_range(row.started_at, f.start, f.end)


def _in_range(at: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or at >= start) and (end is None or at < end)


def _audit_match(entry: AuditEntry, f: AuditFilter) -> bool:
    for name in ("actor", "action", "object_type", "object_id", "request_id"):
        wanted = getattr(f, name)
        if wanted is not None and getattr(entry, name) != wanted:
            return False
    return _in_range(entry.at, f.start, f.end)


class MemoryStore:
    """An in-process `Store`; `clock` supplies `updated_at` (inject one in tests)."""

    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self._tables: dict[str, dict[tuple[str, ...], Any]] = {
            spec.table: {} for spec in SPECS.values()
        }
        self._spend: dict[str, SpendRow] = {}
        self._daily: dict[tuple[date, str, str], DailySpend] = {}
        self._audit: dict[str, AuditEntry] = {}
        self._responses: dict[str, StoredResponse] = {}
        self._undo: ContextVar[_Undo | None] = ContextVar(f"memory_undo_{id(self)}", default=None)

    async def migrate(self) -> builtins.list[int]:
        """Nothing to migrate in memory."""
        return []

    async def close(self) -> None:
        """Nothing to release."""

    async def ping(self) -> None:
        """Memory always answers."""

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """Undo this task's writes inside the block if it raises (see the module docstring)."""
        if self._undo.get() is not None:
            yield
            return
        undo: _Undo = []
        token = self._undo.set(undo)
        try:
            yield
        except BaseException:
            for mapping, key, previous in reversed(undo):
                if previous is _ABSENT:
                    mapping.pop(key, None)
                else:
                    mapping[key] = previous
            raise
        finally:
            self._undo.reset(token)

    def _write(self, mapping: dict[Any, Any], key: Any, value: Any) -> None:
        """Set (or, for `_ABSENT`, remove) `mapping[key]`, logging the undo inside a block."""
        undo = self._undo.get()
        if undo is not None:
            undo.append((mapping, key, mapping.get(key, _ABSENT)))
        if value is _ABSENT:
            del mapping[key]
        else:
            mapping[key] = value

    @staticmethod
    def _check_unique(spec: TableSpec, table: dict[tuple[str, ...], Any], obj: Any) -> None:
        """Refuse a record whose unique field another record holds (SQL: the unique index)."""
        clash = unique_clash(spec, table.values(), obj) if spec.unique else None
        if clash is not None:
            raise ValueTaken(clash, getattr(obj, clash))

    def _check_audit(self, audit: AuditEntry | None) -> None:
        """Refuse a reused audit id before anything changes (SQL: the key rolls it back)."""
        if audit is not None and audit.id in self._audit:
            raise AlreadyExists("audit entry", audit.id)

    def _record(self, audit: AuditEntry | None, before: Any, after: Any) -> None:
        entry = fill_audit(audit, before, after)
        if entry is not None:
            self._write(self._audit, entry.id, _copy(entry))

    # --- entities -------------------------------------------------------------------------

    async def get(self, cls: type[E], id: str) -> E | None:
        """The record with this primary key, or None."""
        found = self._tables[spec_for(cls).table].get((id,))
        return None if found is None else _copy(found)

    async def create(self, obj: Entity, *, audit: AuditEntry | None = None) -> None:
        """Insert a new record; `AlreadyExists` if its id is taken."""
        self._insert(spec_for(type(obj)), obj, audit)

    def _insert(self, spec: TableSpec, obj: Any, audit: AuditEntry | None) -> None:
        table = self._tables[spec.table]
        ident = spec.id_of(obj)
        if ident in table:
            raise AlreadyExists(spec.object_type, "/".join(ident))
        self._check_unique(spec, table, obj)
        self._check_audit(audit)
        self._write(table, ident, _copy(obj))
        self._record(audit, None, obj)

    async def put(self, obj: Entity, *, audit: AuditEntry | None = None) -> None:
        """Insert or replace a record."""
        self._check_audit(audit)
        spec = spec_for(type(obj))
        table = self._tables[spec.table]
        self._check_unique(spec, table, obj)
        ident = spec.id_of(obj)
        before = table.get(ident)
        self._write(table, ident, _copy(obj))
        self._record(audit, before, obj)

    async def update(
        self,
        cls: type[E],
        id: str,
        changes: Mapping[str, Any],
        *,
        audit: AuditEntry | None = None,
    ) -> E | None:
        """Apply changes to a record; None if it does not exist."""
        result: E | None = self._change(spec_for(cls), (id,), changes, audit)
        return result

    def _change(
        self,
        spec: TableSpec,
        ident: tuple[str, ...],
        changes: Mapping[str, Any],
        audit: AuditEntry | None,
    ) -> Any:
        table = self._tables[spec.table]
        old = table.get(ident)
        if old is None:
            return None
        new = apply_changes(spec, old, changes, self._clock())
        self._check_unique(spec, table, new)
        self._check_audit(audit)
        self._write(table, ident, new)
        self._record(audit, old, new)
        return _copy(new)

    async def delete(self, cls: type[E], id: str, *, audit: AuditEntry | None = None) -> bool:
        """Delete a record; False if it was not there."""
        return self._remove(spec_for(cls), (id,), audit)

    def _remove(self, spec: TableSpec, ident: tuple[str, ...], audit: AuditEntry | None) -> bool:
        table = self._tables[spec.table]
        if ident not in table:
            return False
        self._check_audit(audit)
        old = table[ident]
        self._write(table, ident, _ABSENT)
        self._record(audit, old, None)
        return True

    async def list(
        self,
        cls: type[E],
        *,
        filters: Mapping[str, FilterValue] | None = None,
        page: int = 1,
        size: int = 50,
    ) -> Page[E]:
        """A page of matching records ordered by created_at then primary key."""
        spec = spec_for(cls)
        filters = filters or {}
        check_filters(spec, filters)
        check_paging(page, size)
        found = self._sorted(spec, filters)
        return _page([_copy(obj) for obj in found], page, size)

    def _sorted(self, spec: TableSpec, filters: Mapping[str, Any]) -> builtins.list[Any]:
        found = [obj for obj in self._tables[spec.table].values() if matches(obj, filters)]
        found.sort(key=lambda obj: (obj.created_at, spec.id_of(obj)))
        return found

    async def get_key(self, token: str) -> Key | None:
        """The key with this hash, or None."""
        return await self.get(Key, token)

    async def get_key_by_alias(self, key_alias: str) -> Key | None:
        """The key with this alias, or None."""
        found = self._sorted(SPECS[Key], {"key_alias": key_alias})
        return _copy(found[0]) if found else None

    # --- memberships ----------------------------------------------------------------------

    async def add_member(self, member: Membership, *, audit: AuditEntry | None = None) -> None:
        """Add a membership; `AlreadyExists` if the user is already a member."""
        self._insert(spec_for(type(member)), member, audit)

    async def update_member(
        self,
        cls: type[M],
        group_id: str,
        user_id: str,
        changes: Mapping[str, Any],
        *,
        audit: AuditEntry | None = None,
    ) -> M | None:
        """Change a membership; None if there is none."""
        result: M | None = self._change(spec_for(cls), (group_id, user_id), changes, audit)
        return result

    async def remove_member(
        self, cls: type[M], group_id: str, user_id: str, *, audit: AuditEntry | None = None
    ) -> bool:
        """Remove a membership; False if there was none."""
        return self._remove(spec_for(cls), (group_id, user_id), audit)

    async def list_members(
        self, cls: type[M], *, group_id: str | None = None, user_id: str | None = None
    ) -> builtins.list[M]:
        """Memberships of a group and/or of a user."""
        spec = spec_for(cls)
        filters: dict[str, str] = {}
        if group_id is not None:
            filters[spec.pk[0]] = group_id
        if user_id is not None:
            filters["user_id"] = user_id
        return [_copy(obj) for obj in self._sorted(spec, filters)]

    # --- spend ----------------------------------------------------------------------------

    async def add_spend(self, rows: Sequence[SpendRow]) -> int:
        """Record new rows, their daily aggregates and entity spend; skip known request ids."""
        fresh = [row for row in dedupe_rows(rows) if row.request_id not in self._spend]
        for row in fresh:
            self._spend[row.request_id] = _copy(row)
        for delta in daily_deltas(fresh):
            slot = (delta.day, delta.kind, delta.value)
            if slot in self._daily:
                merge_daily(self._daily[slot], delta)
            else:
                self._daily[slot] = delta
        for (spec, ident), cost in spend_increments(fresh).items():
            obj = self._tables[spec.table].get(ident)
            if obj is not None:
                obj.spend += cost
        return len(fresh)

    async def spend_logs(
        self, filters: SpendFilter, *, page: int = 1, size: int = 50
    ) -> Page[SpendRow]:
        """Matching spend rows, newest first."""
        check_paging(page, size)
        found = [row for row in self._spend.values() if _spend_match(row, filters)]
        found.sort(key=lambda row: row.request_id)
        found.sort(key=lambda row: row.started_at, reverse=True)
        return _page([_copy(row) for row in found], page, size)

    async def spend_totals(self, filters: SpendFilter) -> SpendTotals:
        """Sums over matching spend rows."""
        totals = SpendTotals()
        for row in self._spend.values():
            if _spend_match(row, filters):
                totals.requests += 1
                totals.input_tokens += row.input_tokens
                totals.output_tokens += row.output_tokens
                totals.cost += row.cost
        return totals

    async def daily_spend(
        self,
        kind: DimensionKind,
        *,
        start: date,
        end: date,
        values: Sequence[str] | None = None,
    ) -> builtins.list[DailySpend]:
        """Daily aggregates of one dimension in [start, end], by day then value."""
        found = [
            _copy(agg)
            for (day, agg_kind, value), agg in self._daily.items()
            if agg_kind == kind and start <= day <= end and (values is None or value in values)
        ]
        found.sort(key=lambda agg: (agg.day, agg.value))
        return found

    # --- budgets and keys bookkeeping -----------------------------------------------------

    async def reset_budget(
        self,
        kind: SpendKind,
        id: str,
        next_reset_at: datetime | None,
        *,
        audit: AuditEntry | None = None,
    ) -> bool:
        """Zero an entity's spend and set its next reset time."""
        table = self._tables[KIND_SPECS[kind].table]
        old = table.get((id,))
        if old is None:
            return False
        self._check_audit(audit)
        new = msgspec.structs.replace(old, spend=0.0, budget_reset_at=next_reset_at)
        self._write(table, (id,), new)
        self._record(audit, old, new)
        return True

    async def due_budget_resets(self, now: datetime) -> builtins.list[DueReset]:
        """Entities whose budget_reset_at has passed."""
        due: builtins.list[DueReset] = []
        for kind, spec in KIND_SPECS.items():
            for ident, obj in self._tables[spec.table].items():
                at = obj.budget_reset_at
                if at is not None and at <= now:
                    due.append(
                        DueReset(
                            kind=kind,
                            id=ident[0],
                            budget_duration=obj.budget_duration,
                            budget_reset_at=at,
                        )
                    )
        return due

    async def touch_keys(self, last_used: Mapping[str, datetime]) -> None:
        """Move keys' last_used_at forward."""
        keys = self._tables[SPECS[Key].table]
        for token, when in last_used.items():
            key = keys.get((token,))
            if key is not None and (key.last_used_at is None or key.last_used_at < when):
                key.last_used_at = when

    # --- stored responses -----------------------------------------------------------------

    async def put_response(self, response: StoredResponse) -> None:
        """Store or replace a response."""
        self._responses[response.response_id] = _copy(response)

    async def get_response(self, response_id: str, *, owner: str | None) -> StoredResponse | None:
        """The owner's response, or None."""
        found = self._responses.get(response_id)
        if found is None or (owner is not None and found.owner != owner):
            return None
        copied: StoredResponse = _copy(found)
        return copied

    async def delete_response(self, response_id: str, *, owner: str | None) -> bool:
        """Delete the owner's response."""
        if await self.get_response(response_id, owner=owner) is None:
            return False
        del self._responses[response_id]
        return True

    # --- audit ----------------------------------------------------------------------------

    async def add_audit(self, entry: AuditEntry) -> None:
        """Append an event that changes no record."""
        self._check_audit(entry)
        self._record(entry, None, None)

    async def audit_log(
        self, filters: AuditFilter, *, page: int = 1, size: int = 50
    ) -> Page[AuditEntry]:
        """Matching audit entries, newest first."""
        check_paging(page, size)
        found = [entry for entry in self._audit.values() if _audit_match(entry, filters)]
        found.sort(key=lambda entry: entry.id)
        found.sort(key=lambda entry: entry.at, reverse=True)
        return _page([_copy(entry) for entry in found], page, size)

    async def get_audit(self, entry_id: str) -> AuditEntry | None:
        """One audit entry by id."""
        found = self._audit.get(entry_id)
        return None if found is None else _copy(found)
