"""CORS on both ports of a live gateway: preflights, allowed origins, off by default."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from llmux.serve import Gateway
from tests.helpers.edge import RawReply, raw_request
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import MASTER_KEY, governed_config
from tests.helpers.upstream import FakeUpstream

APP = "https://app.example"
CONSOLE = "https://console.example"
CHAT = "/v1/chat/completions"


def cors_config(upstream: FakeUpstream, gateway_origins: str, admin_origins: str = "[]") -> str:
    """A governed config with these `server.cors_origins` / `server.admin_cors_origins`."""
    return governed_config(
        upstream.url,
        server_extra=f"cors_origins: {gateway_origins}\nadmin_cors_origins: {admin_origins}",
    )


@pytest.fixture
async def gateway(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """The gateway port allows `APP`; the admin port allows `CONSOLE`."""
    async with running_gateway(cors_config(upstream, f"[{APP}]", f"[{CONSOLE}]")) as running:
        yield running


async def preflight(port: int, path: str, origin: str) -> RawReply:
    """A browser's preflight for a POST with `Authorization` and `Content-Type`."""
    return await raw_request(
        "OPTIONS",
        f"http://127.0.0.1:{port}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


async def chat(
    gateway: Gateway, origin: str, *, key: str = MASTER_KEY, stream: bool = False
) -> RawReply:
    """A chat completion sent from `origin`."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    return await raw_request(
        "POST",
        f"http://127.0.0.1:{gateway.port}{CHAT}",
        data=json.dumps({**body, "stream": stream}).encode(),
        headers={
            "Origin": origin,
            "Content-Type": "application/json",
            "Authorization": f"Bearer {key}",
        },
    )


async def test_preflight_is_answered_without_credentials(gateway: Gateway) -> None:
    """An allowed origin's preflight gets 204 with the origin, methods and asked headers."""
    reply = await preflight(gateway.port, CHAT, APP)
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == APP
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert reply.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert reply.headers["Access-Control-Max-Age"] == "600"


async def test_preflight_from_other_origin_is_not_approved(gateway: Gateway) -> None:
    """A preflight from an origin not listed gets no CORS approval."""
    reply = await preflight(gateway.port, CHAT, "https://evil.example")
    assert reply.status != 204
    assert "Access-Control-Allow-Origin" not in reply.headers


async def test_allowed_origin_may_read_the_answer(gateway: Gateway) -> None:
    """A real request from an allowed origin carries its origin back, keyed by `Vary`."""
    reply = await chat(gateway, APP)
    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == APP
    assert reply.headers["Access-Control-Expose-Headers"] == "*"
    assert "Origin" in reply.headers["Vary"]


async def test_stream_carries_cors_headers(gateway: Gateway) -> None:
    """An SSE answer (headers sent before the body) still names the origin."""
    reply = await chat(gateway, APP, stream=True)
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    assert reply.headers["Access-Control-Allow-Origin"] == APP


async def test_error_answer_carries_cors_headers(gateway: Gateway) -> None:
    """A 401 is readable by the allowed origin too, so the browser app can show it."""
    reply = await chat(gateway, APP, key="sk-wrong")
    assert (reply.status, reply.headers["Access-Control-Allow-Origin"]) == (401, APP)


async def test_other_origin_gets_no_cors_headers(gateway: Gateway) -> None:
    """A request from an origin not listed is served but not marked readable."""
    reply = await chat(gateway, "https://evil.example")
    assert reply.status == 200
    assert "Access-Control-Allow-Origin" not in reply.headers


async def test_admin_port_uses_its_own_origins(gateway: Gateway) -> None:
    """The admin port approves `admin_cors_origins`, not the gateway's list."""
    console = await preflight(gateway.admin_port, "/key/generate", CONSOLE)
    app = await preflight(gateway.admin_port, "/key/generate", APP)
    assert (console.status, console.headers["Access-Control-Allow-Origin"]) == (204, CONSOLE)
    assert "Access-Control-Allow-Origin" not in app.headers


async def test_gateway_port_does_not_use_admin_origins(gateway: Gateway) -> None:
    """The console origin is not approved on the gateway port."""
    reply = await preflight(gateway.port, CHAT, CONSOLE)
    assert "Access-Control-Allow-Origin" not in reply.headers


async def test_wildcard_allows_any_origin(upstream: FakeUpstream) -> None:
    """`*` answers `*` for any origin."""
    async with running_gateway(cors_config(upstream, "['*']")) as gateway:
        reply = await chat(gateway, "https://anything.example")
    assert reply.headers["Access-Control-Allow-Origin"] == "*"


async def test_cors_is_off_by_default(upstream: FakeUpstream) -> None:
    """Without origins configured, a preflight is an ordinary (unauthenticated) request and
    nothing is stamped."""
    async with running_gateway(governed_config(upstream.url)) as gateway:
        flight = await preflight(gateway.port, CHAT, APP)
        reply = await chat(gateway, APP)
    assert flight.status == 401
    assert "Access-Control-Allow-Origin" not in flight.headers
    assert "Access-Control-Allow-Origin" not in reply.headers
