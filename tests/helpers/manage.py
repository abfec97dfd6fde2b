"""Helpers for management API tests: admin calls over real HTTP, and actors of every role.

`admin_call` speaks to the admin port the way an ops script does (raw aiohttp, bearer key,
JSON body or query string). `actor_key` puts a user with a proxy-wide role, its team and
organization memberships and a virtual key straight into the gateway's store, so each test can
act as exactly the role it checks. Several test modules share this file: append, don't rewrite.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

from llmux.serve import Gateway
from llmux.store.records import (
    KeyType,
    Organization,
    OrgMembership,
    OrgRole,
    Team,
    TeamMembership,
    TeamRole,
    User,
    UserRole,
)
from tests.helpers.edge import RawReply, raw_request
from tests.helpers.governance import MASTER_KEY, add_key, store_of

__all__ = [
    "STORE_BACKENDS",
    "actor_key",
    "admin_call",
    "store_section",
    "two_tenants",
]


async def admin_call(
    gateway: Gateway,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = MASTER_KEY,
    query: Mapping[str, str] | None = None,
) -> RawReply:
    """One management request to the admin port: `body` as JSON, `query` as the query string,
    `key` as the bearer credential (None: no credential at all)."""
    url = f"http://127.0.0.1:{gateway.admin_port}{path}"
    if query:
        url += "?" + urlencode(query)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    return await raw_request(method, url, data=data, headers=headers)


async def actor_key(
    gateway: Gateway,
    user_id: str,
    *,
    role: UserRole = "internal_user",
    teams: Mapping[str, TeamRole] | None = None,
    orgs: Mapping[str, OrgRole] | None = None,
    key_type: KeyType = "default",
) -> str:
    """A raw key acting as user `user_id` with proxy-wide `role`, member of `teams` and `orgs`
    with the given roles (the user, memberships and key are written to the store directly)."""
    store = store_of(gateway)
    await store.create(User(user_id=user_id, user_role=role))
    for team_id, team_role in (teams or {}).items():
        await store.add_member(TeamMembership(team_id=team_id, user_id=user_id, role=team_role))
    for org_id, org_role in (orgs or {}).items():
        await store.add_member(
            OrgMembership(organization_id=org_id, user_id=user_id, user_role=org_role)
        )
    return await add_key(gateway, user_id=user_id, key_type=key_type)


async def two_tenants(gateway: Gateway) -> dict[str, str]:
    """Organizations `org-a` and `org-b` with teams `team-a` and `team-b`, and a raw key per actor.

    `master` (the master key), `viewer` (proxy_admin_viewer), `org_admin_a` (org_admin of
    org-a), `team_admin_a` (admin of team-a), `member_a` (user of team-a), `user_viewer_a`
    (internal_user_viewer, user of team-a), `outsider` (internal_user, no memberships),
    `read_only` (a read_only key of a proxy_admin) and `llm_api` (a gateway-only key).
    """
    store = store_of(gateway)
    for suffix in ("a", "b"):
        await store.create(Organization(organization_id=f"org-{suffix}"))
        await store.create(Team(team_id=f"team-{suffix}", organization_id=f"org-{suffix}"))
    return {
        "master": MASTER_KEY,
        "viewer": await actor_key(gateway, "viewer", role="proxy_admin_viewer"),
        "org_admin_a": await actor_key(gateway, "org-admin-a", orgs={"org-a": "org_admin"}),
        "team_admin_a": await actor_key(gateway, "team-admin-a", teams={"team-a": "admin"}),
        "member_a": await actor_key(gateway, "member-a", teams={"team-a": "user"}),
        "user_viewer_a": await actor_key(
            gateway, "user-viewer-a", role="internal_user_viewer", teams={"team-a": "user"}
        ),
        "outsider": await actor_key(gateway, "outsider"),
        "read_only": await actor_key(
            gateway, "read-only", role="proxy_admin", key_type="read_only"
        ),
        "llm_api": await actor_key(gateway, "llm-api", role="proxy_admin", key_type="llm_api"),
    }


POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
STORE_BACKENDS = ("memory", "postgres")
"""The stores management tests run against (parametrize a gateway fixture over these)."""


@asynccontextmanager
async def store_section(backend: str) -> AsyncIterator[str]:
    """The `store:` config section for `backend`: memory, or a Postgres schema of its own
    (created by the store's migrations) that is dropped on exit."""
    if backend == "memory":
        yield "store:\n  url: 'memory://'\n"
        return
    schema = f"llmux_manage_{uuid.uuid4().hex}"
    try:
        yield f"store:\n  url: {POSTGRES_URL}?schema={schema}\n"
    finally:
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()
