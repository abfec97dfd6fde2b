"""The control endpoints (`/control/deployments`, `/control/deployments/cooldown`) on a live
gateway's admin port, with the master key and with every role."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog

from llmux.serve import Gateway
from llmux.store.records import KeyType, UserRole
from tests.helpers.edge import RawReply, raw_request
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import MASTER_KEY
from tests.helpers.manage import actor_key, admin_call
from tests.helpers.ports import free_port
from tests.helpers.upstream import FakeUpstream, started_fakes

ONE = "one/gpt-4o-mini"
TWO = "two/gpt-4o-mini"
COOLDOWN = "/control/deployments/cooldown"


def config(one: str, two: str, *, auth: bool = True, extra: str = "") -> str:
    """`one` and `two` serve `gpt-4o-mini` (round-robin); `one` also serves `big`; `extra`
    sections follow."""
    master = f"auth:\n  master_key: {MASTER_KEY}\n" if auth else ""
    return f"""
server:
  host: 127.0.0.1
  port: 0
  admin_port: {free_port()}
providers:
  - name: one
    type: openai-compatible
    base_url: {one}
    api_key: sk-one
    models:
      - {{name: gpt-4o-mini, rpm: 100, tpm: 5000, max_concurrent: 4}}
      - {{name: big, upstream_model: gpt-4o}}
  - name: two
    type: openai-compatible
    base_url: {two}
    api_key: sk-two
    models: [gpt-4o-mini]
routing:
  strategy: round-robin
{master}{extra}"""


@pytest.fixture
async def pair() -> AsyncIterator[tuple[FakeUpstream, FakeUpstream]]:
    """The upstreams `one` and `two`."""
    async with started_fakes(2) as (one, two):
        yield one, two


@pytest.fixture
async def gateway(pair: tuple[FakeUpstream, FakeUpstream]) -> AsyncIterator[Gateway]:
    """A gateway with the master key set."""
    async with running_gateway(config(pair[0].url, pair[1].url)) as running:
        yield running


async def deployments(gateway: Gateway) -> dict[str, dict[str, Any]]:
    """`GET /control/deployments` with the master key, keyed by deployment id."""
    reply = await admin_call(gateway, "GET", "/control/deployments")
    assert reply.status == 200
    return {item["id"]: item for item in reply.json["data"]}


async def chat(gateway: Gateway, stream: bool = False) -> RawReply:
    """One chat completion for `gpt-4o-mini` with the master key."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    return await raw_request(
        "POST",
        f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
        data=json.dumps({**body, "stream": stream}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"},
    )


def forbidden(right: str) -> dict[str, Any]:
    """The 403 body naming the missing `right`."""
    return {
        "error": {
            "message": f"Not allowed: this needs {right}.",
            "type": "permission_error",
            "param": None,
            "code": "forbidden",
        }
    }


async def test_lists_every_deployment_with_its_routing_state(gateway: Gateway) -> None:
    """Each deployment: group, provider, upstream model, state and its configured limits."""
    listed = await deployments(gateway)
    assert list(listed) == [ONE, TWO, "one/big"]
    assert listed[ONE] == {
        "id": ONE,
        "group": "gpt-4o-mini",
        "provider": "one",
        "upstream_model": "gpt-4o-mini",
        "state": "healthy",
        "cooling_until": None,
        "in_flight": 0,
        "latency_ewma_ms": None,
        "ttft_ewma_ms": None,
        "rpm_used": 0,
        "tpm_used": 0,
        "rpm_limit": 100,
        "tpm_limit": 5000,
        "max_concurrent": 4,
        "context_window": 128_000,
    }


async def test_list_answers_an_openai_style_list(gateway: Gateway) -> None:
    """The listing is `{"object": "list", "data": [...]}`."""
    reply = await admin_call(gateway, "GET", "/control/deployments")
    assert reply.json["object"] == "list"


async def test_served_requests_show_in_latency_ttft_and_usage(gateway: Gateway) -> None:
    """After a call and a stream on `one` its averages and window usage are filled in."""
    await chat(gateway)  # round-robin: one
    await chat(gateway)  # two
    await chat(gateway, stream=True)  # one
    one = (await deployments(gateway))[ONE]
    assert one["latency_ewma_ms"] is not None and one["latency_ewma_ms"] >= 0
    assert one["ttft_ewma_ms"] is not None and one["ttft_ewma_ms"] >= 0
    assert one["rpm_used"] == 2
    assert one["tpm_used"] > 0
    assert one["in_flight"] == 0


async def test_manual_cooldown_moves_traffic_away(
    gateway: Gateway, pair: tuple[FakeUpstream, FakeUpstream]
) -> None:
    """A cooled deployment shows `cooling` and gets no traffic."""
    cooled = await admin_call(gateway, "POST", COOLDOWN, {"deployment": ONE, "seconds": 60})
    assert (cooled.status, cooled.json["state"]) == (200, "cooling")
    assert cooled.json["cooling_until"] is not None
    replies = [await chat(gateway) for _ in range(3)]
    assert [r.headers["x-llmux-deployment"] for r in replies] == [TWO] * 3
    assert pair[0].received == []


async def test_clearing_a_cooldown_restores_traffic(gateway: Gateway) -> None:
    """`clear: true` makes a cooled deployment healthy and routable at once."""
    await admin_call(gateway, "POST", COOLDOWN, {"deployment": ONE, "seconds": 60})
    cleared = await admin_call(gateway, "POST", COOLDOWN, {"deployment": ONE, "clear": True})
    assert (cleared.status, cleared.json["state"], cleared.json["cooling_until"]) == (
        200,
        "healthy",
        None,
    )
    served = {(await chat(gateway)).headers["x-llmux-deployment"] for _ in range(2)}
    assert served == {ONE, TWO}


async def test_access_line_names_cooldown_exclusions(
    pair: tuple[FakeUpstream, FakeUpstream],
) -> None:
    """A manually cooled deployment is listed in the access line as excluded for `cooldown`."""
    # The console format sends every line through structlog, where the test can capture it.
    text = config(pair[0].url, pair[1].url, extra="logging:\n  format: console\n")
    with structlog.testing.capture_logs() as events:
        async with running_gateway(text) as gateway:
            await admin_call(gateway, "POST", COOLDOWN, {"deployment": ONE, "seconds": 60})
            await chat(gateway)
    route = next(event for event in events if event["event"] == "request")
    assert route["excluded"] == {ONE: "cooldown"}
    assert route["candidates"] == [TWO]


async def test_unknown_deployment_is_404(gateway: Gateway) -> None:
    """A deployment id the runtime does not have: 404 naming it, in the OpenAI error shape."""
    reply = await admin_call(gateway, "POST", COOLDOWN, {"deployment": "no/such", "seconds": 5})
    assert reply.status == 404
    assert reply.json == {
        "error": {
            "message": "No deployment `no/such`; GET /control/deployments lists them.",
            "type": "invalid_request_error",
            "param": "deployment",
            "code": "deployment_not_found",
        }
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param({"deployment": ONE}, "seconds", id="neither-seconds-nor-clear"),
        pytest.param({"deployment": ONE, "seconds": 0}, "seconds", id="zero"),
        pytest.param({"deployment": ONE, "seconds": -3}, "seconds", id="negative"),
        pytest.param({"deployment": ONE, "seconds": 10**9}, "seconds", id="over-a-day"),
        pytest.param({"deployment": ONE, "clear": False}, "clear", id="clear-false"),
        pytest.param({"deployment": ONE, "clear": True, "seconds": 5}, "clear", id="both"),
        pytest.param({"deployment": "", "seconds": 5}, "deployment", id="empty-id"),
    ],
)
async def test_meaningless_cooldown_is_400(gateway: Gateway, body: object, param: str) -> None:
    """A well-typed body without positive seconds or `clear: true` is a 400 naming the field."""
    reply = await admin_call(gateway, "POST", COOLDOWN, body)
    assert reply.status == 400
    assert (reply.json["error"]["type"], reply.json["error"]["param"]) == (
        "invalid_request_error",
        param,
    )
    assert (await deployments(gateway))[ONE]["state"] == "healthy"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param([ONE], None, id="array"),
        pytest.param({"seconds": 5}, "deployment", id="missing-deployment"),
        pytest.param({"deployment": 7, "seconds": 5}, "deployment", id="numeric-id"),
        pytest.param({"deployment": ONE, "seconds": True}, "seconds", id="bool-seconds"),
        pytest.param({"deployment": ONE, "seconds": "5"}, "seconds", id="text-seconds"),
        pytest.param({"deployment": ONE, "seconds": 5, "extra": 1}, "extra", id="unknown"),
    ],
)
async def test_mistyped_cooldown_is_422(gateway: Gateway, body: object, param: str | None) -> None:
    """A body whose fields fail their types is a 422 naming the field."""
    reply = await admin_call(gateway, "POST", COOLDOWN, body)
    assert reply.status == 422
    assert reply.json["error"]["param"] == param
    assert (await deployments(gateway))[ONE]["state"] == "healthy"


async def test_body_that_is_not_json_is_400(gateway: Gateway) -> None:
    """Bytes that are not JSON: 400 saying so."""
    reply = await raw_request(
        "POST",
        f"http://127.0.0.1:{gateway.admin_port}{COOLDOWN}",
        data=b"not json",
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
    )
    assert reply.status == 400
    assert reply.json["error"]["message"].startswith("The request body is not valid JSON")


@pytest.mark.parametrize("path", ["/control/deployments", COOLDOWN])
async def test_no_credential_is_401(gateway: Gateway, path: str) -> None:
    """With a master key set, both routes answer 401 without a credential."""
    method = "GET" if path == "/control/deployments" else "POST"
    reply = await admin_call(gateway, method, path, {"deployment": ONE, "seconds": 5}, key=None)
    assert reply.status == 401
    assert reply.json["error"]["type"] == "authentication_error"


async def test_wrong_key_is_401(gateway: Gateway) -> None:
    """A key the store does not know is a 401, and nothing cools."""
    reply = await admin_call(
        gateway, "POST", COOLDOWN, {"deployment": ONE, "seconds": 5}, key="sk-wrong"
    )
    assert reply.status == 401
    assert (await deployments(gateway))[ONE]["state"] == "healthy"


async def test_without_master_key_the_admin_port_is_trusted(
    pair: tuple[FakeUpstream, FakeUpstream],
) -> None:
    """No master key configured: the control routes need no credential."""
    async with running_gateway(config(pair[0].url, pair[1].url, auth=False)) as gateway:
        listed = await admin_call(gateway, "GET", "/control/deployments", key=None)
        cooled = await admin_call(
            gateway, "POST", COOLDOWN, {"deployment": ONE, "seconds": 5}, key=None
        )
    assert (listed.status, cooled.status) == (200, 200)


async def test_proxy_admin_user_key_may_cool(gateway: Gateway) -> None:
    """A key of a `proxy_admin` user acts like the master key."""
    key = await actor_key(gateway, "root", role="proxy_admin")
    reply = await admin_call(gateway, "POST", COOLDOWN, {"deployment": ONE, "seconds": 5}, key=key)
    assert (reply.status, reply.json["state"]) == (200, "cooling")


async def test_viewer_may_list(gateway: Gateway) -> None:
    """A `proxy_admin_viewer` reads the deployments."""
    key = await actor_key(gateway, "viewer", role="proxy_admin_viewer")
    reply = await admin_call(gateway, "GET", "/control/deployments", key=key)
    assert reply.status == 200
    assert [item["id"] for item in reply.json["data"]] == [ONE, TWO, "one/big"]


async def test_viewer_may_not_cool(gateway: Gateway) -> None:
    """A `proxy_admin_viewer` may only read: 403 with the read-only message."""
    key = await actor_key(gateway, "viewer", role="proxy_admin_viewer")
    reply = await admin_call(gateway, "POST", COOLDOWN, {"deployment": ONE, "seconds": 5}, key=key)
    assert reply.status == 403
    assert reply.json["error"] == {
        "message": "A proxy_admin_viewer may only read: POST /control/deployments/cooldown"
        " changes state.",
        "type": "permission_error",
        "param": None,
        "code": "read_only",
    }


@pytest.mark.parametrize(
    ("role", "teams", "orgs"),
    [
        pytest.param("internal_user", {}, {}, id="internal_user"),
        pytest.param("internal_user_viewer", {}, {}, id="internal_user_viewer"),
        pytest.param("internal_user", {"team-a": "admin"}, {}, id="team-admin"),
        pytest.param("internal_user", {}, {"org-a": "org_admin"}, id="org-admin"),
    ],
)
async def test_tenant_roles_may_not_list(
    gateway: Gateway, role: UserRole, teams: dict[str, Any], orgs: dict[str, Any]
) -> None:
    """Tenant-scoped roles do not see the proxy's deployments: 403 naming the role needed."""
    key = await actor_key(gateway, "tenant", role=role, teams=teams, orgs=orgs)
    reply = await admin_call(gateway, "GET", "/control/deployments", key=key)
    assert reply.status == 403
    assert reply.json == forbidden("the proxy_admin or proxy_admin_viewer role")


async def test_internal_user_may_not_cool(gateway: Gateway) -> None:
    """An `internal_user` may write in general, but not to the routing: 403."""
    key = await actor_key(gateway, "tenant")
    reply = await admin_call(gateway, "POST", COOLDOWN, {"deployment": ONE, "seconds": 5}, key=key)
    assert reply.status == 403
    assert reply.json == forbidden("the proxy_admin role")
    assert (await deployments(gateway))[ONE]["state"] == "healthy"


@pytest.mark.parametrize(
    ("key_type", "status", "code"),
    [
        pytest.param("read_only", 403, "read_only", id="read_only"),
        pytest.param("llm_api", 403, "key_type_not_allowed", id="llm_api"),
    ],
)
async def test_restricted_admin_keys_may_not_cool(
    gateway: Gateway, key_type: KeyType, status: int, code: str
) -> None:
    """A proxy_admin's `read_only` key may not write; an `llm_api` key may not use the admin
    API at all."""
    key = await actor_key(gateway, "root", role="proxy_admin", key_type=key_type)
    reply = await admin_call(gateway, "POST", COOLDOWN, {"deployment": ONE, "seconds": 5}, key=key)
    assert (reply.status, reply.json["error"]["code"]) == (status, code)


async def test_read_only_admin_key_may_list(gateway: Gateway) -> None:
    """A proxy_admin's `read_only` key still reads the deployments."""
    key = await actor_key(gateway, "root", role="proxy_admin", key_type="read_only")
    reply = await admin_call(gateway, "GET", "/control/deployments", key=key)
    assert reply.status == 200
