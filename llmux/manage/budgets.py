"""Reusable budgets (`/budget/*`) and the limit fields every governed entity's endpoints share.

A `Budget` is a named set of limits that keys, teams, organizations and end users point at with
`budget_id`; the gateway falls back to it for every limit the entity leaves unset. Only a
`proxy_admin` creates, changes or deletes budgets; `proxy_admin_viewer` reads them; to everyone
else they do not exist (404; the listing is a 403 naming the role it needs).

The request bases `LimitFields` and `GovernedFields` (every field optional, `UNSET` when absent)
serve both the create and the partial-update bodies of teams, organizations and end users:
`given()` collects what a body set and `checked_limits()` validates durations and stamps the
rolling `budget_reset_at` from `llmux.governance.durations`. Imports the store, governance
durations and the management foundation only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, UnsetType

from llmux.errors import Conflict, UnprocessableEntity
from llmux.governance.durations import next_reset, parse_duration
from llmux.manage.access import hidden, require
from llmux.manage.actor import Actor
from llmux.manage.routes import Ctx, endpoint
from llmux.store.base import AlreadyExists, E, FilterValue, Store
from llmux.store.records import (
    Budget,
    EndUser,
    Key,
    ModelBudget,
    Organization,
    Team,
    User,
)

__all__ = [
    "BudgetDeleteResponse",
    "BudgetIdsRequest",
    "BudgetInfoQuery",
    "Count",
    "DeleteBudgetRequest",
    "GovernedFields",
    "LimitFields",
    "Money",
    "NewBudgetRequest",
    "UpdateBudgetRequest",
    "checked_limits",
    "given",
    "list_all",
    "new_id",
    "require_budget",
]

Money = Annotated[float, msgspec.Meta(ge=0, description="USD; never negative.")]
"""A USD amount: zero or more."""
Count = Annotated[int, msgspec.Meta(ge=0)]
"""A whole-number limit (requests, tokens, parallel requests): zero or more."""

_PAGE: Final = 1000
"""Records fetched per store call when an endpoint answers with a whole listing."""


class LimitFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The budget and rate-limit fields of a budget and of every governed entity."""

    max_budget: Money | None | UnsetType = UNSET
    soft_budget: Money | None | UnsetType = UNSET
    max_parallel_requests: Count | None | UnsetType = UNSET
    tpm_limit: Count | None | UnsetType = UNSET
    rpm_limit: Count | None | UnsetType = UNSET
    model_max_budget: dict[str, ModelBudget] | UnsetType = UNSET
    budget_duration: (
        Annotated[str, msgspec.Meta(description="Budget period: '30s', '24h', '7d', '1mo'.")]
        | None
        | UnsetType
    ) = UNSET


class GovernedFields(LimitFields, kw_only=True, forbid_unknown_fields=True):
    """`LimitFields` plus what every spending entity (team, organization, end user) adds."""

    models: list[str] | UnsetType = UNSET
    budget_id: str | None | UnsetType = UNSET
    model_rpm_limit: dict[str, Count] | UnsetType = UNSET
    model_tpm_limit: dict[str, Count] | UnsetType = UNSET
    blocked: bool | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET


def given(body: msgspec.Struct, *, leave: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields `body` set (not `UNSET`), except those named in `leave`."""
    return {
        name: getattr(body, name)
        for name in body.__struct_fields__
        if name not in leave and getattr(body, name) is not UNSET
    }


def checked_limits(changes: Mapping[str, Any], now: datetime, aligned: bool) -> dict[str, Any]:
    """`changes` with durations validated (422 naming the field) and, when `budget_duration`
    is set, `budget_reset_at` at the end of the first period from `now` (rolling, or
    calendar-aligned when `aligned`)."""
    checked = dict(changes)
    for model, budget in checked.get("model_max_budget", {}).items():
        field = f"model_max_budget.{model}"
        if budget.budget_limit < 0:
            raise UnprocessableEntity(
                f"Invalid '{field}.budget_limit': must be at least 0.",
                param=f"{field}.budget_limit",
            )
        if budget.time_period is not None:
            _duration(budget.time_period, f"{field}.time_period")
    if "budget_duration" in checked:
        duration = checked["budget_duration"]
        reset_at = None
        if duration is not None:
            reset_at = next_reset(_duration(duration, "budget_duration"), now, aligned)
        checked.setdefault("budget_reset_at", reset_at)
    return checked


def _duration(text: str, field: str) -> Any:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UnprocessableEntity(f"Invalid '{field}': {exc}", param=field) from None


async def require_budget(store: Store, budget_id: str | None) -> None:
    """404 naming `budget_id` unless it is None or an existing budget."""
    if budget_id is not None and await store.get(Budget, budget_id) is None:
        raise hidden("budget", budget_id)


async def list_all(
    store: Store, cls: type[E], filters: Mapping[str, FilterValue] | None = None
) -> list[E]:
    """Every record of `cls` matching `filters`, in the store's order."""
    found: list[E] = []
    page = 1
    while True:
        batch = await store.list(cls, filters=filters, page=page, size=_PAGE)
        found.extend(batch.items)
        if len(found) >= batch.total or not batch.items:
            return found
        page += 1


def new_id() -> str:
    """A fresh identifier for an object created without one."""
    return str(uuid.uuid4())


# --- requests and answers ------------------------------------------------------------------


class NewBudgetRequest(LimitFields, kw_only=True, forbid_unknown_fields=True):
    """`POST /budget/new`: a reusable budget (its id is generated when absent)."""

    budget_id: str | UnsetType = UNSET
    budget_reset_at: datetime | None | UnsetType = UNSET


class UpdateBudgetRequest(LimitFields, kw_only=True, forbid_unknown_fields=True):
    """`POST /budget/update`: the budget to change and the fields to change."""

    budget_id: str
    budget_reset_at: datetime | None | UnsetType = UNSET


class DeleteBudgetRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /budget/delete`: the budget's id."""

    id: str


class BudgetIdsRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /budget/info`, as LiteLLM sends it: the budgets to read."""

    budgets: list[str]


class BudgetInfoQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`GET /budget/info?budget_id=`."""

    budget_id: str


class BudgetDeleteResponse(msgspec.Struct, kw_only=True):
    """What `/budget/delete` removed: the id, or nothing when it was already gone."""

    deleted_budgets: list[str]


# --- access ----------------------------------------------------------------------------------


def _readable(actor: Actor, budget_id: str) -> None:
    if not actor.sees_all:
        raise hidden("budget", budget_id)


async def _visible(ctx: Ctx, budget_id: str) -> Budget:
    _readable(ctx.actor, budget_id)
    budget = await ctx.store.get(Budget, budget_id)
    if budget is None:
        raise hidden("budget", budget_id)
    return budget


def _manageable(actor: Actor) -> None:
    require(actor.is_admin, "the proxy_admin role (budgets are proxy-wide)")


# --- endpoints ------------------------------------------------------------------------------


@endpoint(
    "POST",
    "/budget/new",
    summary="Create a reusable budget",
    tag="budgets",
    response=Budget,
    body=NewBudgetRequest,
    writes=True,
)
async def new_budget(ctx: Ctx, body: NewBudgetRequest) -> Budget:
    """Create a budget; 409 when its id is taken."""
    _manageable(ctx.actor)
    budget_id = body.budget_id if isinstance(body.budget_id, str) else new_id()
    fields = checked_limits(
        given(body, leave=("budget_id",)), datetime.now(UTC), ctx.calendar_aligned
    )
    budget = Budget(budget_id=budget_id, created_by=ctx.actor.id, **fields)
    try:
        await ctx.store.create(budget, audit=ctx.audit("create", "budget", budget_id))
    except AlreadyExists:
        raise Conflict(f"Budget '{budget_id}' already exists.", param="budget_id") from None
    ctx.invalidate_entities()
    return budget


@endpoint(
    "POST",
    "/budget/update",
    summary="Change a budget's limits",
    tag="budgets",
    response=Budget,
    body=UpdateBudgetRequest,
    writes=True,
)
async def update_budget(ctx: Ctx, body: UpdateBudgetRequest) -> Budget:
    """Apply the given fields to a budget; every key and entity using it sees them at once."""
    await _visible(ctx, body.budget_id)
    _manageable(ctx.actor)
    changes = checked_limits(
        given(body, leave=("budget_id",)), datetime.now(UTC), ctx.calendar_aligned
    )
    audit = ctx.audit("update", "budget", body.budget_id)
    updated = await ctx.store.update(Budget, body.budget_id, changes, audit=audit)
    if updated is None:
        raise hidden("budget", body.budget_id)
    ctx.invalidate_entities()
    return updated


@endpoint(
    "POST",
    "/budget/delete",
    summary="Delete a budget nothing uses (safe to repeat)",
    tag="budgets",
    response=BudgetDeleteResponse,
    body=DeleteBudgetRequest,
    writes=True,
)
async def delete_budget(ctx: Ctx, body: DeleteBudgetRequest) -> BudgetDeleteResponse:
    """Delete a budget; 409 naming its users while anything points at it."""
    _readable(ctx.actor, body.id)
    _manageable(ctx.actor)
    await _refuse_if_used(ctx.store, body.id)
    deleted = await ctx.store.delete(Budget, body.id, audit=ctx.audit("delete", "budget", body.id))
    if deleted:
        ctx.invalidate_entities()
    return BudgetDeleteResponse(deleted_budgets=[body.id] if deleted else [])


async def _refuse_if_used(store: Store, budget_id: str) -> None:
    # Deleting a budget in use would silently lift every limit its users inherit from it.
    users: list[str] = []
    kinds: tuple[tuple[str, type[Any]], ...] = (
        ("key", Key),
        ("team", Team),
        ("user", User),
        ("organization", Organization),
        ("end user", EndUser),
    )
    for kind, cls in kinds:
        page = await store.list(cls, filters={"budget_id": budget_id}, size=1)
        if page.total:
            users.append(f"{page.total} {kind}(s)")
    if users:
        raise Conflict(
            f"Budget '{budget_id}' is still used by {', '.join(users)}; detach them first.",
            param="id",
            code="budget_in_use",
        )


@endpoint(
    "GET",
    "/budget/info",
    summary="Read one budget",
    tag="budgets",
    response=Budget,
    query=BudgetInfoQuery,
)
async def budget_info(ctx: Ctx, query: BudgetInfoQuery) -> Budget:
    """The budget named by `budget_id`."""
    return await _visible(ctx, query.budget_id)


@endpoint(
    "POST",
    "/budget/info",
    summary="Read several budgets (LiteLLM's form)",
    tag="budgets",
    response=list[Budget],
    body=BudgetIdsRequest,
)
async def budgets_info(ctx: Ctx, body: BudgetIdsRequest) -> list[Budget]:
    """The budgets named in `budgets`, in that order; 404 naming the first unknown one."""
    return [await _visible(ctx, budget_id) for budget_id in body.budgets]


@endpoint("GET", "/budget/list", summary="List every budget", tag="budgets", response=list[Budget])
async def list_budgets(ctx: Ctx, _: None) -> list[Budget]:
    """Every budget, oldest first (proxy_admin and proxy_admin_viewer only)."""
    require(ctx.actor.sees_all, "the proxy_admin or proxy_admin_viewer role")
    return await list_all(ctx.store, Budget)
