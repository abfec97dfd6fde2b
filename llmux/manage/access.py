"""Per-object access rules of the management API.

Two questions per object: may the actor *see* it, and may it *manage* it. An object the actor
may not see answers exactly like one that does not exist (404), so nothing leaks across tenants;
an object it may see but not manage answers 403 saying which right is missing.

- `proxy_admin`: sees and manages everything. `proxy_admin_viewer`: sees everything.
- `org_admin` of an organization: its teams, their keys, the organization's users and spend.
- team `admin`: the team, its members and its keys.
- `internal_user`: its own keys (and itself); `internal_user_viewer`: reads its own.
"""

from __future__ import annotations

from llmux.errors import NotFound, PermissionDenied
from llmux.manage.actor import Actor
from llmux.store.records import Key, Organization, Team, User

__all__ = [
    "hidden",
    "manages_key",
    "manages_org",
    "manages_team",
    "manages_user",
    "require",
    "sees_key",
    "sees_org",
    "sees_team",
    "sees_user",
]


def hidden(kind: str, ident: str) -> NotFound:
    """The 404 for an object that is missing or not visible (the two look the same)."""
    return NotFound(f"No {kind} '{ident}'.", code=f"{kind.replace(' ', '_')}_not_found")


def require(allowed: bool, missing: str) -> None:
    """403 naming the missing right unless `allowed`."""
    if not allowed:
        raise PermissionDenied(f"Not allowed: this needs {missing}.", code="forbidden")


def manages_org(actor: Actor, organization_id: str | None) -> bool:
    """proxy_admin, or org_admin of this organization."""
    return actor.is_admin or (organization_id is not None and organization_id in actor.org_admin)


def sees_org(actor: Actor, org: Organization) -> bool:
    """Everyone who reads everything, and the organization's members."""
    return actor.sees_all or org.organization_id in actor.org_roles


def manages_team(actor: Actor, team: Team) -> bool:
    """proxy_admin, the team's admins, and org_admins of its organization."""
    return (
        actor.is_admin
        or team.team_id in actor.team_admin
        or manages_org(actor, team.organization_id)
    )


def sees_team(actor: Actor, team: Team) -> bool:
    """Readers of everything, the team's members and whoever manages it."""
    return actor.sees_all or team.team_id in actor.teams or manages_team(actor, team)


def manages_key(actor: Actor, key: Key, team: Team | None) -> bool:
    """proxy_admin, the key's owner, its team's admins, its organization's org_admins."""
    if actor.is_admin:
        return True
    if actor.user_id is not None and key.user_id == actor.user_id:
        return actor.role == "internal_user" or actor.role == "proxy_admin"
    if team is not None and manages_team(actor, team):
        return True
    return manages_org(actor, key.organization_id)


def sees_key(actor: Actor, key: Key, team: Team | None) -> bool:
    """Readers of everything, the key itself, its owner, and whoever manages it."""
    if actor.sees_all or actor.id == key.token:
        return True
    if actor.user_id is not None and key.user_id == actor.user_id:
        return True
    return manages_key(actor, key, team)


def manages_user(actor: Actor, user: User) -> bool:
    """proxy_admin, or org_admin of the user's organization."""
    return actor.is_admin or manages_org(actor, user.organization_id)


def sees_user(actor: Actor, user: User) -> bool:
    """Readers of everything, the user itself, and whoever manages it."""
    return actor.sees_all or actor.user_id == user.user_id or manages_user(actor, user)
