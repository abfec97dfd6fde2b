"""`PostgresStore`: the distributed store, an asyncpg pool over one schema.

Every table lives in `schema` (tests use a unique one); the pool sets `search_path` to it.
Read-modify-write transactions lock the row (`SELECT ... FOR UPDATE`), so replicas updating
the same key serialise. Connection failures and pool-acquire timeouts become
`StoreUnavailable`, so the spend writer can buffer and auth can serve from its cache; the
acquire, connect and command timeouts are short and configurable for that reason.
"""

from __future__ import annotations

import builtins
import functools
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

from llmux.errors import InvalidRequest
from llmux.store._sql import Conn
from llmux.store._sql_store import SqlStore
from llmux.store._tables import UNIQUE_INDEXES
from llmux.store.base import StoreUnavailable, ValueTaken
from llmux.store.records import utcnow

__all__ = ["PostgresStore"]

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Failures of reaching the server, not of the statement: refused or dropped connections,
# timeouts (connect, pool acquire, command) and a server starting up or shutting down.
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    """`?` placeholders rewritten as `$1, $2, ...` (our SQL has no other question marks)."""
    counter = iter(range(1, 1_000_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def _row_count(status: str) -> int:
    """The row count at the end of a command status such as `UPDATE 3` or `INSERT 0 1`."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _PgConn:
    """The shared `Conn` interface over one pooled asyncpg connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            return _row_count(await self._conn.execute(_numbered(sql), *args))
        except asyncpg.UniqueViolationError as exc:
            field = UNIQUE_INDEXES.get(exc.constraint_name or "")
            if field is None:
                raise
            raise ValueTaken(field, None) from exc

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(_numbered(sql), rows)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> builtins.list[Sequence[Any]]:
        return builtins.list(await self._conn.fetch(_numbered(sql), *args))


class PostgresStore(SqlStore):
    """A `Store` on Postgres; open it with `PostgresStore.open(dsn, schema=...)`."""

    dialect: ClassVar[str] = "postgres"
    for_update: ClassVar[str] = " FOR UPDATE"

    def __init__(
        self,
        pool: Any,
        *,
        schema: str,
        acquire_timeout: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(clock=clock)
        self._pool = pool
        self._schema = schema
        self._acquire_timeout = acquire_timeout

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        schema: str = "public",
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        acquire_timeout: float = 2.0,
        command_timeout: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> PostgresStore:
        """Create the pool; `StoreUnavailable` if Postgres cannot be reached."""
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid Postgres schema name {schema!r}")
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout,
                command_timeout=command_timeout,
                server_settings={"search_path": schema, "timezone": "UTC"},
            )
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"cannot reach Postgres: {exc}") from exc
        return cls(pool, schema=schema, acquire_timeout=acquire_timeout, clock=clock)

    @property
    def schema(self) -> str:
        """The schema every table lives in."""
        return self._schema

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
                yield conn
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"Postgres unavailable: {exc}") from exc
        except asyncpg.DataError as exc:
            # Values Postgres cannot hold (a NUL character in text): the client's input.
            raise InvalidRequest(f"A value cannot be stored: {exc}.") from None

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[Conn]:
        async with self._connection() as conn, conn.transaction():
            yield _PgConn(conn)

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[Conn]:
        async with self._connection() as conn:
            yield _PgConn(conn)

    async def _prepare_migration(self, conn: Conn) -> None:
        # Replicas starting together: the first migrates, the others wait and find nothing.
        await conn.fetch("SELECT pg_advisory_xact_lock(hashtext(?))", [f"llmux:{self._schema}"])
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')

    def _dt_in(self, value: datetime) -> datetime:
        return value

    def _dt_out(self, value: Any) -> datetime:
        moment: datetime = value
        return moment.astimezone(UTC)

    def _day_in(self, value: date) -> date:
        return value

    def _day_out(self, value: Any) -> date:
        day: date = value
        return day
