"""Backend-neutral store logic: table layouts, argument checks, record updates, spend deltas.

Every backend keeps an entity as its full JSON record plus a few real columns: the primary
key, the indexed filter columns, and the store-maintained "hot" columns (`spend`,
`budget_reset_at`, `last_used_at`, `version`) that `add_spend`, `reset_budget` and `touch_keys`
change in place without rewriting the record. A hot column always wins over the JSON copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from llmux.errors import InvalidRequest
from llmux.store.records import (
    AuditEntry,
    Budget,
    DailySpend,
    DimensionKind,
    EndUser,
    Key,
    Organization,
    OrgMembership,
    SpendKind,
    SpendRow,
    Team,
    TeamMembership,
    User,
)

MAX_PAGE_SIZE: Final = 1000
_SPENT: Final = ("spend", "budget_reset_at")


@dataclass(frozen=True, slots=True)
class TableSpec:
    """Where and how one record class is stored."""

    cls: type[Any]
    table: str
    object_type: str
    pk: tuple[str, ...]
    columns: tuple[str, ...] = ()
    hot: tuple[str, ...] = ()
    unique: tuple[str, ...] = ()
    """Columns (among `columns`) no two records may share a non-null value of."""

    @property
    def stored(self) -> tuple[str, ...]:
        """Every real column except `data`, in table order."""
        return (*self.pk, *self.columns, *self.hot, "created_at")

    @property
    def filterable(self) -> frozenset[str]:
        """The fields `list` may filter on."""
        return frozenset((*self.pk, *self.columns))

    def id_of(self, obj: Any) -> tuple[str, ...]:
        """The primary key of a record as a tuple."""
        return tuple(getattr(obj, name) for name in self.pk)


SPECS: Final[dict[type[Any], TableSpec]] = {
    spec.cls: spec
    for spec in (
        TableSpec(Budget, "budgets", "budget", ("budget_id",)),
        TableSpec(
            Organization,
            "organizations",
            "organization",
            ("organization_id",),
            ("organization_alias", "budget_id", "budget_duration"),
            _SPENT,
        ),
        TableSpec(
            Team,
            "teams",
            "team",
            ("team_id",),
            ("team_alias", "organization_id", "budget_id", "blocked", "budget_duration"),
            _SPENT,
        ),
        TableSpec(
            User,
            "users",
            "user",
            ("user_id",),
            ("user_email", "user_role", "organization_id", "budget_id", "budget_duration"),
            _SPENT,
        ),
        TableSpec(
            EndUser,
            "end_users",
            "end_user",
            ("user_id",),
            ("alias", "budget_id", "blocked", "budget_duration"),
            _SPENT,
        ),
        TableSpec(
            Key,
            "keys",
            "key",
            ("token",),
            (
                "key_alias",
                "user_id",
                "team_id",
                "organization_id",
                "budget_id",
                "blocked",
                "budget_duration",
            ),
            (*_SPENT, "last_used_at", "version"),
            unique=("key_alias",),
        ),
        TableSpec(
            TeamMembership,
            "team_members",
            "team_member",
            ("team_id", "user_id"),
            ("role",),
            ("spend",),
        ),
        TableSpec(OrgMembership, "org_members", "org_member", ("organization_id", "user_id")),
    )
}

UNIQUE_INDEXES: Final[dict[str, str]] = {"keys_alias": "key_alias"}
"""The unique indexes of the migrations, by name, and the field each one guards."""


def unique_clash(spec: TableSpec, records: Iterable[Any], obj: Any) -> str | None:
    """The first unique field whose value in `obj` another of `records` holds, if any."""
    ident = spec.id_of(obj)
    for name in spec.unique:
        value = getattr(obj, name)
        if value is None:
            continue
        for other in records:
            if getattr(other, name) == value and spec.id_of(other) != ident:
                return name
    return None


KIND_SPECS: Final[dict[SpendKind, TableSpec]] = {
    "key": SPECS[Key],
    "user": SPECS[User],
    "team": SPECS[Team],
    "organization": SPECS[Organization],
    "end_user": SPECS[EndUser],
}

DATETIME_COLUMNS: Final = frozenset(
    {"created_at", "updated_at", "budget_reset_at", "last_used_at", "at", "started_at", "ended_at"}
)

SPEND_COLUMNS: Final[tuple[str, ...]] = tuple(SpendRow.__struct_fields__)
SPEND_MATCH_FIELDS: Final[tuple[str, ...]] = (
    "token",
    "user_id",
    "team_id",
    "organization_id",
    "end_user",
    "model_group",
    "provider",
    "request_id",
)
"""The `SpendFilter` fields that are equality matches (the rest are the time range)."""
DAILY_SUMS: Final[tuple[str, ...]] = (
    "requests",
    "successes",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost",
    "latency_ms_sum",
)
AUDIT_COLUMNS: Final[tuple[str, ...]] = tuple(AuditEntry.__struct_fields__)


def spec_for(cls: type[Any]) -> TableSpec:
    """The table spec of a record class; TypeError for a class no store holds."""
    try:
        return SPECS[cls]
    except KeyError:
        raise TypeError(f"{cls.__name__} is not a stored record class") from None


def check_paging(page: int, size: int) -> None:
    """Refuse a page below 1 or a size outside 1..MAX_PAGE_SIZE."""
    if page < 1:
        raise InvalidRequest(f"page must be at least 1, got {page}", param="page")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidRequest(
            f"size must be between 1 and {MAX_PAGE_SIZE}, got {size}", param="size"
        )


def check_filters(spec: TableSpec, filters: Mapping[str, Any]) -> None:
    """Refuse a filter on a field that is not an indexed column of the table."""
    for name in filters:
        if name not in spec.filterable:
            allowed = ", ".join(sorted(spec.filterable))
            raise InvalidRequest(
                f"cannot filter {spec.object_type} records by {name!r} (allowed: {allowed})",
                param=name,
            )


def matches(obj: Any, filters: Mapping[str, Any]) -> bool:
    """Whether a record passes equality filters (a list or tuple value means "any of")."""
    for name, wanted in filters.items():
        value = getattr(obj, name)
        if isinstance(wanted, list | tuple):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


def apply_changes(spec: TableSpec, old: Any, changes: Mapping[str, Any], now: datetime) -> Any:
    """The record `old` with `changes` applied, validated, `updated_at` set, Key.version bumped."""
    fields = set(spec.cls.__struct_fields__)
    for name in changes:
        if name not in fields:
            raise InvalidRequest(f"unknown {spec.object_type} field {name!r}", param=name)
        if name in spec.pk:
            raise InvalidRequest(f"{name!r} cannot be changed", param=name)
    new = msgspec.structs.replace(old, **{**changes, "updated_at": now})
    if isinstance(new, Key):
        new = msgspec.structs.replace(new, version=old.version + 1)
    try:
        return msgspec.json.decode(msgspec.json.encode(new), type=spec.cls)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid {spec.object_type}: {exc}", param=_error_path(exc)) from None
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidRequest(f"invalid {spec.object_type}: {exc}") from None


def _error_path(exc: msgspec.ValidationError) -> str | None:
    """The field a msgspec validation message points at (`... at `$.field``), if any."""
    message = str(exc)
    marker = "at `$."
    if marker not in message:
        return None
    return message.split(marker, 1)[1].split("`", 1)[0].split(".", 1)[0].split("[", 1)[0]


def fill_audit(audit: AuditEntry | None, before: Any, after: Any) -> AuditEntry | None:
    """The audit entry with `before`/`after` filled from records where the caller left None."""
    if audit is None:
        return None
    return msgspec.structs.replace(
        audit,
        before=audit.before if audit.before is not None else _builtins(before),
        after=audit.after if audit.after is not None else _builtins(after),
    )


def _builtins(obj: Any) -> Any:
    return None if obj is None else msgspec.to_builtins(obj)


def spend_day(row: SpendRow) -> Any:
    """The UTC day a spend row counts towards."""
    return row.started_at.astimezone(UTC).date()


def _dimensions(row: SpendRow) -> Iterable[tuple[DimensionKind, str | None]]:
    yield "key", row.token
    yield "user", row.user_id
    yield "team", row.team_id
    yield "org", row.organization_id
    yield "model", row.model_group
    yield "provider", row.provider
    yield "end_user", row.end_user
    for tag in dict.fromkeys(row.tags):
        yield "tag", tag


def daily_deltas(rows: Iterable[SpendRow]) -> list[DailySpend]:
    """What `rows` add to each (day, dimension, value) aggregate, summed per aggregate."""
    totals: dict[tuple[Any, str, str], DailySpend] = {}
    for row in rows:
        day = spend_day(row)
        for kind, value in _dimensions(row):
            if value is None:
                continue
            agg = totals.get((day, kind, value))
            if agg is None:
                agg = totals[(day, kind, value)] = DailySpend(day=day, kind=kind, value=value)
            _accumulate(agg, row)
    return list(totals.values())


def _accumulate(agg: DailySpend, row: SpendRow) -> None:
    agg.requests += 1
    agg.successes += 200 <= row.status < 300
    agg.input_tokens += row.input_tokens
    agg.output_tokens += row.output_tokens
    agg.cached_tokens += row.cached_tokens
    agg.reasoning_tokens += row.reasoning_tokens
    agg.cost += row.cost
    agg.latency_ms_sum += row.latency_ms


def merge_daily(into: DailySpend, delta: DailySpend) -> None:
    """Add one aggregate delta into a stored aggregate (the in-memory upsert)."""
    for name in DAILY_SUMS:
        setattr(into, name, getattr(into, name) + getattr(delta, name))


def spend_increments(rows: Iterable[SpendRow]) -> dict[tuple[TableSpec, tuple[str, ...]], float]:
    """The cost each entity (and each team membership) gains from `rows`, summed."""
    owners: tuple[tuple[SpendKind, Callable[[SpendRow], str | None]], ...] = (
        ("key", lambda row: row.token),
        ("user", lambda row: row.user_id),
        ("team", lambda row: row.team_id),
        ("organization", lambda row: row.organization_id),
        ("end_user", lambda row: row.end_user),
    )
    deltas: dict[tuple[TableSpec, tuple[str, ...]], float] = {}
    for row in rows:
        for kind, owner in owners:
            ident = owner(row)
            if ident is not None:
                slot: tuple[TableSpec, tuple[str, ...]] = (KIND_SPECS[kind], (ident,))
                deltas[slot] = deltas.get(slot, 0.0) + row.cost
        if row.team_id is not None and row.user_id is not None:
            pair = (SPECS[TeamMembership], (row.team_id, row.user_id))
            deltas[pair] = deltas.get(pair, 0.0) + row.cost
    return deltas


def dedupe_rows(rows: Sequence[SpendRow]) -> list[SpendRow]:
    """Rows with repeated request ids inside one batch dropped (the first one wins)."""
    seen: dict[str, SpendRow] = {}
    for row in rows:
        seen.setdefault(row.request_id, row)
    return list(seen.values())
