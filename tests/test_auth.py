"""With `auth.master_key` set, /v1 needs that key (bearer or `x-api-key`); health stays open.

Refusals are 401 `authentication_error` / `invalid_api_key` in the OpenAI error shape and never
reach the upstream. Raw aiohttp sends the requests the SDK cannot (no key, `x-api-key` only).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llmux.serve import Gateway
from tests.helpers.edge import assert_openai_error, raw_request, rejected, sdk_client
from tests.helpers.gateway import running_gateway, upstream_config
from tests.helpers.upstream import FakeUpstream

MASTER_KEY = "sk-master"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": HELLO}).encode()


@pytest.fixture
async def locked_gateway(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """A gateway with `auth.master_key: sk-master`."""
    config = upstream_config(upstream.url, extra=f"auth:\n  master_key: {MASTER_KEY}\n")
    async with running_gateway(config) as running:
        yield running


def url(gateway: Gateway, path: str) -> str:
    """An absolute URL on the gateway port."""
    return f"http://127.0.0.1:{gateway.port}{path}"


async def test_no_credentials_is_401(locked_gateway: Gateway, upstream: FakeUpstream) -> None:
    """A chat without any key is a 401 telling the client how to send one."""
    reply = await raw_request(
        "POST",
        url(locked_gateway, "/v1/chat/completions"),
        data=CHAT,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 401
    assert_openai_error(
        reply.json,
        type="authentication_error",
        code="invalid_api_key",
        param=None,
        mentions=("API key", "Authorization: Bearer"),
    )
    assert upstream.received == []


async def test_wrong_key_is_401(locked_gateway: Gateway, upstream: FakeUpstream) -> None:
    """The SDK with a wrong key gets AuthenticationError with code `invalid_api_key`."""
    async with sdk_client(locked_gateway, api_key="sk-not-the-master") as client:
        exc = await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert isinstance(exc, openai.AuthenticationError)
    assert_openai_error(
        exc.response.json(),
        type="authentication_error",
        code="invalid_api_key",
        param=None,
        mentions=("Incorrect API key",),
    )
    assert upstream.received == []


async def test_bearer_master_key_is_accepted(
    locked_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """The SDK with the master key (sent as `Authorization: Bearer`) gets its completion."""
    async with sdk_client(locked_gateway, api_key=MASTER_KEY) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert completion.choices[0].message.content == "Hello! How can I assist you today?"
    assert len(upstream.received) == 1


async def test_x_api_key_header_is_accepted(
    locked_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """The master key in `x-api-key` (no Authorization header) is accepted too."""
    reply = await raw_request(
        "POST",
        url(locked_gateway, "/v1/chat/completions"),
        data=CHAT,
        headers={"Content-Type": "application/json", "x-api-key": MASTER_KEY},
    )
    assert reply.status == 200
    assert reply.json["choices"][0]["message"]["content"] == "Hello! How can I assist you today?"


async def test_gateway_key_is_not_forwarded_upstream(
    locked_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """The upstream sees the provider's key, never the client's master key."""
    async with sdk_client(locked_gateway, api_key=MASTER_KEY) as client:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    headers = {name.lower(): value for name, value in upstream.received[0].headers.items()}
    assert headers["authorization"] == "Bearer sk-upstream-secret"
    assert MASTER_KEY not in json.dumps(headers)


async def test_health_live_needs_no_key(locked_gateway: Gateway) -> None:
    """/health/live on the gateway port answers 200 without credentials."""
    reply = await raw_request("GET", url(locked_gateway, "/health/live"))
    assert reply.status == 200
    assert reply.json == {"status": "ok"}


async def test_models_list_needs_the_key(locked_gateway: Gateway) -> None:
    """GET /v1/models without a key is a 401 in the OpenAI error shape."""
    reply = await raw_request("GET", url(locked_gateway, "/v1/models"))
    assert reply.status == 401
    assert_openai_error(
        reply.json,
        type="authentication_error",
        code="invalid_api_key",
        param=None,
        mentions=("API key",),
    )


async def test_models_list_with_the_key(locked_gateway: Gateway) -> None:
    """GET /v1/models with the master key lists the configured model groups."""
    async with sdk_client(locked_gateway, api_key=MASTER_KEY) as client:
        page = await client.models.list()
    assert "gpt-4o-mini" in [model.id for model in page.data]
