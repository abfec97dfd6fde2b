"""`/customer/*` (and `/end_user/*`) on the admin port: shapes, access, gateway effect."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llmux.serve import Gateway
from llmux.store import AuditFilter
from llmux.store.records import EndUser
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


async def _new(gateway: Gateway, **fields: object) -> None:
    reply = await admin_call(gateway, "POST", "/customer/new", {"user_id": "c1", **fields})
    assert reply.status == 200, reply.body


@pytest.mark.parametrize("prefix", ["/customer", "/end_user"])
async def test_master_creates_end_user(governed: Gateway, prefix: str) -> None:
    """/customer/new (or /end_user/new) stores the end user and answers it."""
    body = {"user_id": "c1", "alias": "Shop", "allowed_model_region": "eu", "max_budget": 2}
    reply = await admin_call(governed, "POST", f"{prefix}/new", body)
    assert reply.status == 200, reply.body
    assert (reply.json["user_id"], reply.json["alias"], reply.json["blocked"]) == (
        "c1",
        "Shop",
        False,
    )
    stored = await store_of(governed).get(EndUser, "c1")
    assert stored is not None and stored.allowed_model_region == "eu"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "user_id"),
        ({"user_id": "c", "allowed_model_region": "mars"}, "allowed_model_region"),
        ({"user_id": "c", "max_budget": -1}, "max_budget"),
        ({"user_id": "c", "budget_duration": "never"}, "budget_duration"),
    ],
)
async def test_invalid_end_user_is_422_naming_the_field(
    governed: Gateway, body: dict[str, object], param: str
) -> None:
    """A missing or bad field is a 422 naming it."""
    reply = await admin_call(governed, "POST", "/customer/new", body)
    assert reply.status == 422, reply.body
    assert_openai_error(reply.json, type="invalid_request_error", code="invalid_field", param=param)


async def test_taken_end_user_id_is_409(governed: Gateway) -> None:
    """Creating an end user that exists is a 409."""
    await _new(governed)
    reply = await admin_call(governed, "POST", "/customer/new", {"user_id": "c1"})
    assert reply.status == 409


@pytest.mark.parametrize(
    ("role", "code"),
    [
        ("org_admin_a", "forbidden"),
        ("team_admin_a", "forbidden"),
        ("viewer", "read_only"),
        ("read_only", "read_only"),
        ("llm_api", "key_type_not_allowed"),
    ],
)
async def test_only_proxy_admin_creates_end_users(
    governed: Gateway, keys: dict[str, str], role: str, code: str
) -> None:
    """End users are proxy-wide: everyone else gets a 403 saying why."""
    reply = await admin_call(governed, "POST", "/customer/new", {"user_id": "c"}, key=keys[role])
    assert (reply.status, reply.json["error"]["code"]) == (403, code)


async def test_info_and_list(governed: Gateway, keys: dict[str, str]) -> None:
    """A proxy_admin_viewer reads one end user by `end_user_id` and lists them all."""
    await _new(governed)
    viewer = keys["viewer"]
    info = await admin_call(
        governed, "GET", "/customer/info", key=viewer, query={"end_user_id": "c1"}
    )
    listing = await admin_call(governed, "GET", "/end_user/list", key=viewer)
    assert info.json["user_id"] == "c1"
    assert [end_user["user_id"] for end_user in listing.json] == ["c1"]


async def test_end_users_are_invisible_below_viewer(
    governed: Gateway, keys: dict[str, str]
) -> None:
    """An org_admin reading an end user gets the 404 of a missing one; listing is a 403."""
    await _new(governed)
    key = keys["org_admin_a"]
    info = await admin_call(governed, "GET", "/customer/info", key=key, query={"end_user_id": "c1"})
    listing = await admin_call(governed, "GET", "/customer/list", key=key)
    assert (info.status, info.json["error"]["code"]) == (404, "end_user_not_found")
    assert listing.status == 403


async def test_info_of_unknown_end_user_is_404(governed: Gateway) -> None:
    """An unknown `end_user_id` is a 404."""
    reply = await admin_call(governed, "GET", "/customer/info", query={"end_user_id": "zz"})
    assert reply.status == 404


async def test_update_changes_given_fields(governed: Gateway) -> None:
    """/customer/update changes only the fields it is given."""
    await _new(governed, alias="Shop")
    reply = await admin_call(
        governed, "POST", "/customer/update", {"user_id": "c1", "default_model": "smart"}
    )
    assert (reply.json["default_model"], reply.json["alias"]) == ("smart", "Shop")


async def test_update_unknown_end_user_is_404(governed: Gateway) -> None:
    """Updating an end user that does not exist is a 404."""
    reply = await admin_call(governed, "POST", "/customer/update", {"user_id": "zz"})
    assert reply.status == 404


async def test_delete_twice_is_safe_and_audited(governed: Gateway) -> None:
    """/customer/delete removes the end user (audited); repeating answers 200 with nothing."""
    await _new(governed)
    first = await admin_call(governed, "POST", "/customer/delete", {"user_ids": ["c1"]})
    again = await admin_call(governed, "POST", "/customer/delete", {"user_ids": ["c1"]})
    assert first.json == {"deleted_customers": ["c1"]}
    assert (again.status, again.json) == (200, {"deleted_customers": []})
    page = await store_of(governed).audit_log(AuditFilter(object_type="end_user"))
    assert [(entry.action, entry.actor) for entry in page.items] == [
        ("delete", "master"),
        ("create", "master"),
    ]


async def test_blocked_end_user_is_refused_on_the_gateway(governed: Gateway) -> None:
    """/customer/block makes requests naming that `user` a 403; /customer/unblock undoes it."""
    await _new(governed)
    key = await add_key(governed)
    assert (await chat(governed, key, user="c1")).status == 200
    blocked = await admin_call(governed, "POST", "/customer/block", {"user_ids": ["c1"]})
    assert blocked.json == {"blocked_users": ["c1"]}
    refused = await chat(governed, key, user="c1")
    assert (refused.status, refused.json["error"]["code"]) == (403, "end_user_blocked")
    unblocked = await admin_call(governed, "POST", "/customer/unblock", {"user_ids": ["c1"]})
    assert unblocked.json == {"unblocked_users": ["c1"]}
    assert (await chat(governed, key, user="c1")).status == 200


async def test_blocking_an_unseen_end_user_creates_it_blocked(governed: Gateway) -> None:
    """Blocking an end user that was never created shuts it out before its first request."""
    key = await add_key(governed)
    await admin_call(governed, "POST", "/end_user/block", {"user_ids": ["newcomer"]})
    refused = await chat(governed, key, user="newcomer")
    assert (refused.status, refused.json["error"]["code"]) == (403, "end_user_blocked")


async def test_end_user_rpm_limit_applies_at_once(governed: Gateway) -> None:
    """Lowering the end user's rpm_limit makes its next requests a 429."""
    await _new(governed)
    key = await add_key(governed)
    assert (await chat(governed, key, user="c1")).status == 200
    await admin_call(governed, "POST", "/customer/update", {"user_id": "c1", "rpm_limit": 1})
    statuses = [(await chat(governed, key, user="c1")).status for _ in range(2)]
    assert statuses[-1] == 429
