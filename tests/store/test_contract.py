"""The `Store` contract: every behaviour, identical on memory, SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import pytest

from llmux.errors import InvalidRequest
from llmux.store import StoreUnavailable
from llmux.store.base import AlreadyExists, AuditFilter, SpendFilter, Store, ValueTaken
from llmux.store.postgres import PostgresStore
from llmux.store.records import (
    AuditEntry,
    Budget,
    DimensionKind,
    EndUser,
    Entity,
    Key,
    ModelBudget,
    Organization,
    OrgMembership,
    SpendRow,
    StoredResponse,
    Team,
    TeamMembership,
    User,
)
from tests.store.conftest import FakeClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def audit(action: str = "create", object_id: str = "x", **fields: Any) -> AuditEntry:
    """An audit entry from the admin actor."""
    fields.setdefault("at", T0)
    return AuditEntry(
        actor="admin", action=action, object_type="key", object_id=object_id, **fields
    )


def key(token: str = "t1", **fields: Any) -> Key:
    """A key with a fixed creation time."""
    fields.setdefault("created_at", T0)
    fields.setdefault("updated_at", T0)
    return Key(token=token, key_name=f"sk-...{token}", **fields)


def spend_row(request_id: str, **fields: Any) -> SpendRow:
    """A spend row starting at T0 unless told otherwise."""
    fields.setdefault("started_at", T0)
    fields.setdefault("ended_at", fields["started_at"] + timedelta(seconds=1))
    return SpendRow(request_id=request_id, **fields)


SAMPLES: list[Entity] = [
    Budget(budget_id="b1", max_budget=10.0, budget_duration="30d", created_at=T0),
    Organization(
        organization_id="o1",
        organization_alias="acme",
        models=["gpt-4o"],
        model_max_budget={"gpt-4o": ModelBudget(budget_limit=5.0, time_period="1d")},
        created_at=T0,
    ),
    Team(team_id="tm1", team_alias="ml", organization_id="o1", tags=["a"], created_at=T0),
    User(user_id="u1", user_email="u1@example.com", user_role="proxy_admin", created_at=T0),
    EndUser(user_id="e1", alias="customer", allowed_model_region="eu", created_at=T0),
    key(
        "t9",
        key_alias="ci",
        metadata={"env": "prod", "nested": {"n": [1, 2]}},
        model_rpm_limit={"gpt-4o": 10},
        expires=T0 + timedelta(days=7),
        key_type="llm_api",
    ),
]


def _pk(obj: Entity) -> str:
    names = {
        Budget: "budget_id",
        Organization: "organization_id",
        Team: "team_id",
        User: "user_id",
        EndUser: "user_id",
        Key: "token",
    }
    value: str = getattr(obj, names[type(obj)])
    return value


# --- entities ------------------------------------------------------------------------------


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
async def test_created_record_reads_back_equal(store: Store, record: Entity) -> None:
    """Every entity kind round-trips through create and get unchanged."""
    await store.create(record)
    assert await store.get(type(record), _pk(record)) == record


async def test_get_missing_is_none(store: Store) -> None:
    """Reading an id that was never stored gives None."""
    assert await store.get(Team, "nope") is None


async def test_create_existing_raises_and_writes_no_audit(store: Store) -> None:
    """A duplicate create fails with AlreadyExists and leaves no audit row behind."""
    await store.create(key(), audit=audit(object_id="t1"))
    with pytest.raises(AlreadyExists):
        await store.create(key(), audit=audit(object_id="t1"))
    assert (await store.audit_log(AuditFilter())).total == 1


async def test_update_applies_changes_and_sets_updated_at(store: Store, clock: FakeClock) -> None:
    """update changes the given fields only and stamps updated_at from the store clock."""
    await store.create(key(rpm_limit=5))
    clock.advance(60)
    updated = await store.update(Key, "t1", {"max_budget": 2.5, "tags": ["x"]})
    assert updated is not None
    assert (updated.max_budget, updated.tags, updated.rpm_limit) == (2.5, ["x"], 5)
    assert updated.updated_at == clock.now
    assert await store.get_key("t1") == updated


async def test_update_stamps_store_clock_over_caller_updated_at(
    store: Store, clock: FakeClock
) -> None:
    """A caller cannot backdate updated_at: the store clock wins."""
    await store.create(key())
    updated = await store.update(Key, "t1", {"updated_at": T0 - timedelta(days=1)})
    assert updated is not None
    assert updated.updated_at == clock.now


async def test_update_bumps_key_version(store: Store) -> None:
    """Every key update increments its version, so caches can refuse stale copies."""
    await store.create(key())
    await store.update(Key, "t1", {"blocked": True})
    updated = await store.update(Key, "t1", {"blocked": False})
    assert updated is not None
    assert updated.version == 3


async def test_update_missing_is_none(store: Store) -> None:
    """Updating an id that does not exist gives None."""
    assert await store.update(User, "ghost", {"user_alias": "x"}) is None


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        pytest.param({"colour": "red"}, "colour", id="unknown-field"),
        pytest.param({"token": "t2"}, "token", id="primary-key"),
        pytest.param({"rpm_limit": "many"}, "rpm_limit", id="wrong-type"),
    ],
)
async def test_bad_update_is_invalid_request_and_writes_no_audit(
    store: Store, changes: dict[str, Any], param: str
) -> None:
    """An unknown field, the primary key or an ill-typed value is a 400 naming the field."""
    await store.create(key())
    with pytest.raises(InvalidRequest) as caught:
        await store.update(Key, "t1", changes, audit=audit("update", "t1"))
    assert caught.value.param == param
    assert (await store.audit_log(AuditFilter())).total == 0


async def test_delete_twice_is_true_then_false(store: Store) -> None:
    """Deleting removes the record; deleting it again is not an error."""
    await store.create(key())
    assert await store.delete(Key, "t1") is True
    assert await store.delete(Key, "t1") is False
    assert await store.get_key("t1") is None


async def test_put_replaces_whole_record(store: Store) -> None:
    """put overwrites an existing record, store-maintained fields included."""
    await store.create(key(rpm_limit=5))
    replacement = key(tpm_limit=9, spend=1.5, version=7)
    await store.put(replacement)
    assert await store.get_key("t1") == replacement


async def test_list_paginates_in_creation_order_with_total(store: Store) -> None:
    """list returns one page ordered by created_at and the total number of matches."""
    for n in range(5):
        await store.create(key(f"t{n}", created_at=T0 + timedelta(seconds=5 - n)))
    page = await store.list(Key, page=2, size=2)
    assert page.total == 5
    assert [k.token for k in page.items] == ["t2", "t1"]


async def test_list_filters_by_value_any_of_and_null(store: Store) -> None:
    """Filters match a value, any of a list, or None meaning unset."""
    await store.create(key("a", team_id="x"))
    await store.create(key("b", team_id="y"))
    await store.create(key("c"))
    by_value = await store.list(Key, filters={"team_id": "x"})
    any_of = await store.list(Key, filters={"team_id": ["x", "y"]})
    unset = await store.list(Key, filters={"team_id": None})
    assert [k.token for k in by_value.items] == ["a"]
    assert sorted(k.token for k in any_of.items) == ["a", "b"]
    assert [k.token for k in unset.items] == ["c"]


async def test_list_filters_on_booleans(store: Store) -> None:
    """The blocked flag is filterable."""
    await store.create(Team(team_id="a", blocked=True))
    await store.create(Team(team_id="b"))
    page = await store.list(Team, filters={"blocked": True})
    assert [t.team_id for t in page.items] == ["a"]


async def test_list_by_unindexed_field_is_invalid_request(store: Store) -> None:
    """Filtering on a field that is not indexed names the field in a 400."""
    with pytest.raises(InvalidRequest) as caught:
        await store.list(Key, filters={"metadata": "x"})
    assert caught.value.param == "metadata"


@pytest.mark.parametrize(("page", "size", "param"), [(0, 10, "page"), (1, 0, "size")])
async def test_bad_paging_is_invalid_request(
    store: Store, page: int, size: int, param: str
) -> None:
    """A page below 1 or a size of 0 is a 400 naming the parameter."""
    with pytest.raises(InvalidRequest) as caught:
        await store.list(User, page=page, size=size)
    assert caught.value.param == param


async def test_get_key_by_alias(store: Store) -> None:
    """A key can be found by its alias."""
    await store.create(key("t1", key_alias="deploy"))
    found = await store.get_key_by_alias("deploy")
    assert found is not None
    assert found.token == "t1"
    assert await store.get_key_by_alias("other") is None


async def test_create_with_a_taken_alias_is_value_taken(store: Store) -> None:
    """A second key cannot be created under an alias another key holds; nothing is written."""
    await store.create(key("t1", key_alias="deploy"))
    with pytest.raises(ValueTaken) as caught:
        await store.create(key("t2", key_alias="deploy"), audit=audit(object_id="t2"))
    assert caught.value.field == "key_alias"
    assert await store.get(Key, "t2") is None
    assert (await store.audit_log(AuditFilter())).total == 0


async def test_update_to_a_taken_alias_is_value_taken(store: Store) -> None:
    """A key cannot be renamed to an alias another key holds; it keeps its own."""
    await store.create(key("t1", key_alias="deploy"))
    await store.create(key("t2", key_alias="ci"))
    with pytest.raises(ValueTaken):
        await store.update(Key, "t2", {"key_alias": "deploy"})
    assert (await store.get(Key, "t2")) == key("t2", key_alias="ci")


async def test_put_with_a_taken_alias_is_value_taken(store: Store) -> None:
    """A wholesale replace is held to the same rule as create and update."""
    await store.create(key("t1", key_alias="deploy"))
    with pytest.raises(ValueTaken):
        await store.put(key("t2", key_alias="deploy"))
    assert await store.get(Key, "t2") is None


async def test_keys_without_alias_never_clash(store: Store) -> None:
    """Any number of keys may have no alias."""
    await store.create(key("t1"))
    await store.create(key("t2"))
    assert (await store.list(Key, filters={"key_alias": None})).total == 2


async def test_a_key_may_keep_its_own_alias_on_update(store: Store) -> None:
    """Updating a key that holds an alias, alias included, is not a clash with itself."""
    await store.create(key("t1", key_alias="deploy", rpm_limit=1))
    updated = await store.update(Key, "t1", {"key_alias": "deploy", "rpm_limit": 2})
    assert updated is not None
    assert updated.rpm_limit == 2


async def test_returned_records_are_copies(store: Store) -> None:
    """Changing a record a store returned does not change what it stores."""
    await store.create(key(metadata={"a": 1}))
    first = await store.get_key("t1")
    assert first is not None
    first.metadata["a"] = 2
    again = await store.get_key("t1")
    assert again is not None
    assert again.metadata == {"a": 1}


# --- audit ---------------------------------------------------------------------------------


async def test_create_audit_records_the_new_record(store: Store) -> None:
    """The audit entry of a create is stored with `after` filled in."""
    entry = audit(object_id="t1", request_id="req-1", client_ip="10.0.0.1")
    await store.create(key(), audit=entry)
    stored = await store.get_audit(entry.id)
    assert stored is not None
    assert stored.before is None
    assert stored.after == msgspec.to_builtins(key())
    assert (stored.actor, stored.request_id, stored.client_ip) == ("admin", "req-1", "10.0.0.1")


async def test_update_audit_records_before_and_after(store: Store) -> None:
    """The audit entry of an update holds the record before and after the change."""
    await store.create(key(rpm_limit=1))
    entry = audit("update", "t1")
    await store.update(Key, "t1", {"rpm_limit": 2}, audit=entry)
    stored = await store.get_audit(entry.id)
    assert stored is not None
    assert (stored.before["rpm_limit"], stored.after["rpm_limit"]) == (1, 2)


async def test_added_event_is_listed_as_given(store: Store) -> None:
    """An event appended on its own (no record changed) reads back unchanged."""
    entry = audit("budget_exceeded", "t1", after={"spent": 1.5}, request_id="req-1")
    await store.add_audit(entry)
    assert await store.get_audit(entry.id) == entry


async def test_added_event_with_a_taken_id_is_already_exists(store: Store) -> None:
    """Appending an entry whose id is taken fails and keeps the first."""
    entry = audit("budget_exceeded", "t1")
    await store.add_audit(entry)
    with pytest.raises(AlreadyExists):
        await store.add_audit(msgspec.structs.replace(entry, action="other"))
    assert (await store.audit_log(AuditFilter())).total == 1


async def test_caller_supplied_audit_payload_is_kept(store: Store) -> None:
    """A before/after given by the caller is stored as given."""
    entry = audit(after={"redacted": True})
    await store.create(key(), audit=entry)
    stored = await store.get_audit(entry.id)
    assert stored is not None
    assert stored.after == {"redacted": True}


async def test_failing_audit_write_rolls_the_mutation_back(store: Store) -> None:
    """Audit and mutation share a transaction: a reused audit id undoes the update."""
    first = audit(object_id="t1")
    await store.create(key(rpm_limit=1), audit=first)
    with pytest.raises(AlreadyExists):
        await store.update(Key, "t1", {"rpm_limit": 2}, audit=audit("update", "t1", id=first.id))
    stored = await store.get_key("t1")
    assert stored is not None
    assert (stored.rpm_limit, stored.version) == (1, 1)


async def test_deleting_missing_writes_no_audit(store: Store) -> None:
    """A delete that finds nothing is not audited."""
    await store.delete(Key, "ghost", audit=audit("delete", "ghost"))
    assert (await store.audit_log(AuditFilter())).total == 0


async def test_audit_log_filters_and_orders_newest_first(store: Store) -> None:
    """audit_log filters by field and time and returns newest entries first."""
    for n in range(3):
        await store.create(
            key(f"t{n}"), audit=audit(object_id=f"t{n}", at=T0 + timedelta(minutes=n))
        )
    await store.delete(Key, "t0", audit=audit("delete", "t0", at=T0 + timedelta(minutes=9)))
    creates = await store.audit_log(AuditFilter(action="create"), size=2)
    assert creates.total == 3
    assert [e.object_id for e in creates.items] == ["t2", "t1"]
    late = await store.audit_log(AuditFilter(start=T0 + timedelta(minutes=2)))
    assert [e.action for e in late.items] == ["delete", "create"]


async def test_get_audit_missing_is_none(store: Store) -> None:
    """An unknown audit id gives None."""
    assert await store.get_audit("nope") is None


# --- memberships ---------------------------------------------------------------------------


async def test_memberships_list_by_group_and_by_user(store: Store) -> None:
    """Team memberships can be listed per team and per user."""
    await store.add_member(TeamMembership(team_id="a", user_id="u1", role="admin"))
    await store.add_member(TeamMembership(team_id="a", user_id="u2"))
    await store.add_member(TeamMembership(team_id="b", user_id="u1"))
    in_a = await store.list_members(TeamMembership, group_id="a")
    of_u1 = await store.list_members(TeamMembership, user_id="u1")
    assert sorted(m.user_id for m in in_a) == ["u1", "u2"]
    assert sorted(m.team_id for m in of_u1) == ["a", "b"]


async def test_adding_a_member_twice_raises(store: Store) -> None:
    """A user is a member of a group at most once."""
    await store.add_member(OrgMembership(organization_id="o", user_id="u"))
    with pytest.raises(AlreadyExists):
        await store.add_member(OrgMembership(organization_id="o", user_id="u"))


async def test_update_member_changes_role(store: Store) -> None:
    """A membership's role can be changed, and the change is audited."""
    await store.add_member(OrgMembership(organization_id="o", user_id="u"))
    entry = audit("member_update", "o")
    updated = await store.update_member(
        OrgMembership, "o", "u", {"user_role": "org_admin"}, audit=entry
    )
    assert updated is not None
    assert updated.user_role == "org_admin"
    assert (await store.list_members(OrgMembership, user_id="u"))[0].user_role == "org_admin"
    assert await store.get_audit(entry.id) is not None


async def test_update_missing_member_is_none(store: Store) -> None:
    """Updating a membership that does not exist gives None."""
    assert await store.update_member(TeamMembership, "a", "u", {"role": "admin"}) is None


async def test_remove_member_twice_is_true_then_false(store: Store) -> None:
    """Removing a membership twice is safe."""
    await store.add_member(TeamMembership(team_id="a", user_id="u"))
    assert await store.remove_member(TeamMembership, "a", "u") is True
    assert await store.remove_member(TeamMembership, "a", "u") is False
    assert await store.list_members(TeamMembership, group_id="a") == []


# --- spend ---------------------------------------------------------------------------------


async def test_add_spend_is_idempotent_on_request_id(store: Store) -> None:
    """A retried batch records nothing twice: rows, aggregates and spend count once."""
    await store.create(key())
    batch = [spend_row("r1", token="t1", cost=0.5), spend_row("r2", token="t1", cost=0.25)]
    assert await store.add_spend(batch) == 2
    assert await store.add_spend(batch) == 0
    stored = await store.get_key("t1")
    assert stored is not None
    assert stored.spend == 0.75
    assert (await store.spend_logs(SpendFilter())).total == 2
    daily = await store.daily_spend("key", start=T0.date(), end=T0.date())
    assert [d.requests for d in daily] == [2]


async def test_add_spend_of_nothing_records_nothing(store: Store) -> None:
    """An empty batch is a no-op."""
    assert await store.add_spend([]) == 0
    assert (await store.spend_totals(SpendFilter())).requests == 0


async def test_repeated_request_id_within_a_batch_counts_once(store: Store) -> None:
    """Two rows with one request id in the same batch are recorded once."""
    assert await store.add_spend([spend_row("r1", cost=0.5), spend_row("r1", cost=0.5)]) == 1
    assert (await store.spend_totals(SpendFilter())).cost == 0.5


async def test_add_spend_increments_every_level(store: Store) -> None:
    """A row's cost is added to its key, user, team, org, end user and team membership."""
    await store.create(key())
    await store.create(User(user_id="u"))
    await store.create(Team(team_id="tm"))
    await store.create(Organization(organization_id="o"))
    await store.create(EndUser(user_id="e"))
    await store.add_member(TeamMembership(team_id="tm", user_id="u"))
    row = dict(token="t1", user_id="u", team_id="tm", organization_id="o", end_user="e")
    await store.add_spend([spend_row("r1", cost=0.5, **row), spend_row("r2", cost=0.25, **row)])
    levels = [
        await store.get_key("t1"),
        await store.get(User, "u"),
        await store.get(Team, "tm"),
        await store.get(Organization, "o"),
        await store.get(EndUser, "e"),
    ]
    assert [level.spend if level else None for level in levels] == [0.75] * 5
    members = await store.list_members(TeamMembership, group_id="tm")
    assert members[0].spend == 0.75


async def test_add_spend_does_not_bump_key_version(store: Store) -> None:
    """Spend is not a configuration change: cached keys stay valid."""
    await store.create(key())
    await store.add_spend([spend_row("r1", token="t1", cost=1.0)])
    stored = await store.get_key("t1")
    assert stored is not None
    assert stored.version == 1


async def test_add_spend_for_unknown_entities_still_records_rows(store: Store) -> None:
    """A row naming a deleted key is still logged and aggregated."""
    assert await store.add_spend([spend_row("r1", token="gone", cost=0.5)]) == 1
    assert (await store.spend_logs(SpendFilter(token="gone"))).total == 1


async def test_daily_aggregates_sum_every_dimension(store: Store) -> None:
    """Daily aggregates count requests, successes, tokens, cost and latency per dimension."""
    common = dict(team_id="tm", model_group="gpt-4o", provider="openai", tags=["a", "b"])
    await store.add_spend(
        [
            spend_row("r1", input_tokens=10, output_tokens=5, cost=0.5, latency_ms=100, **common),
            spend_row("r2", input_tokens=3, cached_tokens=2, status=429, latency_ms=20, **common),
        ]
    )
    dimensions: list[tuple[DimensionKind, str]] = [
        ("team", "tm"),
        ("model", "gpt-4o"),
        ("provider", "openai"),
        ("tag", "b"),
    ]
    for kind, value in dimensions:
        (agg,) = await store.daily_spend(kind, start=T0.date(), end=T0.date(), values=[value])
        assert (agg.requests, agg.successes) == (2, 1)
        assert (agg.input_tokens, agg.output_tokens, agg.cached_tokens) == (13, 5, 2)
        assert (agg.cost, agg.latency_ms_sum) == (0.5, 120.0)


async def test_daily_aggregates_bucket_by_utc_day(store: Store) -> None:
    """Rows land in the UTC day they started, and range and value filters apply."""
    late = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    await store.add_spend(
        [
            spend_row("r1", user_id="u1", started_at=late, cost=0.5),
            spend_row("r2", user_id="u1", started_at=late + timedelta(hours=1), cost=0.25),
            spend_row("r3", user_id="u2", started_at=late, cost=1.0),
        ]
    )
    days = await store.daily_spend(
        "user", start=date(2026, 3, 1), end=date(2026, 3, 2), values=["u1"]
    )
    assert [(d.day, d.cost) for d in days] == [(date(2026, 3, 1), 0.5), (date(2026, 3, 2), 0.25)]
    only_first = await store.daily_spend("user", start=date(2026, 3, 1), end=date(2026, 3, 1))
    assert [d.value for d in only_first] == ["u1", "u2"]


async def test_spend_logs_filter_and_order_newest_first(store: Store) -> None:
    """spend_logs filters by key, model and time, newest first, with the total."""
    rows = [
        spend_row(f"r{n}", token="t1", model_group="m", started_at=T0 + timedelta(minutes=n))
        for n in range(4)
    ]
    await store.add_spend([*rows, spend_row("other", token="t2", model_group="m")])
    page = await store.spend_logs(
        SpendFilter(token="t1", model_group="m", start=T0 + timedelta(minutes=1)), size=2
    )
    assert page.total == 3
    assert [row.request_id for row in page.items] == ["r3", "r2"]


async def test_spend_log_row_reads_back_equal(store: Store) -> None:
    """Every field of a spend row survives storage."""
    row = spend_row(
        "r1",
        token="t",
        user_id="u",
        team_id="tm",
        organization_id="o",
        end_user="e",
        model_group="g",
        deployment="d",
        provider="p",
        input_tokens=1,
        output_tokens=2,
        cached_tokens=3,
        cache_write_tokens=4,
        reasoning_tokens=5,
        cost=0.125,
        latency_ms=12.5,
        ttft_ms=3.5,
        status=502,
        error_code="upstream_error",
        tags=["x"],
    )
    await store.add_spend([row])
    page = await store.spend_logs(SpendFilter(request_id="r1"))
    assert page.items == [row]


async def test_spend_totals_sum_matching_rows(store: Store) -> None:
    """spend_totals adds up requests, tokens and cost of the matching rows."""
    await store.add_spend(
        [
            spend_row("r1", team_id="a", input_tokens=3, output_tokens=4, cost=0.5),
            spend_row("r2", team_id="a", input_tokens=1, output_tokens=1, cost=0.25),
            spend_row("r3", team_id="b", cost=8.0),
        ]
    )
    totals = await store.spend_totals(SpendFilter(team_id="a"))
    assert (totals.requests, totals.input_tokens, totals.output_tokens) == (2, 4, 5)
    assert totals.cost == 0.75


# --- budgets and key bookkeeping -----------------------------------------------------------


async def test_reset_budget_zeroes_spend_and_sets_next_reset(store: Store) -> None:
    """A reset sets spend to 0 and stores the next reset time, audited."""
    await store.create(Team(team_id="tm", budget_duration="1d", budget_reset_at=T0))
    await store.add_spend([spend_row("r1", team_id="tm", cost=2.0)])
    entry = audit("budget_reset", "tm")
    assert await store.reset_budget("team", "tm", T0 + timedelta(days=1), audit=entry)
    team = await store.get(Team, "tm")
    assert team is not None
    assert (team.spend, team.budget_reset_at) == (0.0, T0 + timedelta(days=1))
    stored = await store.get_audit(entry.id)
    assert stored is not None
    assert (stored.before["spend"], stored.after["spend"]) == (2.0, 0.0)


async def test_reset_budget_of_missing_entity_is_false(store: Store) -> None:
    """Resetting an entity that does not exist reports False."""
    assert await store.reset_budget("organization", "ghost", None) is False


async def test_due_budget_resets_lists_only_passed_times(store: Store) -> None:
    """Only entities whose reset time is at or before now are due, across every kind."""
    await store.create(Organization(organization_id="o", budget_duration="1mo", budget_reset_at=T0))
    await store.create(key("t1", budget_reset_at=T0 - timedelta(hours=1)))
    await store.create(key("t2", budget_reset_at=T0 + timedelta(seconds=1)))
    await store.create(EndUser(user_id="e"))
    due = await store.due_budget_resets(T0)
    assert sorted((d.kind, d.id, d.budget_reset_at) for d in due) == [
        ("key", "t1", T0 - timedelta(hours=1)),
        ("organization", "o", T0),
    ]
    assert next(d for d in due if d.kind == "organization").budget_duration == "1mo"


async def test_touch_keys_never_moves_last_used_backwards(store: Store) -> None:
    """last_used_at only moves forward, unknown tokens are ignored, version is unchanged."""
    await store.create(key())
    await store.touch_keys({"t1": T0 + timedelta(minutes=5), "ghost": T0})
    await store.touch_keys({"t1": T0})
    stored = await store.get_key("t1")
    assert stored is not None
    assert (stored.last_used_at, stored.version) == (T0 + timedelta(minutes=5), 1)


# --- stored responses ----------------------------------------------------------------------


def stored_response(owner: str = "hash-a") -> StoredResponse:
    """A stored response whose raw JSON has unusual spacing, to prove bytes are kept."""
    return StoredResponse(
        response_id="resp_1",
        owner=owner,
        team_id="tm",
        created_at=T0,
        model="gpt-4o",
        input_items=[msgspec.Raw(b'{"role":"user", "content":"hi"}')],
        output=[msgspec.Raw(b'{"type":"message","content":[ ]}')],
        response=msgspec.Raw(b'{"id":"resp_1",  "object":"response"}'),
    )


async def test_response_is_visible_to_its_owner_only(store: Store) -> None:
    """get_response returns the response to its owner, nothing to others, all to admins."""
    await store.put_response(stored_response())
    assert await store.get_response("resp_1", owner="hash-b") is None
    mine = await store.get_response("resp_1", owner="hash-a")
    assert await store.get_response("resp_1", owner=None) == mine


async def test_response_raw_json_is_kept_byte_for_byte(store: Store) -> None:
    """Input items, output and the response body come back exactly as stored."""
    await store.put_response(stored_response())
    found = await store.get_response("resp_1", owner="hash-a")
    assert found is not None
    assert bytes(found.response) == b'{"id":"resp_1",  "object":"response"}'
    assert [bytes(item) for item in found.input_items] == [b'{"role":"user", "content":"hi"}']
    assert found == stored_response()


async def test_delete_response_only_by_its_owner(store: Store) -> None:
    """Another owner cannot delete a response; its owner can, once."""
    await store.put_response(stored_response())
    assert await store.delete_response("resp_1", owner="hash-b") is False
    assert await store.delete_response("resp_1", owner="hash-a") is True
    assert await store.delete_response("resp_1", owner="hash-a") is False


# --- outages -------------------------------------------------------------------------------


async def test_unreachable_postgres_raises_store_unavailable() -> None:
    """A Postgres that refuses connections is StoreUnavailable, not a crash."""
    with pytest.raises(StoreUnavailable):
        await PostgresStore.open("postgresql://postgres@127.0.0.1:1/postgres", connect_timeout=1.0)


async def test_a_nul_character_is_a_client_error(store: Store) -> None:
    """Text Postgres cannot hold (NUL) is refused as the client's mistake, on every backend."""
    try:
        page = await store.list(Team, filters={"team_alias": "a\x00b"})
    except InvalidRequest:
        return
    assert page.items == []
