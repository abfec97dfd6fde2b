"""A store outage at the network edge: 503 `store_unavailable` (never a 500), then recovery.

The Postgres store sits behind a TCP proxy the test cuts and resumes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import pytest

from llmux.serve import Gateway
from llmux.store.base import AuditFilter
from tests.governance._outage import PG_URL, TcpProxy
from tests.helpers.edge import raw_request
from tests.helpers.gateway import running_gateway, upstream_config
from tests.helpers.governance import add_key, chat, governance_of, store_of
from tests.helpers.upstream import FakeUpstream

MASTER = "sk-outage-master"


@asynccontextmanager
async def _gateway_behind_proxy(upstream_url: str) -> AsyncIterator[tuple[Gateway, TcpProxy]]:
    schema = f"llmux_outage_{uuid.uuid4().hex[:12]}"
    relay = TcpProxy("127.0.0.1", 5432)
    await relay.start()
    store = f"postgresql://postgres@127.0.0.1:{relay.port}/postgres?schema={schema}"
    extra = f"store: {{url: '{store}'}}\nauth: {{master_key: {MASTER}}}\n"
    try:
        async with running_gateway(upstream_config(upstream_url, extra=extra)) as gw:
            yield gw, relay
    finally:
        await relay.close()
        connection = await asyncpg.connect(PG_URL)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


@pytest.fixture
async def behind_proxy() -> AsyncIterator[tuple[Gateway, TcpProxy]]:
    """A gateway whose Postgres store is reached through a proxy; the schema dropped after."""
    async with _gateway_behind_proxy("http://127.0.0.1:9/v1") as running:
        yield running


@pytest.fixture
async def serving_behind_proxy(upstream: FakeUpstream) -> AsyncIterator[tuple[Gateway, TcpProxy]]:
    """`behind_proxy` with a working upstream, for calls that must succeed."""
    async with _gateway_behind_proxy(upstream.url) as running:
        yield running


async def _admin(gateway: Gateway, path: str) -> tuple[int, object]:
    reply = await raw_request(
        "GET",
        f"http://127.0.0.1:{gateway.admin_port}{path}",
        headers={"Authorization": f"Bearer {MASTER}"},
    )
    return reply.status, reply.json


async def test_admin_call_during_a_store_outage_is_503(
    behind_proxy: tuple[Gateway, TcpProxy],
) -> None:
    """An admin read while Postgres is down answers 503 store_unavailable, then works again."""
    gateway, relay = behind_proxy
    assert (await _admin(gateway, "/key/list"))[0] == 200
    await relay.cut()
    status, body = await _admin(gateway, "/key/list")
    assert status == 503
    assert isinstance(body, dict)
    assert body["error"]["code"] == "store_unavailable"
    await relay.resume()
    assert (await _admin(gateway, "/key/list"))[0] == 200


async def test_stored_response_read_during_a_store_outage_is_503(
    behind_proxy: tuple[Gateway, TcpProxy],
) -> None:
    """GET /v1/responses/{id} while Postgres is down answers 503, not 500."""
    gateway, relay = behind_proxy
    await relay.cut()
    reply = await raw_request(
        "GET",
        f"http://127.0.0.1:{gateway.port}/v1/responses/resp_missing",
        headers={"Authorization": f"Bearer {MASTER}"},
    )
    assert reply.status == 503
    assert reply.json["error"]["code"] == "store_unavailable"


async def test_budget_refusal_during_a_store_outage_is_recorded_once_it_returns(
    serving_behind_proxy: tuple[Gateway, TcpProxy],
) -> None:
    """The refusal is served while Postgres is down; its audit event, which could not be
    written then, is written at the budget's next refusal once the store is back."""
    gateway, relay = serving_behind_proxy
    key = await add_key(gateway, max_budget=0.0002)
    assert (await chat(gateway, key, "smart", max_tokens=10)).status == 200
    await relay.cut()
    during = await chat(gateway, key, "smart", max_tokens=10)
    await governance_of(gateway).budget_events.close()
    await relay.resume()
    after = await chat(gateway, key, "smart", max_tokens=10)
    await governance_of(gateway).budget_events.close()
    events = await store_of(gateway).audit_log(AuditFilter(action="budget_exceeded"))
    assert (during.status, after.status) == (429, 429)
    assert [entry.request_id for entry in events.items] == [after.headers["x-request-id"]]
