"""`/team/*` on the admin port: shapes, validation, access per role, and effect on the gateway."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, time, timedelta

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import pytest
import redis.asyncio as aioredis

from llmux.serve import Gateway
from llmux.store import AuditFilter
from llmux.store.records import Key, Team, TeamMembership, User
from tests.helpers.edge import assert_openai_error, eventually_async
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import (
    add_key,
    chat,
    distributed_config,
    governed_config,
    store_of,
)
from tests.helpers.manage import STORE_BACKENDS, admin_call, store_section, two_tenants
from tests.helpers.upstream import FakeUpstream


@pytest.fixture(params=STORE_BACKENDS)
async def governed(
    request: pytest.FixtureRequest, upstream: FakeUpstream
) -> AsyncIterator[Gateway]:
    """A gateway with virtual keys on and the management API on its admin port, on each store."""
    async with (
        store_section(request.param) as store_yaml,
        running_gateway(governed_config(upstream.url, extra=store_yaml)) as running,
    ):
        yield running


@pytest.fixture
async def keys(governed: Gateway) -> dict[str, str]:
    """org-a/team-a and org-b/team-b, and a key per role (see `two_tenants`)."""
    return await two_tenants(governed)


# --- /team/new ---------------------------------------------------------------------------------


async def test_master_creates_team_with_fields_and_members(governed: Gateway) -> None:
    """/team/new stores the team and answers it with `members_with_roles`."""
    body = {
        "team_id": "t1",
        "team_alias": "Search",
        "rpm_limit": 10,
        "max_budget": 5.0,
        "models": ["gpt-4o-mini"],
        "members_with_roles": [{"role": "admin", "user_id": "u1"}],
    }
    reply = await admin_call(governed, "POST", "/team/new", body)
    assert reply.status == 200, reply.body
    answer = reply.json
    assert (answer["team_id"], answer["team_alias"], answer["rpm_limit"]) == ("t1", "Search", 10)
    assert answer["models"] == ["gpt-4o-mini"]
    assert answer["members_with_roles"] == [{"role": "admin", "user_id": "u1", "user_email": None}]
    stored = await store_of(governed).get(Team, "t1")
    assert stored is not None and stored.max_budget == 5.0


async def test_team_id_is_generated_when_absent(governed: Gateway) -> None:
    """Without `team_id` the team gets a fresh id, returned in the answer."""
    reply = await admin_call(governed, "POST", "/team/new", {"team_alias": "anon"})
    assert reply.status == 200
    assert await store_of(governed).get(Team, reply.json["team_id"]) is not None


async def test_member_by_email_creates_the_user(governed: Gateway) -> None:
    """A member named only by email who has no user record gets one, and the membership."""
    body = {"team_id": "t1", "members_with_roles": [{"role": "user", "user_email": "a@x.io"}]}
    reply = await admin_call(governed, "POST", "/team/new", body)
    assert reply.status == 200
    users = await store_of(governed).list(User, filters={"user_email": "a@x.io"})
    assert len(users.items) == 1
    members = await store_of(governed).list_members(TeamMembership, group_id="t1")
    assert [m.user_id for m in members] == [users.items[0].user_id]


async def test_budget_duration_sets_the_rolling_reset_time(governed: Gateway) -> None:
    """`budget_duration: 30d` stores `budget_reset_at` thirty days after creation."""
    before = datetime.now(UTC)
    reply = await admin_call(
        governed, "POST", "/team/new", {"team_id": "t1", "budget_duration": "30d"}
    )
    after = datetime.now(UTC)
    reset_at = datetime.fromisoformat(reply.json["budget_reset_at"])
    assert before + timedelta(days=30) <= reset_at <= after + timedelta(days=30)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param({"budget_duration": "soon"}, "budget_duration", id="bad-duration"),
        pytest.param({"max_budget": -1}, "max_budget", id="negative-budget"),
        pytest.param({"rpm_limit": "many"}, "rpm_limit", id="ill-typed"),
        pytest.param({"team_name": "x"}, "team_name", id="unknown-field"),
        pytest.param(
            {"members_with_roles": [{"role": "user"}]},
            "members_with_roles[0].user_id",
            id="member-without-user",
        ),
        pytest.param(
            {"members_with_roles": [{"role": "owner", "user_id": "u"}]},
            "members_with_roles[0].role",
            id="bad-role",
        ),
        pytest.param(
            {"model_max_budget": {"gpt-4o": {"budget_limit": 1, "time_period": "x"}}},
            "model_max_budget.gpt-4o.time_period",
            id="bad-model-period",
        ),
    ],
)
async def test_invalid_team_body_is_422_naming_the_field(
    governed: Gateway, body: dict[str, object], param: str
) -> None:
    """A field that fails validation is a 422 whose `param` names it; nothing is created."""
    reply = await admin_call(governed, "POST", "/team/new", {"team_id": "t1", **body})
    assert reply.status == 422, reply.body
    assert_openai_error(reply.json, type="invalid_request_error", code="invalid_field", param=param)
    assert await store_of(governed).get(Team, "t1") is None


async def test_taken_team_id_is_409(governed: Gateway, keys: dict[str, str]) -> None:
    """Creating a team whose id exists is a 409 conflict."""
    reply = await admin_call(governed, "POST", "/team/new", {"team_id": "team-a"})
    assert reply.status == 409
    assert_openai_error(reply.json, type="invalid_request_error", code="conflict", param="team_id")


async def test_unknown_budget_id_is_404(governed: Gateway) -> None:
    """A `budget_id` that names no budget is a 404 naming it."""
    reply = await admin_call(governed, "POST", "/team/new", {"budget_id": "nope"})
    assert reply.status == 404
    assert "'nope'" in reply.json["error"]["message"]


async def test_org_admin_creates_team_in_its_organization(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """An org_admin may create a team inside its organization."""
    body = {"team_id": "t1", "organization_id": "org-a"}
    reply = await admin_call(governed, "POST", "/team/new", body, key=keys["org_admin_a"])
    assert reply.status == 200, reply.body
    assert reply.json["organization_id"] == "org-a"


async def test_org_admin_cannot_see_other_organization_for_a_team(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """An org_admin naming another organization gets the 404 of a missing one."""
    body = {"team_id": "t1", "organization_id": "org-b"}
    reply = await admin_call(governed, "POST", "/team/new", body, key=keys["org_admin_a"])
    missing = await admin_call(governed, "POST", "/team/new", {**body, "organization_id": "org-zz"})
    assert reply.status == 404
    assert reply.json["error"]["code"] == missing.json["error"]["code"] == "organization_not_found"


@pytest.mark.parametrize("role", ["org_admin_a", "team_admin_a", "outsider"])
async def test_only_proxy_admin_creates_teams_outside_organizations(
    governed: Gateway, keys: dict[str, str], role: str
) -> None:
    """A team with no organization needs proxy_admin: 403 naming that role."""
    reply = await admin_call(governed, "POST", "/team/new", {"team_id": "t1"}, key=keys[role])
    assert reply.status == 403
    assert_openai_error(
        reply.json, type="permission_error", code="forbidden", param=None, mentions=("proxy_admin",)
    )


@pytest.mark.parametrize(
    ("role", "status", "code"),
    [
        ("viewer", 403, "read_only"),
        ("user_viewer_a", 403, "read_only"),
        ("read_only", 403, "read_only"),
        ("llm_api", 403, "key_type_not_allowed"),
    ],
)
async def test_read_only_actors_cannot_create_teams(
    governed: Gateway, keys: dict[str, str], role: str, status: int, code: str
) -> None:
    """Viewers, read_only and llm_api keys are refused before anything is looked at."""
    reply = await admin_call(governed, "POST", "/team/new", {"team_id": "t1"}, key=keys[role])
    assert (reply.status, reply.json["error"]["code"]) == (status, code)


async def test_missing_credential_is_401(governed: Gateway) -> None:
    """No key at all is a 401."""
    reply = await admin_call(governed, "POST", "/team/new", {"team_id": "t1"}, key=None)
    assert reply.status == 401


# --- /team/info and /team/list ------------------------------------------------------------------


async def test_team_info_lists_members_and_keys(governed: Gateway, keys: dict[str, str]) -> None:
    """/team/info answers LiteLLM's `team_id`, `team_info`, `keys`, `team_memberships`."""
    await add_key(governed, team_id="team-a", key_alias="shared")
    reply = await admin_call(governed, "GET", "/team/info", query={"team_id": "team-a"})
    assert reply.status == 200
    answer = reply.json
    assert answer["team_id"] == answer["team_info"]["team_id"] == "team-a"
    assert [k["key_alias"] for k in answer["keys"]] == ["shared"]
    members = {m["user_id"] for m in answer["team_memberships"]}
    assert members == {"team-admin-a", "member-a", "user-viewer-a"}
    assert len(answer["team_info"]["members_with_roles"]) == 3


async def test_plain_member_sees_only_its_own_team_keys(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """A team member reads the team but only its own keys; the team admin sees them all."""
    await add_key(governed, team_id="team-a", key_alias="others")
    await add_key(governed, team_id="team-a", key_alias="mine", user_id="member-a")
    query = {"team_id": "team-a"}
    as_member = await admin_call(governed, "GET", "/team/info", key=keys["member_a"], query=query)
    as_admin = await admin_call(
        governed, "GET", "/team/info", key=keys["team_admin_a"], query=query
    )
    assert [k["key_alias"] for k in as_member.json["keys"]] == ["mine"]
    assert {k["key_alias"] for k in as_admin.json["keys"]} == {"others", "mine"}


@pytest.mark.parametrize("role", ["org_admin_a", "team_admin_a", "member_a", "outsider"])
async def test_other_tenant_team_looks_missing(
    governed: Gateway, keys: dict[str, str], role: str
) -> None:
    """team-b answers exactly like a team that does not exist, for actors outside it."""
    hidden = await admin_call(
        governed, "GET", "/team/info", key=keys[role], query={"team_id": "team-b"}
    )
    missing = await admin_call(
        governed, "GET", "/team/info", key=keys[role], query={"team_id": "team-zz"}
    )
    assert hidden.status == missing.status == 404
    assert hidden.json["error"]["code"] == missing.json["error"]["code"] == "team_not_found"


async def test_viewer_reads_any_team(governed: Gateway, keys: dict[str, str]) -> None:
    """proxy_admin_viewer reads every team."""
    reply = await admin_call(
        governed, "GET", "/team/info", key=keys["viewer"], query={"team_id": "team-b"}
    )
    assert reply.status == 200


async def test_team_info_without_team_id_is_422(governed: Gateway) -> None:
    """/team/info needs `team_id`."""
    reply = await admin_call(governed, "GET", "/team/info")
    assert reply.status == 422
    assert reply.json["error"]["param"] == "team_id"


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("master", ["team-a", "team-b"]),
        ("viewer", ["team-a", "team-b"]),
        ("org_admin_a", ["team-a"]),
        ("member_a", ["team-a"]),
        ("outsider", []),
    ],
)
async def test_team_list_shows_visible_teams(
    governed: Gateway, keys: dict[str, str], role: str, expected: list[str]
) -> None:
    """/team/list holds exactly the teams the actor may see."""
    reply = await admin_call(governed, "GET", "/team/list", key=keys[role])
    assert reply.status == 200
    assert [team["team_id"] for team in reply.json] == expected


async def test_team_list_filters_by_organization(governed: Gateway, keys: dict[str, str]) -> None:
    """`organization_id` narrows the listing to one organization's teams."""
    reply = await admin_call(governed, "GET", "/team/list", query={"organization_id": "org-b"})
    assert [team["team_id"] for team in reply.json] == ["team-b"]


# --- /team/update --------------------------------------------------------------------------------


async def test_update_answers_litellm_shape_and_stores(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """/team/update answers `{team_id, data}` and changes only the given fields."""
    body = {"team_id": "team-a", "rpm_limit": 7, "team_alias": "A"}
    reply = await admin_call(governed, "POST", "/team/update", body)
    assert reply.status == 200
    assert reply.json["team_id"] == "team-a"
    assert (reply.json["data"]["rpm_limit"], reply.json["data"]["team_alias"]) == (7, "A")
    assert reply.json["data"]["organization_id"] == "org-a"


async def test_team_admin_may_rename_its_team(governed: Gateway, keys: dict[str, str]) -> None:
    """A team admin may change its team's alias and metadata."""
    body = {"team_id": "team-a", "team_alias": "renamed", "metadata": {"cost_center": "7"}}
    reply = await admin_call(governed, "POST", "/team/update", body, key=keys["team_admin_a"])
    assert reply.status == 200
    assert reply.json["data"]["team_alias"] == "renamed"


async def test_team_admin_cannot_raise_its_own_limits(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """A team admin changing its team's limits gets a 403 naming the right it lacks."""
    body = {"team_id": "team-a", "max_budget": 1000}
    reply = await admin_call(governed, "POST", "/team/update", body, key=keys["team_admin_a"])
    assert reply.status == 403
    assert "org_admin" in reply.json["error"]["message"]
    stored = await store_of(governed).get(Team, "team-a")
    assert stored is not None and stored.max_budget is None


async def test_member_cannot_update_its_team(governed: Gateway, keys: dict[str, str]) -> None:
    """A plain member sees the team but may not change it (403)."""
    body = {"team_id": "team-a", "team_alias": "x"}
    reply = await admin_call(governed, "POST", "/team/update", body, key=keys["member_a"])
    assert reply.status == 403


async def test_org_admin_updates_limits_of_its_teams(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """An org_admin may change the limits of a team in its organization."""
    body = {"team_id": "team-a", "tpm_limit": 1000}
    reply = await admin_call(governed, "POST", "/team/update", body, key=keys["org_admin_a"])
    assert reply.status == 200
    assert reply.json["data"]["tpm_limit"] == 1000


async def test_org_admin_cannot_update_other_tenant_team(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """An org_admin updating another organization's team gets the 404 of a missing team."""
    body = {"team_id": "team-b", "tpm_limit": 1}
    reply = await admin_call(governed, "POST", "/team/update", body, key=keys["org_admin_a"])
    assert reply.status == 404
    assert reply.json["error"]["code"] == "team_not_found"


async def test_org_admin_cannot_move_team_into_other_organization(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """Moving a team into an organization the actor cannot see is a 404 for that organization."""
    body = {"team_id": "team-a", "organization_id": "org-b"}
    reply = await admin_call(governed, "POST", "/team/update", body, key=keys["org_admin_a"])
    assert reply.status == 404
    assert reply.json["error"]["code"] == "organization_not_found"


async def test_update_unknown_team_is_404(governed: Gateway) -> None:
    """Updating a team that does not exist is a 404."""
    reply = await admin_call(governed, "POST", "/team/update", {"team_id": "zz", "rpm_limit": 1})
    assert reply.status == 404


async def test_update_is_audited(governed: Gateway, keys: dict[str, str]) -> None:
    """/team/update writes an audit entry with the actor and the before/after records."""
    await admin_call(governed, "POST", "/team/update", {"team_id": "team-a", "rpm_limit": 3})
    page = await store_of(governed).audit_log(AuditFilter(object_type="team", object_id="team-a"))
    entry = page.items[0]
    assert (entry.actor, entry.action) == ("master", "update")
    assert (entry.before["rpm_limit"], entry.after["rpm_limit"]) == (None, 3)


# --- /team/delete --------------------------------------------------------------------------------


async def test_delete_removes_team_keys_and_memberships(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """/team/delete removes the team, its memberships and its keys (the key then gets 401)."""
    team_key = await add_key(governed, team_id="team-a")
    assert (await chat(governed, team_key)).status == 200
    reply = await admin_call(governed, "POST", "/team/delete", {"team_ids": ["team-a"]})
    assert reply.status == 200
    assert reply.json == {"deleted_teams": ["team-a"]}
    store = store_of(governed)
    assert await store.get(Team, "team-a") is None
    assert await store.list_members(TeamMembership, group_id="team-a") == []
    assert (await store.list(Key, filters={"team_id": "team-a"})).total == 0
    assert (await chat(governed, team_key)).status == 401


async def test_delete_twice_is_safe(governed: Gateway, keys: dict[str, str]) -> None:
    """Deleting an already deleted team answers 200 with nothing deleted."""
    await admin_call(governed, "POST", "/team/delete", {"team_ids": ["team-a"]})
    reply = await admin_call(governed, "POST", "/team/delete", {"team_ids": ["team-a"]})
    assert reply.status == 200
    assert reply.json == {"deleted_teams": []}


async def test_team_admin_cannot_delete_its_team(governed: Gateway, keys: dict[str, str]) -> None:
    """A team admin may not delete the team (403); it stays."""
    body = {"team_ids": ["team-a"]}
    reply = await admin_call(governed, "POST", "/team/delete", body, key=keys["team_admin_a"])
    assert reply.status == 403
    assert await store_of(governed).get(Team, "team-a") is not None


async def test_delete_of_invisible_team_changes_nothing(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """An org_admin deleting another organization's team sees it as already gone."""
    body = {"team_ids": ["team-b"]}
    reply = await admin_call(governed, "POST", "/team/delete", body, key=keys["org_admin_a"])
    assert reply.json == {"deleted_teams": []}
    assert await store_of(governed).get(Team, "team-b") is not None


# --- members -------------------------------------------------------------------------------------


async def test_team_admin_adds_members(governed: Gateway, keys: dict[str, str]) -> None:
    """A team admin adds a list of members; the answer lists the new memberships."""
    body = {
        "team_id": "team-a",
        "member": [{"role": "user", "user_id": "new-1"}, {"role": "admin", "user_id": "new-2"}],
        "max_budget_in_team": 2.5,
    }
    reply = await admin_call(governed, "POST", "/team/member_add", body, key=keys["team_admin_a"])
    assert reply.status == 200, reply.body
    added = reply.json["updated_team_memberships"]
    assert [(m["user_id"], m["role"], m["max_budget_in_team"]) for m in added] == [
        ("new-1", "user", 2.5),
        ("new-2", "admin", 2.5),
    ]
    assert len(reply.json["members_with_roles"]) == 5


async def test_member_budget_defaults_to_team_member_budget(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """Without `max_budget_in_team`, a new member gets the team's `team_member_budget`."""
    await admin_call(
        governed, "POST", "/team/update", {"team_id": "team-a", "team_member_budget": 4}
    )
    body = {"team_id": "team-a", "member": {"role": "user", "user_id": "new-1"}}
    reply = await admin_call(governed, "POST", "/team/member_add", body)
    assert reply.json["updated_team_memberships"][0]["max_budget_in_team"] == 4


async def test_team_admin_cannot_add_members_to_other_team(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """A team admin adding a member to another team gets the 404 of a missing team."""
    body = {"team_id": "team-b", "member": {"role": "admin", "user_id": "team-admin-a"}}
    reply = await admin_call(governed, "POST", "/team/member_add", body, key=keys["team_admin_a"])
    assert reply.status == 404
    assert await store_of(governed).list_members(TeamMembership, group_id="team-b") == []


async def test_plain_member_cannot_add_members(governed: Gateway, keys: dict[str, str]) -> None:
    """A member without admin rights in the team gets a 403 naming the missing right."""
    body = {"team_id": "team-a", "member": {"role": "user", "user_id": "x"}}
    reply = await admin_call(governed, "POST", "/team/member_add", body, key=keys["member_a"])
    assert reply.status == 403
    assert "admin rights in team 'team-a'" in reply.json["error"]["message"]


async def test_adding_an_existing_member_is_409_and_changes_nothing(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """One member of the list already in the team: 409, and none of the list is added."""
    body = {
        "team_id": "team-a",
        "member": [{"role": "user", "user_id": "new-1"}, {"role": "user", "user_id": "member-a"}],
    }
    reply = await admin_call(governed, "POST", "/team/member_add", body)
    assert reply.status == 409
    assert reply.json["error"]["code"] == "already_member"
    members = await store_of(governed).list_members(TeamMembership, user_id="new-1")
    assert members == []


async def test_member_update_changes_role(governed: Gateway, keys: dict[str, str]) -> None:
    """/team/member_update promotes a member; the new admin may then add members."""
    body = {"team_id": "team-a", "user_id": "member-a", "role": "admin"}
    reply = await admin_call(governed, "POST", "/team/member_update", body)
    assert reply.status == 200
    assert reply.json["role"] == "admin"
    add = {"team_id": "team-a", "member": {"role": "user", "user_id": "x"}}
    added = await admin_call(governed, "POST", "/team/member_add", add, key=keys["member_a"])
    assert added.status == 200


async def test_member_update_of_non_member_is_404(governed: Gateway, keys: dict[str, str]) -> None:
    """Updating someone who is not in the team is a 404."""
    body = {"team_id": "team-a", "user_id": "outsider", "role": "admin"}
    reply = await admin_call(governed, "POST", "/team/member_update", body)
    assert reply.status == 404
    assert reply.json["error"]["code"] == "team_member_not_found"


async def test_member_update_without_user_is_422(governed: Gateway, keys: dict[str, str]) -> None:
    """/team/member_update needs `user_id` or `user_email`."""
    reply = await admin_call(
        governed, "POST", "/team/member_update", {"team_id": "team-a", "role": "admin"}
    )
    assert reply.status == 422
    assert reply.json["error"]["param"] == "user_id"


async def test_member_delete_twice_is_safe(governed: Gateway, keys: dict[str, str]) -> None:
    """/team/member_delete removes the member; repeating it answers 200 again."""
    body = {"team_id": "team-a", "user_id": "member-a"}
    first = await admin_call(
        governed, "POST", "/team/member_delete", body, key=keys["team_admin_a"]
    )
    again = await admin_call(
        governed, "POST", "/team/member_delete", body, key=keys["team_admin_a"]
    )
    assert first.status == again.status == 200
    members = [m["user_id"] for m in again.json["members_with_roles"]]
    assert "member-a" not in members


async def test_member_add_is_audited(governed: Gateway, keys: dict[str, str]) -> None:
    """Adding a member writes a `member_add` audit entry holding the membership."""
    body = {"team_id": "team-a", "member": {"role": "user", "user_id": "outsider"}}
    await admin_call(governed, "POST", "/team/member_add", body, key=keys["team_admin_a"])
    page = await store_of(governed).audit_log(AuditFilter(action="member_add"))
    assert [(e.object_id, e.after["user_id"]) for e in page.items] == [("team-a", "outsider")]


# --- effect on the gateway -----------------------------------------------------------------------


async def test_blocked_team_is_refused_on_the_gateway_at_once(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """/team/block makes the team's key a 403 `team_blocked`; /team/unblock lets it through."""
    team_key = await add_key(governed, team_id="team-a")
    assert (await chat(governed, team_key)).status == 200
    blocked = await admin_call(governed, "POST", "/team/block", {"team_id": "team-a"})
    assert blocked.json["blocked"] is True
    refused = await chat(governed, team_key)
    assert refused.status == 403
    assert refused.json["error"]["code"] == "team_blocked"
    await admin_call(governed, "POST", "/team/unblock", {"team_id": "team-a"})
    assert (await chat(governed, team_key)).status == 200


async def test_team_admin_cannot_unblock_its_team(governed: Gateway, keys: dict[str, str]) -> None:
    """Blocking and unblocking need the org_admin or a proxy_admin, not the team's admin."""
    await admin_call(governed, "POST", "/team/block", {"team_id": "team-a"})
    body = {"team_id": "team-a"}
    reply = await admin_call(governed, "POST", "/team/unblock", body, key=keys["team_admin_a"])
    assert reply.status == 403


async def test_lowered_team_rpm_limit_applies_at_once(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """Lowering the team's rpm_limit to 1 makes the team key's next requests a 429."""
    team_key = await add_key(governed, team_id="team-a")
    assert (await chat(governed, team_key)).status == 200
    update = {"team_id": "team-a", "rpm_limit": 1}
    assert (await admin_call(governed, "POST", "/team/update", update)).status == 200
    statuses = [(await chat(governed, team_key)).status for _ in range(2)]
    assert statuses[-1] == 429


# --- distributed: Postgres store, Redis invalidations ---------------------------------------------

_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
async def pair(upstream: FakeUpstream) -> AsyncIterator[tuple[Gateway, Gateway]]:
    """Two distributed gateways over a Postgres schema and a Redis prefix of this test's own."""
    prefix = f"llmux-manage-test-{uuid.uuid4().hex}:"
    schema = f"llmux_manage_{uuid.uuid4().hex}"
    try:
        async with AsyncExitStack() as stack:
            # One config each: every config picks its own free admin port.
            a, b = [
                await stack.enter_async_context(
                    running_gateway(
                        distributed_config(upstream.url, redis_prefix=prefix, pg_schema=schema)
                    )
                )
                for _ in range(2)
            ]
            yield a, b
    finally:
        await _drop(schema, prefix)


async def _drop(schema: str, prefix: str) -> None:
    connection = await asyncpg.connect(_PG_URL)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        for pattern in (prefix + "*", "{" + prefix + "*"):
            found = [key async for key in client.scan_iter(match=pattern)]
            if found:
                await client.delete(*found)
    finally:
        await client.aclose()


async def test_team_blocked_through_one_replica_is_refused_on_the_other(
    pair: tuple[Gateway, Gateway],
) -> None:
    """A team made and blocked through A's admin API (Postgres) is refused on B within 1 s."""
    a, b = pair
    new = {"team_id": "t1", "members_with_roles": [{"role": "admin", "user_id": "u1"}]}
    assert (await admin_call(a, "POST", "/team/new", new)).status == 200
    team_key = await add_key(a, team_id="t1", user_id="u1")
    assert (await chat(b, team_key)).status == 200
    assert (await admin_call(a, "POST", "/team/block", {"team_id": "t1"})).status == 200

    async def refused_on_b() -> bool:
        reply = await chat(b, team_key)
        return reply.status == 403 and reply.json["error"]["code"] == "team_blocked"

    assert await eventually_async(refused_on_b, within=1.0)
    info = await admin_call(b, "GET", "/team/info", key=team_key, query={"team_id": "t1"})
    assert info.json["team_info"]["blocked"] is True


async def test_team_budget_reset_is_calendar_aligned_when_configured(
    upstream: FakeUpstream,
) -> None:
    """With `governance.budgets.calendar_aligned` a team's "1d" budget resets at midnight UTC."""
    extra = "governance:\n  budgets:\n    calendar_aligned: true\n"
    async with running_gateway(governed_config(upstream.url, extra=extra)) as gateway:
        before = datetime.now(UTC)
        reply = await admin_call(
            gateway,
            "POST",
            "/team/new",
            {"team_id": "daily", "max_budget": 5, "budget_duration": "1d"},
        )
        after = datetime.now(UTC)
    assert reply.status == 200, reply.body
    midnights = {
        datetime.combine(moment.date() + timedelta(days=1), time(), tzinfo=UTC)
        for moment in (before, after)
    }
    assert datetime.fromisoformat(reply.json["budget_reset_at"]) in midnights
