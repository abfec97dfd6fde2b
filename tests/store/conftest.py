"""Store fixtures: the same contract runs on memory, SQLite (tmp file) and Postgres.

Postgres tests each get their own schema, named after this session's random prefix, and drop
it afterwards; any left behind by a crashed test are dropped when the session ends. The clock
is injected (`FakeClock`), so no test sleeps or depends on the wall clock.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import pytest

from llmux.store.base import Store
from llmux.store.memory import MemoryStore
from llmux.store.postgres import PostgresStore
from llmux.store.sqlite import SqliteStore

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
SESSION_PREFIX = f"llmux_test_{uuid.uuid4().hex[:8]}"
_schema_numbers = itertools.count()


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds)


def unique_schema() -> str:
    """A schema name no other test (or session) uses."""
    return f"{SESSION_PREFIX}_{next(_schema_numbers)}"


async def drop_schema(schema: str) -> None:
    """Drop a test schema and everything in it."""
    conn = await asyncpg.connect(POSTGRES_DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="session", autouse=True)
def _drop_leftover_schemas() -> Iterator[None]:
    """At the end of the session, drop any schema this session created and left behind."""
    yield

    async def drop_all() -> None:
        conn = await asyncpg.connect(POSTGRES_DSN)
        try:
            names = await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", SESSION_PREFIX + "%"
            )
            for (name,) in names:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop_all())


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at a fixed instant."""
    return FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Store]:
    """A migrated, empty store of each backend, on the fake clock."""
    backend: Store
    if request.param == "memory":
        backend = MemoryStore(clock=clock)
    elif request.param == "sqlite":
        backend = await SqliteStore.open(str(tmp_path / "llmux.db"), clock=clock)
    else:
        schema = unique_schema()
        backend = await PostgresStore.open(POSTGRES_DSN, schema=schema, clock=clock)
    await backend.migrate()
    yield backend
    await backend.close()
    if isinstance(backend, PostgresStore):
        await drop_schema(backend.schema)
