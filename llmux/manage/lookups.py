"""Fetching a team or an organization the caller may see, or the 404 of a missing one.

Shared by every endpoint family that names a team or an organization (keys, users, teams,
organizations), so "invisible" and "missing" answer alike everywhere.
"""

from __future__ import annotations

from llmux.manage.access import hidden, sees_org, sees_team
from llmux.manage.routes import Ctx
from llmux.store.records import Organization, Team

__all__ = ["visible_org", "visible_team"]


async def visible_team(ctx: Ctx, team_id: str) -> Team:
    """The team, or 404 when it is missing or not visible to the caller."""
    team = await ctx.store.get(Team, team_id)
    if team is None or not sees_team(ctx.actor, team):
        raise hidden("team", team_id)
    return team


async def visible_org(ctx: Ctx, organization_id: str) -> Organization:
    """The organization, or 404 when it is missing or not visible to the caller."""
    org = await ctx.store.get(Organization, organization_id)
    if org is None or not sees_org(ctx.actor, org):
        raise hidden("organization", organization_id)
    return org
