"""`GET /model/info` on a live gateway's admin port: LiteLLM's shape, prices, limits, no secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmux.governance.keys import hash_key
from llmux.runtime import price_book
from llmux.serve import Gateway
from llmux.store.records import Key
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import MASTER_KEY, store_of
from tests.helpers.manage import actor_key, admin_call
from tests.helpers.ports import free_port

SECRET_KEY = "sk-upstream-very-secret"
SECRET_HEADER = "hdr-very-secret"
CONFIG = f"""
server:
  host: 127.0.0.1
  port: 0
  admin_port: {{admin_port}}
providers:
  - name: one
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    api_key: {SECRET_KEY}
    headers: {{{{x-org: {SECRET_HEADER}}}}}
    models:
      - name: house
        upstream_model: house-model-v1
        input_cost_per_million: 2.5
        output_cost_per_million: 10
        cached_input_cost_per_million: 1.25
        rpm: 60
        tpm: 10000
        max_concurrent: 3
        context_window: 32000
        max_output_tokens: 2048
        weight: 2
        order: 1
        tags: [fast]
      - name: gpt-4o-mini
        upstream_model: gpt-4o
  - name: two
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    api_key: sk-two
    models: [gpt-4o-mini]
routing:
  aliases: {{{{mini: gpt-4o-mini}}}}
auth:
  master_key: {MASTER_KEY}
"""


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    """A gateway with a priced custom model, a catalogued one and an alias."""
    async with running_gateway(CONFIG.format(admin_port=free_port())) as running:
        yield running


def item(reply: Any, deployment: str) -> dict[str, Any]:
    """The `data` item of one deployment."""
    found: dict[str, Any] = next(
        entry for entry in reply.json["data"] if entry["model_info"]["id"] == deployment
    )
    return found


async def test_lists_each_deployment_in_litellm_shape(gateway: Gateway) -> None:
    """A deployment with config prices and limits: every field, exactly."""
    reply = await admin_call(gateway, "GET", "/model/info")
    assert reply.status == 200
    assert item(reply, "one/house") == {
        "model_name": "house",
        "litellm_params": {
            "model": "one/house-model-v1",
            "custom_llm_provider": "openai-compatible",
            "api_base": "http://127.0.0.1:9/v1",
            "api_version": None,
            "rpm": 60,
            "tpm": 10000,
        },
        "model_info": {
            "id": "one/house",
            "provider": "one",
            "upstream_model": "house-model-v1",
            "mode": "chat",
            "price_source": "config",
            "input_cost_per_token": 2.5e-6,
            "output_cost_per_token": 1e-5,
            "cache_read_input_token_cost": 1.25e-6,
            "cache_creation_input_token_cost": None,
            "input_cost_per_million": 2.5,
            "output_cost_per_million": 10.0,
            "max_input_tokens": 32000,
            "max_output_tokens": 2048,
            "rpm": 60,
            "tpm": 10000,
            "max_parallel_requests": 3,
            "weight": 2.0,
            "order": 1,
            "tags": ["fast"],
        },
    }


async def test_catalogued_model_is_priced_from_the_price_table(gateway: Gateway) -> None:
    """Without config prices the shipped table prices the upstream model."""
    info = item(await admin_call(gateway, "GET", "/model/info"), "one/gpt-4o-mini")["model_info"]
    price = price_book().price("gpt-4o")
    assert price is not None
    assert info["price_source"] == "price_table"
    assert (info["input_cost_per_million"], info["output_cost_per_million"]) == (
        price.input,
        price.output,
    )
    assert info["input_cost_per_token"] == price.input / 1_000_000


async def test_credentials_are_never_included(gateway: Gateway) -> None:
    """Neither the upstream api_key nor a configured header value is in the answer."""
    reply = await admin_call(gateway, "GET", "/model/info")
    assert SECRET_KEY.encode() not in reply.body
    assert SECRET_HEADER.encode() not in reply.body
    assert b"api_key" not in reply.body and b"headers" not in reply.body


async def test_groups_list_deployments_and_aliases(gateway: Gateway) -> None:
    """`groups` names each group's deployments, aliases and strategy."""
    reply = await admin_call(gateway, "GET", "/model/info")
    assert reply.json["groups"] == [
        {
            "model_group": "house",
            "deployments": ["one/house"],
            "aliases": [],
            "strategy": "simple-shuffle",
        },
        {
            "model_group": "gpt-4o-mini",
            "deployments": ["one/gpt-4o-mini", "two/gpt-4o-mini"],
            "aliases": ["mini"],
            "strategy": "simple-shuffle",
        },
    ]


async def test_filter_by_deployment_id(gateway: Gateway) -> None:
    """`litellm_model_id` narrows `data` to that deployment."""
    reply = await admin_call(
        gateway, "GET", "/model/info", query={"litellm_model_id": "two/gpt-4o-mini"}
    )
    assert [entry["model_info"]["id"] for entry in reply.json["data"]] == ["two/gpt-4o-mini"]


async def test_filter_by_group(gateway: Gateway) -> None:
    """`model` narrows both `data` and `groups` to that group."""
    reply = await admin_call(gateway, "GET", "/model/info", query={"model": "house"})
    assert [entry["model_name"] for entry in reply.json["data"]] == ["house"]
    assert [group["model_group"] for group in reply.json["groups"]] == ["house"]


async def test_unknown_query_parameter_is_422(gateway: Gateway) -> None:
    """A misspelt filter is a 422 naming it, not a silently unfiltered list."""
    reply = await admin_call(gateway, "GET", "/model/info", query={"modle": "house"})
    assert (reply.status, reply.json["error"]["param"]) == (422, "modle")


async def test_internal_user_reads_model_info(gateway: Gateway) -> None:
    """Any admin caller may read the catalogue of models."""
    key = await actor_key(gateway, "tenant", role="internal_user_viewer")
    reply = await admin_call(gateway, "GET", "/model/info", key=key)
    assert (reply.status, len(reply.json["data"])) == (200, 3)


async def test_key_limited_to_models_sees_only_those(gateway: Gateway) -> None:
    """A key restricted to `house` sees only the `house` group."""
    key = await actor_key(gateway, "tenant")
    await store_of(gateway).update(Key, hash_key(key), {"models": ["house"]})
    reply = await admin_call(gateway, "GET", "/model/info", key=key)
    assert [entry["model_name"] for entry in reply.json["data"]] == ["house"]


async def test_llm_api_key_is_403(gateway: Gateway) -> None:
    """An `llm_api` key may not use the admin API."""
    key = await actor_key(gateway, "tenant", key_type="llm_api")
    reply = await admin_call(gateway, "GET", "/model/info", key=key)
    assert (reply.status, reply.json["error"]["code"]) == (403, "key_type_not_allowed")


async def test_no_credential_is_401(gateway: Gateway) -> None:
    """Without a credential: 401."""
    assert (await admin_call(gateway, "GET", "/model/info", key=None)).status == 401
