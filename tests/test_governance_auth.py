"""Virtual keys at the network edge: who gets in, who gets 401 or 403, and the exact error bodies.

A real gateway with `auth.master_key` set and keys, teams and users created in its store; calls
go over HTTP with raw aiohttp or the official SDK. Refusals never reach the upstream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import openai
import pytest

from llmux.governance.keys import hash_key
from llmux.serve import Gateway
from llmux.store.records import Key, Team
from tests.helpers.edge import assert_openai_error, raw_request, rejected, sdk_client
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import (
    MASTER_KEY,
    add_key,
    add_team,
    chat,
    chat_body,
    governance_of,
    governed_config,
    store_of,
)
from tests.helpers.upstream import FakeUpstream


@pytest.fixture
async def governed(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """A gateway with virtual keys on, in front of the fake upstream."""
    async with running_gateway(governed_config(upstream.url)) as running:
        yield running


async def test_master_key_works(governed: Gateway) -> None:
    """The master key gets a normal completion through the official SDK."""
    async with sdk_client(governed, api_key=MASTER_KEY) as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
        )
    assert completion.choices[0].message.content


async def test_virtual_key_works(governed: Gateway) -> None:
    """A virtual key from the store gets a normal completion through the official SDK."""
    key = await add_key(governed)
    async with sdk_client(governed, api_key=key) as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
        )
    assert completion.choices[0].message.content


async def test_missing_key_is_401(governed: Gateway, upstream: FakeUpstream) -> None:
    """No credentials at all is a 401 telling the client how to send a key."""
    reply = await raw_request(
        "POST",
        f"http://127.0.0.1:{governed.port}/v1/chat/completions",
        data=chat_body(),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 401
    assert_openai_error(
        reply.json,
        type="authentication_error",
        code="invalid_api_key",
        param=None,
        mentions=("API key", "Authorization: Bearer", "x-api-key"),
    )
    assert upstream.received == []


async def test_unknown_key_is_401(governed: Gateway, upstream: FakeUpstream) -> None:
    """A well-formed key that is not in the store is a 401 `invalid_api_key`."""
    async with sdk_client(governed, api_key="sk-" + "x" * 43) as client:
        error = await rejected(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
            )
        )
    assert isinstance(error, openai.AuthenticationError)
    assert_openai_error(
        error.response.json(),
        type="authentication_error",
        code="invalid_api_key",
        param=None,
        mentions=("Incorrect API key",),
    )
    assert upstream.received == []


@pytest.mark.parametrize("header", ["api-key", "x-api-key"])
async def test_key_headers_are_accepted(governed: Gateway, header: str) -> None:
    """Azure's `api-key` and Anthropic's `x-api-key` headers carry a virtual key as well."""
    key = await add_key(governed)
    reply = await chat(governed, key, header=header)
    assert reply.status == 200, reply.body
    assert reply.json["object"] == "chat.completion"


async def test_blocked_key_is_401(governed: Gateway, upstream: FakeUpstream) -> None:
    """A blocked key is a 401 with code `key_blocked`."""
    key = await add_key(governed, blocked=True)
    reply = await chat(governed, key)
    assert reply.status == 401
    assert_openai_error(
        reply.json,
        type="authentication_error",
        code="key_blocked",
        param=None,
        mentions=("blocked",),
    )
    assert upstream.received == []


async def test_expired_key_is_401(governed: Gateway, upstream: FakeUpstream) -> None:
    """A key whose `expires` has passed is a 401 with code `key_expired` naming when."""
    expired_at = datetime.now(UTC) - timedelta(minutes=1)
    key = await add_key(governed, expires=expired_at)
    reply = await chat(governed, key)
    assert reply.status == 401
    assert_openai_error(
        reply.json,
        type="authentication_error",
        code="key_expired",
        param=None,
        mentions=("expired", expired_at.isoformat()),
    )
    assert upstream.received == []


@pytest.mark.parametrize("key_type", ["management", "read_only"])
async def test_admin_only_key_is_403(
    governed: Gateway, upstream: FakeUpstream, key_type: str
) -> None:
    """Management and read-only keys may not call /v1: 403 `key_type_not_allowed`."""
    key = await add_key(governed, key_type=key_type)
    reply = await chat(governed, key)
    assert reply.status == 403
    assert_openai_error(
        reply.json,
        type="permission_error",
        code="key_type_not_allowed",
        param=None,
        mentions=(key_type, "admin API"),
    )
    assert upstream.received == []


async def test_blocked_team_is_403(governed: Gateway, upstream: FakeUpstream) -> None:
    """A key whose team is blocked is a 403 `team_blocked`."""
    await add_team(governed, "team-blocked", blocked=True)
    key = await add_key(governed, team_id="team-blocked")
    reply = await chat(governed, key)
    assert reply.status == 403
    assert_openai_error(
        reply.json,
        type="permission_error",
        code="team_blocked",
        param=None,
        mentions=("team", "blocked"),
    )
    assert upstream.received == []


async def test_blocked_key_is_refused_at_once_after_invalidation(governed: Gateway) -> None:
    """Blocking a cached key in the store and invalidating it makes the very next call a 401."""
    key = await add_key(governed)
    assert (await chat(governed, key)).status == 200
    token = hash_key(key)
    await store_of(governed).update(Key, token, {"blocked": True})
    await governance_of(governed).invalidate_key(token)
    reply = await chat(governed, key)
    assert reply.status == 401
    assert reply.json["error"]["code"] == "key_blocked"


async def test_team_blocked_after_caching_is_refused_after_entity_invalidation(
    governed: Gateway,
) -> None:
    """Blocking the team of a cached key and invalidating entities makes the next call a 403."""
    await add_team(governed, "team-later-blocked")
    key = await add_key(governed, team_id="team-later-blocked")
    assert (await chat(governed, key)).status == 200
    await store_of(governed).update(Team, "team-later-blocked", {"blocked": True})
    await governance_of(governed).invalidate_entities()
    reply = await chat(governed, key)
    assert reply.status == 403
    assert reply.json["error"]["code"] == "team_blocked"
