"""Which spend rows a report covers: its date range, the caller's scope, and fetching the rows.

Dates are `YYYY-MM-DD` (a whole UTC day; an end date is inclusive) or ISO 8601 datetimes; a bad
one is a 422 naming the field. The two admin roles read every row; anyone else reads the rows of
its own user (or key), its admin teams and its `org_admin` organizations, and a filter pointing
outside that scope matches nothing. `llmux.manage.spend` builds its reports on these.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

import msgspec

from llmux.errors import UnprocessableEntity
from llmux.manage.actor import Actor
from llmux.manage.routes import Ctx
from llmux.manage.spend_wire import SpendRangeQuery
from llmux.store.base import SpendFilter, Store
from llmux.store.records import SpendRow

__all__ = [
    "FETCH_PAGE",
    "day_range",
    "narrow",
    "page_of",
    "parse_range",
    "parse_when",
    "rows_of",
    "scoped",
    "spend_scope",
]

FETCH_PAGE: Final = 1000
"""Rows (or records) per store page when a report needs every one of a scope."""
_DEFAULT_DAYS: Final = 30
_EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)


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


def day_range(query: SpendRangeQuery) -> tuple[date, date]:
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


def narrow(wanted: SpendFilter, scope: SpendFilter) -> SpendFilter | None:
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


def scoped(actor: Actor, wanted: SpendFilter) -> list[SpendFilter] | None:
    """The filters to run for `wanted` within the actor's scope (None: `wanted` as is)."""
    scope = spend_scope(actor)
    if scope is None:
        return None
    return [f for f in (narrow(wanted, s) for s in scope) if f is not None]


async def _every_row(store: Store, filters: SpendFilter) -> list[SpendRow]:
    rows: list[SpendRow] = []
    page = 1
    while True:
        found = await store.spend_logs(filters, page=page, size=FETCH_PAGE)
        rows.extend(found.items)
        if page * FETCH_PAGE >= found.total:
            return rows
        page += 1


async def rows_of(store: Store, filters: Sequence[SpendFilter]) -> list[SpendRow]:
    """Every row matching any of `filters`, once each, newest first (the store's order)."""
    unique: dict[str, SpendRow] = {}
    for each in filters:
        for row in await _every_row(store, each):
            unique.setdefault(row.request_id, row)
    rows = sorted(unique.values(), key=lambda row: row.request_id)
    rows.sort(key=lambda row: row.started_at, reverse=True)
    return rows


async def page_of(
    ctx: Ctx, wanted: SpendFilter, page: int, size: int
) -> tuple[list[SpendRow], int]:
    """One page of the visible rows matching `wanted`, and how many match in all."""
    filters = scoped(ctx.actor, wanted)
    if filters is None or len(filters) == 1:
        found = await ctx.store.spend_logs(filters[0] if filters else wanted, page=page, size=size)
        return found.items, found.total
    # Overlapping scopes (a team inside an admin's organization) share rows: merge, then page.
    rows = await rows_of(ctx.store, filters)
    start = (page - 1) * size
    return rows[start : start + size], len(rows)
