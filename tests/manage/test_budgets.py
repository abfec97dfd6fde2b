"""`/budget/*` on the admin port: shapes, validation, access per role, and gateway effect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from llmux.serve import Gateway
from llmux.store import AuditFilter
from llmux.store.records import Budget
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


async def _new(gateway: Gateway, **fields: object) -> dict[str, object]:
    reply = await admin_call(gateway, "POST", "/budget/new", {"budget_id": "b1", **fields})
    assert reply.status == 200, reply.body
    answer: dict[str, object] = reply.json
    return answer


async def test_master_creates_budget(governed: Gateway) -> None:
    """/budget/new stores the budget and answers it."""
    answer = await _new(governed, max_budget=10, rpm_limit=3, soft_budget=8)
    assert (answer["budget_id"], answer["max_budget"], answer["rpm_limit"]) == ("b1", 10.0, 3)
    stored = await store_of(governed).get(Budget, "b1")
    assert stored is not None and stored.soft_budget == 8


async def test_budget_id_is_generated_when_absent(governed: Gateway) -> None:
    """Without `budget_id` the budget gets a fresh id."""
    reply = await admin_call(governed, "POST", "/budget/new", {"max_budget": 1})
    assert await store_of(governed).get(Budget, reply.json["budget_id"]) is not None


async def test_budget_duration_sets_reset_time(governed: Gateway) -> None:
    """`budget_duration: 1d` sets `budget_reset_at` one day after creation."""
    before = datetime.now(UTC)
    answer = await _new(governed, budget_duration="1d")
    reset_at = datetime.fromisoformat(str(answer["budget_reset_at"]))
    assert before + timedelta(days=1) <= reset_at <= datetime.now(UTC) + timedelta(days=1)


async def test_explicit_reset_time_wins(governed: Gateway) -> None:
    """A `budget_reset_at` given with the duration is kept as given."""
    answer = await _new(governed, budget_duration="1d", budget_reset_at="2030-01-01T00:00:00Z")
    assert datetime.fromisoformat(str(answer["budget_reset_at"])) == datetime(
        2030, 1, 1, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_budget": -5}, "max_budget"),
        ({"tpm_limit": -1}, "tpm_limit"),
        ({"budget_duration": "1 fortnight"}, "budget_duration"),
        ({"model_max_budget": {"m": {"budget_limit": -1}}}, "model_max_budget.m.budget_limit"),
        ({"models": ["x"]}, "models"),
    ],
)
async def test_invalid_budget_is_422_naming_the_field(
    governed: Gateway, body: dict[str, object], param: str
) -> None:
    """Bad fields (and fields budgets do not have) are a 422 naming the field."""
    reply = await admin_call(governed, "POST", "/budget/new", {"budget_id": "b1", **body})
    assert reply.status == 422, reply.body
    assert_openai_error(reply.json, type="invalid_request_error", code="invalid_field", param=param)


async def test_taken_budget_id_is_409(governed: Gateway) -> None:
    """A budget id that exists is a 409."""
    await _new(governed)
    reply = await admin_call(governed, "POST", "/budget/new", {"budget_id": "b1"})
    assert reply.status == 409


@pytest.mark.parametrize("role", ["org_admin_a", "team_admin_a", "outsider"])
async def test_only_proxy_admin_creates_budgets(
    governed: Gateway, keys: dict[str, str], role: str
) -> None:
    """Budgets are proxy-wide: anyone but a proxy_admin gets a 403 naming the role."""
    reply = await admin_call(governed, "POST", "/budget/new", {"budget_id": "b"}, key=keys[role])
    assert reply.status == 403
    assert "proxy_admin" in reply.json["error"]["message"]


@pytest.mark.parametrize("role", ["viewer", "read_only"])
async def test_readers_cannot_create_budgets(
    governed: Gateway, keys: dict[str, str], role: str
) -> None:
    """proxy_admin_viewer and read_only keys are refused with `read_only`."""
    reply = await admin_call(governed, "POST", "/budget/new", {"budget_id": "b"}, key=keys[role])
    assert (reply.status, reply.json["error"]["code"]) == (403, "read_only")


async def test_update_changes_given_fields(governed: Gateway) -> None:
    """/budget/update changes the given fields and keeps the rest."""
    await _new(governed, max_budget=10, rpm_limit=3)
    reply = await admin_call(
        governed, "POST", "/budget/update", {"budget_id": "b1", "max_budget": 20}
    )
    assert (reply.json["max_budget"], reply.json["rpm_limit"]) == (20.0, 3)


async def test_update_unknown_budget_is_404(governed: Gateway) -> None:
    """Updating a budget that does not exist is a 404 `budget_not_found`."""
    reply = await admin_call(governed, "POST", "/budget/update", {"budget_id": "zz"})
    assert (reply.status, reply.json["error"]["code"]) == (404, "budget_not_found")


async def test_info_by_query_and_by_body(governed: Gateway, keys: dict[str, str]) -> None:
    """/budget/info answers by `?budget_id=` and, as LiteLLM posts it, by `budgets`."""
    await _new(governed)
    by_query = await admin_call(
        governed, "GET", "/budget/info", key=keys["viewer"], query={"budget_id": "b1"}
    )
    by_body = await admin_call(
        governed, "POST", "/budget/info", {"budgets": ["b1"]}, key=keys["viewer"]
    )
    assert by_query.json["budget_id"] == "b1"
    assert [budget["budget_id"] for budget in by_body.json] == ["b1"]


async def test_info_is_404_for_non_admins(governed: Gateway, keys: dict[str, str]) -> None:
    """Budgets are invisible to anyone below proxy_admin_viewer (404 like a missing one)."""
    await _new(governed)
    reply = await admin_call(
        governed, "GET", "/budget/info", key=keys["org_admin_a"], query={"budget_id": "b1"}
    )
    assert (reply.status, reply.json["error"]["code"]) == (404, "budget_not_found")


@pytest.mark.parametrize(("role", "status"), [("master", 200), ("viewer", 200), ("member_a", 403)])
async def test_list_needs_proxy_wide_reader(
    governed: Gateway, keys: dict[str, str], role: str, status: int
) -> None:
    """/budget/list answers every budget to proxy-wide readers and 403 to others."""
    await _new(governed)
    reply = await admin_call(governed, "GET", "/budget/list", key=keys[role])
    assert reply.status == status
    if status == 200:
        assert [budget["budget_id"] for budget in reply.json] == ["b1"]


async def test_budget_in_use_cannot_be_deleted(governed: Gateway) -> None:
    """Deleting a budget a key still uses is a 409 naming the users; it stays."""
    await _new(governed)
    await add_key(governed, budget_id="b1")
    reply = await admin_call(governed, "POST", "/budget/delete", {"id": "b1"})
    assert (reply.status, reply.json["error"]["code"]) == (409, "budget_in_use")
    assert "1 key(s)" in reply.json["error"]["message"]
    assert await store_of(governed).get(Budget, "b1") is not None


async def test_delete_twice_is_safe_and_audited(governed: Gateway) -> None:
    """An unused budget is deleted (audited); deleting it again answers 200 with nothing."""
    await _new(governed)
    first = await admin_call(governed, "POST", "/budget/delete", {"id": "b1"})
    again = await admin_call(governed, "POST", "/budget/delete", {"id": "b1"})
    assert first.json == {"deleted_budgets": ["b1"]}
    assert (again.status, again.json) == (200, {"deleted_budgets": []})
    page = await store_of(governed).audit_log(AuditFilter(object_type="budget"))
    assert [entry.action for entry in page.items] == ["delete", "create"]


async def test_budget_rpm_limit_change_applies_at_once(governed: Gateway) -> None:
    """Lowering the rpm_limit of a key's budget makes the key's next requests a 429."""
    await _new(governed)
    key = await add_key(governed, budget_id="b1")
    assert (await chat(governed, key)).status == 200
    update = {"budget_id": "b1", "rpm_limit": 1}
    assert (await admin_call(governed, "POST", "/budget/update", update)).status == 200
    statuses = [(await chat(governed, key)).status for _ in range(2)]
    assert statuses[-1] == 429
