"""The audit log on the admin port: `/audit/logs` (filtered, paginated) and `/audit/log?id=`.

Every mutation of the management API writes one entry in the same transaction as the change
(`Ctx.audit`); these endpoints only read them. The log spans every tenant, so only
`proxy_admin` and `proxy_admin_viewer` may read it: anyone else gets a 403 naming the role.
The page shape follows LiteLLM's `/audit/logs` (`audit_logs`, `total`, `page`, `page_size`,
`total_pages`).
"""

from __future__ import annotations

import msgspec

from llmux.manage.access import hidden, require
from llmux.manage.actor import Actor
from llmux.manage.routes import Ctx, endpoint
from llmux.manage.spend import PageNo, Size, When, parse_range
from llmux.store.base import AuditFilter
from llmux.store.records import AuditEntry

__all__ = ["AuditEntryQuery", "AuditLogsPage", "AuditLogsQuery"]

_TAG = "Audit"


class AuditLogsQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Filters of `/audit/logs`; every given one must match. `end_date` is inclusive."""

    actor: str | None = None
    """`master`, or the acting key's hash."""
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    request_id: str | None = None
    start_date: When = None
    end_date: When = None
    page: PageNo = 1
    size: Size = 50


class AuditEntryQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`/audit/log?id=`: one entry."""

    id: str


class AuditLogsPage(msgspec.Struct, kw_only=True):
    """One page of audit entries, newest first."""

    audit_logs: list[AuditEntry]
    total: int
    page: int
    page_size: int
    total_pages: int


def _require_reader(actor: Actor) -> None:
    require(actor.sees_all, "the proxy_admin or proxy_admin_viewer role")


def _audit_filter(query: AuditLogsQuery) -> AuditFilter:
    start, end = parse_range(query.start_date, query.end_date)
    return AuditFilter(
        actor=query.actor,
        action=query.action,
        object_type=query.object_type,
        object_id=query.object_id,
        request_id=query.request_id,
        start=start,
        end=end,
    )


@endpoint(
    "GET",
    "/audit/logs",
    summary="Audit entries (filtered, newest first)",
    tag=_TAG,
    query=AuditLogsQuery,
    response=AuditLogsPage,
)
async def audit_logs(ctx: Ctx, query: AuditLogsQuery) -> AuditLogsPage:
    """One page of the audit entries matching every given filter (admins only)."""
    _require_reader(ctx.actor)
    found = await ctx.store.audit_log(_audit_filter(query), page=query.page, size=query.size)
    return AuditLogsPage(
        audit_logs=found.items,
        total=found.total,
        page=found.page,
        page_size=found.size,
        total_pages=-(-found.total // found.size),
    )


@endpoint(
    "GET",
    "/audit/log",
    summary="One audit entry by id",
    tag=_TAG,
    query=AuditEntryQuery,
    response=AuditEntry,
)
async def audit_log(ctx: Ctx, query: AuditEntryQuery) -> AuditEntry:
    """The entry with this id (admins only); 404 when there is none."""
    _require_reader(ctx.actor)
    entry = await ctx.store.get_audit(query.id)
    if entry is None:
        raise hidden("audit entry", query.id)
    return entry
