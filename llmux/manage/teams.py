"""Teams and their members (`/team/*`), in LiteLLM's shapes.

Who may do what: a `proxy_admin` everything; an `org_admin` creates and governs the teams of
its organizations; a team `admin` manages the team's members and its alias, metadata and tags,
but may not raise its own limits, block, unblock or delete it; members read it. A team the
actor may not see answers 404 like a missing one. Deleting a team also deletes its keys and
memberships (a key outliving its team would escape the team's limits). Adding a member who has
no user record creates one, as LiteLLM does. Every change is audited and invalidates the
gateway's cached tenancies, so the next gateway request sees it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from llmux.errors import Conflict, UnprocessableEntity
from llmux.manage.access import (
    hidden,
    manages_org,
    manages_team,
    require,
    sees_key,
    sees_team,
)
from llmux.manage.actor import Actor
from llmux.manage.budgets import (
    checked_limits,
    given,
    list_all,
    new_id,
    require_budget,
)
from llmux.manage.lookups import visible_org, visible_team
from llmux.manage.routes import Ctx, endpoint
from llmux.manage.teams_wire import (
    MemberAddRequest,
    MemberAddResponse,
    MemberDeleteRequest,
    MemberUpdateRequest,
    NewTeamRequest,
    TeamDeleteResponse,
    TeamIdRequest,
    TeamIdsRequest,
    TeamInfoResponse,
    TeamListQuery,
    TeamMember,
    TeamMemberView,
    TeamQuery,
    TeamUpdateResponse,
    TeamView,
    UpdateTeamRequest,
)
from llmux.store.base import AlreadyExists
from llmux.store.records import Key, Membership, Team, TeamMembership, User

__all__ = ["ensure_user", "find_user", "member_id", "require_who"]

_TEAM_ADMIN_FIELDS: Final = frozenset({"team_alias", "metadata", "tags"})
"""Fields a team's own admins may change; the rest (limits, budgets, models, organization)
need the team's org_admin or a proxy_admin, so no team raises its own limits."""


# --- users behind members ---------------------------------------------------------------------


def require_who(user_id: str | None, user_email: str | None, field: str | None = None) -> None:
    """422 unless a member names its user by `user_id` or `user_email` (`field`: where)."""
    if user_id is None and user_email is None:
        where = f"'{field}'" if field else "request"
        param = f"{field}.user_id" if field else "user_id"
        raise UnprocessableEntity(f"Invalid {where}: give user_id or user_email.", param=param)


async def find_user(ctx: Ctx, user_id: str | None, user_email: str | None) -> User | None:
    """The user named by id (preferred) or email, or None."""
    if user_id is not None:
        return await ctx.store.get(User, user_id)
    page = await ctx.store.list(User, filters={"user_email": user_email}, size=1)
    return page.items[0] if page.items else None


async def ensure_user(
    ctx: Ctx, user_id: str | None, user_email: str | None, organization_id: str | None = None
) -> User:
    """The user named by id or email, created (as an `internal_user`) when there is none."""
    found = await find_user(ctx, user_id, user_email)
    if found is not None:
        return found
    user = User(
        user_id=user_id or new_id(),
        user_email=user_email,
        organization_id=organization_id,
        created_by=ctx.actor.id,
    )
    try:
        await ctx.store.create(user, audit=ctx.audit("create", "user", user.user_id))
    except AlreadyExists:
        # A concurrent call created the same user since we looked: use that one.
        raced = await find_user(ctx, user.user_id, None)
        if raced is None:
            raise
        return raced
    return user


# --- access -----------------------------------------------------------------------------------


def _governs(actor: Actor, team: Team) -> bool:
    return actor.is_admin or manages_org(actor, team.organization_id)


def _require_governs(actor: Actor, team: Team) -> None:
    require(
        _governs(actor, team),
        f"rights over team '{team.team_id}' itself (proxy_admin, or org_admin of its organization)",
    )


def _require_manages(actor: Actor, team: Team) -> None:
    require(manages_team(actor, team), f"admin rights in team '{team.team_id}'")


async def _check_org(ctx: Ctx, organization_id: str | None) -> None:
    if organization_id is None:
        require(ctx.actor.is_admin, "the proxy_admin role for a team outside any organization")
        return
    await visible_org(ctx, organization_id)
    require(manages_org(ctx.actor, organization_id), f"org_admin of '{organization_id}'")


async def _view(ctx: Ctx, team: Team) -> TeamView:
    members = await ctx.store.list_members(TeamMembership, group_id=team.team_id)
    views = [await _member_view(ctx, member) for member in members]
    return TeamView(**msgspec.structs.asdict(team), members_with_roles=views)


async def _member_view(ctx: Ctx, member: TeamMembership) -> TeamMemberView:
    user = await ctx.store.get(User, member.user_id)
    email = user.user_email if user is not None else None
    return TeamMemberView(role=member.role, user_id=member.user_id, user_email=email)


# --- teams ------------------------------------------------------------------------------------


@endpoint(
    "POST",
    "/team/new",
    summary="Create a team",
    tag="teams",
    response=TeamView,
    body=NewTeamRequest,
    writes=True,
)
async def new_team(ctx: Ctx, body: NewTeamRequest) -> TeamView:
    """Create a team with its first members; 409 when the id is taken."""
    organization_id = body.organization_id if isinstance(body.organization_id, str) else None
    await _check_org(ctx, organization_id)
    fields = given(body, leave=("team_id", "members_with_roles"))
    await require_budget(ctx.store, fields.get("budget_id"))
    for index, member in enumerate(body.members_with_roles):
        require_who(member.user_id, member.user_email, f"members_with_roles[{index}]")
    team_id = body.team_id if isinstance(body.team_id, str) else new_id()
    fields = checked_limits(fields, datetime.now(UTC), ctx.calendar_aligned)
    team = Team(team_id=team_id, created_by=ctx.actor.id, **fields)
    try:
        await ctx.store.create(team, audit=ctx.audit("create", "team", team_id))
    except AlreadyExists:
        raise Conflict(f"Team '{team_id}' already exists.", param="team_id") from None
    await _add_members(ctx, team, body.members_with_roles, None)
    ctx.invalidate_entities()
    return await _view(ctx, team)


@endpoint(
    "POST",
    "/team/update",
    summary="Change a team",
    tag="teams",
    response=TeamUpdateResponse,
    body=UpdateTeamRequest,
    writes=True,
)
async def update_team(ctx: Ctx, body: UpdateTeamRequest) -> TeamUpdateResponse:
    """Apply the given fields; limits and the organization need the team's org_admin."""
    team = await visible_team(ctx, body.team_id)
    changes = given(body, leave=("team_id",))
    _require_manages(ctx.actor, team)
    if not changes.keys() <= _TEAM_ADMIN_FIELDS:
        _require_governs(ctx.actor, team)
    if "organization_id" in changes and changes["organization_id"] != team.organization_id:
        await _check_org(ctx, changes["organization_id"])
    await require_budget(ctx.store, changes.get("budget_id"))
    changes = checked_limits(changes, datetime.now(UTC), ctx.calendar_aligned)
    updated = await _update(ctx, team.team_id, changes, "update")
    return TeamUpdateResponse(team_id=updated.team_id, data=await _view(ctx, updated))


async def _update(ctx: Ctx, team_id: str, changes: dict[str, Any], action: str) -> Team:
    updated = await ctx.store.update(
        Team, team_id, changes, audit=ctx.audit(action, "team", team_id)
    )
    if updated is None:
        raise hidden("team", team_id)
    ctx.invalidate_entities()
    return updated


@endpoint(
    "POST",
    "/team/delete",
    summary="Delete teams with their keys and memberships (safe to repeat)",
    tag="teams",
    response=TeamDeleteResponse,
    body=TeamIdsRequest,
    writes=True,
)
async def delete_teams(ctx: Ctx, body: TeamIdsRequest) -> TeamDeleteResponse:
    """Delete every listed team the actor governs; ids already gone are skipped."""
    teams: list[Team] = []
    for team_id in body.team_ids:
        team = await ctx.store.get(Team, team_id)
        if team is not None and sees_team(ctx.actor, team):
            _require_governs(ctx.actor, team)
            teams.append(team)
    deleted = [team.team_id for team in teams if await _delete_team(ctx, team)]
    ctx.invalidate_entities()
    return TeamDeleteResponse(deleted_teams=deleted)


async def _delete_team(ctx: Ctx, team: Team) -> bool:
    for key in await list_all(ctx.store, Key, {"team_id": team.team_id}):
        await ctx.store.delete(Key, key.token, audit=ctx.audit("delete", "key", key.token))
        ctx.invalidate_key(key.token)
    for member in await ctx.store.list_members(TeamMembership, group_id=team.team_id):
        await _remove_member(ctx, team.team_id, member.user_id)
    audit = ctx.audit("delete", "team", team.team_id)
    return await ctx.store.delete(Team, team.team_id, audit=audit)


@endpoint(
    "GET",
    "/team/info",
    summary="Read a team",
    tag="teams",
    response=TeamInfoResponse,
    query=TeamQuery,
)
async def team_info(ctx: Ctx, query: TeamQuery) -> TeamInfoResponse:
    """The team, its memberships, and its keys that the actor may see."""
    team = await visible_team(ctx, query.team_id)
    keys = await list_all(ctx.store, Key, {"team_id": team.team_id})
    return TeamInfoResponse(
        team_id=team.team_id,
        team_info=await _view(ctx, team),
        keys=[key for key in keys if sees_key(ctx.actor, key, team)],
        team_memberships=await ctx.store.list_members(TeamMembership, group_id=team.team_id),
    )


@endpoint(
    "GET",
    "/team/list",
    summary="List the teams the caller may see",
    tag="teams",
    response=list[TeamView],
    query=TeamListQuery,
)
async def list_teams(ctx: Ctx, query: TeamListQuery) -> list[TeamView]:
    """Visible teams, optionally of one organization or with one user as a member."""
    filters = {} if query.organization_id is None else {"organization_id": query.organization_id}
    teams = await list_all(ctx.store, Team, filters)
    if query.user_id is not None:
        members = await ctx.store.list_members(TeamMembership, user_id=query.user_id)
        joined = {member.team_id for member in members}
        teams = [team for team in teams if team.team_id in joined]
    return [await _view(ctx, team) for team in teams if sees_team(ctx.actor, team)]


@endpoint(
    "POST",
    "/team/block",
    summary="Block a team",
    tag="teams",
    response=TeamView,
    body=TeamIdRequest,
    writes=True,
)
async def block_team(ctx: Ctx, body: TeamIdRequest) -> TeamView:
    """Block every key of the team on the gateway (403 `team_blocked`) until unblocked."""
    return await _set_blocked(ctx, body.team_id, blocked=True)


@endpoint(
    "POST",
    "/team/unblock",
    summary="Unblock a team",
    tag="teams",
    response=TeamView,
    body=TeamIdRequest,
    writes=True,
)
async def unblock_team(ctx: Ctx, body: TeamIdRequest) -> TeamView:
    """Let the team's keys through again."""
    return await _set_blocked(ctx, body.team_id, blocked=False)


async def _set_blocked(ctx: Ctx, team_id: str, *, blocked: bool) -> TeamView:
    team = await visible_team(ctx, team_id)
    _require_governs(ctx.actor, team)
    action = "block" if blocked else "unblock"
    return await _view(ctx, await _update(ctx, team_id, {"blocked": blocked}, action))


# --- members ----------------------------------------------------------------------------------


@endpoint(
    "POST",
    "/team/member_add",
    summary="Add members to a team",
    tag="teams",
    response=MemberAddResponse,
    body=MemberAddRequest,
    writes=True,
)
async def add_members(ctx: Ctx, body: MemberAddRequest) -> MemberAddResponse:
    """Add one or more members; 409 (and no change) when one of them is already in the team."""
    team = await visible_team(ctx, body.team_id)
    _require_manages(ctx.actor, team)
    members = body.member if isinstance(body.member, list) else [body.member]
    for index, member in enumerate(members):
        field = f"member[{index}]" if isinstance(body.member, list) else "member"
        require_who(member.user_id, member.user_email, field)
    for member in members:
        await _refuse_existing(ctx, team, member)
    users, added = await _add_members(ctx, team, members, body.max_budget_in_team)
    ctx.invalidate_entities()
    view = await _view(ctx, team)
    return MemberAddResponse(
        **msgspec.structs.asdict(view), updated_users=users, updated_team_memberships=added
    )


async def _refuse_existing(ctx: Ctx, team: Team, member: TeamMember) -> None:
    user = await find_user(ctx, member.user_id, member.user_email)
    if user is None:
        return
    found = await ctx.store.list_members(
        TeamMembership, group_id=team.team_id, user_id=user.user_id
    )
    if found:
        raise _already_member(user.user_id, team.team_id)


def _already_member(user_id: str, team_id: str) -> Conflict:
    return Conflict(
        f"User '{user_id}' is already a member of team '{team_id}'.",
        param="member",
        code="already_member",
    )


async def _add_members(
    ctx: Ctx, team: Team, members: list[TeamMember], max_budget_in_team: float | None
) -> tuple[list[User], list[TeamMembership]]:
    users: list[User] = []
    added: list[TeamMembership] = []
    budget = max_budget_in_team if max_budget_in_team is not None else team.team_member_budget
    for member in members:
        user = await ensure_user(ctx, member.user_id, member.user_email, team.organization_id)
        membership = TeamMembership(
            team_id=team.team_id, user_id=user.user_id, role=member.role, max_budget_in_team=budget
        )
        audit = ctx.audit("member_add", "team", team.team_id)
        try:
            await ctx.store.add_member(membership, audit=audit)
        except AlreadyExists:
            raise _already_member(user.user_id, team.team_id) from None
        users.append(user)
        added.append(membership)
    return users, added


async def member_id(
    ctx: Ctx, kind: type[Membership], group_id: str, user_id: str | None, email: str | None
) -> str:
    """The id of the user (by id or email) who is a member of group `group_id`; 404 if none."""
    user = await find_user(ctx, user_id, email)
    found = user is not None and await ctx.store.list_members(
        kind, group_id=group_id, user_id=user.user_id
    )
    if user is None or not found:
        what = "team member" if kind is TeamMembership else "organization member"
        raise hidden(what, user_id or email or "")
    return user.user_id


@endpoint(
    "POST",
    "/team/member_update",
    summary="Change a member's role or budget in a team",
    tag="teams",
    response=TeamMembership,
    body=MemberUpdateRequest,
    writes=True,
)
async def update_member(ctx: Ctx, body: MemberUpdateRequest) -> TeamMembership:
    """Change the member's role and/or `max_budget_in_team`; 404 for a non-member."""
    require_who(body.user_id, body.user_email)
    team = await visible_team(ctx, body.team_id)
    _require_manages(ctx.actor, team)
    user_id = await member_id(ctx, TeamMembership, team.team_id, body.user_id, body.user_email)
    changes = given(body, leave=("team_id", "user_id", "user_email"))
    audit = ctx.audit("member_update", "team", team.team_id)
    updated = await ctx.store.update_member(
        TeamMembership, team.team_id, user_id, changes, audit=audit
    )
    if updated is None:
        raise hidden("team member", user_id)
    ctx.invalidate_entities()
    return updated


@endpoint(
    "POST",
    "/team/member_delete",
    summary="Remove a member from a team (safe to repeat)",
    tag="teams",
    response=TeamView,
    body=MemberDeleteRequest,
    writes=True,
)
async def delete_member(ctx: Ctx, body: MemberDeleteRequest) -> TeamView:
    """Remove the member; a user who is not (or no longer) a member changes nothing."""
    require_who(body.user_id, body.user_email)
    team = await visible_team(ctx, body.team_id)
    _require_manages(ctx.actor, team)
    user = await find_user(ctx, body.user_id, body.user_email)
    if user is not None and await _remove_member(ctx, team.team_id, user.user_id):
        ctx.invalidate_entities()
    return await _view(ctx, team)


async def _remove_member(ctx: Ctx, team_id: str, user_id: str) -> bool:
    audit = ctx.audit("member_delete", "team", team_id)
    return await ctx.store.remove_member(TeamMembership, team_id, user_id, audit=audit)
