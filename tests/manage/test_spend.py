"""Spend reporting endpoints on the admin port, fed by real requests through a governed gateway.

The world: organization `org-a` holds team `team-a`; `team-b` stands alone. Alice (team-a) makes
two `smart` calls, a shared team-a key tagged `nightly` one `gpt-4o-mini` call, Bob (team-b,
tag `batch`) one `smart` call. Every answer is checked against the ledger rows themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from typing import Any

import pytest

from llmux.governance.keys import hash_key
from llmux.serve import Gateway
from llmux.store import SpendFilter
from llmux.store.records import Key, Organization, SpendRow
from tests.helpers.edge import eventually_async
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import add_key, add_team, chat, governed_config, store_of
from tests.helpers.manage import actor_key, admin_call
from tests.helpers.upstream import FakeUpstream

ADMIN_ONLY = {
    "error": {
        "message": "Not allowed: this needs the proxy_admin or proxy_admin_viewer role.",
        "type": "permission_error",
        "param": None,
        "code": "forbidden",
    }
}


@dataclass(frozen=True)
class World:
    """The running gateway, its raw keys and every ledger row the calls left."""

    gateway: Gateway
    alice: str
    shared: str
    bob: str
    rows: list[SpendRow]

    @property
    def day(self) -> date:
        """The UTC day of the traffic (read from the rows, so a run across midnight holds)."""
        return self.rows[-1].started_at.astimezone(UTC).date()

    def days(self, offset: int) -> str:
        """The traffic's day shifted by `offset` days, as YYYY-MM-DD."""
        return str(self.day + timedelta(days=offset))

    def rows_where(self, **fields: Any) -> list[SpendRow]:
        """The rows whose attributes equal `fields`."""
        return [r for r in self.rows if all(getattr(r, k) == v for k, v in fields.items())]


async def _keyed_user(gateway: Gateway, user_id: str, team_id: str, tags: list[str]) -> str:
    raw = await actor_key(gateway, user_id, teams={team_id: "user"})
    await store_of(gateway).update(Key, hash_key(raw), {"team_id": team_id, "tags": tags})
    return raw


async def _ledger(gateway: Gateway, count: int) -> list[SpendRow]:
    async def landed() -> bool:
        return (await store_of(gateway).spend_totals(SpendFilter())).requests == count

    assert await eventually_async(landed, within=5.0), "the spend rows did not land"
    return (await store_of(gateway).spend_logs(SpendFilter(), size=100)).items


@pytest.fixture
async def world(upstream: FakeUpstream) -> AsyncIterator[World]:
    """Two teams' worth of real traffic, landed in the ledger."""
    async with running_gateway(governed_config(upstream.url)) as gateway:
        await store_of(gateway).create(Organization(organization_id="org-a"))
        await add_team(gateway, "team-a", organization_id="org-a")
        await add_team(gateway, "team-b")
        alice = await _keyed_user(gateway, "alice", "team-a", [])
        bob = await _keyed_user(gateway, "bob", "team-b", ["batch"])
        shared = await add_key(gateway, team_id="team-a", tags=["nightly"])
        for key, model in ((alice, "smart"), (alice, "smart"), (shared, "gpt-4o-mini")):
            assert (await chat(gateway, key, model)).status == 200
        assert (await chat(gateway, bob, "smart")).status == 200
        yield World(gateway, alice, shared, bob, await _ledger(gateway, 4))


async def _get(world: World, path: str, key: str | None = None, **query: str) -> Any:
    """GET `path` as `key` (default: master), assert 200, return the JSON body."""
    kwargs: dict[str, Any] = {"query": query} if key is None else {"query": query, "key": key}
    reply = await admin_call(world.gateway, "GET", path, **kwargs)
    assert reply.status == 200, reply.body
    return reply.json


def _ids(logs: list[dict[str, Any]]) -> set[str]:
    return {log["request_id"] for log in logs}


def _request_ids(rows: list[SpendRow]) -> set[str]:
    return {row.request_id for row in rows}


# --- /spend/logs ---------------------------------------------------------------------------


async def test_master_lists_every_row_with_the_total_in_a_header(world: World) -> None:
    """The master key gets all four rows and `x-total-count: 4`."""
    reply = await admin_call(world.gateway, "GET", "/spend/logs")
    assert reply.status == 200
    assert reply.headers["x-total-count"] == "4"
    assert _ids(reply.json) == _request_ids(world.rows)


async def test_a_log_row_carries_the_ledger_values(world: World) -> None:
    """One row's key hash, team, org, model, tokens, spend and status match the ledger."""
    row = world.rows_where(token=hash_key(world.bob))[0]
    [log] = await _get(world, "/spend/logs", request_id=row.request_id)
    assert log["api_key"] == row.token
    assert (log["user"], log["team_id"], log["organization_id"]) == ("bob", "team-b", None)
    assert (log["model"], log["model_group"], log["model_id"]) == ("smart", "smart", row.deployment)
    assert (log["prompt_tokens"], log["completion_tokens"], log["total_tokens"]) == (19, 10, 29)
    assert log["spend"] == row.cost
    assert (log["status"], log["http_status"], log["request_tags"]) == ("success", 200, ["batch"])
    assert log["object"] == "spend_log"


async def test_rows_of_a_team_in_an_organization_carry_the_organization(world: World) -> None:
    """Rows of team-a keys name org-a, the team's organization."""
    logs = await _get(world, "/spend/logs", organization_id="org-a")
    assert _ids(logs) == _request_ids(world.rows_where(team_id="team-a"))


async def test_raw_key_and_its_hash_filter_the_same_rows(world: World) -> None:
    """`api_key` accepts the raw `sk-` key or its hash, and both pick Alice's two rows."""
    by_raw = await _get(world, "/spend/logs", api_key=world.alice)
    by_hash = await _get(world, "/spend/logs", api_key=hash_key(world.alice))
    assert _ids(by_raw) == _ids(by_hash) == _request_ids(world.rows_where(user_id="alice"))
    assert len(by_raw) == 2


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        pytest.param({"team_id": "team-b"}, {"team_id": "team-b"}, id="team"),
        pytest.param({"user_id": "alice"}, {"user_id": "alice"}, id="user"),
        pytest.param({"model": "gpt-4o-mini"}, {"model_group": "gpt-4o-mini"}, id="model"),
    ],
)
async def test_filters_pick_matching_rows(
    world: World, query: dict[str, str], fields: dict[str, str]
) -> None:
    """Each filter returns exactly the ledger rows with that value."""
    logs = await _get(world, "/spend/logs", **query)
    assert _ids(logs) == _request_ids(world.rows_where(**fields))


async def test_pages_partition_the_rows(world: World) -> None:
    """size=3 gives 3 rows then 1, newest first, with no row twice."""
    first = await _get(world, "/spend/logs", size="3", page="1")
    second = await _get(world, "/spend/logs", size="3", page="2")
    assert (len(first), len(second)) == (3, 1)
    assert _ids(first) | _ids(second) == _request_ids(world.rows)
    starts = [log["startTime"] for log in first + second]
    assert starts == sorted(starts, reverse=True)


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        pytest.param({"start_date": 1}, 0, id="from-the-next-day"),
        pytest.param({"end_date": -1}, 0, id="until-the-day-before"),
        pytest.param({"start_date": 0, "end_date": 0}, 4, id="that-day"),
    ],
)
async def test_date_range_bounds_the_rows(
    world: World, bounds: dict[str, int], expected: int
) -> None:
    """A day range includes the rows only when it covers their day (end_date inclusive)."""
    query = {name: world.days(offset) for name, offset in bounds.items()}
    assert len(await _get(world, "/spend/logs", **query)) == expected


async def test_iso_datetime_bounds_are_accepted(world: World) -> None:
    """An ISO 8601 start an hour after the last row excludes every row."""
    later = (max(row.started_at for row in world.rows) + timedelta(hours=1)).isoformat()
    assert await _get(world, "/spend/logs", start_date=later) == []


async def test_a_bad_date_is_422_naming_the_field(world: World) -> None:
    """start_date=01/02/24 (not ISO) is refused with a 422 naming start_date."""
    reply = await admin_call(world.gateway, "GET", "/spend/logs", query={"start_date": "01/02/24"})
    assert reply.status == 422
    assert reply.json["error"]["param"] == "start_date"
    assert reply.json["error"]["message"] == (
        "Invalid 'start_date': expected YYYY-MM-DD or an ISO 8601 datetime, got '01/02/24'."
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("end_date", "9999-12-31", id="last-day"),
        pytest.param("start_date", "0001-01-01T00:00:00+05:00", id="before-year-1-in-utc"),
        pytest.param("start_date", "1969-12-31", id="before-1970"),
    ],
)
async def test_a_date_outside_1970_to_8999_is_422(world: World, field: str, value: str) -> None:
    """Dates at the edges of the calendar are refused, naming the field, never a 500."""
    reply = await admin_call(world.gateway, "GET", "/spend/logs", query={field: value})
    assert (reply.status, reply.json["error"]["param"]) == (422, field)


async def test_an_end_before_the_start_is_422_naming_end_date(world: World) -> None:
    """end_date earlier than start_date is refused, naming end_date."""
    query = {"start_date": world.days(0), "end_date": world.days(-2)}
    reply = await admin_call(world.gateway, "GET", "/spend/logs", query=query)
    assert (reply.status, reply.json["error"]["param"]) == (422, "end_date")


async def test_a_page_size_out_of_range_is_422_naming_size(world: World) -> None:
    """size=0 is refused with a 422 naming size."""
    reply = await admin_call(world.gateway, "GET", "/spend/logs", query={"size": "0"})
    assert (reply.status, reply.json["error"]["param"]) == (422, "size")


async def test_an_unknown_filter_is_422_naming_it(world: World) -> None:
    """A misspelt filter (`team=`) is refused rather than silently ignored."""
    reply = await admin_call(world.gateway, "GET", "/spend/logs", query={"team": "team-a"})
    assert (reply.status, reply.json["error"]["param"]) == (422, "team")


async def test_summarize_sums_each_day_with_breakdowns(world: World) -> None:
    """summarize=true gives today's totals, and spend per model, key and user, from the rows."""
    [day] = await _get(world, "/spend/logs", summarize="true")
    assert (day["object"], day["startTime"], day["requests"]) == ("spend_summary", world.days(0), 4)
    assert day["spend"] == pytest.approx(sum(row.cost for row in world.rows))
    assert day["total_tokens"] == sum(row.input_tokens + row.output_tokens for row in world.rows)
    smart = sum(row.cost for row in world.rows_where(model_group="smart"))
    assert day["models"]["smart"] == pytest.approx(smart)
    alice = sum(row.cost for row in world.rows_where(user_id="alice"))
    assert day["users"] == {"alice": pytest.approx(alice), "bob": pytest.approx(alice / 2)}
    assert set(day["api_keys"]) == {row.token for row in world.rows}


# --- scoping -----------------------------------------------------------------------------


async def test_a_team_admin_sees_only_its_teams_rows(world: World) -> None:
    """An admin of team-a lists the three team-a rows and none of team-b's."""
    key = await actor_key(world.gateway, "ta", teams={"team-a": "admin"})
    logs = await _get(world, "/spend/logs", key)
    assert _ids(logs) == _request_ids(world.rows_where(team_id="team-a"))


async def test_a_team_admin_asking_for_another_team_gets_nothing(world: World) -> None:
    """team_id=team-b from team-a's admin is an empty list, not a 403 that confirms it."""
    key = await actor_key(world.gateway, "ta", teams={"team-a": "admin"})
    assert await _get(world, "/spend/logs", key, team_id="team-b") == []


async def test_an_internal_user_sees_only_its_own_rows(world: World) -> None:
    """Alice's own key lists only her two rows, not the shared team-a key's."""
    logs = await _get(world, "/spend/logs", world.alice)
    assert _ids(logs) == _request_ids(world.rows_where(user_id="alice"))


async def test_a_key_without_a_user_sees_only_its_own_rows(world: World) -> None:
    """The shared team-a key (no user) lists its one row, not Alice's."""
    logs = await _get(world, "/spend/logs", world.shared)
    assert _ids(logs) == _request_ids(world.rows_where(token=hash_key(world.shared)))


async def test_a_team_admins_summary_counts_only_its_teams_rows(world: World) -> None:
    """summarize=true for team-a's admin sums the three team-a rows and names no team-b key."""
    key = await actor_key(world.gateway, "ta", teams={"team-a": "admin"})
    [day] = await _get(world, "/spend/logs", key, summarize="true")
    team_a = world.rows_where(team_id="team-a")
    assert day["requests"] == 3
    assert day["spend"] == pytest.approx(sum(row.cost for row in team_a))
    assert set(day["api_keys"]) == {row.token for row in team_a}


async def test_a_team_member_does_not_see_team_rows(world: World) -> None:
    """A plain member of team-a with no calls of its own sees no rows."""
    key = await actor_key(world.gateway, "member", teams={"team-a": "user"})
    assert await _get(world, "/spend/logs", key) == []


async def test_an_org_admin_sees_its_organizations_rows(world: World) -> None:
    """An org_admin of org-a sees team-a's rows (they belong to org-a) and not team-b's."""
    key = await actor_key(world.gateway, "oa", orgs={"org-a": "org_admin"})
    logs = await _get(world, "/spend/logs", key)
    assert _ids(logs) == _request_ids(world.rows_where(organization_id="org-a"))


async def test_overlapping_scopes_count_each_row_once(world: World) -> None:
    """An admin of team-a who is also org_admin of org-a gets each team-a row once."""
    key = await actor_key(
        world.gateway, "both", teams={"team-a": "admin"}, orgs={"org-a": "org_admin"}
    )
    reply = await admin_call(world.gateway, "GET", "/spend/logs", key=key, query={"size": "2"})
    assert (len(reply.json), reply.headers["x-total-count"]) == (2, "3")


async def test_a_proxy_admin_viewer_sees_every_row(world: World) -> None:
    """proxy_admin_viewer reads the whole ledger."""
    key = await actor_key(world.gateway, "viewer", role="proxy_admin_viewer")
    assert _ids(await _get(world, "/spend/logs", key)) == _request_ids(world.rows)


async def test_a_read_only_key_reads_its_owners_rows(world: World) -> None:
    """A read_only key of an internal user may read: its owner's rows (none yet) answer 200."""
    key = await actor_key(world.gateway, "reader", key_type="read_only")
    assert await _get(world, "/spend/logs", key) == []


async def test_an_llm_api_key_is_refused(world: World) -> None:
    """An llm_api key gets a 403 on the admin API."""
    key = await actor_key(world.gateway, "app", key_type="llm_api")
    reply = await admin_call(world.gateway, "GET", "/spend/logs", key=key)
    assert (reply.status, reply.json["error"]["code"]) == (403, "key_type_not_allowed")


# --- /spend/keys|users|teams|tags --------------------------------------------------------


def _by(entries: list[dict[str, Any]], field: str) -> dict[str, dict[str, Any]]:
    return {entry[field]: entry for entry in entries}


def _check_totals(entry: dict[str, Any], rows: list[SpendRow]) -> None:
    assert entry["requests"] == len(rows)
    assert entry["spend"] == pytest.approx(sum(row.cost for row in rows))
    assert entry["prompt_tokens"] == sum(row.input_tokens for row in rows)
    assert entry["total_tokens"] == sum(row.input_tokens + row.output_tokens for row in rows)


async def test_spend_per_key_equals_the_sum_of_its_rows(world: World) -> None:
    """/spend/keys gives each of the three keys the totals of its own rows."""
    keys = _by(await _get(world, "/spend/keys"), "api_key")
    assert set(keys) == {row.token for row in world.rows}
    for token, entry in keys.items():
        _check_totals(entry, world.rows_where(token=token))


async def test_an_internal_user_sees_only_its_own_key_spend(world: World) -> None:
    """Alice's /spend/keys holds her key alone."""
    keys = await _get(world, "/spend/keys", world.alice)
    assert [entry["api_key"] for entry in keys] == [hash_key(world.alice)]


async def test_spend_per_user_equals_the_sum_of_their_rows(world: World) -> None:
    """/spend/users: alice and bob with their rows' totals (the shared key has no user)."""
    users = _by(await _get(world, "/spend/users"), "user_id")
    assert set(users) == {"alice", "bob"}
    for user_id, entry in users.items():
        _check_totals(entry, world.rows_where(user_id=user_id))


async def test_spend_per_team_equals_the_sum_of_its_rows(world: World) -> None:
    """/spend/teams: both teams, each with its rows' totals."""
    teams = _by(await _get(world, "/spend/teams"), "team_id")
    assert set(teams) == {"team-a", "team-b"}
    for team_id, entry in teams.items():
        _check_totals(entry, world.rows_where(team_id=team_id))


async def test_a_team_admin_sees_only_its_team_total(world: World) -> None:
    """team-a's admin gets team-a alone from /spend/teams."""
    key = await actor_key(world.gateway, "ta", teams={"team-a": "admin"})
    assert [t["team_id"] for t in await _get(world, "/spend/teams", key)] == ["team-a"]


async def test_an_org_admin_sees_its_organizations_teams(world: World) -> None:
    """org-a's org_admin gets team-a (in org-a) and not team-b."""
    key = await actor_key(world.gateway, "oa", orgs={"org-a": "org_admin"})
    assert [t["team_id"] for t in await _get(world, "/spend/teams", key)] == ["team-a"]


async def test_an_internal_user_sees_no_team_totals(world: World) -> None:
    """Team totals hold other members' rows, so a plain user gets none."""
    assert await _get(world, "/spend/teams", world.alice) == []


async def test_spend_per_tag_counts_tagged_rows(world: World) -> None:
    """/spend/tags: `batch` (Bob's row) and `nightly` (the shared key's row) in LiteLLM's names."""
    tags = _by(await _get(world, "/spend/tags"), "individual_request_tag")
    assert set(tags) == {"batch", "nightly"}
    [batch] = world.rows_where(token=hash_key(world.bob))
    assert (tags["batch"]["log_count"], tags["batch"]["total_spend"]) == (1, batch.cost)


async def test_a_team_admin_sees_only_tags_of_its_rows(world: World) -> None:
    """team-a's admin sees `nightly` but not team-b's `batch`."""
    key = await actor_key(world.gateway, "ta", teams={"team-a": "admin"})
    tags = await _get(world, "/spend/tags", key)
    assert [t["individual_request_tag"] for t in tags] == ["nightly"]


async def test_a_range_before_the_traffic_has_no_totals(world: World) -> None:
    """/spend/keys over last week (ending yesterday) is empty."""
    query = {"start_date": world.days(-7), "end_date": world.days(-1)}
    assert await _get(world, "/spend/keys", **query) == []


# --- /global/* ---------------------------------------------------------------------------


async def test_global_spend_is_the_sum_of_every_row(world: World) -> None:
    """/global/spend is the ledger's total, with no proxy-wide budget."""
    body = await _get(world, "/global/spend")
    assert body == {"spend": pytest.approx(sum(row.cost for row in world.rows)), "max_budget": None}


@pytest.mark.parametrize(
    "path",
    [
        "/global/spend",
        "/global/spend/report",
        "/global/activity",
        "/global/spend/models",
        "/global/spend/provider",
    ],
)
async def test_global_reports_are_refused_to_a_team_admin(world: World, path: str) -> None:
    """Proxy-wide reports need an admin role; a team admin gets a 403 naming it."""
    key = await actor_key(world.gateway, "ta", teams={"team-a": "admin"})
    reply = await admin_call(world.gateway, "GET", path, key=key)
    assert (reply.status, reply.json) == (403, ADMIN_ONLY)


async def test_a_proxy_admin_viewer_reads_global_spend(world: World) -> None:
    """proxy_admin_viewer may read the proxy-wide total."""
    key = await actor_key(world.gateway, "viewer", role="proxy_admin_viewer")
    body = await _get(world, "/global/spend", key)
    assert body["spend"] == pytest.approx(sum(row.cost for row in world.rows))


@pytest.mark.parametrize(
    ("group_by", "field"),
    [
        ("team", "team_id"),
        ("key", "token"),
        ("user", "user_id"),
        ("model", "model_group"),
        ("provider", "provider"),
    ],
)
async def test_spend_report_groups_today_by_each_dimension(
    world: World, group_by: str, field: str
) -> None:
    """Each group of today's report holds the totals of the rows with that value."""
    [day] = await _get(world, "/global/spend/report", group_by=group_by)
    assert (day["group_by_day"], day["group_by"]) == (world.days(0), group_by)
    groups = _by(day["groups"], "group")
    assert set(groups) == {getattr(row, field) for row in world.rows} - {None}
    for value, group in groups.items():
        rows = world.rows_where(**{field: value})
        assert (group["requests"], group["total_tokens"]) == (len(rows), 29 * len(rows))
        assert group["total_spend"] == pytest.approx(sum(row.cost for row in rows))


async def test_an_unknown_group_by_is_422_naming_it(world: World) -> None:
    """group_by=customer is not one of team|key|user|model|provider: 422 naming group_by."""
    query = {"group_by": "customer"}
    reply = await admin_call(world.gateway, "GET", "/global/spend/report", query=query)
    assert (reply.status, reply.json["error"]["param"]) == (422, "group_by")


async def test_activity_sums_requests_tokens_spend_latency_and_successes(world: World) -> None:
    """/global/activity: today's 4 requests, 116 tokens, the rows' spend and mean latency."""
    body = await _get(world, "/global/activity")
    [day] = body["daily_data"]
    assert (day["date"], day["api_requests"], day["total_tokens"]) == (world.days(0), 4, 116)
    assert day["spend"] == pytest.approx(sum(row.cost for row in world.rows))
    assert day["avg_latency_ms"] == pytest.approx(sum(r.latency_ms for r in world.rows) / 4)
    assert day["success_rate"] == 1.0
    assert (body["sum_api_requests"], body["sum_total_tokens"]) == (4, 116)


async def test_spend_per_model_is_largest_first(world: World) -> None:
    """/global/spend/models: `smart` (three gpt-4o calls) before gpt-4o-mini."""
    models = await _get(world, "/global/spend/models")
    assert [entry["model"] for entry in models] == ["smart", "gpt-4o-mini"]
    smart = sum(row.cost for row in world.rows_where(model_group="smart"))
    assert models[0]["spend"] == pytest.approx(smart)


async def test_spend_per_provider_covers_every_row(world: World) -> None:
    """/global/spend/provider: every call went to `upstream`."""
    total = pytest.approx(sum(row.cost for row in world.rows))
    assert await _get(world, "/global/spend/provider") == [{"provider": "upstream", "spend": total}]
