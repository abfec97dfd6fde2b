"""Audit log endpoints on the admin port: `/audit/logs` and `/audit/log?id=`.

Entries are written the way the management API writes them: a store mutation given an
`AuditEntry`, which the store fills with before/after in the same transaction. One test also
drives a real `/key/generate` and finds its entry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmux.serve import Gateway
from llmux.store.records import AuditEntry, Team
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import governed_config, store_of
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
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
"""When the first mutation happened; each later one is a minute after the one before."""


@dataclass(frozen=True)
class Logged:
    """A gateway whose store holds three audited team mutations, oldest first."""

    gateway: Gateway
    entries: list[AuditEntry]


def _entry(minute: int, actor: str, action: str, team_id: str) -> AuditEntry:
    at = START + timedelta(minutes=minute)
    return AuditEntry(at=at, actor=actor, action=action, object_type="team", object_id=team_id)


@pytest.fixture
async def logged(upstream: FakeUpstream) -> AsyncIterator[Logged]:
    """Create team-a and team-b, then rename team-a: three audit entries."""
    async with running_gateway(governed_config(upstream.url)) as gateway:
        store = store_of(gateway)
        entries = [
            _entry(0, "master", "created", "team-a"),
            _entry(1, "key-hash-1", "created", "team-b"),
            _entry(2, "master", "updated", "team-a"),
        ]
        await store.create(Team(team_id="team-a"), audit=entries[0])
        await store.create(Team(team_id="team-b"), audit=entries[1])
        await store.update(Team, "team-a", {"team_alias": "Alpha"}, audit=entries[2])
        yield Logged(gateway, entries)


async def _logs(logged: Logged, key: str | None = None, **query: str) -> Any:
    kwargs: dict[str, Any] = {"query": query} if key is None else {"query": query, "key": key}
    reply = await admin_call(logged.gateway, "GET", "/audit/logs", **kwargs)
    assert reply.status == 200, reply.body
    return reply.json


def _ids(page: dict[str, Any]) -> list[str]:
    return [entry["id"] for entry in page["audit_logs"]]


async def test_master_lists_every_entry_newest_first(logged: Logged) -> None:
    """The three entries come back newest first, with LiteLLM's page fields."""
    page = await _logs(logged)
    assert _ids(page) == [entry.id for entry in reversed(logged.entries)]
    assert (page["total"], page["page"], page["page_size"], page["total_pages"]) == (3, 1, 50, 1)


async def test_an_entry_holds_the_before_and_after_of_its_change(logged: Logged) -> None:
    """The update entry records the actor and the alias before (null) and after (Alpha)."""
    entry = (await _logs(logged, action="updated"))["audit_logs"][0]
    assert (entry["actor"], entry["object_type"], entry["object_id"]) == (
        "master",
        "team",
        "team-a",
    )
    assert (entry["before"]["team_alias"], entry["after"]["team_alias"]) == (None, "Alpha")


@pytest.mark.parametrize(
    ("query", "picked"),
    [
        pytest.param({"actor": "key-hash-1"}, [1], id="actor"),
        pytest.param({"action": "created"}, [1, 0], id="action"),
        pytest.param({"object_id": "team-a"}, [2, 0], id="object_id"),
        pytest.param({"object_type": "key"}, [], id="object_type"),
        pytest.param({"object_id": "team-a", "action": "created"}, [0], id="combined"),
    ],
)
async def test_filters_pick_matching_entries(
    logged: Logged, query: dict[str, str], picked: list[int]
) -> None:
    """Each filter (and a combination) returns exactly the matching entries, newest first."""
    page = await _logs(logged, **query)
    assert _ids(page) == [logged.entries[i].id for i in picked]


async def test_an_iso_range_selects_the_middle_entry(logged: Logged) -> None:
    """start <= at < end over ISO datetimes picks only the entry a minute after START."""
    start = (START + timedelta(seconds=30)).isoformat()
    end = (START + timedelta(seconds=90)).isoformat()
    page = await _logs(logged, start_date=start, end_date=end)
    assert _ids(page) == [logged.entries[1].id]


async def test_a_day_range_is_inclusive_of_the_end_day(logged: Logged) -> None:
    """end_date=the day of the entries includes all three; the day before includes none."""
    day = START.date()
    assert (await _logs(logged, end_date=str(day)))["total"] == 3
    assert (await _logs(logged, end_date=str(day - timedelta(days=1))))["total"] == 0


async def test_pages_of_one_count_the_pages(logged: Logged) -> None:
    """size=1, page=2 gives the middle entry and total_pages=3."""
    page = await _logs(logged, size="1", page="2")
    assert _ids(page) == [logged.entries[1].id]
    assert (page["total"], page["total_pages"]) == (3, 3)


async def test_a_bad_date_is_422_naming_the_field(logged: Logged) -> None:
    """end_date=tomorrow (not a date) is refused naming end_date."""
    reply = await admin_call(logged.gateway, "GET", "/audit/logs", query={"end_date": "tomorrow"})
    assert reply.status == 422
    assert reply.json["error"]["message"] == (
        "Invalid 'end_date': expected YYYY-MM-DD or an ISO 8601 datetime, got 'tomorrow'."
    )


async def test_an_end_before_the_start_is_422_naming_end_date(logged: Logged) -> None:
    """end_date before start_date is refused rather than answered with nothing."""
    query = {"start_date": "2026-03-02", "end_date": "2026-03-01"}
    reply = await admin_call(logged.gateway, "GET", "/audit/logs", query=query)
    assert (reply.status, reply.json["error"]["param"]) == (422, "end_date")


async def test_one_entry_by_id(logged: Logged) -> None:
    """/audit/log?id= returns that entry."""
    wanted = logged.entries[1]
    reply = await admin_call(logged.gateway, "GET", "/audit/log", query={"id": wanted.id})
    assert reply.status == 200
    assert (reply.json["id"], reply.json["object_id"]) == (wanted.id, "team-b")


async def test_an_unknown_id_is_404(logged: Logged) -> None:
    """An id that matches nothing is a 404 saying so."""
    reply = await admin_call(logged.gateway, "GET", "/audit/log", query={"id": "nope"})
    assert reply.status == 404
    assert reply.json["error"]["message"] == "No audit entry 'nope'."
    assert reply.json["error"]["code"] == "audit_entry_not_found"


async def test_a_missing_id_is_422_naming_it(logged: Logged) -> None:
    """/audit/log without `id` is refused naming id."""
    reply = await admin_call(logged.gateway, "GET", "/audit/log")
    assert (reply.status, reply.json["error"]["param"]) == (422, "id")


async def test_a_proxy_admin_viewer_reads_the_log(logged: Logged) -> None:
    """proxy_admin_viewer may read every entry."""
    key = await actor_key(logged.gateway, "viewer", role="proxy_admin_viewer")
    assert (await _logs(logged, key))["total"] == 3


@pytest.mark.parametrize(
    ("path", "query"),
    [("/audit/logs", {}), ("/audit/log", {"id": "whatever"})],
)
@pytest.mark.parametrize(
    "actor",
    [
        pytest.param({"teams": {"team-a": "admin"}}, id="team-admin"),
        pytest.param({"orgs": {"org-a": "org_admin"}}, id="org-admin"),
        pytest.param({}, id="internal-user"),
        pytest.param({"role": "internal_user_viewer"}, id="internal-user-viewer"),
    ],
)
async def test_non_admins_are_refused_naming_the_role(
    logged: Logged, path: str, query: dict[str, str], actor: dict[str, Any]
) -> None:
    """The log spans every tenant: anyone below the admin roles gets a 403 naming them."""
    key = await actor_key(logged.gateway, "someone", **actor)
    reply = await admin_call(logged.gateway, "GET", path, key=key, query=query)
    assert (reply.status, reply.json) == (403, ADMIN_ONLY)


async def test_a_generated_key_leaves_an_entry(logged: Logged) -> None:
    """POST /key/generate with the master key writes an entry for that key, by `master`."""
    reply = await admin_call(logged.gateway, "POST", "/key/generate", {"key_alias": "audited"})
    assert reply.status == 200, reply.body
    token = reply.json["token"]
    page = await _logs(logged, object_type="key", object_id=token)
    [entry] = page["audit_logs"]
    assert (entry["actor"], entry["after"]["key_alias"]) == ("master", "audited")
