"""End users (`/customer/*`, also served as `/end_user/*`), in LiteLLM's shapes.

An end user is the `user` field of a gateway request: blocking one makes every request naming
it a 403 `end_user_blocked`; its limits, models and budget apply on top of the key's. End users
are proxy-wide, so a `proxy_admin` manages them and `proxy_admin_viewer` reads them; to everyone
else they do not exist (404; listings are a 403 naming the role). `/customer/block` creates an
end user that was never seen, already blocked, so one can be shut out before its first request.
Every change is audited and invalidates the gateway's cached entities.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from llmux.errors import Conflict
from llmux.manage.access import hidden, require
from llmux.manage.budgets import GovernedFields, checked_limits, given, list_all, require_budget
from llmux.manage.routes import Ctx, Handler, endpoint
from llmux.store.base import AlreadyExists
from llmux.store.records import EndUser

__all__ = [
    "BlockedResponse",
    "CustomerDeleteResponse",
    "CustomerIdsRequest",
    "CustomerQuery",
    "NewCustomerRequest",
    "UnblockedResponse",
    "UpdateCustomerRequest",
]

_PREFIXES = ("/customer", "/end_user")
"""LiteLLM serves every end-user endpoint under both names."""


class CustomerFields(GovernedFields, kw_only=True, forbid_unknown_fields=True):
    """The end-user fields `/customer/new` and `/customer/update` accept."""

    alias: str | None | UnsetType = UNSET
    allowed_model_region: Literal["eu", "us"] | None | UnsetType = UNSET
    default_model: str | None | UnsetType = UNSET


class NewCustomerRequest(CustomerFields, kw_only=True, forbid_unknown_fields=True):
    """`POST /customer/new`: `user_id` is the value requests send as `user`."""

    user_id: str


class UpdateCustomerRequest(CustomerFields, kw_only=True, forbid_unknown_fields=True):
    """`POST /customer/update`: the end user and the fields to change."""

    user_id: str


class CustomerIdsRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /customer/delete`, `/customer/block` and `/customer/unblock`."""

    user_ids: list[str]


class CustomerQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`GET /customer/info?end_user_id=`."""

    end_user_id: str


class CustomerDeleteResponse(msgspec.Struct, kw_only=True):
    """The end users `/customer/delete` removed (ids already gone are left out)."""

    deleted_customers: list[str]


class BlockedResponse(msgspec.Struct, kw_only=True):
    """The end users `/customer/block` blocked."""

    blocked_users: list[str]


class UnblockedResponse(msgspec.Struct, kw_only=True):
    """The end users `/customer/unblock` let through again (unknown ids are left out)."""

    unblocked_users: list[str]


def _both(method: str, suffix: str, **declared: Any) -> Callable[[Handler], Handler]:
    """Declare one handler under `/customer<suffix>` and `/end_user<suffix>`."""

    def register(handler: Handler) -> Handler:
        for prefix in _PREFIXES:
            endpoint(method, prefix + suffix, tag="end users", **declared)(handler)
        return handler

    return register


def _readable(ctx: Ctx, user_id: str) -> None:
    if not ctx.actor.sees_all:
        raise hidden("end user", user_id)


def _manageable(ctx: Ctx) -> None:
    require(ctx.actor.is_admin, "the proxy_admin role (end users are proxy-wide)")


async def _visible(ctx: Ctx, user_id: str) -> EndUser:
    _readable(ctx, user_id)
    found = await ctx.store.get(EndUser, user_id)
    if found is None:
        raise hidden("end user", user_id)
    return found


@_both(
    "POST",
    "/new",
    summary="Create an end user",
    response=EndUser,
    body=NewCustomerRequest,
    writes=True,
)
async def new_customer(ctx: Ctx, body: NewCustomerRequest) -> EndUser:
    """Create an end user; 409 when one with this `user_id` exists."""
    _manageable(ctx)
    fields = given(body, leave=("user_id",))
    await require_budget(ctx.store, fields.get("budget_id"))
    fields = checked_limits(fields, datetime.now(UTC), ctx.calendar_aligned)
    end_user = EndUser(user_id=body.user_id, created_by=ctx.actor.id, **fields)
    try:
        await ctx.store.create(end_user, audit=ctx.audit("create", "end_user", body.user_id))
    except AlreadyExists:
        raise Conflict(f"End user '{body.user_id}' already exists.", param="user_id") from None
    ctx.invalidate_entities()
    return end_user


@_both(
    "POST",
    "/update",
    summary="Change an end user",
    response=EndUser,
    body=UpdateCustomerRequest,
    writes=True,
)
async def update_customer(ctx: Ctx, body: UpdateCustomerRequest) -> EndUser:
    """Apply the given fields to an end user."""
    await _visible(ctx, body.user_id)
    _manageable(ctx)
    changes = given(body, leave=("user_id",))
    await require_budget(ctx.store, changes.get("budget_id"))
    changes = checked_limits(changes, datetime.now(UTC), ctx.calendar_aligned)
    return await _update(ctx, body.user_id, changes, "update")


async def _update(ctx: Ctx, user_id: str, changes: dict[str, Any], action: str) -> EndUser:
    audit = ctx.audit(action, "end_user", user_id)
    updated = await ctx.store.update(EndUser, user_id, changes, audit=audit)
    if updated is None:
        raise hidden("end user", user_id)
    ctx.invalidate_entities()
    return updated


@_both(
    "POST",
    "/delete",
    summary="Delete end users (safe to repeat)",
    response=CustomerDeleteResponse,
    body=CustomerIdsRequest,
    writes=True,
)
async def delete_customers(ctx: Ctx, body: CustomerIdsRequest) -> CustomerDeleteResponse:
    """Delete the listed end users; ids already gone are skipped."""
    _manageable(ctx)
    deleted = [
        user_id
        for user_id in body.user_ids
        if await ctx.store.delete(EndUser, user_id, audit=ctx.audit("delete", "end_user", user_id))
    ]
    if deleted:
        ctx.invalidate_entities()
    return CustomerDeleteResponse(deleted_customers=deleted)


@_both("GET", "/info", summary="Read an end user", response=EndUser, query=CustomerQuery)
async def customer_info(ctx: Ctx, query: CustomerQuery) -> EndUser:
    """The end user named by `end_user_id`."""
    return await _visible(ctx, query.end_user_id)


@_both("GET", "/list", summary="List every end user", response=list[EndUser])
async def list_customers(ctx: Ctx, _: None) -> list[EndUser]:
    """Every end user, oldest first (proxy_admin and proxy_admin_viewer only)."""
    require(ctx.actor.sees_all, "the proxy_admin or proxy_admin_viewer role")
    return await list_all(ctx.store, EndUser)


@_both(
    "POST",
    "/block",
    summary="Block end users (creating unknown ones blocked)",
    response=BlockedResponse,
    body=CustomerIdsRequest,
    writes=True,
)
async def block_customers(ctx: Ctx, body: CustomerIdsRequest) -> BlockedResponse:
    """Block every listed end user: their requests get 403 `end_user_blocked` at once."""
    _manageable(ctx)
    for user_id in body.user_ids:
        if await ctx.store.get(EndUser, user_id) is None:
            await _create_blocked(ctx, user_id)
        else:
            await _update(ctx, user_id, {"blocked": True}, "block")
    ctx.invalidate_entities()
    return BlockedResponse(blocked_users=body.user_ids)


async def _create_blocked(ctx: Ctx, user_id: str) -> None:
    end_user = EndUser(user_id=user_id, blocked=True, created_by=ctx.actor.id)
    try:
        await ctx.store.create(end_user, audit=ctx.audit("block", "end_user", user_id))
    except AlreadyExists:
        # Created by a concurrent call since we looked: block the record that is there now.
        await _update(ctx, user_id, {"blocked": True}, "block")


@_both(
    "POST",
    "/unblock",
    summary="Unblock end users",
    response=UnblockedResponse,
    body=CustomerIdsRequest,
    writes=True,
)
async def unblock_customers(ctx: Ctx, body: CustomerIdsRequest) -> UnblockedResponse:
    """Let the listed end users through again; unknown ids are skipped."""
    _manageable(ctx)
    done: list[str] = []
    for user_id in body.user_ids:
        if await ctx.store.get(EndUser, user_id) is not None:
            await _update(ctx, user_id, {"blocked": False}, "unblock")
            done.append(user_id)
    return UnblockedResponse(unblocked_users=done)
