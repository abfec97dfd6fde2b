"""The `/user/*` management endpoints on a running gateway's admin port, for every role.

Organizations `acme` (team `red`) and `globex`; team `blue` without an organization.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmux.governance.keys import hash_key
from llmux.serve import Gateway
from llmux.store import AuditFilter
from llmux.store.records import Key, Organization, Team, TeamMembership, User, UserRole
from tests.helpers.edge import RawReply, assert_openai_error
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import MASTER_KEY, add_key, chat, governed_config, store_of
from tests.helpers.manage import STORE_BACKENDS, actor_key, admin_call, store_section
from tests.helpers.upstream import FakeUpstream


@pytest.fixture(params=STORE_BACKENDS)
async def governed(
    request: pytest.FixtureRequest, upstream: FakeUpstream
) -> AsyncIterator[Gateway]:
    """A gateway with a master key, organizations `acme` and `globex`, teams `red` and `blue`,
    on each store."""
    async with (
        store_section(request.param) as store_yaml,
        running_gateway(governed_config(upstream.url, extra=store_yaml)) as running,
    ):
        store = store_of(running)
        await store.create(Organization(organization_id="acme"))
        await store.create(Organization(organization_id="globex"))
        await store.create(Team(team_id="red", organization_id="acme"))
        await store.create(Team(team_id="blue"))
        yield running


async def post(gateway: Gateway, path: str, body: Any, *, caller: str = MASTER_KEY) -> RawReply:
    """POST `body` to a management path as `caller`."""
    return await admin_call(gateway, "POST", path, body, key=caller)


async def get(gateway: Gateway, path: str, *, caller: str = MASTER_KEY, **query: str) -> RawReply:
    """GET a management path with `query` as `caller`."""
    return await admin_call(gateway, "GET", path, key=caller, query=query)


async def new_user(gateway: Gateway, *, caller: str = MASTER_KEY, **body: Any) -> dict[str, Any]:
    """The answer of a successful `/user/new` with `body`, made by `caller`."""
    reply = await post(gateway, "/user/new", body, caller=caller)
    assert reply.status == 200, reply.json
    answer: dict[str, Any] = reply.json
    return answer


async def org_admin(gateway: Gateway) -> str:
    """A key of `olga`, org_admin of `acme` (and a user of `acme` herself)."""
    caller = await actor_key(gateway, "olga", orgs={"acme": "org_admin"})
    await store_of(gateway).update(User, "olga", {"organization_id": "acme"})
    return caller


def assert_hidden(reply: RawReply, kind: str, ident: str) -> None:
    """`reply` is the 404 of a missing (or invisible) object."""
    assert reply.status == 404
    assert_openai_error(
        reply.json,
        type="invalid_request_error",
        code=f"{kind}_not_found",
        param=None,
        mentions=(ident,),
    )


def assert_forbidden(reply: RawReply, *mentions: str) -> None:
    """`reply` is a 403 naming the missing right."""
    assert reply.status == 403
    assert_openai_error(
        reply.json, type="permission_error", code="forbidden", param=None, mentions=mentions
    )


def assert_invalid_field(reply: RawReply, field: str) -> None:
    """`reply` is a 422 naming `field`."""
    assert reply.status == 422
    assert_openai_error(reply.json, type="invalid_request_error", code="invalid_field", param=field)


# --- /user/new ------------------------------------------------------------------------------


async def test_new_user_comes_with_a_working_key(governed: Gateway) -> None:
    """By default the new user gets a key, shown once, that the gateway accepts."""
    answer = await new_user(governed, user_id="ann", user_email="ann@example.com")
    assert (answer["user_id"], answer["user_email"]) == ("ann", "ann@example.com")
    assert answer["token"] == hash_key(answer["key"])
    assert (await chat(governed, answer["key"])).status == 200
    key = await store_of(governed).get_key(answer["token"])
    assert key is not None and key.user_id == "ann"


async def test_new_user_id_is_generated_when_absent(governed: Gateway) -> None:
    """Without `user_id` the user gets a fresh one."""
    answer = await new_user(governed, auto_create_key=False)
    assert answer["user_id"]
    assert await store_of(governed).get(User, answer["user_id"]) is not None


async def test_new_user_without_auto_key_has_no_key(governed: Gateway) -> None:
    """`auto_create_key: false` creates no key."""
    answer = await new_user(governed, user_id="ann", auto_create_key=False)
    assert answer["key"] is None and answer["token"] is None
    page = await store_of(governed).list(Key, filters={"user_id": "ann"})
    assert page.total == 0


async def test_new_user_joins_the_given_teams(governed: Gateway) -> None:
    """`teams` takes ids or objects with a role and a budget in the team."""
    teams = ["blue", {"team_id": "red", "user_role": "admin", "max_budget_in_team": 2.0}]
    answer = await new_user(governed, user_id="ann", teams=teams, auto_create_key=False)
    assert answer["teams"] == ["blue", "red"]
    members = await store_of(governed).list_members(TeamMembership, user_id="ann")
    assert {(m.team_id, m.role, m.max_budget_in_team) for m in members} == {
        ("blue", "user", None),
        ("red", "admin", 2.0),
    }


async def test_new_user_budget_period_is_computed(governed: Gateway) -> None:
    """`budget_duration` sets `budget_reset_at` one period ahead (rolling)."""
    before = datetime.now(UTC)
    answer = await new_user(
        governed, user_id="ann", max_budget=10.0, budget_duration="7d", auto_create_key=False
    )
    resets = datetime.fromisoformat(answer["budget_reset_at"])
    assert before + timedelta(days=7) <= resets <= datetime.now(UTC) + timedelta(days=7)


async def test_existing_user_id_is_409(governed: Gateway) -> None:
    """A user id can be used once."""
    await new_user(governed, user_id="ann", auto_create_key=False)
    reply = await post(governed, "/user/new", {"user_id": "ann"})
    assert reply.status == 409
    assert_openai_error(reply.json, type="invalid_request_error", code="conflict", param="user_id")


async def test_new_user_with_negative_budget_is_422(governed: Gateway) -> None:
    """A negative `max_budget` is refused, naming it."""
    reply = await post(governed, "/user/new", {"max_budget": -5})
    assert_invalid_field(reply, "max_budget")


async def test_new_user_with_bad_role_is_422(governed: Gateway) -> None:
    """A role outside LiteLLM's four is refused, naming `user_role`."""
    reply = await post(governed, "/user/new", {"user_role": "superuser"})
    assert_invalid_field(reply, "user_role")


async def test_new_user_in_unknown_team_is_404(governed: Gateway) -> None:
    """A team that does not exist is a 404 naming it, and no user is created."""
    reply = await post(governed, "/user/new", {"user_id": "ann", "teams": ["nope"]})
    assert_hidden(reply, "team", "nope")
    assert await store_of(governed).get(User, "ann") is None


async def test_new_user_with_a_team_twice_is_422(governed: Gateway) -> None:
    """A team listed twice is refused, naming `teams`."""
    reply = await post(governed, "/user/new", {"user_id": "ann", "teams": ["blue", "blue"]})
    assert_invalid_field(reply, "teams")


async def test_new_user_key_takes_alias_and_lifetime(governed: Gateway) -> None:
    """`key_alias` and `duration` shape the automatically created key."""
    answer = await new_user(governed, user_id="ann", key_alias="ann-key", duration="1d")
    key = await store_of(governed).get_key(answer["token"])
    assert key is not None and key.key_alias == "ann-key" and key.expires is not None


async def test_new_user_with_bad_key_duration_creates_nothing(governed: Gateway) -> None:
    """A bad key `duration` is a 422 before anything is written."""
    reply = await post(governed, "/user/new", {"user_id": "ann", "duration": "forever"})
    assert_invalid_field(reply, "duration")
    assert await store_of(governed).get(User, "ann") is None


async def test_new_user_is_audited(governed: Gateway) -> None:
    """The user, its memberships and its key each leave an audit entry."""
    answer = await new_user(governed, user_id="ann", teams=["blue"])
    page = await store_of(governed).audit_log(AuditFilter(actor="master"))
    recorded = {(entry.action, entry.object_type, entry.object_id) for entry in page.items}
    assert recorded == {
        ("created", "user", "ann"),
        ("member_added", "team_membership", "blue/ann"),
        ("created", "key", answer["token"]),
    }


async def test_org_admin_creates_users_in_its_org(governed: Gateway) -> None:
    """An org_admin may create internal users in its organization."""
    caller = await org_admin(governed)
    answer = await new_user(governed, caller=caller, user_id="ann", organization_id="acme")
    assert answer["organization_id"] == "acme"


async def test_org_admin_must_name_its_org(governed: Gateway) -> None:
    """An org_admin may not create a user outside any organization."""
    caller = await org_admin(governed)
    reply = await post(governed, "/user/new", {"user_id": "ann"}, caller=caller)
    assert_forbidden(reply, "org_admin rights")


async def test_org_admin_cannot_create_proxy_admins(governed: Gateway) -> None:
    """An org_admin may give the internal_user roles only."""
    caller = await org_admin(governed)
    body = {"user_id": "ann", "organization_id": "acme", "user_role": "proxy_admin"}
    reply = await post(governed, "/user/new", body, caller=caller)
    assert_forbidden(reply, "proxy_admin")


async def test_org_admin_cannot_see_another_org(governed: Gateway) -> None:
    """Another organization is a 404 for an org_admin."""
    caller = await org_admin(governed)
    body = {"user_id": "ann", "organization_id": "globex"}
    reply = await post(governed, "/user/new", body, caller=caller)
    assert_hidden(reply, "organization", "globex")


async def test_team_admin_cannot_create_users(governed: Gateway) -> None:
    """Team admins manage keys and members, not users."""
    caller = await actor_key(governed, "tina", teams={"blue": "admin"})
    reply = await post(governed, "/user/new", {"user_id": "ann"}, caller=caller)
    assert_forbidden(reply, "proxy_admin rights")


@pytest.mark.parametrize("role", ["proxy_admin_viewer", "internal_user_viewer"])
async def test_viewers_cannot_create_users(governed: Gateway, role: UserRole) -> None:
    """Viewer roles only read."""
    caller = await actor_key(governed, "vic", role=role)
    reply = await post(governed, "/user/new", {"user_id": "ann"}, caller=caller)
    assert reply.status == 403
    assert_openai_error(reply.json, type="permission_error", code="read_only", param=None)


# --- /user/update ---------------------------------------------------------------------------


async def test_update_changes_only_the_given_fields(governed: Gateway) -> None:
    """A partial update keeps the other fields."""
    await new_user(governed, user_id="ann", user_alias="Ann", auto_create_key=False)
    reply = await post(governed, "/user/update", {"user_id": "ann", "max_budget": 3.0})
    assert reply.status == 200
    assert (reply.json["user_alias"], reply.json["max_budget"]) == ("Ann", 3.0)


async def test_update_user_rpm_limit_takes_effect_on_the_gateway(governed: Gateway) -> None:
    """After `/user/update rpm_limit: 1` the user's key gets a 429 on its second request."""
    raw = (await new_user(governed, user_id="ann"))["key"]
    assert (await chat(governed, raw)).status == 200  # the gateway now caches the tenancy
    await post(governed, "/user/update", {"user_id": "ann", "rpm_limit": 1})
    statuses = [(await chat(governed, raw)).status for _ in range(2)]
    assert statuses == [200, 429]


async def test_update_is_audited_with_before_and_after(governed: Gateway) -> None:
    """The `updated` entry holds the user before and after."""
    await new_user(governed, user_id="ann", tpm_limit=100, auto_create_key=False)
    await post(governed, "/user/update", {"user_id": "ann", "tpm_limit": 200})
    page = await store_of(governed).audit_log(AuditFilter(action="updated", object_id="ann"))
    [entry] = page.items
    assert (entry.before["tpm_limit"], entry.after["tpm_limit"]) == (100, 200)


async def test_update_unknown_user_is_404(governed: Gateway) -> None:
    """An unknown user is a 404 naming it."""
    reply = await post(governed, "/user/update", {"user_id": "ghost", "max_budget": 1})
    assert_hidden(reply, "user", "ghost")


async def test_update_without_user_id_is_422(governed: Gateway) -> None:
    """`user_id` is required."""
    reply = await post(governed, "/user/update", {"max_budget": 1})
    assert_invalid_field(reply, "user_id")


async def test_org_admin_updates_users_of_its_org(governed: Gateway) -> None:
    """An org_admin may change its organization's users."""
    caller = await org_admin(governed)
    await new_user(governed, user_id="ann", organization_id="acme", auto_create_key=False)
    reply = await post(governed, "/user/update", {"user_id": "ann", "rpm_limit": 5}, caller=caller)
    assert reply.status == 200 and reply.json["rpm_limit"] == 5


async def test_org_admin_cannot_promote_to_proxy_admin(governed: Gateway) -> None:
    """Giving the proxy_admin role needs a proxy_admin."""
    caller = await org_admin(governed)
    await new_user(governed, user_id="ann", organization_id="acme", auto_create_key=False)
    body = {"user_id": "ann", "user_role": "proxy_admin"}
    reply = await post(governed, "/user/update", body, caller=caller)
    assert_forbidden(reply, "proxy_admin")


async def test_org_admin_cannot_see_users_of_another_org(governed: Gateway) -> None:
    """Another organization's user is a 404 for an org_admin."""
    caller = await org_admin(governed)
    await new_user(governed, user_id="gus", organization_id="globex", auto_create_key=False)
    reply = await post(governed, "/user/update", {"user_id": "gus", "rpm_limit": 5}, caller=caller)
    assert_hidden(reply, "user", "gus")


async def test_internal_user_cannot_update_itself(governed: Gateway) -> None:
    """A user sees itself but may not change its own budget."""
    caller = await actor_key(governed, "ann")
    reply = await post(
        governed, "/user/update", {"user_id": "ann", "max_budget": 99}, caller=caller
    )
    assert_forbidden(reply, "proxy_admin rights")


# --- /user/delete ---------------------------------------------------------------------------


async def test_delete_removes_the_user_and_its_keys(governed: Gateway) -> None:
    """A deleted user's keys are refused by the gateway at once."""
    raw = (await new_user(governed, user_id="ann", teams=["blue"]))["key"]
    assert (await chat(governed, raw)).status == 200
    reply = await post(governed, "/user/delete", {"user_ids": ["ann"]})
    assert reply.json == {"deleted_users": ["ann"]}
    assert (await chat(governed, raw)).status == 401
    assert await store_of(governed).list_members(TeamMembership, user_id="ann") == []


async def test_delete_twice_is_safe(governed: Gateway) -> None:
    """Deleting a missing user is a 200 that deletes nothing."""
    await new_user(governed, user_id="ann", auto_create_key=False)
    await post(governed, "/user/delete", {"user_ids": ["ann"]})
    reply = await post(governed, "/user/delete", {"user_ids": ["ann"]})
    assert reply.status == 200 and reply.json == {"deleted_users": []}


async def test_delete_is_audited(governed: Gateway) -> None:
    """The user's deletion leaves a `deleted` entry."""
    await new_user(governed, user_id="ann", auto_create_key=False)
    await post(governed, "/user/delete", {"user_ids": ["ann"]})
    page = await store_of(governed).audit_log(AuditFilter(action="deleted", object_id="ann"))
    assert [entry.object_type for entry in page.items] == ["user"]


async def test_delete_with_no_users_is_422(governed: Gateway) -> None:
    """An empty `user_ids` is refused, naming it."""
    reply = await post(governed, "/user/delete", {"user_ids": []})
    assert_invalid_field(reply, "user_ids")


async def test_org_admin_cannot_delete_another_orgs_user(governed: Gateway) -> None:
    """Another organization's user looks missing to an org_admin: nothing is deleted."""
    caller = await org_admin(governed)
    await new_user(governed, user_id="gus", organization_id="globex", auto_create_key=False)
    reply = await post(governed, "/user/delete", {"user_ids": ["gus"]}, caller=caller)
    assert reply.json == {"deleted_users": []}
    assert await store_of(governed).get(User, "gus") is not None


# --- /user/info and /user/list --------------------------------------------------------------


async def test_info_shows_the_user_its_keys_and_teams(governed: Gateway) -> None:
    """`/user/info` returns the user, its keys (by record, no plaintext) and its teams."""
    answer = await new_user(governed, user_id="ann", teams=["blue"])
    reply = await get(governed, "/user/info", user_id="ann")
    assert reply.json["user_info"]["user_id"] == "ann"
    assert [key["token"] for key in reply.json["keys"]] == [answer["token"]]
    assert [team["team_id"] for team in reply.json["teams"]] == ["blue"]
    assert answer["key"].encode() not in reply.body


async def test_info_defaults_to_the_callers_user(governed: Gateway) -> None:
    """Without `?user_id=` a key reads its own user."""
    caller = await actor_key(governed, "ann")
    reply = await get(governed, "/user/info", caller=caller)
    assert reply.status == 200 and reply.json["user_id"] == "ann"


async def test_info_for_the_master_key_needs_a_user_id(governed: Gateway) -> None:
    """The master key is no user: `?user_id=` is required then."""
    reply = await get(governed, "/user/info")
    assert reply.status == 400
    assert_openai_error(reply.json, type="invalid_request_error", code=None, param="user_id")


async def test_internal_user_cannot_read_another_user(governed: Gateway) -> None:
    """Another user is a 404 for an internal user."""
    caller = await actor_key(governed, "ann")
    await new_user(governed, user_id="bob", auto_create_key=False)
    reply = await get(governed, "/user/info", caller=caller, user_id="bob")
    assert_hidden(reply, "user", "bob")


async def test_viewer_reads_any_user(governed: Gateway) -> None:
    """A proxy_admin_viewer may read every user."""
    caller = await actor_key(governed, "vic", role="proxy_admin_viewer")
    await new_user(governed, user_id="bob", auto_create_key=False)
    reply = await get(governed, "/user/info", caller=caller, user_id="bob")
    assert reply.status == 200


async def test_list_pages_and_filters_by_role(governed: Gateway) -> None:
    """The master key pages through users; `role` filters by proxy-wide role."""
    for user_id in ("ann", "bob", "cid"):
        await new_user(governed, user_id=user_id, auto_create_key=False)
    await new_user(governed, user_id="vic", user_role="proxy_admin_viewer", auto_create_key=False)
    page = await get(governed, "/user/list", page="2", page_size="3")
    viewers = await get(governed, "/user/list", role="proxy_admin_viewer")
    assert (page.json["total"], page.json["total_pages"], page.json["page"]) == (4, 2, 2)
    assert [user["user_id"] for user in page.json["users"]] == ["vic"]
    assert [user["user_id"] for user in viewers.json["users"]] == ["vic"]


async def test_org_admin_lists_its_orgs_users(governed: Gateway) -> None:
    """An org_admin lists its organization's users (itself included), nobody else."""
    caller = await org_admin(governed)
    await new_user(governed, user_id="ann", organization_id="acme", auto_create_key=False)
    await new_user(governed, user_id="gus", organization_id="globex", auto_create_key=False)
    reply = await get(governed, "/user/list", caller=caller)
    assert sorted(user["user_id"] for user in reply.json["users"]) == ["ann", "olga"]


async def test_internal_user_lists_only_itself(governed: Gateway) -> None:
    """An internal user sees only itself in the list."""
    caller = await actor_key(governed, "ann")
    await add_key(governed, user_id="bob")
    await new_user(governed, user_id="bob", auto_create_key=False)
    reply = await get(governed, "/user/list", caller=caller)
    assert [user["user_id"] for user in reply.json["users"]] == ["ann"]
    assert reply.json["total"] == 1
