"""The `/key/*` management endpoints on a running gateway's admin port, for every role.

Keys made here are used on the gateway port right away, so each test also proves a change
reaches the gateway at once. Teams: `red` in organization `acme`, `blue` without one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from llmux.governance.keys import display_name, hash_key
from llmux.serve import Gateway
from llmux.store import AuditFilter
from llmux.store.records import Organization, Team, UserRole
from tests.helpers.edge import RawReply, assert_openai_error
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import MASTER_KEY, add_key, chat, governed_config, store_of
from tests.helpers.manage import STORE_BACKENDS, actor_key, admin_call, store_section
from tests.helpers.upstream import FakeUpstream


@pytest.fixture(params=STORE_BACKENDS)
async def governed(
    request: pytest.FixtureRequest, upstream: FakeUpstream
) -> AsyncIterator[Gateway]:
    """A gateway with a master key, teams `red` (org `acme`) and `blue`, on each store."""
    async with (
        store_section(request.param) as store_yaml,
        running_gateway(governed_config(upstream.url, extra=store_yaml)) as running,
    ):
        store = store_of(running)
        await store.create(Organization(organization_id="acme"))
        await store.create(Team(team_id="red", organization_id="acme"))
        await store.create(Team(team_id="blue"))
        yield running


async def post(gateway: Gateway, path: str, body: Any, *, caller: str = MASTER_KEY) -> RawReply:
    """POST `body` to a management path as `caller`."""
    return await admin_call(gateway, "POST", path, body, key=caller)


async def get(gateway: Gateway, path: str, *, caller: str = MASTER_KEY, **query: str) -> RawReply:
    """GET a management path with `query` as `caller`."""
    return await admin_call(gateway, "GET", path, key=caller, query=query)


async def generated(gateway: Gateway, *, caller: str = MASTER_KEY, **body: Any) -> dict[str, Any]:
    """The answer of a successful `/key/generate` with `body`, made by `caller`."""
    reply = await post(gateway, "/key/generate", body, caller=caller)
    assert reply.status == 200, reply.json
    answer: dict[str, Any] = reply.json
    return answer


async def audit_actions(gateway: Gateway, token: str) -> list[str]:
    """The audit actions recorded for key `token`, oldest first."""
    page = await store_of(gateway).audit_log(AuditFilter(object_type="key", object_id=token))
    return [entry.action for entry in reversed(page.items)]


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


# --- /key/generate --------------------------------------------------------------------------


async def test_generate_returns_the_value_once_and_stores_its_hash(governed: Gateway) -> None:
    """The answer holds the `sk-` value, its hash as `token` and its display name."""
    answer = await generated(governed, key_alias="ops")
    raw = answer["key"]
    assert raw.startswith("sk-")
    assert answer["token"] == hash_key(raw)
    assert answer["key_name"] == display_name(raw)
    assert answer["key_alias"] == "ops"
    stored = await store_of(governed).get_key(hash_key(raw))
    assert stored is not None and stored.key_alias == "ops"


async def test_generated_key_works_on_the_gateway(governed: Gateway) -> None:
    """A key is usable on the gateway port as soon as it is generated."""
    answer = await generated(governed)
    assert (await chat(governed, answer["key"])).status == 200


async def test_generate_echoes_limits_and_dates(governed: Gateway) -> None:
    """Budgets and limits are echoed; `duration` and `budget_duration` become instants."""
    before = datetime.now(UTC)
    answer = await generated(
        governed,
        max_budget=5.0,
        rpm_limit=10,
        model_rpm_limit={"gpt-4o-mini": 2},
        duration="1h",
        budget_duration="30d",
        metadata={"owner": "ops"},
    )
    assert (answer["max_budget"], answer["rpm_limit"]) == (5.0, 10)
    assert answer["model_rpm_limit"] == {"gpt-4o-mini": 2}
    assert answer["metadata"] == {"owner": "ops"}
    expires = datetime.fromisoformat(answer["expires"])
    resets = datetime.fromisoformat(answer["budget_reset_at"])
    assert before + timedelta(hours=1) <= expires <= datetime.now(UTC) + timedelta(hours=1)
    assert before + timedelta(days=30) <= resets <= datetime.now(UTC) + timedelta(days=30)


async def test_budget_reset_is_calendar_aligned_when_configured(upstream: FakeUpstream) -> None:
    """With `governance.budgets.calendar_aligned` a "1d" budget resets at the next midnight."""
    extra = "governance:\n  budgets:\n    calendar_aligned: true\n"
    async with running_gateway(governed_config(upstream.url, extra=extra)) as gateway:
        before = datetime.now(UTC)
        answer = await generated(gateway, budget_duration="1d")
        after = datetime.now(UTC)
    # The call may straddle midnight: then either side's next midnight is right.
    midnights = {
        datetime.combine(moment.date() + timedelta(days=1), time(), tzinfo=UTC)
        for moment in (before, after)
    }
    assert datetime.fromisoformat(answer["budget_reset_at"]) in midnights


async def test_generate_with_a_custom_value_uses_it(governed: Gateway) -> None:
    """`key` chooses the value; the gateway accepts exactly that value."""
    answer = await generated(governed, key="sk-my-own-value")
    assert answer["key"] == "sk-my-own-value"
    assert (await chat(governed, "sk-my-own-value")).status == 200


async def test_custom_value_without_prefix_is_422(governed: Gateway) -> None:
    """A custom key must start with `sk-`."""
    reply = await post(governed, "/key/generate", {"key": "my-own-value"})
    assert_invalid_field(reply, "key")


async def test_custom_value_taken_is_409(governed: Gateway) -> None:
    """Generating a value that already exists is a conflict."""
    await generated(governed, key="sk-taken-value")
    reply = await post(governed, "/key/generate", {"key": "sk-taken-value"})
    assert reply.status == 409
    assert_openai_error(reply.json, type="invalid_request_error", code="conflict", param="key")


@pytest.mark.parametrize(
    "field",
    ["max_budget", "soft_budget", "tpm_limit", "rpm_limit", "max_parallel_requests", "spend"],
)
async def test_negative_budget_or_limit_is_422_naming_it(governed: Gateway, field: str) -> None:
    """A negative budget or limit is refused, naming the field."""
    reply = await post(governed, "/key/generate", {field: -1})
    assert_invalid_field(reply, field)


async def test_negative_model_budget_is_422(governed: Gateway) -> None:
    """A negative per-model budget is refused, naming `model_max_budget`."""
    body = {"model_max_budget": {"gpt-4o-mini": {"budget_limit": -1}}}
    reply = await post(governed, "/key/generate", body)
    assert_invalid_field(reply, "model_max_budget")


@pytest.mark.parametrize("field", ["duration", "budget_duration"])
async def test_bad_duration_is_422_naming_it(governed: Gateway, field: str) -> None:
    """A duration outside the "30s"/"7d"/"1mo" grammar is refused, naming the field."""
    reply = await post(governed, "/key/generate", {field: "soon"})
    assert_invalid_field(reply, field)


async def test_unknown_field_is_422(governed: Gateway) -> None:
    """A misspelt field is refused rather than ignored."""
    reply = await post(governed, "/key/generate", {"rpm_limt": 3})
    assert_invalid_field(reply, "rpm_limt")


async def test_taken_alias_is_409(governed: Gateway) -> None:
    """Two keys cannot share an alias."""
    await generated(governed, key_alias="shared")
    reply = await post(governed, "/key/generate", {"key_alias": "shared"})
    assert reply.status == 409
    assert_openai_error(
        reply.json, type="invalid_request_error", code="conflict", param="key_alias"
    )


async def test_unknown_team_is_404_naming_it(governed: Gateway) -> None:
    """A key for a team that does not exist is a 404 naming the team."""
    reply = await post(governed, "/key/generate", {"team_id": "nope"})
    assert_hidden(reply, "team", "nope")


async def test_team_key_inherits_the_team_organization(governed: Gateway) -> None:
    """A key of team `red` belongs to `red`'s organization."""
    answer = await generated(governed, team_id="red")
    assert answer["organization_id"] == "acme"


async def test_generate_writes_an_audit_record(governed: Gateway) -> None:
    """Creating a key leaves a `created` audit entry by the master key with the new record."""
    answer = await generated(governed)
    page = await store_of(governed).audit_log(AuditFilter(object_id=answer["token"]))
    [entry] = page.items
    assert (entry.actor, entry.action, entry.object_type) == ("master", "created", "key")
    assert entry.before is None and entry.after["token"] == answer["token"]


@pytest.mark.parametrize("role", ["proxy_admin_viewer", "internal_user_viewer"])
async def test_viewers_cannot_generate(governed: Gateway, role: UserRole) -> None:
    """Viewer roles may only read: generating a key is a 403."""
    caller = await actor_key(governed, "viewer", role=role)
    reply = await post(governed, "/key/generate", {}, caller=caller)
    assert reply.status == 403
    assert_openai_error(reply.json, type="permission_error", code="read_only", param=None)


async def test_read_only_key_cannot_generate(governed: Gateway) -> None:
    """A `read_only` key, even a proxy_admin's, may not create keys."""
    caller = await actor_key(governed, "boss", role="proxy_admin", key_type="read_only")
    reply = await post(governed, "/key/generate", {}, caller=caller)
    assert reply.status == 403
    assert_openai_error(reply.json, type="permission_error", code="read_only", param=None)


async def test_llm_api_key_cannot_call_the_admin_api(governed: Gateway) -> None:
    """An `llm_api` key is for the gateway only."""
    caller = await actor_key(governed, "app", role="proxy_admin", key_type="llm_api")
    reply = await post(governed, "/key/generate", {}, caller=caller)
    assert reply.status == 403
    assert_openai_error(
        reply.json, type="permission_error", code="key_type_not_allowed", param=None
    )


async def test_internal_user_key_defaults_to_its_own(governed: Gateway) -> None:
    """An internal user's new key belongs to itself."""
    caller = await actor_key(governed, "ann")
    answer = await generated(governed, caller=caller)
    assert answer["user_id"] == "ann"


async def test_internal_user_cannot_create_a_key_for_another_user(governed: Gateway) -> None:
    """Another user is invisible to an internal user: 404."""
    caller = await actor_key(governed, "ann")
    await actor_key(governed, "bob")
    reply = await post(governed, "/key/generate", {"user_id": "bob"}, caller=caller)
    assert_hidden(reply, "user", "bob")


async def test_internal_user_may_create_its_own_key_in_its_team(governed: Gateway) -> None:
    """A team member may create a key of its own in that team."""
    caller = await actor_key(governed, "ann", teams={"blue": "user"})
    answer = await generated(governed, caller=caller, team_id="blue", user_id="ann")
    assert (answer["team_id"], answer["user_id"]) == ("blue", "ann")


async def test_internal_user_cannot_use_a_team_it_is_not_in(governed: Gateway) -> None:
    """A team the caller is not in is invisible: 404."""
    caller = await actor_key(governed, "ann", teams={"blue": "user"})
    reply = await post(governed, "/key/generate", {"team_id": "red"}, caller=caller)
    assert_hidden(reply, "team", "red")


async def test_team_member_cannot_create_a_service_key(governed: Gateway) -> None:
    """A plain member may not create a team key owned by nobody."""
    caller = await actor_key(governed, "ann", teams={"blue": "user"})
    reply = await post(governed, "/key/generate", {"team_id": "blue"}, caller=caller)
    assert_forbidden(reply, "admin rights in team 'blue'")


async def test_team_admin_creates_team_keys(governed: Gateway) -> None:
    """A team admin may create keys of its team."""
    caller = await actor_key(governed, "tina", teams={"blue": "admin"})
    answer = await generated(governed, caller=caller, team_id="blue")
    assert answer["team_id"] == "blue" and answer["user_id"] is None


async def test_org_admin_creates_keys_for_its_teams(governed: Gateway) -> None:
    """An org_admin may create keys of its organization's teams."""
    caller = await actor_key(governed, "olga", orgs={"acme": "org_admin"})
    answer = await generated(governed, caller=caller, team_id="red")
    assert answer["team_id"] == "red"


async def test_org_admin_cannot_reach_teams_outside_its_org(governed: Gateway) -> None:
    """Teams outside the org_admin's organizations are invisible: 404."""
    caller = await actor_key(governed, "olga", orgs={"acme": "org_admin"})
    reply = await post(governed, "/key/generate", {"team_id": "blue"}, caller=caller)
    assert_hidden(reply, "team", "blue")


# --- /key/update ----------------------------------------------------------------------------


async def test_update_rpm_limit_takes_effect_on_the_gateway_at_once(governed: Gateway) -> None:
    """After `/key/update rpm_limit: 1` the second request of the minute is a 429."""
    raw = (await generated(governed))["key"]
    assert (await chat(governed, raw)).status == 200  # the gateway now caches the key
    reply = await post(governed, "/key/update", {"key": raw, "rpm_limit": 1})
    assert reply.status == 200 and reply.json["rpm_limit"] == 1
    statuses = [(await chat(governed, raw)).status for _ in range(2)]
    assert statuses == [200, 429]


async def test_update_is_partial(governed: Gateway) -> None:
    """Fields not in the update keep their values."""
    answer = await generated(governed, key_alias="old", max_budget=3.0)
    reply = await post(governed, "/key/update", {"key": answer["token"], "key_alias": "new"})
    assert reply.status == 200
    assert (reply.json["key_alias"], reply.json["max_budget"]) == ("new", 3.0)


async def test_update_never_returns_the_plaintext(governed: Gateway) -> None:
    """The update answer names the key by token only."""
    raw = (await generated(governed))["key"]
    reply = await post(governed, "/key/update", {"key": raw, "tags": ["x"]})
    assert raw.encode() not in reply.body
    assert reply.json["token"] == hash_key(raw)


async def test_update_writes_before_and_after(governed: Gateway) -> None:
    """The `updated` audit entry holds the record before and after the change."""
    token = (await generated(governed, rpm_limit=5))["token"]
    await post(governed, "/key/update", {"key": token, "rpm_limit": 7})
    page = await store_of(governed).audit_log(AuditFilter(object_id=token, action="updated"))
    [entry] = page.items
    assert (entry.before["rpm_limit"], entry.after["rpm_limit"]) == (5, 7)


async def test_update_unknown_key_is_404_without_echoing_it(governed: Gateway) -> None:
    """An unknown key is a 404 naming only its display form."""
    reply = await post(governed, "/key/update", {"key": "sk-unknown-key-1234", "rpm_limit": 1})
    assert_hidden(reply, "key", "sk-...1234")
    assert b"unknown-key" not in reply.body


async def test_update_to_a_taken_alias_is_409(governed: Gateway) -> None:
    """Renaming a key to another key's alias is a conflict."""
    await generated(governed, key_alias="first")
    token = (await generated(governed, key_alias="second"))["token"]
    reply = await post(governed, "/key/update", {"key": token, "key_alias": "first"})
    assert reply.status == 409


async def test_team_admin_updates_its_team_key(governed: Gateway) -> None:
    """A team admin may change a key of its team."""
    caller = await actor_key(governed, "tina", teams={"blue": "admin"})
    token = (await generated(governed, team_id="blue"))["token"]
    reply = await post(governed, "/key/update", {"key": token, "rpm_limit": 9}, caller=caller)
    assert reply.status == 200 and reply.json["rpm_limit"] == 9


async def test_team_admin_cannot_see_another_teams_key(governed: Gateway) -> None:
    """Another team's key is a 404 for a team admin, exactly as if it did not exist."""
    caller = await actor_key(governed, "tina", teams={"blue": "admin"})
    token = (await generated(governed, team_id="red"))["token"]
    reply = await post(governed, "/key/update", {"key": token, "rpm_limit": 9}, caller=caller)
    assert_hidden(reply, "key", token)


async def test_owner_cannot_lift_its_own_keys_limit(governed: Gateway) -> None:
    """A key's owner may not raise the limits someone above set on it."""
    caller = await actor_key(governed, "ann")
    token = (await generated(governed, user_id="ann", rpm_limit=1))["token"]
    reply = await post(governed, "/key/update", {"key": token, "rpm_limit": 1000}, caller=caller)
    assert_forbidden(reply, "rpm_limit")


async def test_owner_may_rename_its_own_key(governed: Gateway) -> None:
    """A key's owner may change its alias, metadata and tags."""
    caller = await actor_key(governed, "ann")
    token = (await generated(governed, user_id="ann"))["token"]
    reply = await post(governed, "/key/update", {"key": token, "key_alias": "mine"}, caller=caller)
    assert reply.status == 200 and reply.json["key_alias"] == "mine"


async def test_team_admin_cannot_move_a_key_to_another_team(governed: Gateway) -> None:
    """Moving a key needs rights where it goes: an invisible team is a 404."""
    caller = await actor_key(governed, "tina", teams={"blue": "admin"})
    token = (await generated(governed, team_id="blue"))["token"]
    reply = await post(governed, "/key/update", {"key": token, "team_id": "red"}, caller=caller)
    assert_hidden(reply, "team", "red")


# --- /key/delete ----------------------------------------------------------------------------


async def test_delete_twice_reports_what_was_deleted(governed: Gateway) -> None:
    """The first delete removes the key, the second finds nothing and is still a 200."""
    raw = (await generated(governed))["key"]
    first = await post(governed, "/key/delete", {"keys": [raw]})
    second = await post(governed, "/key/delete", {"keys": [raw]})
    assert first.json == {"deleted_keys": [raw], "deleted_key_aliases": []}
    assert second.status == 200
    assert second.json == {"deleted_keys": [], "deleted_key_aliases": []}


async def test_deleted_key_is_refused_by_the_gateway(governed: Gateway) -> None:
    """A deleted key is a 401 on the gateway at once."""
    raw = (await generated(governed))["key"]
    assert (await chat(governed, raw)).status == 200
    await post(governed, "/key/delete", {"keys": [hash_key(raw)]})
    assert (await chat(governed, raw)).status == 401


async def test_delete_by_alias(governed: Gateway) -> None:
    """`key_aliases` deletes keys by alias, and is audited."""
    token = (await generated(governed, key_alias="gone"))["token"]
    reply = await post(governed, "/key/delete", {"key_aliases": ["gone"]})
    assert reply.json == {"deleted_keys": [], "deleted_key_aliases": ["gone"]}
    assert await audit_actions(governed, token) == ["created", "deleted"]


async def test_delete_without_keys_is_422(governed: Gateway) -> None:
    """A delete naming nothing is refused."""
    reply = await post(governed, "/key/delete", {})
    assert_invalid_field(reply, "keys")


async def test_team_admin_cannot_delete_another_teams_key(governed: Gateway) -> None:
    """Another team's key looks missing to a team admin: nothing is deleted."""
    caller = await actor_key(governed, "tina", teams={"blue": "admin"})
    token = (await generated(governed, team_id="red"))["token"]
    reply = await post(governed, "/key/delete", {"keys": [token]}, caller=caller)
    assert reply.json["deleted_keys"] == []
    assert await store_of(governed).get_key(token) is not None


# --- /key/info and /key/list ----------------------------------------------------------------


async def test_info_defaults_to_the_callers_key(governed: Gateway) -> None:
    """Without `?key=` a key reads its own record."""
    caller = await actor_key(governed, "ann")
    reply = await get(governed, "/key/info", caller=caller)
    assert reply.status == 200
    assert reply.json["key"] == hash_key(caller)
    assert reply.json["info"]["user_id"] == "ann"


async def test_info_never_shows_the_plaintext(governed: Gateway) -> None:
    """`/key/info` names the key by token; the value appears nowhere."""
    raw = (await generated(governed, max_budget=2.0))["key"]
    reply = await get(governed, "/key/info", key=raw)
    assert reply.json["info"]["max_budget"] == 2.0
    assert raw.encode() not in reply.body


async def test_info_for_the_master_key_needs_a_key(governed: Gateway) -> None:
    """The master key has no record: `/key/info` without `?key=` is a 400 naming `key`."""
    reply = await get(governed, "/key/info")
    assert reply.status == 400
    assert_openai_error(reply.json, type="invalid_request_error", code=None, param="key")


async def test_viewer_reads_any_key(governed: Gateway) -> None:
    """A proxy_admin_viewer may read every key."""
    caller = await actor_key(governed, "vic", role="proxy_admin_viewer")
    token = (await generated(governed, team_id="red"))["token"]
    reply = await get(governed, "/key/info", caller=caller, key=token)
    assert reply.status == 200 and reply.json["info"]["team_id"] == "red"


async def test_internal_user_cannot_read_anothers_key(governed: Gateway) -> None:
    """Another user's key is a 404 for an internal user."""
    caller = await actor_key(governed, "ann")
    token = await add_key(governed, user_id="bob")
    reply = await get(governed, "/key/info", caller=caller, key=hash_key(token))
    assert_hidden(reply, "key", hash_key(token))


async def test_list_pages_through_every_key(governed: Gateway) -> None:
    """The master key pages through all keys with LiteLLM's counters."""
    tokens = [(await generated(governed))["token"] for _ in range(3)]
    first = await get(governed, "/key/list", page="1", size="2")
    second = await get(governed, "/key/list", page="2", size="2")
    assert first.json["total_count"] == 3 and first.json["total_pages"] == 2
    assert (first.json["current_page"], second.json["current_page"]) == (1, 2)
    assert first.json["keys"] + second.json["keys"] == tokens


async def test_list_filters_by_team(governed: Gateway) -> None:
    """`team_id` keeps that team's keys only."""
    await generated(governed, team_id="blue")
    red = (await generated(governed, team_id="red"))["token"]
    reply = await get(governed, "/key/list", team_id="red")
    assert reply.json["keys"] == [red]


async def test_list_returns_full_records_on_request(governed: Gateway) -> None:
    """`return_full_object=true` lists records instead of tokens."""
    await generated(governed, key_alias="full")
    reply = await get(governed, "/key/list", return_full_object="true")
    assert [key["key_alias"] for key in reply.json["keys"]] == ["full"]


async def test_team_admin_lists_only_its_teams_and_own_keys(governed: Gateway) -> None:
    """A team admin lists its team's keys and its own, nothing else."""
    caller = await actor_key(governed, "tina", teams={"blue": "admin"})
    blue = (await generated(governed, team_id="blue"))["token"]
    await generated(governed, team_id="red")
    reply = await get(governed, "/key/list", caller=caller)
    assert sorted(reply.json["keys"]) == sorted([hash_key(caller), blue])
    assert reply.json["total_count"] == 2


async def test_internal_user_lists_only_its_keys(governed: Gateway) -> None:
    """An internal user lists only the keys it owns."""
    caller = await actor_key(governed, "ann")
    mine = (await generated(governed, user_id="ann"))["token"]
    await add_key(governed, user_id="bob")
    reply = await get(governed, "/key/list", caller=caller)
    assert sorted(reply.json["keys"]) == sorted([hash_key(caller), mine])


async def test_list_size_out_of_range_is_422(governed: Gateway) -> None:
    """A page size above 1000 is refused, naming `size`."""
    reply = await get(governed, "/key/list", size="5000")
    assert_invalid_field(reply, "size")


# --- /key/regenerate ------------------------------------------------------------------------


async def test_regenerate_without_grace_revokes_the_old_value(governed: Gateway) -> None:
    """The new value works on the gateway and the old one is a 401 at once."""
    old = (await generated(governed))["key"]
    assert (await chat(governed, old)).status == 200
    reply = await post(governed, "/key/regenerate", {"key": old})
    new = reply.json["key"]
    assert new != old and reply.json["token"] == hash_key(new)
    assert (await chat(governed, new)).status == 200
    assert (await chat(governed, old)).status == 401


async def test_regenerate_with_grace_keeps_the_old_value_working(governed: Gateway) -> None:
    """With `grace_period: 10m` both values work, and the old one now expires."""
    old = (await generated(governed))["key"]
    reply = await post(governed, "/key/regenerate", {"key": old, "grace_period": "10m"})
    assert (await chat(governed, old)).status == 200
    assert (await chat(governed, reply.json["key"])).status == 200
    retired = await store_of(governed).get_key(hash_key(old))
    assert retired is not None and retired.expires is not None


async def test_regenerate_keeps_settings_and_moves_the_alias(governed: Gateway) -> None:
    """The new key carries the old one's limits, spend and alias."""
    old = await generated(governed, key_alias="svc", rpm_limit=4, spend=1.5)
    reply = await post(governed, "/key/regenerate", {"key": old["token"], "grace_period": "1h"})
    answer = reply.json
    assert (answer["key_alias"], answer["rpm_limit"], answer["spend"]) == ("svc", 4, 1.5)
    holder = await store_of(governed).get_key_by_alias("svc")
    assert holder is not None and holder.token == answer["token"]


async def test_regenerate_is_audited(governed: Gateway) -> None:
    """Rotating writes `rotated` for the old key and `created` for the new one."""
    old = (await generated(governed))["token"]
    new = (await post(governed, "/key/regenerate", {"key": old})).json["token"]
    assert await audit_actions(governed, old) == ["created", "rotated"]
    assert await audit_actions(governed, new) == ["created"]


async def test_regenerate_bad_grace_period_is_422(governed: Gateway) -> None:
    """A grace period outside the duration grammar is refused, naming it."""
    old = (await generated(governed))["token"]
    reply = await post(governed, "/key/regenerate", {"key": old, "grace_period": "a while"})
    assert_invalid_field(reply, "grace_period")


async def test_team_admin_cannot_regenerate_another_teams_key(governed: Gateway) -> None:
    """Another team's key is a 404 for a team admin."""
    caller = await actor_key(governed, "tina", teams={"blue": "admin"})
    token = (await generated(governed, team_id="red"))["token"]
    reply = await post(governed, "/key/regenerate", {"key": token}, caller=caller)
    assert_hidden(reply, "key", token)


# --- /key/block and /key/unblock ------------------------------------------------------------


async def test_block_makes_the_gateway_refuse_the_key(governed: Gateway) -> None:
    """A blocked key is a 401 `key_blocked` on the gateway at once."""
    raw = (await generated(governed))["key"]
    assert (await chat(governed, raw)).status == 200
    reply = await post(governed, "/key/block", {"key": raw})
    assert reply.status == 200 and reply.json["blocked"] is True
    refused = await chat(governed, raw)
    assert refused.status == 401
    assert_openai_error(refused.json, type="authentication_error", code="key_blocked", param=None)


async def test_unblock_lets_the_key_through_again(governed: Gateway) -> None:
    """An unblocked key works on the gateway at once."""
    raw = (await generated(governed, blocked=True))["key"]
    assert (await chat(governed, raw)).status == 401
    await post(governed, "/key/unblock", {"key": raw})
    assert (await chat(governed, raw)).status == 200


async def test_block_and_unblock_are_audited(governed: Gateway) -> None:
    """Each leaves its own audit entry."""
    token = (await generated(governed))["token"]
    await post(governed, "/key/block", {"key": token})
    await post(governed, "/key/unblock", {"key": token})
    assert await audit_actions(governed, token) == ["created", "blocked", "unblocked"]


async def test_team_admin_cannot_block_another_teams_key(governed: Gateway) -> None:
    """Another team's key is a 404 for a team admin, and stays unblocked."""
    caller = await actor_key(governed, "tina", teams={"blue": "admin"})
    token = (await generated(governed, team_id="red"))["token"]
    reply = await post(governed, "/key/block", {"key": token}, caller=caller)
    assert_hidden(reply, "key", token)
    stored = await store_of(governed).get_key(token)
    assert stored is not None and not stored.blocked


async def test_owner_may_block_but_not_unblock_its_key(governed: Gateway) -> None:
    """An owner can block its own key but unblocking needs rights above it."""
    caller = await actor_key(governed, "ann")
    token = (await generated(governed, user_id="ann"))["token"]
    assert (await post(governed, "/key/block", {"key": token}, caller=caller)).status == 200
    reply = await post(governed, "/key/unblock", {"key": token}, caller=caller)
    assert_forbidden(reply, "blocked")


async def test_owner_cannot_unblock_through_update(governed: Gateway) -> None:
    """`/key/update blocked: false` is an unblock too: an owner may not do it."""
    caller = await actor_key(governed, "ann")
    token = (await generated(governed, user_id="ann", blocked=True))["token"]
    reply = await post(governed, "/key/update", {"key": token, "blocked": False}, caller=caller)
    assert_forbidden(reply, "blocked")


async def test_block_without_credentials_is_401(governed: Gateway) -> None:
    """The admin API needs a key."""
    reply = await admin_call(governed, "POST", "/key/block", {"key": "sk-x"}, key=None)
    assert reply.status == 401
