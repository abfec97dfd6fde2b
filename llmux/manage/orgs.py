"""Organizations and their members (`/organization/*`), in LiteLLM's shapes.

A `proxy_admin` creates, governs and deletes organizations; an `org_admin` reads its
organizations, manages their members and may change their alias and metadata (never their
limits); members read them. An organization the actor may not see answers 404 like a missing
one. An organization that still has teams or keys cannot be deleted (409): their limits and
org_admins' rights hang on it. Adding a member who has no user record creates one in the
organization, as LiteLLM does. Every change is audited and invalidates the gateway's cached
tenancies.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import msgspec
from msgspec import UNSET, UnsetType

from llmux.errors import Conflict
from llmux.manage.access import hidden, manages_org, require, sees_org, sees_team
from llmux.manage.budgets import (
    GovernedFields,
    checked_limits,
    given,
    list_all,
    new_id,
    require_budget,
)
from llmux.manage.lookups import visible_org
from llmux.manage.routes import Ctx, endpoint
from llmux.manage.teams import ensure_user, find_user, member_id, require_who
from llmux.store.base import AlreadyExists
from llmux.store.records import Key, Organization, OrgMembership, OrgRole, Team, User

__all__ = [
    "NewOrgRequest",
    "OrgDeleteResponse",
    "OrgIdsRequest",
    "OrgMember",
    "OrgMemberAddRequest",
    "OrgMemberAddResponse",
    "OrgMemberDeleteRequest",
    "OrgMemberUpdateRequest",
    "OrgQuery",
    "OrgView",
    "UpdateOrgRequest",
]

_ORG_ADMIN_FIELDS: Final = frozenset({"organization_alias", "metadata"})
"""Fields an organization's own org_admins may change; limits need a proxy_admin."""


class OrgMember(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A member to add: `user_id` or `user_email`, and the role in the organization."""

    role: OrgRole
    user_id: str | None = None
    user_email: str | None = None


class NewOrgRequest(GovernedFields, kw_only=True, forbid_unknown_fields=True):
    """`POST /organization/new` (the id is generated when absent)."""

    organization_alias: str
    organization_id: str | UnsetType = UNSET


class UpdateOrgRequest(GovernedFields, kw_only=True, forbid_unknown_fields=True):
    """`POST /organization/update`: the organization and the fields to change."""

    organization_id: str
    organization_alias: str | UnsetType = UNSET


class OrgIdsRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /organization/delete`."""

    organization_ids: list[str]


class OrgQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`GET /organization/info?organization_id=`."""

    organization_id: str


class OrgMemberAddRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /organization/member_add`: one member or a list."""

    organization_id: str
    member: OrgMember | list[OrgMember]


class OrgMemberUpdateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /organization/member_update`: the member and its new role."""

    organization_id: str
    user_id: str | None = None
    user_email: str | None = None
    role: OrgRole


class OrgMemberDeleteRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /organization/member_delete`: the member to remove."""

    organization_id: str
    user_id: str | None = None
    user_email: str | None = None


class OrgView(Organization, kw_only=True):
    """An organization as the API shows it: the record, its members and the visible teams."""

    members: list[OrgMembership] = []
    teams: list[Team] = []


class OrgDeleteResponse(msgspec.Struct, kw_only=True):
    """The organizations `/organization/delete` removed (ids already gone are left out)."""

    deleted_organizations: list[str]


class OrgMemberAddResponse(msgspec.Struct, kw_only=True):
    """`/organization/member_add`, as LiteLLM answers it."""

    organization_id: str
    updated_users: list[User]
    updated_organization_memberships: list[OrgMembership]


# --- access and views -------------------------------------------------------------------------


def _require_admin(ctx: Ctx, what: str) -> None:
    require(ctx.actor.is_admin, f"the proxy_admin role to {what}")


def _require_manages(ctx: Ctx, organization_id: str) -> None:
    require(manages_org(ctx.actor, organization_id), f"org_admin of '{organization_id}'")


async def _view(ctx: Ctx, org: Organization) -> OrgView:
    org_id = org.organization_id
    members = await ctx.store.list_members(OrgMembership, group_id=org_id)
    teams = await list_all(ctx.store, Team, {"organization_id": org_id})
    visible = [team for team in teams if sees_team(ctx.actor, team)]
    return OrgView(**msgspec.structs.asdict(org), members=members, teams=visible)


# --- organizations ----------------------------------------------------------------------------


@endpoint(
    "POST",
    "/organization/new",
    summary="Create an organization",
    tag="organizations",
    response=OrgView,
    body=NewOrgRequest,
    writes=True,
)
async def new_org(ctx: Ctx, body: NewOrgRequest) -> OrgView:
    """Create an organization; 409 when the id is taken."""
    _require_admin(ctx, "create organizations")
    fields = given(body, leave=("organization_id",))
    await require_budget(ctx.store, fields.get("budget_id"))
    org_id = body.organization_id if isinstance(body.organization_id, str) else new_id()
    fields = checked_limits(fields, datetime.now(UTC), ctx.calendar_aligned)
    org = Organization(organization_id=org_id, created_by=ctx.actor.id, **fields)
    try:
        await ctx.store.create(org, audit=ctx.audit("create", "organization", org_id))
    except AlreadyExists:
        raise Conflict(
            f"Organization '{org_id}' already exists.", param="organization_id"
        ) from None
    ctx.invalidate_entities()
    return await _view(ctx, org)


@endpoint(
    "POST",
    "/organization/update",
    summary="Change an organization",
    tag="organizations",
    response=OrgView,
    body=UpdateOrgRequest,
    writes=True,
)
async def update_org(ctx: Ctx, body: UpdateOrgRequest) -> OrgView:
    """Apply the given fields; anything beyond alias and metadata needs a proxy_admin."""
    org = await visible_org(ctx, body.organization_id)
    changes = given(body, leave=("organization_id",))
    _require_manages(ctx, org.organization_id)
    if not changes.keys() <= _ORG_ADMIN_FIELDS:
        _require_admin(ctx, "change an organization's limits")
    await require_budget(ctx.store, changes.get("budget_id"))
    changes = checked_limits(changes, datetime.now(UTC), ctx.calendar_aligned)
    audit = ctx.audit("update", "organization", org.organization_id)
    updated = await ctx.store.update(Organization, org.organization_id, changes, audit=audit)
    if updated is None:
        raise hidden("organization", org.organization_id)
    ctx.invalidate_entities()
    return await _view(ctx, updated)


@endpoint(
    "POST",
    "/organization/delete",
    summary="Delete organizations without teams or keys (safe to repeat)",
    tag="organizations",
    response=OrgDeleteResponse,
    body=OrgIdsRequest,
    writes=True,
)
async def delete_orgs(ctx: Ctx, body: OrgIdsRequest) -> OrgDeleteResponse:
    """Delete the listed organizations and their memberships; ids already gone are skipped."""
    found: list[Organization] = []
    for org_id in body.organization_ids:
        org = await ctx.store.get(Organization, org_id)
        if org is not None and sees_org(ctx.actor, org):
            _require_admin(ctx, "delete organizations")
            await _refuse_if_used(ctx, org_id)
            found.append(org)
    deleted = [org.organization_id for org in found if await _delete_org(ctx, org)]
    if deleted:
        ctx.invalidate_entities()
    return OrgDeleteResponse(deleted_organizations=deleted)


async def _refuse_if_used(ctx: Ctx, org_id: str) -> None:
    teams = await ctx.store.list(Team, filters={"organization_id": org_id}, size=1)
    keys = await ctx.store.list(Key, filters={"organization_id": org_id}, size=1)
    if teams.total or keys.total:
        raise Conflict(
            f"Organization '{org_id}' still has {teams.total} team(s) and {keys.total} key(s); "
            "delete or move them first.",
            param="organization_ids",
            code="organization_in_use",
        )


async def _delete_org(ctx: Ctx, org: Organization) -> bool:
    org_id = org.organization_id
    for member in await ctx.store.list_members(OrgMembership, group_id=org_id):
        await _remove_member(ctx, org_id, member.user_id)
    return await ctx.store.delete(
        Organization, org_id, audit=ctx.audit("delete", "organization", org_id)
    )


@endpoint(
    "GET",
    "/organization/info",
    summary="Read an organization with its members and teams",
    tag="organizations",
    response=OrgView,
    query=OrgQuery,
)
async def org_info(ctx: Ctx, query: OrgQuery) -> OrgView:
    """The organization, its members, and its teams the actor may see."""
    return await _view(ctx, await visible_org(ctx, query.organization_id))


@endpoint(
    "GET",
    "/organization/list",
    summary="List the organizations the caller may see",
    tag="organizations",
    response=list[OrgView],
)
async def list_orgs(ctx: Ctx, _: None) -> list[OrgView]:
    """Every organization for proxy-wide readers; one's own organizations otherwise."""
    orgs = await list_all(ctx.store, Organization)
    return [await _view(ctx, org) for org in orgs if sees_org(ctx.actor, org)]


# --- members ----------------------------------------------------------------------------------


@endpoint(
    "POST",
    "/organization/member_add",
    summary="Add members to an organization",
    tag="organizations",
    response=OrgMemberAddResponse,
    body=OrgMemberAddRequest,
    writes=True,
)
async def add_members(ctx: Ctx, body: OrgMemberAddRequest) -> OrgMemberAddResponse:
    """Add one or more members; 409 (and no change) when one is already a member."""
    org = await visible_org(ctx, body.organization_id)
    _require_manages(ctx, org.organization_id)
    members = body.member if isinstance(body.member, list) else [body.member]
    for index, member in enumerate(members):
        field = f"member[{index}]" if isinstance(body.member, list) else "member"
        require_who(member.user_id, member.user_email, field)
    for member in members:
        await _refuse_existing(ctx, org.organization_id, member)
    users: list[User] = []
    added: list[OrgMembership] = []
    for member in members:
        user = await ensure_user(ctx, member.user_id, member.user_email, org.organization_id)
        added.append(await _add_member(ctx, org.organization_id, user.user_id, member.role))
        users.append(user)
    ctx.invalidate_entities()
    return OrgMemberAddResponse(
        organization_id=org.organization_id,
        updated_users=users,
        updated_organization_memberships=added,
    )


async def _refuse_existing(ctx: Ctx, org_id: str, member: OrgMember) -> None:
    user = await find_user(ctx, member.user_id, member.user_email)
    if user is not None and await ctx.store.list_members(
        OrgMembership, group_id=org_id, user_id=user.user_id
    ):
        raise _already_member(user.user_id, org_id)


def _already_member(user_id: str, org_id: str) -> Conflict:
    return Conflict(
        f"User '{user_id}' is already a member of organization '{org_id}'.",
        param="member",
        code="already_member",
    )


async def _add_member(ctx: Ctx, org_id: str, user_id: str, role: OrgRole) -> OrgMembership:
    membership = OrgMembership(organization_id=org_id, user_id=user_id, user_role=role)
    audit = ctx.audit("member_add", "organization", org_id)
    try:
        await ctx.store.add_member(membership, audit=audit)
    except AlreadyExists:
        raise _already_member(user_id, org_id) from None
    return membership


@endpoint(
    "POST",
    "/organization/member_update",
    summary="Change a member's role in an organization",
    tag="organizations",
    response=OrgMembership,
    body=OrgMemberUpdateRequest,
    writes=True,
)
async def update_member(ctx: Ctx, body: OrgMemberUpdateRequest) -> OrgMembership:
    """Set the member's role; 404 for a non-member."""
    require_who(body.user_id, body.user_email)
    org = await visible_org(ctx, body.organization_id)
    _require_manages(ctx, org.organization_id)
    user_id = await member_id(
        ctx, OrgMembership, org.organization_id, body.user_id, body.user_email
    )
    audit = ctx.audit("member_update", "organization", org.organization_id)
    updated = await ctx.store.update_member(
        OrgMembership, org.organization_id, user_id, {"user_role": body.role}, audit=audit
    )
    if updated is None:
        raise hidden("organization member", user_id)
    ctx.invalidate_entities()
    return updated


@endpoint(
    "POST",
    "/organization/member_delete",
    summary="Remove a member from an organization (safe to repeat)",
    tag="organizations",
    response=OrgView,
    body=OrgMemberDeleteRequest,
    writes=True,
)
async def delete_member(ctx: Ctx, body: OrgMemberDeleteRequest) -> OrgView:
    """Remove the member; a user who is not (or no longer) a member changes nothing."""
    require_who(body.user_id, body.user_email)
    org = await visible_org(ctx, body.organization_id)
    _require_manages(ctx, org.organization_id)
    user = await find_user(ctx, body.user_id, body.user_email)
    if user is not None and await _remove_member(ctx, org.organization_id, user.user_id):
        ctx.invalidate_entities()
    return await _view(ctx, org)


async def _remove_member(ctx: Ctx, org_id: str, user_id: str) -> bool:
    audit = ctx.audit("member_delete", "organization", org_id)
    return await ctx.store.remove_member(OrgMembership, org_id, user_id, audit=audit)
