"""Who is calling the management API, and with which rights.

The master key acts as `proxy_admin`. A virtual key acts with its owner's rights: the owning
user's `user_role` (`internal_user` for a key without a user), plus `admin` rights in the teams
where that user is a team admin and `org_admin` rights in the organizations where they are one.
`llm_api` keys may call the gateway only (403 here); `read_only` keys may only read. With no
master key configured the admin port is trusted (everyone is `proxy_admin`), as the control
API always was: keep the admin port off the public network then. Keys are read from the store
directly, not the gateway's cache, so a change is visible to the very next admin call.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime

from llmux.auth import credential_from
from llmux.errors import AuthenticationFailed, PermissionDenied
from llmux.governance.keys import hash_key
from llmux.store.base import Store
from llmux.store.records import Key, KeyType, OrgMembership, OrgRole, TeamMembership, User, UserRole

__all__ = ["MASTER_ACTOR", "Actor", "resolve_actor"]


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller of one management request and everything its rights depend on."""

    id: str
    """`master`, or the calling key's hash (what the audit log records as the actor)."""
    role: UserRole
    key_type: KeyType = "default"
    user_id: str | None = None
    key: Key | None = None
    teams: frozenset[str] = frozenset()
    """Teams the user is a member of (any role)."""
    team_admin: frozenset[str] = frozenset()
    """Teams where the user is a team `admin`."""
    org_roles: dict[str, OrgRole] = field(default_factory=dict)
    """Organization id -> the user's role in it."""

    @property
    def org_admin(self) -> frozenset[str]:
        """Organizations where the user is an `org_admin`."""
        return frozenset(org for org, role in self.org_roles.items() if role == "org_admin")

    @property
    def is_admin(self) -> bool:
        """Full rights: the master key, or a user with role `proxy_admin`."""
        return self.role == "proxy_admin"

    @property
    def sees_all(self) -> bool:
        """May read everything: `proxy_admin` and `proxy_admin_viewer`."""
        return self.role in ("proxy_admin", "proxy_admin_viewer")

    @property
    def may_write(self) -> bool:
        """May change anything at all (what it may change is checked per object)."""
        if self.key_type == "read_only":
            return False
        return self.role in ("proxy_admin", "internal_user")


MASTER_ACTOR = Actor(id="master", role="proxy_admin")


async def resolve_actor(
    headers: dict[str, str] | None,
    master_key: str | None,
    store: Store,
    *,
    now: datetime | None = None,
) -> Actor:
    """The actor behind the request's credential, or 401/403 saying what is wrong."""
    if not master_key:
        return MASTER_ACTOR
    credential = credential_from(headers or {})
    if credential is None:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        )
    if hmac.compare_digest(credential.encode(), master_key.encode()):
        return MASTER_ACTOR
    key = await store.get_key(hash_key(credential))
    if key is None:
        raise AuthenticationFailed("Incorrect API key provided.")
    _check_key(key, now or datetime.now(UTC))
    return await _key_actor(key, store)


def _check_key(key: Key, now: datetime) -> None:
    if key.blocked:
        raise AuthenticationFailed("This API key is blocked.", code="key_blocked")
    if key.expires is not None and key.expires <= now:
        raise AuthenticationFailed(
            f"This API key expired at {key.expires.isoformat()}.", code="key_expired"
        )
    if key.key_type == "llm_api":
        raise PermissionDenied(
            "This is an llm_api key: it may call the gateway only, not the admin API.",
            code="key_type_not_allowed",
        )


async def _key_actor(key: Key, store: Store) -> Actor:
    user = await store.get(User, key.user_id) if key.user_id else None
    role: UserRole = user.user_role if user is not None else "internal_user"
    teams: set[str] = set()
    team_admin: set[str] = set()
    org_roles: dict[str, OrgRole] = {}
    if user is not None:
        for member in await store.list_members(TeamMembership, user_id=user.user_id):
            teams.add(member.team_id)
            if member.role == "admin":
                team_admin.add(member.team_id)
        for org in await store.list_members(OrgMembership, user_id=user.user_id):
            org_roles[org.organization_id] = org.user_role
    return Actor(
        id=key.token,
        role=role,
        key_type=key.key_type,
        user_id=key.user_id,
        key=key,
        teams=frozenset(teams),
        team_admin=frozenset(team_admin),
        org_roles=org_roles,
    )
