"""Versioned migrations and `open_store`: files load in order, apply once, and URLs resolve."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import pytest

from llmux.store import MemoryStore, open_store
from llmux.store.base import Store
from llmux.store.migrate import Migration, load_migrations, migrate, split_statements
from llmux.store.postgres import PostgresStore
from llmux.store.records import Key, User
from llmux.store.sqlite import SqliteStore
from tests.store.conftest import POSTGRES_DSN, drop_schema, unique_schema


def test_migrations_load_in_version_order_for_both_engines() -> None:
    """Both engines ship the same versions, starting at 1, in order."""
    sqlite_versions = [m.version for m in load_migrations("sqlite")]
    postgres_versions = [m.version for m in load_migrations("postgres")]
    assert sqlite_versions == postgres_versions
    assert sqlite_versions[0] == 1
    assert sqlite_versions == sorted(sqlite_versions)


def test_split_statements_drops_comments_and_blank_chunks() -> None:
    """A file splits on line-ending semicolons, comment lines ignored."""
    sql = "-- header;\nCREATE TABLE a (x INTEGER);\n\nCREATE INDEX b ON a (x);\n"
    assert split_statements(sql) == ("CREATE TABLE a (x INTEGER)", "CREATE INDEX b ON a (x)")


async def test_sqlite_migrate_applies_once(tmp_path: Path) -> None:
    """The first run applies every version; the second finds nothing pending."""
    store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
    try:
        first = await migrate(store)
        second = await migrate(store)
    finally:
        await store.close()
    assert first == [m.version for m in load_migrations("sqlite")]
    assert second == []


async def test_sqlite_records_applied_versions(tmp_path: Path) -> None:
    """schema_migrations lists every applied version by name."""
    path = tmp_path / "db.sqlite"
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT version, name FROM schema_migrations").fetchall()
    assert rows == [(m.version, m.name) for m in load_migrations("sqlite")]


async def test_sqlite_uses_wal_journal(tmp_path: Path) -> None:
    """The standalone database runs in WAL mode, so readers never block the writer."""
    path = tmp_path / "db.sqlite"
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_sqlite_data_survives_reopen(tmp_path: Path) -> None:
    """Records written to the file are there after the store is closed and reopened."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = await open_store(url)
    await store.create(User(user_id="u1"))
    await store.close()
    reopened = await open_store(url)
    try:
        assert await reopened.get(User, "u1") is not None
    finally:
        await reopened.close()


async def test_open_store_without_migrate_leaves_schema_empty(tmp_path: Path) -> None:
    """migrate=False opens the file without creating tables; migrate() then creates them."""
    path = tmp_path / "db.sqlite"
    store = await open_store(f"sqlite:///{path}", migrate=False)
    try:
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT name FROM sqlite_master").fetchall() == []
        assert await store.migrate() != []
    finally:
        await store.close()


def _broken_migrations(dialect: str) -> list[Migration]:
    """The shipped migrations followed by one whose second statement fails."""
    broken = Migration(999, "broken", ("CREATE TABLE extra (x INTEGER)", "NOT SQL AT ALL"))
    return [*load_migrations(dialect), broken]


async def test_sqlite_failed_migration_applies_nothing(tmp_path: Path) -> None:
    """A failing statement rolls back every pending migration, tables and records alike."""
    path = tmp_path / "db.sqlite"
    store = await SqliteStore.open(str(path))
    try:
        with pytest.raises(sqlite3.OperationalError):
            await store.migrate(_broken_migrations("sqlite"))
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


async def test_postgres_failed_migration_applies_nothing() -> None:
    """On Postgres too, a failing migration leaves no table and no version behind."""
    schema = unique_schema()
    store = await PostgresStore.open(POSTGRES_DSN, schema=schema)
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await store.migrate(_broken_migrations("postgres"))
        assert await store.migrate() == [m.version for m in load_migrations("postgres")]
    finally:
        await store.close()
        await drop_schema(schema)


async def test_postgres_concurrent_migrations_apply_once() -> None:
    """Two replicas migrating the same schema at once apply each version exactly once."""
    schema = unique_schema()
    stores = [await PostgresStore.open(POSTGRES_DSN, schema=schema) for _ in range(2)]
    try:
        results = await asyncio.gather(*(store.migrate() for store in stores))
    finally:
        for store in stores:
            await store.close()
        await drop_schema(schema)
    assert sorted(results, key=len) == [[], [m.version for m in load_migrations("postgres")]]


async def test_open_store_postgres_url_uses_schema_parameter() -> None:
    """`?schema=` puts every table in that schema."""
    schema = unique_schema()
    store = await open_store(f"{POSTGRES_DSN}?schema={schema}")
    try:
        assert isinstance(store, PostgresStore)
        assert store.schema == schema
        await store.create(User(user_id="u1"))
        assert await store.get(User, "u1") is not None
    finally:
        await store.close()
        await drop_schema(schema)


async def test_open_store_memory_url() -> None:
    """memory:// opens the development store."""
    store = await open_store("memory://")
    assert isinstance(store, MemoryStore)


@pytest.mark.parametrize("url", ["redis://localhost", "sqlite://"])
async def test_open_store_rejects_unusable_urls(url: str) -> None:
    """An unknown scheme or a SQLite URL without a path is a ValueError naming the URL."""
    with pytest.raises(ValueError, match="URL"):
        await open_store(url)


async def test_postgres_rejects_unsafe_schema_name() -> None:
    """A schema name that is not a plain identifier is refused before connecting."""
    with pytest.raises(ValueError, match="schema"):
        await PostgresStore.open(POSTGRES_DSN, schema='x"; DROP TABLE y; --')


@pytest.fixture(params=["sqlite", "postgres"])
async def first_schema(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A store of each SQL engine with only migration 1 applied (key aliases not yet unique)."""
    backend: SqliteStore | PostgresStore
    if request.param == "sqlite":
        backend = await SqliteStore.open(str(tmp_path / "db.sqlite"))
    else:
        backend = await PostgresStore.open(POSTGRES_DSN, schema=unique_schema())
    await backend.migrate(load_migrations(backend.dialect)[:1])
    yield backend
    await backend.close()
    if isinstance(backend, PostgresStore):
        await drop_schema(backend.schema)


async def test_unique_alias_migration_leaves_the_alias_to_the_oldest_key(
    first_schema: Store,
) -> None:
    """Keys that shared an alias before migration 2: the oldest keeps it, the others lose it."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for minute, token in ((1, "newer"), (0, "oldest"), (2, "newest")):
        created = start + timedelta(minutes=minute)
        await first_schema.create(Key(token=token, key_alias="ci", created_at=created))
    await first_schema.migrate()
    kept = {token: await first_schema.get(Key, token) for token in ("oldest", "newer", "newest")}
    assert {token: k.key_alias for token, k in kept.items() if k is not None} == {
        "oldest": "ci",
        "newer": None,
        "newest": None,
    }
