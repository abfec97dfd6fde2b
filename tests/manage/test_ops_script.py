"""A LiteLLM-style ops script run end to end against llmux, with the store in Postgres.

The script speaks raw HTTP to the admin port (exactly the calls an existing LiteLLM ops script
makes, with only the base URL changed) and uses the official OpenAI SDK on the gateway port:
generate a key with a budget and limits, use it, watch its spend, update it, block and unblock
it, and rotate it. The Postgres schema is this test's own and dropped afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from llmux.serve import Gateway
from tests.helpers.edge import eventually_async, rejected, sdk_client
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import MASTER_KEY, governed_config
from tests.helpers.manage import store_section
from tests.helpers.upstream import FakeUpstream


@pytest.fixture
async def governed(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """A gateway with a master key whose keys and spend live in Postgres."""
    async with (
        store_section("postgres") as store_yaml,
        running_gateway(governed_config(upstream.url, extra=store_yaml)) as running,
    ):
        yield running


class OpsScript:
    """What an ops script holds: the admin base URL, the master key, one HTTP session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base_url = base_url
        self._headers = {"Authorization": f"Bearer {MASTER_KEY}"}

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body`; the JSON answer, which must be a 200."""
        url = self._base_url + path
        async with self._session.post(url, json=body, headers=self._headers) as response:
            answer: dict[str, Any] = await response.json()
            assert response.status == 200, answer
            return answer

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        """GET with query `params`; the JSON answer, which must be a 200."""
        url = self._base_url + path
        async with self._session.get(url, params=params, headers=self._headers) as response:
            answer: dict[str, Any] = await response.json()
            assert response.status == 200, answer
            return answer


@pytest.fixture
async def ops(governed: Gateway) -> AsyncIterator[OpsScript]:
    """An ops script pointed at the gateway's admin port."""
    async with aiohttp.ClientSession() as session:
        yield OpsScript(session, f"http://127.0.0.1:{governed.admin_port}")


async def ask(gateway: Gateway, api_key: str) -> str:
    """One chat completion through the OpenAI SDK; the answer's text."""
    async with sdk_client(gateway, api_key) as client:
        completion = await client.chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "Hello"}]
        )
    return completion.choices[0].message.content or ""


async def refused_status(gateway: Gateway, api_key: str) -> tuple[int, str | None]:
    """The HTTP status and error code with which the gateway refuses `api_key`."""
    async with sdk_client(gateway, api_key) as client:
        error = await rejected(
            client.chat.completions.create(
                model="smart", messages=[{"role": "user", "content": "Hello"}]
            )
        )
    return error.status_code, error.code


async def spend_of(ops: OpsScript, token: str) -> float:
    """The key's spend as `/key/info` reports it."""
    spend: float = (await ops.get("/key/info", key=token))["info"]["spend"]
    return spend


async def test_litellm_ops_script_end_to_end(governed: Gateway, ops: OpsScript) -> None:
    """Generate -> use -> watch spend -> update -> block -> unblock -> regenerate, all live."""
    created = await ops.post(
        "/key/generate",
        {
            "key_alias": "billing-bot",
            "max_budget": 10.0,
            "budget_duration": "30d",
            "rpm_limit": 100,
            "tpm_limit": 100000,
            "models": ["smart"],
            "metadata": {"team": "billing"},
        },
    )
    key, token = created["key"], created["token"]
    assert created["budget_reset_at"] is not None

    assert await ask(governed, key)

    async def spent() -> bool:
        return await spend_of(ops, token) > 0

    assert await eventually_async(spent, within=10.0), "spend never reached /key/info"

    updated = await ops.post("/key/update", {"key": token, "max_budget": 20.0, "rpm_limit": 50})
    assert (updated["max_budget"], updated["rpm_limit"]) == (20.0, 50)
    assert updated["key_alias"] == "billing-bot"

    await ops.post("/key/block", {"key": key})
    assert await refused_status(governed, key) == (401, "key_blocked")

    await ops.post("/key/unblock", {"key": key})
    assert await ask(governed, key)

    rotated = await ops.post("/key/regenerate", {"key": key})
    assert await ask(governed, rotated["key"])
    assert (await refused_status(governed, key))[0] == 401
    listed = await ops.get("/key/list", key_alias="billing-bot")
    assert listed["keys"] == [rotated["token"]]


async def test_sdk_error_type_for_a_blocked_key(governed: Gateway, ops: OpsScript) -> None:
    """The SDK raises `AuthenticationError` for a key blocked through the admin API."""
    created = await ops.post("/key/generate", {})
    await ops.post("/key/block", {"key": created["token"]})
    async with sdk_client(governed, created["key"]) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(
                model="smart", messages=[{"role": "user", "content": "Hello"}]
            )
