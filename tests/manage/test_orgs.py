"""`/organization/*` on the admin port: shapes, validation, access per role, gateway effect."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llmux.serve import Gateway
from llmux.store import AuditFilter
from llmux.store.records import Organization, OrgMembership, Team, User
from tests.helpers.edge import assert_openai_error
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import add_key, chat, governed_config, store_of
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


# --- /organization/new ---------------------------------------------------------------------------


async def test_master_creates_organization(governed: Gateway) -> None:
    """/organization/new stores the organization with its limits and answers it."""
    body = {
        "organization_alias": "Acme",
        "organization_id": "acme",
        "max_budget": 100,
        "rpm_limit": 5,
    }
    reply = await admin_call(governed, "POST", "/organization/new", body)
    assert reply.status == 200, reply.body
    assert (reply.json["organization_alias"], reply.json["rpm_limit"]) == ("Acme", 5)
    assert (reply.json["members"], reply.json["teams"]) == ([], [])
    stored = await store_of(governed).get(Organization, "acme")
    assert stored is not None and stored.max_budget == 100


async def test_organization_id_is_generated_when_absent(governed: Gateway) -> None:
    """Without `organization_id` the organization gets a fresh id."""
    reply = await admin_call(governed, "POST", "/organization/new", {"organization_alias": "A"})
    assert await store_of(governed).get(Organization, reply.json["organization_id"]) is not None


async def test_alias_is_required(governed: Gateway) -> None:
    """/organization/new without `organization_alias` is a 422 naming it."""
    reply = await admin_call(governed, "POST", "/organization/new", {"organization_id": "x"})
    assert reply.status == 422
    assert_openai_error(
        reply.json, type="invalid_request_error", code="invalid_field", param="organization_alias"
    )


async def test_taken_organization_id_is_409(governed: Gateway, keys: dict[str, str]) -> None:
    """An organization id that exists is a 409."""
    body = {"organization_alias": "A", "organization_id": "org-a"}
    reply = await admin_call(governed, "POST", "/organization/new", body)
    assert reply.status == 409


@pytest.mark.parametrize("role", ["org_admin_a", "team_admin_a", "outsider"])
async def test_only_proxy_admin_creates_organizations(
    governed: Gateway, keys: dict[str, str], role: str
) -> None:
    """Creating an organization needs proxy_admin: 403 naming it."""
    body = {"organization_alias": "A"}
    reply = await admin_call(governed, "POST", "/organization/new", body, key=keys[role])
    assert reply.status == 403
    assert "proxy_admin" in reply.json["error"]["message"]


@pytest.mark.parametrize("role", ["viewer", "read_only", "user_viewer_a"])
async def test_readers_cannot_create_organizations(
    governed: Gateway, keys: dict[str, str], role: str
) -> None:
    """Read-only actors are refused with `read_only`."""
    body = {"organization_alias": "A"}
    reply = await admin_call(governed, "POST", "/organization/new", body, key=keys[role])
    assert (reply.status, reply.json["error"]["code"]) == (403, "read_only")


# --- /organization/info and /organization/list ----------------------------------------------------


async def test_info_lists_members_and_teams(governed: Gateway, keys: dict[str, str]) -> None:
    """/organization/info answers the organization with its members and teams."""
    reply = await admin_call(
        governed, "GET", "/organization/info", query={"organization_id": "org-a"}
    )
    assert reply.status == 200
    assert [m["user_id"] for m in reply.json["members"]] == ["org-admin-a"]
    assert reply.json["members"][0]["user_role"] == "org_admin"
    assert [t["team_id"] for t in reply.json["teams"]] == ["team-a"]


async def test_org_admin_reads_its_organization(governed: Gateway, keys: dict[str, str]) -> None:
    """An org_admin reads its own organization."""
    reply = await admin_call(
        governed,
        "GET",
        "/organization/info",
        key=keys["org_admin_a"],
        query={"organization_id": "org-a"},
    )
    assert reply.status == 200


@pytest.mark.parametrize("role", ["org_admin_a", "team_admin_a", "outsider"])
async def test_other_organization_looks_missing(
    governed: Gateway, keys: dict[str, str], role: str
) -> None:
    """org-b answers exactly like an organization that does not exist."""
    hidden = await admin_call(
        governed, "GET", "/organization/info", key=keys[role], query={"organization_id": "org-b"}
    )
    missing = await admin_call(
        governed, "GET", "/organization/info", key=keys[role], query={"organization_id": "zz"}
    )
    assert hidden.status == missing.status == 404
    assert hidden.json["error"]["code"] == missing.json["error"]["code"]


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("master", ["org-a", "org-b"]),
        ("viewer", ["org-a", "org-b"]),
        ("org_admin_a", ["org-a"]),
        ("member_a", []),
    ],
)
async def test_list_shows_visible_organizations(
    governed: Gateway, keys: dict[str, str], role: str, expected: list[str]
) -> None:
    """/organization/list holds exactly the organizations the actor may see."""
    reply = await admin_call(governed, "GET", "/organization/list", key=keys[role])
    assert reply.status == 200
    assert [org["organization_id"] for org in reply.json] == expected


# --- /organization/update and /organization/delete ------------------------------------------------


async def test_master_updates_limits(governed: Gateway, keys: dict[str, str]) -> None:
    """/organization/update changes the given fields and leaves the rest."""
    body = {"organization_id": "org-a", "tpm_limit": 100, "budget_duration": "7d"}
    reply = await admin_call(governed, "POST", "/organization/update", body)
    assert reply.status == 200
    assert (reply.json["tpm_limit"], reply.json["budget_duration"]) == (100, "7d")
    assert reply.json["budget_reset_at"] is not None


async def test_org_admin_may_rename_but_not_raise_limits(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """An org_admin changes its organization's alias, but a limit change is a 403."""
    rename = {"organization_id": "org-a", "organization_alias": "A2"}
    limit = {"organization_id": "org-a", "max_budget": 1e6}
    key = keys["org_admin_a"]
    assert (
        await admin_call(governed, "POST", "/organization/update", rename, key=key)
    ).status == 200
    refused = await admin_call(governed, "POST", "/organization/update", limit, key=key)
    assert refused.status == 403


async def test_org_admin_cannot_update_other_organization(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """Updating an invisible organization is the 404 of a missing one."""
    body = {"organization_id": "org-b", "organization_alias": "mine"}
    reply = await admin_call(
        governed, "POST", "/organization/update", body, key=keys["org_admin_a"]
    )
    assert reply.status == 404


async def test_invalid_duration_is_422(governed: Gateway, keys: dict[str, str]) -> None:
    """A bad `budget_duration` is a 422 naming it."""
    body = {"organization_id": "org-a", "budget_duration": "weekly"}
    reply = await admin_call(governed, "POST", "/organization/update", body)
    assert reply.status == 422
    assert reply.json["error"]["param"] == "budget_duration"


async def test_organization_with_teams_cannot_be_deleted(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """Deleting an organization that still has teams is a 409 and deletes nothing."""
    reply = await admin_call(
        governed, "POST", "/organization/delete", {"organization_ids": ["org-a"]}
    )
    assert reply.status == 409
    assert reply.json["error"]["code"] == "organization_in_use"
    assert await store_of(governed).get(Organization, "org-a") is not None


async def test_delete_removes_organization_and_memberships_twice_safely(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """An empty organization is deleted with its memberships; repeating answers 200."""
    await admin_call(governed, "POST", "/team/delete", {"team_ids": ["team-a"]})
    body = {"organization_ids": ["org-a"]}
    first = await admin_call(governed, "POST", "/organization/delete", body)
    again = await admin_call(governed, "POST", "/organization/delete", body)
    assert first.json == {"deleted_organizations": ["org-a"]}
    assert (again.status, again.json) == (200, {"deleted_organizations": []})
    assert await store_of(governed).list_members(OrgMembership, group_id="org-a") == []


async def test_org_admin_cannot_delete_its_organization(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """Deleting an organization needs proxy_admin."""
    body = {"organization_ids": ["org-a"]}
    reply = await admin_call(
        governed, "POST", "/organization/delete", body, key=keys["org_admin_a"]
    )
    assert reply.status == 403


# --- members -------------------------------------------------------------------------------------


async def test_org_admin_adds_member_who_then_administers_teams(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """A member added as org_admin may at once manage the organization's teams."""
    newcomer = await add_key(governed, user_id="newcomer")
    body = {"organization_id": "org-a", "member": {"role": "org_admin", "user_id": "newcomer"}}
    reply = await admin_call(
        governed, "POST", "/organization/member_add", body, key=keys["org_admin_a"]
    )
    assert reply.status == 200, reply.body
    assert reply.json["updated_organization_memberships"][0]["user_role"] == "org_admin"
    assert reply.json["updated_users"][0]["organization_id"] == "org-a"
    update = {"team_id": "team-a", "rpm_limit": 9}
    assert (await admin_call(governed, "POST", "/team/update", update, key=newcomer)).status == 200


async def test_member_add_by_email_creates_the_user(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """A member named by an unknown email becomes a new user of the organization."""
    body = {"organization_id": "org-a", "member": [{"role": "internal_user", "user_email": "b@x"}]}
    reply = await admin_call(governed, "POST", "/organization/member_add", body)
    assert reply.status == 200
    users = await store_of(governed).list(User, filters={"user_email": "b@x"})
    assert [user.organization_id for user in users.items] == ["org-a"]


async def test_member_add_to_other_organization_is_404(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """An org_admin adding members to another organization gets a 404."""
    body = {"organization_id": "org-b", "member": {"role": "org_admin", "user_id": "org-admin-a"}}
    reply = await admin_call(
        governed, "POST", "/organization/member_add", body, key=keys["org_admin_a"]
    )
    assert reply.status == 404
    assert await store_of(governed).list_members(OrgMembership, group_id="org-b") == []


async def test_member_add_with_bad_role_is_422(governed: Gateway, keys: dict[str, str]) -> None:
    """An organization role outside org_admin/internal_user/internal_user_viewer is a 422."""
    body = {"organization_id": "org-a", "member": {"role": "admin", "user_id": "x"}}
    reply = await admin_call(governed, "POST", "/organization/member_add", body)
    assert reply.status == 422
    assert reply.json["error"]["param"] == "member.role"


async def test_existing_member_is_409(governed: Gateway, keys: dict[str, str]) -> None:
    """Adding someone already in the organization is a 409."""
    body = {
        "organization_id": "org-a",
        "member": {"role": "internal_user", "user_id": "org-admin-a"},
    }
    reply = await admin_call(governed, "POST", "/organization/member_add", body)
    assert reply.status == 409


async def test_member_update_demotes_org_admin(governed: Gateway, keys: dict[str, str]) -> None:
    """A demoted org_admin loses its rights over the organization's teams at once."""
    body = {"organization_id": "org-a", "user_id": "org-admin-a", "role": "internal_user"}
    reply = await admin_call(governed, "POST", "/organization/member_update", body)
    assert (reply.status, reply.json["user_role"]) == (200, "internal_user")
    update = {"team_id": "team-a", "rpm_limit": 9}
    refused = await admin_call(governed, "POST", "/team/update", update, key=keys["org_admin_a"])
    assert refused.status == 404


async def test_member_update_of_non_member_is_404(governed: Gateway, keys: dict[str, str]) -> None:
    """Updating someone outside the organization is a 404."""
    body = {"organization_id": "org-a", "user_id": "outsider", "role": "org_admin"}
    reply = await admin_call(governed, "POST", "/organization/member_update", body)
    assert reply.status == 404


async def test_member_delete_twice_is_safe(governed: Gateway, keys: dict[str, str]) -> None:
    """/organization/member_delete removes the member; repeating answers 200."""
    body = {"organization_id": "org-a", "user_id": "org-admin-a"}
    first = await admin_call(governed, "POST", "/organization/member_delete", body)
    again = await admin_call(governed, "POST", "/organization/member_delete", body)
    assert first.status == again.status == 200
    assert again.json["members"] == []


async def test_member_changes_are_audited(governed: Gateway, keys: dict[str, str]) -> None:
    """Adding and removing a member each write an audit entry on the organization."""
    add = {"organization_id": "org-a", "member": {"role": "internal_user", "user_id": "outsider"}}
    await admin_call(governed, "POST", "/organization/member_add", add)
    delete = {"organization_id": "org-a", "user_id": "outsider"}
    await admin_call(governed, "POST", "/organization/member_delete", delete)
    page = await store_of(governed).audit_log(
        AuditFilter(object_type="organization", object_id="org-a")
    )
    assert [entry.action for entry in page.items] == ["member_delete", "member_add"]


# --- effect on the gateway -----------------------------------------------------------------------


async def test_organization_rpm_limit_applies_to_its_teams_keys(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """An rpm_limit set on the organization limits its team's key on the next requests."""
    team_key = await add_key(governed, team_id="team-a")
    assert (await chat(governed, team_key)).status == 200
    update = {"organization_id": "org-a", "rpm_limit": 1}
    assert (await admin_call(governed, "POST", "/organization/update", update)).status == 200
    statuses = [(await chat(governed, team_key)).status for _ in range(2)]
    assert statuses[-1] == 429


async def test_blocked_organization_is_refused_on_the_gateway(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """`blocked: true` on the organization makes its team's key a 403 at once."""
    team_key = await add_key(governed, team_id="team-a")
    assert (await chat(governed, team_key)).status == 200
    body = {"organization_id": "org-a", "blocked": True}
    await admin_call(governed, "POST", "/organization/update", body)
    refused = await chat(governed, team_key)
    assert (refused.status, refused.json["error"]["code"]) == (403, "organization_blocked")
    assert await store_of(governed).get(Team, "team-a") is not None
