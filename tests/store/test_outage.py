"""Outages: an unreachable or locked backend raises `StoreUnavailable`, and stores recover."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmux.store import StoreUnavailable
from llmux.store.postgres import PostgresStore
from llmux.store.records import User
from llmux.store.sqlite import SqliteStore
from tests.store.conftest import drop_schema, unique_schema


class TcpProxy:
    """A TCP relay to Postgres that a test can cut (dropping every connection) and restore."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        """Listen (on the same port as before, after a restart)."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening and drop every open connection, as if Postgres went away."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers.update((writer, up_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        await asyncio.gather(*pumps, return_exceptions=True)
        self._tasks.difference_update(pumps)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    """A running relay to the local Postgres."""
    relay = TcpProxy(5432)
    await relay.start()
    yield relay
    await relay.cut()


async def test_postgres_outage_raises_then_recovers(proxy: TcpProxy) -> None:
    """While Postgres is unreachable calls raise StoreUnavailable; afterwards they work again."""
    schema = unique_schema()
    dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
    store = await PostgresStore.open(
        dsn, schema=schema, connect_timeout=1.0, acquire_timeout=1.0, command_timeout=2.0
    )
    try:
        await store.migrate()
        await proxy.cut()
        with pytest.raises(StoreUnavailable):
            await store.create(User(user_id="u1"))
        await proxy.start()
        await store.create(User(user_id="u1"))
        assert await store.get(User, "u1") is not None
    finally:
        await store.close()
        await drop_schema(schema)


async def test_sqlite_locked_by_another_writer_is_unavailable(tmp_path: Path) -> None:
    """A file held by another process's write transaction past busy_timeout is unavailable."""
    path = tmp_path / "db.sqlite"
    store = await SqliteStore.open(str(path), busy_timeout_ms=50)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await store.migrate()
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable):
            await store.create(User(user_id="u1"))
        other.execute("ROLLBACK")
        await store.create(User(user_id="u1"))
    finally:
        other.close()
        await store.close()
