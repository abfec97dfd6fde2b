"""A management request is one transaction: a store fault half way through changes nothing,
and concurrent requests cannot both take one key alias.

The gateway runs on a Postgres schema of its own; a trigger installed in that schema makes one
statement fail the way a real database fault would, after the request has already written.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import pytest

from llmux.serve import Gateway
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import governed_config
from tests.helpers.manage import POSTGRES_URL, admin_call
from tests.helpers.upstream import FakeUpstream
from tests.store.conftest import drop_schema


@dataclass(frozen=True)
class OnPostgres:
    """A started gateway and the schema its store lives in."""

    gateway: Gateway
    schema: str

    async def refuse(self, table: str, operation: str) -> None:
        """From now on, every `operation` (INSERT, DELETE, ...) on `table` fails in Postgres."""
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            await connection.execute(
                f'CREATE FUNCTION "{self.schema}".refuse() RETURNS trigger LANGUAGE plpgsql'
                " AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$"
            )
            await connection.execute(
                f'CREATE TRIGGER refuse BEFORE {operation} ON "{self.schema}".{table}'
                f' FOR EACH ROW EXECUTE FUNCTION "{self.schema}".refuse()'
            )
        finally:
            await connection.close()


@pytest.fixture
async def on_postgres(upstream: FakeUpstream) -> AsyncIterator[OnPostgres]:
    schema = f"llmux_atomic_{uuid.uuid4().hex}"
    store = f"store:\n  url: {POSTGRES_URL}?schema={schema}\n"
    try:
        async with running_gateway(governed_config(upstream.url, extra=store)) as gateway:
            yield OnPostgres(gateway, schema)
    finally:
        await drop_schema(schema)


async def _audited_ids(gateway: Gateway) -> list[str]:
    reply = await admin_call(gateway, "GET", "/audit/logs")
    assert reply.status == 200, reply
    return [entry["object_id"] for entry in reply.json["audit_logs"]]


async def test_new_user_whose_key_fails_leaves_no_user(on_postgres: OnPostgres) -> None:
    """`/user/new` with `auto_create_key`: when the key's insert fails, the user is not kept."""
    await on_postgres.refuse("keys", "INSERT")
    body = {"user_id": "u1", "auto_create_key": True}
    failed = await admin_call(on_postgres.gateway, "POST", "/user/new", body)
    found = await admin_call(on_postgres.gateway, "GET", "/user/info", query={"user_id": "u1"})
    assert failed.status == 500
    assert found.status == 404


async def test_new_user_whose_key_fails_leaves_no_audit_row(on_postgres: OnPostgres) -> None:
    """The audit row of the user's insert goes with the rolled-back request."""
    await on_postgres.refuse("keys", "INSERT")
    body = {"user_id": "u1", "auto_create_key": True}
    await admin_call(on_postgres.gateway, "POST", "/user/new", body)
    assert await _audited_ids(on_postgres.gateway) == []


async def test_user_delete_that_fails_keeps_the_users_key(on_postgres: OnPostgres) -> None:
    """`/user/delete` deletes the user's keys first; if the user's own delete fails, the keys
    stay and keep working on the gateway port."""
    gateway = on_postgres.gateway
    created = await admin_call(gateway, "POST", "/user/new", {"user_id": "u1"})
    assert created.status == 200, created
    await on_postgres.refuse("users", "DELETE")
    failed = await admin_call(gateway, "POST", "/user/delete", {"user_ids": ["u1"]})
    still = await admin_call(gateway, "GET", "/key/info", key=created.json["key"])
    assert failed.status == 500
    assert still.status == 200, still


async def test_concurrent_generates_with_one_alias_create_one_key(on_postgres: OnPostgres) -> None:
    """Ten `/key/generate` calls racing for one alias: one key, nine 409s naming `key_alias`."""
    gateway = on_postgres.gateway
    body = {"key_alias": "deploy"}
    replies = await asyncio.gather(
        *(admin_call(gateway, "POST", "/key/generate", body) for _ in range(10))
    )
    listed = await admin_call(gateway, "GET", "/key/list", query={"key_alias": "deploy"})
    assert sorted(reply.status for reply in replies) == [200] + [409] * 9
    assert {reply.json["error"]["param"] for reply in replies if reply.status == 409} == {
        "key_alias"
    }
    assert listed.json["total_count"] == 1
