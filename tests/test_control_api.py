"""The admin control API against a running gateway's admin port (aiohttp client)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog

from llmux.serve import Gateway
from tests.helpers.edge import RawReply, raw_request
from tests.helpers.gateway import free_port, running_gateway
from tests.helpers.upstream import FakeUpstream, started_fakes

ONE = "one/gpt-4o-mini"
TWO = "two/gpt-4o-mini"
MASTER = "sk-master-control"


def config(one: str, two: str, *, auth: str = "") -> str:
    """`one` and `two` serve `gpt-4o-mini` (round-robin); `one` also serves `big`."""
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
{auth}
"""


@pytest.fixture
async def pair() -> AsyncIterator[tuple[FakeUpstream, FakeUpstream]]:
    """The upstreams `one` and `two`."""
    async with started_fakes(2) as (one, two):
        yield one, two


@pytest.fixture
async def gateway(pair: tuple[FakeUpstream, FakeUpstream]) -> AsyncIterator[Gateway]:
    """A gateway without a master key."""
    async with running_gateway(config(pair[0].url, pair[1].url)) as running:
        yield running


async def control(
    gateway: Gateway, method: str, path: str, body: object = None, key: str | None = None
) -> RawReply:
    """One call to the admin port; `body` is sent as JSON (bytes as they are)."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    url = f"http://127.0.0.1:{gateway.admin_port}{path}"
    return await raw_request(method, url, data=data, headers=headers)


async def deployments(gateway: Gateway) -> dict[str, dict[str, Any]]:
    """`GET /control/deployments`, keyed by deployment id."""
    reply = await control(gateway, "GET", "/control/deployments")
    assert reply.status == 200
    return {item["id"]: item for item in reply.json["data"]}


async def chat(gateway: Gateway, stream: bool = False) -> RawReply:
    """One chat completion for `gpt-4o-mini`."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    return await raw_request(
        "POST",
        f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
        data=json.dumps({**body, "stream": stream}).encode(),
        headers={"Content-Type": "application/json"},
    )


async def test_lists_every_deployment_with_its_routing_state(gateway: Gateway) -> None:
    """Each deployment: group, provider, upstream model, state and its configured limits."""
    listed = await deployments(gateway)
    assert list(listed) == [ONE, TWO, "one/big"]
    one = listed[ONE]
    assert (one["group"], one["provider"], one["upstream_model"]) == (
        "gpt-4o-mini",
        "one",
        "gpt-4o-mini",
    )
    assert (one["state"], one["cooling_until"], one["in_flight"]) == ("healthy", None, 0)
    assert (one["latency_ewma_ms"], one["ttft_ewma_ms"]) == (None, None)
    assert (one["rpm_used"], one["tpm_used"]) == (0, 0)
    assert (one["rpm_limit"], one["tpm_limit"], one["max_concurrent"]) == (100, 5000, 4)
    assert listed["one/big"]["context_window"] == 128_000


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


async def test_manual_cooldown_moves_traffic_and_clear_restores_it(
    gateway: Gateway, pair: tuple[FakeUpstream, FakeUpstream]
) -> None:
    """A cooled deployment gets no traffic and shows `cooling`; clearing makes it healthy."""
    one, _ = pair
    cooled = await control(
        gateway, "POST", "/control/deployments/cooldown", {"deployment": ONE, "seconds": 60}
    )
    assert cooled.status == 200
    assert cooled.json["state"] == "cooling"
    assert cooled.json["cooling_until"] is not None
    replies = [await chat(gateway) for _ in range(3)]
    assert [r.headers["x-llmux-deployment"] for r in replies] == [TWO] * 3
    assert one.received == []
    cleared = await control(
        gateway, "POST", "/control/deployments/cooldown", {"deployment": ONE, "clear": True}
    )
    assert (cleared.status, cleared.json["state"], cleared.json["cooling_until"]) == (
        200,
        "healthy",
        None,
    )
    served = {(await chat(gateway)).headers["x-llmux-deployment"] for _ in range(2)}
    assert served == {ONE, TWO}


async def test_route_line_names_cooldown_exclusions(gateway: Gateway) -> None:
    """A manually cooled deployment is listed in the `route` line as excluded for `cooldown`."""
    await control(
        gateway, "POST", "/control/deployments/cooldown", {"deployment": ONE, "seconds": 60}
    )
    with structlog.testing.capture_logs() as events:
        await chat(gateway)
    route = next(event for event in events if event["event"] == "route")
    assert route["excluded"] == {ONE: "cooldown"}
    assert route["candidates"] == [TWO]
    assert route["deployment"] == TWO


async def test_unknown_deployment_is_404(gateway: Gateway) -> None:
    """A deployment id the runtime does not have: 404 in the OpenAI error shape."""
    reply = await control(
        gateway, "POST", "/control/deployments/cooldown", {"deployment": "no/such", "seconds": 5}
    )
    assert reply.status == 404
    assert reply.json["error"]["code"] == "deployment_not_found"
    assert reply.json["error"]["param"] == "deployment"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        [ONE],
        {"seconds": 5},
        {"deployment": 7, "seconds": 5},
        {"deployment": ONE},
        {"deployment": ONE, "seconds": 0},
        {"deployment": ONE, "seconds": -3},
        {"deployment": ONE, "seconds": True},
        {"deployment": ONE, "seconds": "5"},
        {"deployment": ONE, "seconds": 10**9},
        {"deployment": ONE, "clear": False},
        {"deployment": ONE, "clear": True, "seconds": 5},
        {"deployment": ONE, "seconds": 5, "extra": 1},
    ],
)
async def test_bad_body_is_400(gateway: Gateway, body: object) -> None:
    """Anything but a deployment with positive seconds, or with `clear: true`, is a 400."""
    reply = await control(gateway, "POST", "/control/deployments/cooldown", body)
    assert reply.status == 400
    assert reply.json["error"]["type"] == "invalid_request_error"
    assert (await deployments(gateway))[ONE]["state"] == "healthy"


async def test_master_key_is_required_when_set(pair: tuple[FakeUpstream, FakeUpstream]) -> None:
    """With `auth.master_key` both routes answer 401 without it (or with another key)."""
    auth = f"auth:\n  master_key: {MASTER}"
    async with running_gateway(config(pair[0].url, pair[1].url, auth=auth)) as gateway:
        missing = await control(gateway, "GET", "/control/deployments")
        wrong = await control(
            gateway,
            "POST",
            "/control/deployments/cooldown",
            {"deployment": ONE, "seconds": 5},
            key="sk-wrong",
        )
        listed = await control(gateway, "GET", "/control/deployments", key=MASTER)
        health = await control(gateway, "GET", "/health/live")
    assert (missing.status, wrong.status) == (401, 401)
    assert missing.json["error"]["type"] == "authentication_error"
    assert listed.status == 200
    assert health.status == 200
