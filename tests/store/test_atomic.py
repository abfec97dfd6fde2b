"""`Store.atomic()`: several calls as one transaction, on memory, SQLite and Postgres."""

from __future__ import annotations

import pytest

from llmux.store.base import AuditFilter, Store
from llmux.store.records import Key, TeamMembership, User
from tests.store.test_contract import audit, key


class Injected(Exception):
    """The failure a test raises inside a block."""


async def _audit_total(store: Store) -> int:
    return (await store.audit_log(AuditFilter())).total


async def test_block_commits_every_call_and_its_audit(store: Store) -> None:
    """A block that ends normally keeps each record and each audit row written inside it."""
    async with store.atomic():
        await store.create(User(user_id="u1"), audit=audit(object_id="u1"))
        await store.create(key("t1", user_id="u1"), audit=audit(object_id="t1"))
    assert await store.get(User, "u1") is not None
    assert await store.get(Key, "t1") is not None
    assert await _audit_total(store) == 2


async def test_block_that_raises_undoes_creates_updates_and_deletes(store: Store) -> None:
    """Every change made inside a block that raises is gone afterwards, whatever its kind."""
    await store.create(key("kept", rpm_limit=1))
    await store.create(key("doomed"))
    with pytest.raises(Injected):
        async with store.atomic():
            await store.create(User(user_id="u1"))
            await store.update(Key, "kept", {"rpm_limit": 2})
            await store.delete(Key, "doomed")
            await store.add_member(TeamMembership(team_id="tm1", user_id="u1"))
            raise Injected
    assert await store.get(User, "u1") is None
    assert (await store.get(Key, "kept")) == key("kept", rpm_limit=1)
    assert await store.get(Key, "doomed") is not None
    assert await store.list_members(TeamMembership, user_id="u1") == []


async def test_block_that_raises_leaves_no_audit_row(store: Store) -> None:
    """The audit rows written inside a block that raises are rolled back with the changes."""
    with pytest.raises(Injected):
        async with store.atomic():
            await store.create(User(user_id="u1"), audit=audit(object_id="u1"))
            raise Injected
    assert await _audit_total(store) == 0


async def test_block_reads_its_own_writes(store: Store) -> None:
    """Inside a block, a read sees what the block wrote before it."""
    async with store.atomic():
        await store.create(User(user_id="u1", user_email="a@example.com"))
        found = await store.get(User, "u1")
        listed = await store.list(User, filters={"user_email": "a@example.com"})
    assert found is not None
    assert listed.total == 1


async def test_nested_block_joins_the_outer_one(store: Store) -> None:
    """An inner block that ended normally is still undone when the outer block raises."""
    with pytest.raises(Injected):
        async with store.atomic():
            async with store.atomic():
                await store.create(User(user_id="u1"))
            raise Injected
    assert await store.get(User, "u1") is None


async def test_block_without_calls_changes_nothing(store: Store) -> None:
    """An empty block (the SQL stores begin no transaction for it) is harmless."""
    async with store.atomic():
        pass
    assert (await store.list(User)).total == 0
