"""Finding a key the caller may see or manage, and checking where a key may be placed.

A key the caller may not see answers 404 as if missing (`llmux.manage.access.hidden`). The owner
of a key changes only its names; anything else needs its team's admin, its organization's
`org_admin` or a `proxy_admin`. Placing a key under a team, user and organization needs rights
there. `llmux.manage.keys` uses these for every `/key/*` endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from llmux.errors import InvalidRequest
from llmux.governance.keys import KEY_PREFIX, display_name, hash_key
from llmux.manage.access import (
    hidden,
    manages_key,
    manages_org,
    manages_team,
    require,
    sees_key,
    sees_user,
)
from llmux.manage.actor import Actor
from llmux.manage.lookups import visible_org, visible_team
from llmux.manage.routes import Ctx
from llmux.store.base import Store
from llmux.store.records import Budget, Key, Team, TeamMembership, User

__all__ = [
    "PLACEMENT",
    "find_key",
    "managed_key",
    "place",
    "require_above_owner",
    "require_reusable_budget",
    "shown",
    "team_of",
    "visible_key",
]

PLACEMENT: Final = ("team_id", "user_id", "organization_id")
"""The `Key` fields that say where a key sits."""
_OWNER_FIELDS: Final = frozenset({"key_alias", "metadata", "tags", "aliases"})
"""What a key's owner may change without rights above the key (and `blocked: true`)."""


def shown(ref: str) -> str:
    """How a key reference appears in errors: never the plaintext."""
    return display_name(ref) if ref.startswith(KEY_PREFIX) else ref


async def find_key(store: Store, ref: str) -> Key | None:
    """The key whose value or token is `ref`."""
    key = await store.get_key(hash_key(ref))
    if key is None and not ref.startswith(KEY_PREFIX):
        key = await store.get_key(ref)
    return key


async def team_of(store: Store, key: Key) -> Team | None:
    """The key's team record, if it has one."""
    return None if key.team_id is None else await store.get(Team, key.team_id)


async def visible_key(ctx: Ctx, ref: str) -> tuple[Key, Team | None]:
    """The key and its team, or 404 when it is missing or the caller may not see it."""
    key = await find_key(ctx.store, ref)
    team = None if key is None else await team_of(ctx.store, key)
    if key is None or not sees_key(ctx.actor, key, team):
        raise hidden("key", shown(ref))
    return key, team


async def managed_key(ctx: Ctx, ref: str) -> tuple[Key, Team | None]:
    """The key and its team; 404 if invisible, 403 if visible but not the caller's to manage."""
    key, team = await visible_key(ctx, ref)
    require(
        manages_key(ctx.actor, key, team),
        "to own the key, administer its team, or be org_admin of its organization",
    )
    return key, team


def _above_owner(actor: Actor, key: Key, team: Team | None) -> bool:
    """Rights over the key beyond owning it: proxy_admin, its team's or organization's admin."""
    if actor.is_admin or manages_org(actor, key.organization_id):
        return True
    return team is not None and manages_team(actor, team)


def require_above_owner(
    actor: Actor, key: Key, team: Team | None, changes: Mapping[str, Any]
) -> None:
    """403 when an owner-only caller changes more than its key's names (blocking is allowed)."""
    lifted = sorted(
        name
        for name, value in changes.items()
        if name not in _OWNER_FIELDS and not (name == "blocked" and value is True)
    )
    if lifted and not _above_owner(actor, key, team):
        require(
            False,
            f"admin rights over the key's team or organization to change {', '.join(lifted)}",
        )


async def place(ctx: Ctx, placement: dict[str, Any]) -> dict[str, Any]:
    """Check the caller may put a key under this team, user and organization; the placement
    with the organization filled in from the team."""
    team_id, user_id, org_id = (placement[name] for name in PLACEMENT)
    team = None if team_id is None else await visible_team(ctx, team_id)
    if team is not None and team.organization_id is not None:
        if org_id not in (None, team.organization_id):
            raise InvalidRequest(
                f"Team '{team_id}' belongs to organization '{team.organization_id}'.",
                param="organization_id",
            )
        org_id = team.organization_id
    if org_id is not None:
        await visible_org(ctx, org_id)
    if user_id is not None:
        await _visible_owner(ctx, user_id, team)
    require(_may_place(ctx.actor, team, user_id, org_id), _placement_right(team, org_id))
    return {"team_id": team_id, "user_id": user_id, "organization_id": org_id}


def _may_place(actor: Actor, team: Team | None, user_id: str | None, org_id: str | None) -> bool:
    """Whether the caller may own, or administer, a key placed like this."""
    if actor.is_admin:
        return True
    own = user_id is not None and user_id == actor.user_id
    if team is not None:
        return manages_team(actor, team) or (own and team.team_id in actor.teams)
    return manages_org(actor, org_id) or own


def _placement_right(team: Team | None, org_id: str | None) -> str:
    """The right a refused placement lacks, for the 403 message."""
    if team is not None:
        return f"admin rights in team '{team.team_id}' (or a key of your own in it)"
    if org_id is not None:
        return f"org_admin rights in organization '{org_id}'"
    return "proxy_admin rights to create a key for another user"


async def _visible_owner(ctx: Ctx, user_id: str, team: Team | None) -> User:
    """The user a key is for: visible to the caller, or a member of a team it manages."""
    user = await ctx.store.get(User, user_id)
    if user is not None and sees_user(ctx.actor, user):
        return user
    if user is not None and team is not None and manages_team(ctx.actor, team):
        members = await ctx.store.list_members(
            TeamMembership, group_id=team.team_id, user_id=user_id
        )
        if members:
            return user
    raise hidden("user", user_id)


async def require_reusable_budget(ctx: Ctx, budget_id: str) -> None:
    """Only a proxy_admin attaches reusable budgets (they may be larger than the key's own)."""
    require(ctx.actor.is_admin, "proxy_admin rights to attach a reusable budget")
    if await ctx.store.get(Budget, budget_id) is None:
        raise hidden("budget", budget_id)
