"""Helpers for governance tests at the network edge: keys and teams in a gateway's store, calls.

Until the admin API exists, tests create keys, teams and users straight in the running gateway's
store (`Gateway.store`) and reach its governance (`Gateway.governance`) for invalidations and
budget resets. Calls go over real HTTP with raw aiohttp, so every status, header and error body
is checked exactly as a client sees it.
"""

from __future__ import annotations

import json
from typing import Any

from llmux.governance.keys import generate_key, hash_key
from llmux.governance.service import Governance
from llmux.serve import Gateway
from llmux.store import SpendFilter, Store
from llmux.store.records import Key, SpendRow, Team
from tests.helpers.edge import RawReply, eventually_async, raw_request
from tests.helpers.gateway import upstream_config

__all__ = [
    "MASTER_KEY",
    "add_key",
    "add_team",
    "chat",
    "chat_body",
    "distributed_config",
    "governance_of",
    "governed_config",
    "spend_row",
    "store_of",
]

MASTER_KEY = "sk-master-governance"


def governed_config(
    upstream_url: str, *, extra: str = "", routing: str = "", **options: Any
) -> str:
    """`upstream_config` with virtual keys on (`auth.master_key`) and `extra` sections after.

    `routing` holds more `routing:` keys (one per line, unindented).
    """
    # `upstream_config` ends inside its `routing:` section, so indented lines continue it.
    routing_lines = "".join(f"  {line}\n" for line in routing.splitlines() if line.strip())
    auth = f"auth:\n  master_key: {MASTER_KEY}\n"
    return upstream_config(upstream_url, extra=routing_lines + auth + extra, **options)


def distributed_config(upstream_url: str, *, redis_prefix: str, pg_schema: str) -> str:
    """A governed config in distributed mode: limits and budgets in Redis under `redis_prefix`,
    keys and spend in Postgres schema `pg_schema` (both on loopback, shared by replicas)."""
    extra = (
        "deployment:\n  mode: distributed\n"
        f'redis:\n  url: redis://127.0.0.1:6379/0\n  key_prefix: "{redis_prefix}"\n'
        f"store:\n  url: postgresql://postgres@127.0.0.1:5432/postgres?schema={pg_schema}\n"
    )
    return governed_config(upstream_url, extra=extra, routing="distributed: true")


def store_of(gateway: Gateway) -> Store:
    """The running gateway's store."""
    assert gateway.store is not None, "the gateway is not started"
    return gateway.store


def governance_of(gateway: Gateway) -> Governance:
    """The running gateway's governance."""
    assert gateway.governance is not None, "the gateway is not started"
    return gateway.governance


async def add_key(gateway: Gateway, **fields: Any) -> str:
    """Create a virtual key with these `Key` fields in the gateway's store; the raw `sk-` key."""
    raw = generate_key()
    await store_of(gateway).create(Key(token=hash_key(raw), **fields))
    return raw


async def add_team(gateway: Gateway, team_id: str, **fields: Any) -> None:
    """Create a team with these `Team` fields in the gateway's store."""
    await store_of(gateway).create(Team(team_id=team_id, **fields))


def chat_body(model: str = "gpt-4o-mini", **fields: Any) -> bytes:
    """A one-message chat completion request body with extra top-level `fields`."""
    payload = {"model": model, "messages": [{"role": "user", "content": "Hello"}], **fields}
    return json.dumps(payload).encode()


async def chat(
    gateway: Gateway,
    api_key: str,
    model: str = "gpt-4o-mini",
    *,
    header: str = "Authorization",
    **fields: Any,
) -> RawReply:
    """POST one chat completion with `api_key` in `header` (bearer for `Authorization`)."""
    value = f"Bearer {api_key}" if header == "Authorization" else api_key
    return await raw_request(
        "POST",
        f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
        data=chat_body(model, **fields),
        headers={"Content-Type": "application/json", header: value},
    )


async def spend_row(gateway: Gateway, request_id: str, *, within: float = 5.0) -> SpendRow:
    """The spend row of `request_id`, polled from the store until the background writer lands it."""
    found: list[SpendRow] = []

    async def landed() -> bool:
        page = await store_of(gateway).spend_logs(SpendFilter(request_id=request_id))
        found[:] = page.items
        return bool(found)

    assert await eventually_async(landed, within=within), f"no spend row for {request_id}"
    return found[0]
