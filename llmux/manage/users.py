"""The `/user/*` management endpoints: new, update, delete, info, list (LiteLLM shapes).

Users carry a proxy-wide `user_role`, optional budget and limit fields, and an optional
organization. Only `proxy_admin` manages any user; an `org_admin` manages the users of its
organizations and may grant them the `internal_user` roles only. Everyone else sees only itself
(`proxy_admin_viewer` reads everyone). `/user/new` creates a key for the user unless
`auto_create_key` is false, and puts it in the given teams. Deleting a user deletes its keys and
memberships too. Every change is audited and invalidates the gateway's tenancy caches.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec

from llmux.errors import Conflict, InvalidRequest, UnprocessableEntity
from llmux.governance.durations import expires_at
from llmux.governance.keys import display_name, generate_key, hash_key
from llmux.manage.access import (
    hidden,
    manages_team,
    manages_user,
    require,
    sees_key,
    sees_team,
    sees_user,
)
from llmux.manage.actor import Actor
from llmux.manage.keys_common import (
    check_alias,
    collect,
    issue_key,
    page_count,
    parse_field_duration,
    settings_changes,
)
from llmux.manage.keys_wire import GeneratedKey
from llmux.manage.lookups import visible_org, visible_team
from llmux.manage.routes import Ctx, endpoint
from llmux.manage.users_wire import (
    DeletedUsers,
    DeleteUsersRequest,
    NewUser,
    NewUserRequest,
    UpdateUserRequest,
    UserInfo,
    UserInfoQuery,
    UserList,
    UserListQuery,
    UserSettings,
    UserTeam,
)
from llmux.store.base import AlreadyExists, FilterValue
from llmux.store.records import (
    Key,
    OrgMembership,
    Team,
    TeamMembership,
    User,
    UserRole,
    utcnow,
)

__all__: list[str] = []
"""Nothing to import: loading the module registers the endpoints; the types are in users_wire."""

_MEMBER_ROLES: Final = frozenset({"internal_user", "internal_user_viewer"})
"""The roles an org_admin may give; the proxy-wide admin roles need a proxy_admin."""


# --- endpoints ------------------------------------------------------------------------------


@endpoint(
    "POST",
    "/user/new",
    summary="Create a user, add it to teams, and (by default) give it a key.",
    tag="users",
    response=NewUser,
    body=NewUserRequest,
    writes=True,
)
async def new(ctx: Ctx, body: NewUserRequest) -> NewUser:
    """Create the user; its memberships and key follow, each audited."""
    changes = _changes(ctx, body)
    user_id = body.user_id if isinstance(body.user_id, str) else _new_user_id()
    user = User(user_id=user_id, created_by=_creator(ctx.actor), **changes)
    await _require_user_admin(ctx, user.organization_id, user.user_role)
    teams = [await _joinable(ctx, team) for team in _requested_teams(body.teams)]
    expires = None
    if body.duration is not None:
        expires = expires_at(parse_field_duration("duration", body.duration), utcnow())
    if body.auto_create_key and body.key_alias is not None:
        await check_alias(ctx.store, body.key_alias, None)
    try:
        await ctx.store.create(user, audit=ctx.audit("created", "user", user.user_id))
    except AlreadyExists:
        raise Conflict(f"The user '{user.user_id}' already exists.", param="user_id") from None
    for team in teams:
        await _join(ctx, user.user_id, team)
    ctx.invalidate_entities()
    created = NewUser(teams=[t.team_id for t in teams], **msgspec.structs.asdict(user))
    if body.auto_create_key:
        issued = await _user_key(ctx, user, body.key_alias, expires)
        created.key, created.token = issued.key, issued.token
    return created


@endpoint(
    "POST",
    "/user/update",
    summary="Change some fields of a user.",
    tag="users",
    response=User,
    body=UpdateUserRequest,
    writes=True,
)
async def update(ctx: Ctx, body: UpdateUserRequest) -> User:
    """Apply the given fields; a role or organization change needs rights for the new one."""
    user = await _managed_user(ctx, body.user_id)
    changes = _changes(ctx, body)
    if "user_role" in changes or "organization_id" in changes:
        organization_id = changes.get("organization_id", user.organization_id)
        await _require_user_admin(ctx, organization_id, changes.get("user_role", user.user_role))
    updated = await ctx.store.update(
        User, user.user_id, changes, audit=ctx.audit("updated", "user", user.user_id)
    )
    if updated is None:  # deleted between the read and the write
        raise hidden("user", body.user_id)
    ctx.invalidate_entities()
    return updated


@endpoint(
    "POST",
    "/user/delete",
    summary="Delete users with their keys and memberships; a missing user is not an error.",
    tag="users",
    response=DeletedUsers,
    body=DeleteUsersRequest,
    writes=True,
)
async def delete(ctx: Ctx, body: DeleteUsersRequest) -> DeletedUsers:
    """Delete every given user the caller may see (all checked first, so none or all go)."""
    found = [await _deletable(ctx, user_id) for user_id in body.user_ids]
    deleted = [user.user_id for user in found if user is not None and await _remove(ctx, user)]
    if deleted:
        ctx.invalidate_entities()
    return DeletedUsers(deleted_users=deleted)


@endpoint(
    "GET",
    "/user/info",
    summary="A user with its keys and teams (default: the caller's own user).",
    tag="users",
    response=UserInfo,
    query=UserInfoQuery,
)
async def info(ctx: Ctx, query: UserInfoQuery) -> UserInfo:
    """The user, the keys of it the caller may see, and the teams it belongs to."""
    user_id = query.user_id or ctx.actor.user_id
    if user_id is None:
        raise InvalidRequest(
            "This key belongs to no user: name one with `?user_id=`.", param="user_id"
        )
    user = await _visible_user(ctx, user_id)
    return UserInfo(
        user_id=user.user_id,
        user_info=user,
        keys=await _keys_of(ctx, user.user_id),
        teams=await _teams_of(ctx, user.user_id),
    )


@endpoint(
    "GET",
    "/user/list",
    summary="The users the caller may see, paginated and filtered.",
    tag="users",
    response=UserList,
    query=UserListQuery,
)
async def list_users(ctx: Ctx, query: UserListQuery) -> UserList:
    """A page of users matching the filters, among those the caller may see."""
    filters: dict[str, FilterValue] = {}
    if query.role is not None:
        filters["user_role"] = query.role
    if query.organization_id is not None:
        filters["organization_id"] = query.organization_id
    size = query.page_size
    if ctx.actor.sees_all:
        page = await ctx.store.list(User, filters=filters, page=query.page, size=size)
        users, total = page.items, page.total
    else:
        visible = [u for u in await _visible_users(ctx) if _matches(u, filters)]
        start = (query.page - 1) * size
        users, total = visible[start : start + size], len(visible)
    return UserList(
        users=users,
        total=total,
        page=query.page,
        page_size=size,
        total_pages=page_count(total, size),
    )


# --- rights ---------------------------------------------------------------------------------


def _creator(actor: Actor) -> str:
    """What `created_by` records for the caller: its user, else its key hash or `master`."""
    return actor.user_id or actor.id


def _new_user_id() -> str:
    """A fresh random user id for `/user/new` without one."""
    return f"user-{generate_key().removeprefix('sk-')[:16]}"


async def _visible_user(ctx: Ctx, user_id: str) -> User:
    """The user, or 404 when it is missing or not visible to the caller."""
    user = await ctx.store.get(User, user_id)
    if user is None or not sees_user(ctx.actor, user):
        raise hidden("user", user_id)
    return user


async def _managed_user(ctx: Ctx, user_id: str) -> User:
    """The user; 404 if invisible, 403 if visible but not the caller's to manage."""
    user = await _visible_user(ctx, user_id)
    require(
        manages_user(ctx.actor, user),
        "proxy_admin rights, or org_admin rights in the user's organization",
    )
    return user


async def _require_user_admin(ctx: Ctx, organization_id: str | None, role: UserRole) -> None:
    """403 unless the caller may put a user with `role` in `organization_id` (404: no such org)."""
    actor = ctx.actor
    if organization_id is not None:
        await visible_org(ctx, organization_id)
    if actor.is_admin:
        return
    require(
        organization_id is not None and organization_id in actor.org_admin,
        "proxy_admin rights, or org_admin rights in the user's organization",
    )
    require(role in _MEMBER_ROLES, f"proxy_admin rights to give the role '{role}'")


def _requested_teams(teams: list[str | UserTeam]) -> list[UserTeam]:
    """`teams` as `UserTeam`s; 422 naming `teams` when one is listed twice."""
    wanted = [UserTeam(team_id=team) if isinstance(team, str) else team for team in teams]
    ids = [team.team_id for team in wanted]
    for team_id in ids:
        if ids.count(team_id) > 1:
            raise UnprocessableEntity(
                f"Invalid 'teams': '{team_id}' is listed twice.", param="teams"
            )
    return wanted


async def _joinable(ctx: Ctx, team: UserTeam) -> UserTeam:
    """`team` if the caller manages it; 404 if invisible, 403 if not managed."""
    found = await visible_team(ctx, team.team_id)
    require(manages_team(ctx.actor, found), f"admin rights in team '{team.team_id}'")
    return team


async def _deletable(ctx: Ctx, user_id: str) -> User | None:
    """The user if the caller may delete it; None if missing or invisible; 403 if not managed."""
    user = await ctx.store.get(User, user_id)
    if user is None or not sees_user(ctx.actor, user):
        return None
    require(
        manages_user(ctx.actor, user),
        "proxy_admin rights, or org_admin rights in the user's organization",
    )
    return user


# --- changes --------------------------------------------------------------------------------

_DIRECT: Final = (
    "user_email",
    "user_alias",
    "user_role",
    "organization_id",
    "models",
    "max_budget",
    "soft_budget",
    "max_parallel_requests",
    "tpm_limit",
    "rpm_limit",
    "model_max_budget",
    "model_rpm_limit",
    "model_tpm_limit",
    "metadata",
    "blocked",
    "spend",
)


def _changes(ctx: Ctx, settings: UserSettings) -> dict[str, Any]:
    """The `User` fields the request sets, the budget period turned into its end."""
    return settings_changes(ctx, settings, _DIRECT, utcnow())


async def _join(ctx: Ctx, user_id: str, team: UserTeam) -> None:
    """Add the user to the team, audited."""
    member = TeamMembership(
        team_id=team.team_id,
        user_id=user_id,
        role=team.user_role,
        max_budget_in_team=team.max_budget_in_team,
    )
    audit = ctx.audit("member_added", "team_membership", f"{team.team_id}/{user_id}")
    await ctx.store.add_member(member, audit=audit)


async def _user_key(
    ctx: Ctx, user: User, key_alias: str | None, expires: datetime | None
) -> GeneratedKey:
    """The new user's own key, with the user's models and organization."""
    raw = generate_key()
    key = Key(
        token=hash_key(raw),
        key_name=display_name(raw),
        key_alias=key_alias,
        user_id=user.user_id,
        organization_id=user.organization_id,
        models=list(user.models),
        expires=expires,
        created_by=_creator(ctx.actor),
    )
    return await issue_key(ctx, raw, key)


async def _remove(ctx: Ctx, user: User) -> bool:
    """Delete the user's keys, memberships and the user itself; False if already gone."""
    store = ctx.store
    for key in await collect(store, Key, {"user_id": user.user_id}):
        if await store.delete(Key, key.token, audit=ctx.audit("deleted", "key", key.token)):
            ctx.invalidate_key(key.token)
    for team in await store.list_members(TeamMembership, user_id=user.user_id):
        audit = ctx.audit("member_removed", "team_membership", f"{team.team_id}/{user.user_id}")
        await store.remove_member(TeamMembership, team.team_id, user.user_id, audit=audit)
    for org in await store.list_members(OrgMembership, user_id=user.user_id):
        ident = f"{org.organization_id}/{user.user_id}"
        audit = ctx.audit("member_removed", "org_membership", ident)
        await store.remove_member(OrgMembership, org.organization_id, user.user_id, audit=audit)
    return await store.delete(User, user.user_id, audit=ctx.audit("deleted", "user", user.user_id))


# --- reading --------------------------------------------------------------------------------


async def _keys_of(ctx: Ctx, user_id: str) -> list[Key]:
    """The user's keys that the caller may see."""
    visible = []
    for key in await collect(ctx.store, Key, {"user_id": user_id}):
        team = None if key.team_id is None else await ctx.store.get(Team, key.team_id)
        if sees_key(ctx.actor, key, team):
            visible.append(key)
    return visible


async def _teams_of(ctx: Ctx, user_id: str) -> list[Team]:
    """The teams the user belongs to that the caller may see."""
    teams = []
    for member in await ctx.store.list_members(TeamMembership, user_id=user_id):
        team = await ctx.store.get(Team, member.team_id)
        if team is not None and sees_team(ctx.actor, team):
            teams.append(team)
    return teams


async def _visible_users(ctx: Ctx) -> list[User]:
    """Every user a caller without `sees_all` may see: itself and its organizations' users."""
    actor = ctx.actor
    found: dict[str, User] = {}
    if actor.org_admin:
        orgs = sorted(actor.org_admin)
        for user in await collect(ctx.store, User, {"organization_id": orgs}):
            found[user.user_id] = user
    if actor.user_id is not None:
        own = await ctx.store.get(User, actor.user_id)
        if own is not None:
            found[own.user_id] = own
    return sorted(found.values(), key=lambda user: (user.created_at, user.user_id))


def _matches(user: User, filters: dict[str, FilterValue]) -> bool:
    """Whether the user has every filtered value."""
    return all(getattr(user, name) == value for name, value in filters.items())
