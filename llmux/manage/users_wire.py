"""The wire shapes of the `/user/*` endpoints: request, query and response structs.

Field names follow LiteLLM's user management API; `llmux.manage.users` declares the endpoints
that decode and encode these.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType

from llmux.manage.keys_wire import NonNegativeFloat, NonNegativeInt, PageNumber, PageSize
from llmux.store.records import Key, ModelBudget, Team, TeamRole, User, UserRole

__all__ = [
    "DeleteUsersRequest",
    "DeletedUsers",
    "NewUser",
    "NewUserRequest",
    "UpdateUserRequest",
    "UserInfo",
    "UserInfoQuery",
    "UserList",
    "UserListQuery",
    "UserSettings",
    "UserTeam",
]


class UserTeam(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A team to put a new user in, with its role and budget there."""

    team_id: str
    user_role: TeamRole = "user"
    max_budget_in_team: NonNegativeFloat | None = None


class UserSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields `/user/new` and `/user/update` share; an absent field is left as it is."""

    user_email: str | None | UnsetType = UNSET
    user_alias: str | None | UnsetType = UNSET
    user_role: UserRole | UnsetType = UNSET
    organization_id: str | None | UnsetType = UNSET
    models: list[str] | UnsetType = UNSET
    max_budget: NonNegativeFloat | None | UnsetType = UNSET
    soft_budget: NonNegativeFloat | None | UnsetType = UNSET
    budget_duration: str | None | UnsetType = UNSET
    max_parallel_requests: NonNegativeInt | None | UnsetType = UNSET
    tpm_limit: NonNegativeInt | None | UnsetType = UNSET
    rpm_limit: NonNegativeInt | None | UnsetType = UNSET
    model_max_budget: dict[str, ModelBudget] | UnsetType = UNSET
    model_rpm_limit: dict[str, NonNegativeInt] | UnsetType = UNSET
    model_tpm_limit: dict[str, NonNegativeInt] | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    blocked: bool | UnsetType = UNSET
    spend: NonNegativeFloat | UnsetType = UNSET


class NewUserRequest(UserSettings, kw_only=True, forbid_unknown_fields=True):
    """`POST /user/new`: a user (id generated if absent), its teams and, by default, a key."""

    user_id: Annotated[str, msgspec.Meta(min_length=1)] | UnsetType = UNSET
    teams: list[str | UserTeam] = []
    auto_create_key: bool = True
    key_alias: str | None = None
    """Alias of the automatically created key."""
    duration: str | None = None
    """Lifetime of the automatically created key; null: never expires."""


class UpdateUserRequest(UserSettings, kw_only=True, forbid_unknown_fields=True):
    """`POST /user/update`: change the given fields of `user_id`."""

    user_id: str


class DeleteUsersRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /user/delete`: the users to delete, with their keys and memberships."""

    user_ids: Annotated[list[str], msgspec.Meta(min_length=1)]


class UserInfoQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`GET /user/info`: `user_id`; absent: the caller's own user."""

    user_id: str | None = None


class UserListQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`GET /user/list`: filters by proxy-wide role and organization, and paging."""

    page: PageNumber = 1
    page_size: PageSize = 25
    role: UserRole | None = None
    organization_id: str | None = None


class NewUser(User, kw_only=True):
    """A created user, its teams and, with `auto_create_key`, its key (shown once) and token."""

    teams: list[str] = []
    key: str | None = None
    token: str | None = None


class UserInfo(msgspec.Struct, kw_only=True):
    """`GET /user/info`: the user, the keys of it the caller may see, and its teams."""

    user_id: str
    user_info: User
    keys: list[Key]
    teams: list[Team]


class UserList(msgspec.Struct, kw_only=True):
    """`GET /user/list`: one page of users."""

    users: list[User]
    total: int
    page: int
    page_size: int
    total_pages: int


class DeletedUsers(msgspec.Struct, kw_only=True):
    """`POST /user/delete`: which of the given users were deleted now."""

    deleted_users: list[str]
