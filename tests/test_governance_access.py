"""Access at the network edge: key, team and wildcard `models` lists, aliases and end users.

A refused model is a 403 `model_not_allowed` naming the model and the level whose list refused
it, with `param: model`; the upstream never sees the call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llmux.serve import Gateway
from llmux.store.records import EndUser
from tests.helpers.edge import assert_openai_error
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import add_key, add_team, chat, governed_config, store_of
from tests.helpers.upstream import FakeUpstream


@pytest.fixture
async def governed(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """A gateway with virtual keys on, serving `gpt-4o-mini` and `smart` (gpt-4o)."""
    async with running_gateway(governed_config(upstream.url)) as running:
        yield running


async def test_model_outside_key_list_is_403(governed: Gateway, upstream: FakeUpstream) -> None:
    """A key limited to gpt-4o-mini asking for `smart` gets a 403 naming `smart` and the key."""
    key = await add_key(governed, models=["gpt-4o-mini"])
    reply = await chat(governed, key, "smart")
    assert reply.status == 403
    assert_openai_error(
        reply.json,
        type="permission_error",
        code="model_not_allowed",
        param="model",
        mentions=("'smart'", "key"),
    )
    assert upstream.received == []


async def test_model_inside_key_list_is_served(governed: Gateway) -> None:
    """A key limited to gpt-4o-mini may call gpt-4o-mini."""
    key = await add_key(governed, models=["gpt-4o-mini"])
    assert (await chat(governed, key, "gpt-4o-mini")).status == 200


async def test_star_allows_every_model(governed: Gateway) -> None:
    """A `*` entry lets a key call any model group."""
    key = await add_key(governed, models=["*"])
    assert (await chat(governed, key, "smart")).status == 200
    assert (await chat(governed, key, "gpt-4o-mini")).status == 200


async def test_wildcard_pattern_matches_only_its_models(governed: Gateway) -> None:
    """`gpt-4o*` lets gpt-4o-mini through and refuses `smart`."""
    key = await add_key(governed, models=["gpt-4o*"])
    assert (await chat(governed, key, "gpt-4o-mini")).status == 200
    assert (await chat(governed, key, "smart")).status == 403


async def test_team_list_refuses_for_a_key_without_one(
    governed: Gateway, upstream: FakeUpstream
) -> None:
    """A key with no list of its own is held to its team's list; the 403 names the team."""
    await add_team(governed, "team-smart-only", models=["smart"])
    key = await add_key(governed, team_id="team-smart-only")
    assert (await chat(governed, key, "smart")).status == 200
    reply = await chat(governed, key, "gpt-4o-mini")
    assert reply.status == 403
    assert_openai_error(
        reply.json,
        type="permission_error",
        code="model_not_allowed",
        param="model",
        mentions=("'gpt-4o-mini'", "team"),
    )
    assert len(upstream.received) == 1


async def test_key_alias_maps_to_an_allowed_group(
    governed: Gateway, upstream: FakeUpstream
) -> None:
    """A key alias `fast -> gpt-4o-mini` is served by gpt-4o-mini although `fast` is unlisted."""
    key = await add_key(governed, models=["gpt-4o-mini"], aliases={"fast": "gpt-4o-mini"})
    reply = await chat(governed, key, "fast")
    assert reply.status == 200, reply.body
    assert upstream.received[0].json["model"] == "gpt-4o-mini"


async def test_key_alias_to_a_refused_group_is_403(governed: Gateway) -> None:
    """An alias cannot widen access: `fast -> smart` on a gpt-4o-mini key is refused as smart."""
    key = await add_key(governed, models=["gpt-4o-mini"], aliases={"fast": "smart"})
    reply = await chat(governed, key, "fast")
    assert reply.status == 403
    assert "'smart'" in reply.json["error"]["message"]


async def test_blocked_end_user_is_403(governed: Gateway, upstream: FakeUpstream) -> None:
    """A request whose `user` is a blocked end user is a 403 `end_user_blocked` on `user`."""
    await store_of(governed).create(EndUser(user_id="customer-blocked", blocked=True))
    key = await add_key(governed)
    reply = await chat(governed, key, user="customer-blocked")
    assert reply.status == 403
    assert_openai_error(
        reply.json,
        type="permission_error",
        code="end_user_blocked",
        param="user",
        mentions=("end user", "blocked"),
    )
    assert upstream.received == []


async def test_end_user_rpm_limit_counts_across_keys(governed: Gateway) -> None:
    """An end user's `rpm_limit: 1` refuses their second call even through another key."""
    await store_of(governed).create(EndUser(user_id="customer-limited", rpm_limit=1))
    first, second = await add_key(governed), await add_key(governed)
    assert (await chat(governed, first, user="customer-limited")).status == 200
    reply = await chat(governed, second, user="customer-limited")
    assert reply.status == 429
    assert_openai_error(
        reply.json,
        type="rate_limit_error",
        code="rate_limit_exceeded",
        param=None,
        mentions=("end user", "1 requests per minute"),
    )
    assert (await chat(governed, second, user="someone-else")).status == 200
