"""`SqliteStore`: the standalone default, one SQLite file in WAL mode via aiosqlite.

One connection serves the process; an `asyncio.Lock` makes each transaction (and each read)
exclusive on it, because statements from two coroutines would otherwise interleave inside
one SQLite transaction. Write transactions use `BEGIN IMMEDIATE`, so another process sharing
the file waits (`busy_timeout`) instead of failing halfway through a read-modify-write.
Datetimes are stored as integer microseconds since the epoch: exact, and ordered as numbers.
"""

from __future__ import annotations

import asyncio
import builtins
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import aiosqlite

from llmux.store._sql_store import SqlStore
from llmux.store._tables import UNIQUE_INDEXES
from llmux.store.base import StoreUnavailable, ValueTaken
from llmux.store.records import utcnow

__all__ = ["SqliteStore"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WAL_RETRY = 0.02
"""Seconds between tries to switch a busy file to WAL."""
_MICROSECOND = timedelta(microseconds=1)


# Conditions that pass (another process holding the write lock past busy_timeout, a full
# or failing disk): callers buffer and retry, as with an unreachable Postgres.
_TRANSIENT = (
    "database is locked",
    "database is busy",
    "disk i/o error",
    "database or disk is full",
)


@asynccontextmanager
async def _unavailable_when_busy() -> AsyncIterator[None]:
    """Re-raise SQLite's lock and disk failures as `StoreUnavailable`."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if any(marker in str(exc).lower() for marker in _TRANSIENT):
            raise StoreUnavailable(f"SQLite unavailable: {exc}") from exc
        raise


def _taken(exc: sqlite3.IntegrityError) -> Exception:
    """`ValueTaken` for a unique index's refusal ("UNIQUE constraint failed: keys.key_alias")."""
    _, _, where = str(exc).partition("UNIQUE constraint failed: ")
    field = where.rpartition(".")[2]
    return ValueTaken(field, None) if field in UNIQUE_INDEXES.values() else exc


async def _enter_wal(db: aiosqlite.Connection, patience: float) -> None:
    """Switch the file to WAL, waiting up to `patience` seconds for another process.

    Workers of `llmux serve --workers N` open a new file together: the switch needs the file
    to itself and fails at once (no busy handler) while another connection holds it.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(_WAL_RETRY)


class _SqliteConn:
    """The shared `Conn` interface over one aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            async with self._db.execute(sql, args) as cursor:
                return cursor.rowcount
        except sqlite3.IntegrityError as exc:
            raise _taken(exc) from exc

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._db.executemany(sql, rows)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> builtins.list[Sequence[Any]]:
        async with self._db.execute(sql, args) as cursor:
            return builtins.list(await cursor.fetchall())


class SqliteStore(SqlStore):
    """A `Store` in one SQLite file; open it with `SqliteStore.open(path)`."""

    dialect: ClassVar[str] = "sqlite"

    def __init__(self, db: aiosqlite.Connection, *, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(clock=clock)
        self._db = db
        self._conn = _SqliteConn(db)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        busy_timeout_ms: int = 5000,
        clock: Callable[[], datetime] = utcnow,
    ) -> SqliteStore:
        """Open (creating if needed) the database file in WAL mode."""
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {path!r}: {exc}") from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            await _enter_wal(db, busy_timeout_ms / 1000)
            await db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            # The connection's thread would keep the process alive: close it before raising.
            await db.close()
            raise StoreUnavailable(f"cannot open SQLite database {path!r}: {exc}") from exc
        return cls(db, clock=clock)

    async def close(self) -> None:
        """Close the connection."""
        await self._db.close()

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[_SqliteConn]:
        async with self._lock, _unavailable_when_busy():
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._db.rollback()
                raise
            await self._db.commit()

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[_SqliteConn]:
        async with self._lock, _unavailable_when_busy():
            yield self._conn

    def _dt_in(self, value: datetime) -> int:
        return (value - _EPOCH) // _MICROSECOND

    def _dt_out(self, value: Any) -> datetime:
        return _EPOCH + int(value) * _MICROSECOND

    def _day_in(self, value: date) -> str:
        return value.isoformat()

    def _day_out(self, value: Any) -> date:
        return date.fromisoformat(value)
