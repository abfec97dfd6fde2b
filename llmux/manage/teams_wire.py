"""The wire shapes of the `/team/*` endpoints: request, query and response structs.

Field names follow LiteLLM's team management API; `llmux.manage.teams` declares the endpoints
that decode and encode these. The governed limits come from `llmux.manage.budgets`.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from llmux.manage.budgets import Count, GovernedFields, Money
from llmux.store.records import Key, Team, TeamMembership, TeamRole, User

__all__ = [
    "MemberAddRequest",
    "MemberAddResponse",
    "MemberDeleteRequest",
    "MemberUpdateRequest",
    "NewTeamRequest",
    "TeamDeleteResponse",
    "TeamFields",
    "TeamIdRequest",
    "TeamIdsRequest",
    "TeamInfoResponse",
    "TeamListQuery",
    "TeamMember",
    "TeamMemberView",
    "TeamQuery",
    "TeamUpdateResponse",
    "TeamView",
    "UpdateTeamRequest",
]


class TeamMember(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A member to add: `user_id` or `user_email` (one is enough), and the role in the team."""

    role: TeamRole
    user_id: str | None = None
    user_email: str | None = None


class TeamFields(GovernedFields, kw_only=True, forbid_unknown_fields=True):
    """The team fields `/team/new` and `/team/update` accept (absent: unchanged)."""

    team_alias: str | None | UnsetType = UNSET
    organization_id: str | None | UnsetType = UNSET
    model_aliases: dict[str, str] | UnsetType = UNSET
    tags: list[str] | UnsetType = UNSET
    team_member_budget: Money | None | UnsetType = UNSET
    team_member_rpm_limit: Count | None | UnsetType = UNSET
    team_member_tpm_limit: Count | None | UnsetType = UNSET


class NewTeamRequest(TeamFields, kw_only=True, forbid_unknown_fields=True):
    """`POST /team/new` (the id is generated when absent)."""

    team_id: str | UnsetType = UNSET
    members_with_roles: list[TeamMember] = []


class UpdateTeamRequest(TeamFields, kw_only=True, forbid_unknown_fields=True):
    """`POST /team/update`: the team and the fields to change."""

    team_id: str


class TeamIdsRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /team/delete`."""

    team_ids: list[str]


class TeamIdRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /team/block` and `/team/unblock`."""

    team_id: str


class TeamQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`GET /team/info?team_id=`."""

    team_id: str


class TeamListQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`GET /team/list`: optionally only one organization's teams, or one user's."""

    organization_id: str | None = None
    user_id: str | None = None


class MemberAddRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /team/member_add`: one member or a list, with an optional budget in the team."""

    team_id: str
    member: TeamMember | list[TeamMember]
    max_budget_in_team: Money | None = None


class MemberUpdateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /team/member_update`: the member (`user_id` or `user_email`) and its changes."""

    team_id: str
    user_id: str | None = None
    user_email: str | None = None
    role: TeamRole | UnsetType = UNSET
    max_budget_in_team: Money | None | UnsetType = UNSET


class MemberDeleteRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /team/member_delete`: the member to remove (`user_id` or `user_email`)."""

    team_id: str
    user_id: str | None = None
    user_email: str | None = None


class TeamMemberView(msgspec.Struct, kw_only=True):
    """One entry of `members_with_roles`."""

    role: TeamRole
    user_id: str
    user_email: str | None = None


class TeamView(Team, kw_only=True):
    """A team as the API shows it: the record plus `members_with_roles`."""

    members_with_roles: list[TeamMemberView] = []


class TeamInfoResponse(msgspec.Struct, kw_only=True):
    """`/team/info`: the team, its memberships and the keys of it the actor may see."""

    team_id: str
    team_info: TeamView
    keys: list[Key]
    team_memberships: list[TeamMembership]


class TeamUpdateResponse(msgspec.Struct, kw_only=True):
    """`/team/update`, as LiteLLM answers it."""

    team_id: str
    data: TeamView


class TeamDeleteResponse(msgspec.Struct, kw_only=True):
    """The teams `/team/delete` removed (ids already gone are left out)."""

    deleted_teams: list[str]


class MemberAddResponse(TeamView, kw_only=True):
    """`/team/member_add`: the team after the change, and what the change touched."""

    updated_users: list[User] = []
    updated_team_memberships: list[TeamMembership] = []
