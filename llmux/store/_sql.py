"""`SqlRecords`: the `Store` logic shared by SQLite and Postgres for entities and memberships.

Both engines take the same statements (`ON CONFLICT`, multi-row `VALUES ... RETURNING`),
written with `?` placeholders; a backend supplies a `Conn` (which rewrites placeholders if it
must), transactions, the datetime and date encodings, and row locking. Lists and dicts are JSON
text (jsonb in Postgres, which takes and returns the same text).
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any, ClassVar, Protocol

import msgspec

from llmux.store._tables import (
    AUDIT_COLUMNS,
    DATETIME_COLUMNS,
    SPECS,
    TableSpec,
    apply_changes,
    check_filters,
    check_paging,
    fill_audit,
    spec_for,
)
from llmux.store.base import AlreadyExists, E, FilterValue, M, Page
from llmux.store.migrate import Migration, load_migrations
from llmux.store.records import (
    AuditEntry,
    Entity,
    Key,
    Membership,
    utcnow,
)

__all__ = ["Conn", "SqlRecords", "json_text", "where_sql"]

_JSON_COLUMNS = frozenset({"tags", "before", "after"})


class Conn(Protocol):
    """One connection inside a transaction (or a read), as the shared logic needs it."""

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        ...

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per argument row."""
        ...

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> builtins.list[Sequence[Any]]:
        """Run a query and return all its rows."""
        ...


def json_text(value: Any) -> str:
    """A value as JSON text (what both engines take for JSON columns)."""
    return msgspec.json.encode(value).decode()


def where_sql(clauses: builtins.list[tuple[str, str, Any]]) -> tuple[str, builtins.list[Any]]:
    """`WHERE` text and arguments from (column, operator, value) triples; None means IS NULL."""
    parts: builtins.list[str] = []
    args: builtins.list[Any] = []
    for column, op, value in clauses:
        if value is None:
            parts.append(f"{column} IS NULL")
        elif isinstance(value, list | tuple):
            if not value:
                parts.append("1 = 0")
                continue
            parts.append(f"{column} IN ({', '.join('?' * len(value))})")
            args.extend(value)
        else:
            parts.append(f"{column} {op} ?")
            args.append(value)
    return (" WHERE " + " AND ".join(parts)) if parts else "", args


class _Block:
    """One `atomic()` block: its transaction, begun at the first call inside it."""

    def __init__(self, begin: Callable[[], AbstractAsyncContextManager[Conn]]) -> None:
        self._begin = begin
        self._stack = AsyncExitStack()
        self._conn: Conn | None = None

    async def connection(self) -> Conn:
        """The block's connection, beginning its transaction on first use."""
        if self._conn is None:
            self._conn = await self._stack.enter_async_context(self._begin())
        return self._conn

    async def end(self, error: BaseException | None) -> None:
        """Commit (no error) or roll back the transaction, if one was begun."""
        if error is None:
            await self._stack.aclose()
        else:
            await self._stack.__aexit__(type(error), error, error.__traceback__)


class SqlRecords(abc.ABC):
    """Entities, memberships, migrations and audit writes over a SQL engine.

    Subclasses provide connections and value encodings; `SqlStore` adds the ledger.
    """

    dialect: ClassVar[str]
    for_update: ClassVar[str] = ""

    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        # Per store, so two stores in one task (tests) never share a block.
        self._block: ContextVar[_Block | None] = ContextVar(f"store_block_{id(self)}", default=None)

    # --- what a backend provides ----------------------------------------------------------

    @abc.abstractmethod
    def _begin(self) -> AbstractAsyncContextManager[Conn]:
        """A connection inside a new write transaction (committed on success, else rolled back)."""

    @abc.abstractmethod
    def _connect(self) -> AbstractAsyncContextManager[Conn]:
        """A connection for reads."""

    # --- transactions ---------------------------------------------------------------------

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """One transaction for this task's calls inside the block (see `Store.atomic`)."""
        if self._block.get() is not None:
            yield
            return
        block = _Block(self._begin)
        token = self._block.set(block)
        try:
            yield
        except BaseException as exc:
            self._block.reset(token)
            await block.end(exc)
            raise
        self._block.reset(token)
        await block.end(None)

    def _tx(self) -> AbstractAsyncContextManager[Conn]:
        """A write transaction: the task's `atomic()` block if it is in one, else its own."""
        return self._block_or(self._begin)

    def _read(self) -> AbstractAsyncContextManager[Conn]:
        """A connection for reads; inside an `atomic()` block, the block's (it sees its writes)."""
        return self._block_or(self._connect)

    @asynccontextmanager
    async def _block_or(
        self, fresh: Callable[[], AbstractAsyncContextManager[Conn]]
    ) -> AsyncIterator[Conn]:
        block = self._block.get()
        if block is not None:
            yield await block.connection()
            return
        async with fresh() as conn:
            yield conn

    @abc.abstractmethod
    def _dt_in(self, value: datetime) -> Any:
        """A datetime as the engine stores it."""

    @abc.abstractmethod
    def _dt_out(self, value: Any) -> datetime:
        """A stored datetime back as an aware UTC datetime."""

    @abc.abstractmethod
    def _day_in(self, value: date) -> Any:
        """A date as the engine stores it."""

    @abc.abstractmethod
    def _day_out(self, value: Any) -> date:
        """A stored date back as a date."""

    async def _prepare_migration(self, conn: Conn) -> None:  # noqa: B027 (optional hook)
        """Engine-specific work inside the migration transaction, before anything else."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    # --- value encoding -------------------------------------------------------------------

    def _in(self, column: str, value: Any) -> Any:
        if value is None:
            return None
        if column in DATETIME_COLUMNS:
            return self._dt_in(value)
        if column in _JSON_COLUMNS:
            return json_text(value)
        if column == "day":
            return self._day_in(value)
        return value

    def _out(self, column: str, value: Any) -> Any:
        if value is None:
            return None
        if column in DATETIME_COLUMNS:
            return self._dt_out(value)
        if column in _JSON_COLUMNS:
            return msgspec.json.decode(value)
        if column == "day":
            return self._day_out(value)
        return value

    def _row_dict(self, columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        return {
            column: self._out(column, value) for column, value in zip(columns, row, strict=True)
        }

    # --- migrations -----------------------------------------------------------------------

    async def migrate(self, migrations: Sequence[Migration] | None = None) -> builtins.list[int]:
        """Apply pending migrations in one transaction; return the versions applied.

        `migrations` defaults to the shipped files of this engine. If any statement fails,
        nothing is applied and nothing is recorded.
        """
        available = load_migrations(self.dialect) if migrations is None else migrations
        async with self._tx() as conn:
            await self._prepare_migration(conn)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
            pending = [m for m in available if m.version not in done]
            for migration in pending:
                await self._apply(conn, migration)
        return [m.version for m in pending]

    async def _apply(self, conn: Conn, migration: Migration) -> None:
        for statement in migration.statements:
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, self._clock().isoformat()),
        )

    # --- entity rows ----------------------------------------------------------------------

    def _entity_args(self, spec: TableSpec, obj: Any) -> builtins.list[Any]:
        values = [self._in(name, getattr(obj, name)) for name in spec.stored]
        return [*values, msgspec.json.encode(obj).decode()]

    def _insert_sql(self, spec: TableSpec) -> str:
        columns = (*spec.stored, "data")
        marks = ", ".join("?" * len(columns))
        return f"INSERT INTO {spec.table} ({', '.join(columns)}) VALUES ({marks})"

    def _pkwhere_sql(self, spec: TableSpec) -> str:
        return " AND ".join(f"{name} = ?" for name in spec.pk)

    async def _load(
        self, conn: Conn, spec: TableSpec, ident: tuple[str, ...], *, lock: bool
    ) -> Any:
        columns = (*spec.hot, "data")
        sql = f"SELECT {', '.join(columns)} FROM {spec.table} WHERE {self._pkwhere_sql(spec)}"
        rows = await conn.fetch(sql + (self.for_update if lock else ""), ident)
        return self._decode(spec, rows[0]) if rows else None

    def _decode(self, spec: TableSpec, row: Sequence[Any]) -> Any:
        obj = msgspec.json.decode(row[-1], type=spec.cls)
        hot = {name: self._out(name, row[i]) for i, name in enumerate(spec.hot)}
        return msgspec.structs.replace(obj, **hot) if hot else obj

    async def _write_audit(
        self, conn: Conn, audit: AuditEntry | None, before: Any, after: Any
    ) -> None:
        entry = fill_audit(audit, before, after)
        if entry is None:
            return
        marks = ", ".join("?" * len(AUDIT_COLUMNS))
        written = await conn.execute(
            f"INSERT INTO audit_log ({', '.join(AUDIT_COLUMNS)}) VALUES ({marks}) "
            "ON CONFLICT (id) DO NOTHING",
            [self._in(name, getattr(entry, name)) for name in AUDIT_COLUMNS],
        )
        if not written:  # raising rolls the mutation back with it
            raise AlreadyExists("audit entry", entry.id)

    # --- entities -------------------------------------------------------------------------

    async def get(self, cls: type[E], id: str) -> E | None:
        """The record with this primary key, or None."""
        async with self._read() as conn:
            found: E | None = await self._load(conn, spec_for(cls), (id,), lock=False)
            return found

    async def create(self, obj: Entity, *, audit: AuditEntry | None = None) -> None:
        """Insert a new record; `AlreadyExists` if its id is taken."""
        await self._insert(spec_for(type(obj)), obj, audit)

    async def _insert(self, spec: TableSpec, obj: Any, audit: AuditEntry | None) -> None:
        sql = self._insert_sql(spec) + f" ON CONFLICT ({', '.join(spec.pk)}) DO NOTHING"
        async with self._tx() as conn:
            if not await conn.execute(sql, self._entity_args(spec, obj)):
                raise AlreadyExists(spec.object_type, "/".join(spec.id_of(obj)))
            await self._write_audit(conn, audit, None, obj)

    async def put(self, obj: Entity, *, audit: AuditEntry | None = None) -> None:
        """Insert or replace a record."""
        spec = spec_for(type(obj))
        assignments = ", ".join(
            f"{name} = excluded.{name}" for name in (*spec.columns, *spec.hot, "created_at", "data")
        )
        sql = self._insert_sql(spec) + f" ON CONFLICT ({', '.join(spec.pk)}) DO UPDATE SET "
        async with self._tx() as conn:
            before = await self._load(conn, spec, spec.id_of(obj), lock=True)
            await conn.execute(sql + assignments, self._entity_args(spec, obj))
            await self._write_audit(conn, audit, before, obj)

    async def update(
        self,
        cls: type[E],
        id: str,
        changes: Mapping[str, Any],
        *,
        audit: AuditEntry | None = None,
    ) -> E | None:
        """Apply changes to a record; None if it does not exist."""
        result: E | None = await self._change(spec_for(cls), (id,), changes, audit)
        return result

    async def _change(
        self,
        spec: TableSpec,
        ident: tuple[str, ...],
        changes: Mapping[str, Any],
        audit: AuditEntry | None,
    ) -> Any:
        async with self._tx() as conn:
            old = await self._load(conn, spec, ident, lock=True)
            if old is None:
                return None
            new = apply_changes(spec, old, changes, self._clock())
            columns = (*spec.columns, *spec.hot, "created_at", "data")
            assignments = ", ".join(f"{name} = ?" for name in columns)
            args = self._entity_args(spec, new)[len(spec.pk) :]
            sql = f"UPDATE {spec.table} SET {assignments} WHERE {self._pkwhere_sql(spec)}"
            await conn.execute(sql, [*args, *ident])
            await self._write_audit(conn, audit, old, new)
            return new

    async def delete(self, cls: type[E], id: str, *, audit: AuditEntry | None = None) -> bool:
        """Delete a record; False if it was not there."""
        return await self._remove(spec_for(cls), (id,), audit)

    async def _remove(
        self, spec: TableSpec, ident: tuple[str, ...], audit: AuditEntry | None
    ) -> bool:
        async with self._tx() as conn:
            old = await self._load(conn, spec, ident, lock=True)
            if old is None:
                return False
            await conn.execute(f"DELETE FROM {spec.table} WHERE {self._pkwhere_sql(spec)}", ident)
            await self._write_audit(conn, audit, old, None)
            return True

    async def list(
        self,
        cls: type[E],
        *,
        filters: Mapping[str, FilterValue] | None = None,
        page: int = 1,
        size: int = 50,
    ) -> Page[E]:
        """A page of matching records ordered by created_at then primary key."""
        spec = spec_for(cls)
        filters = filters or {}
        check_filters(spec, filters)
        check_paging(page, size)
        items, total = await self._select(spec, filters, limit=size, offset=(page - 1) * size)
        return Page(items=items, total=total, page=page, size=size)

    async def _select(
        self, spec: TableSpec, filters: Mapping[str, Any], *, limit: int, offset: int
    ) -> tuple[builtins.list[Any], int]:
        where, args = where_sql([(name, "=", value) for name, value in filters.items()])
        order = ", ".join(("created_at", *spec.pk))
        columns = ", ".join((*spec.hot, "data"))
        async with self._read() as conn:
            count = await conn.fetch(f"SELECT count(*) FROM {spec.table}{where}", args)
            rows = await conn.fetch(
                f"SELECT {columns} FROM {spec.table}{where} ORDER BY {order} LIMIT ? OFFSET ?",
                [*args, limit, offset],
            )
        return [self._decode(spec, row) for row in rows], int(count[0][0])

    async def get_key(self, token: str) -> Key | None:
        """The key with this hash, or None."""
        return await self.get(Key, token)

    async def get_key_by_alias(self, key_alias: str) -> Key | None:
        """The key with this alias, or None."""
        items, _ = await self._select(SPECS[Key], {"key_alias": key_alias}, limit=1, offset=0)
        return items[0] if items else None

    # --- memberships ----------------------------------------------------------------------

    async def add_member(self, member: Membership, *, audit: AuditEntry | None = None) -> None:
        """Add a membership; `AlreadyExists` if the user is already a member."""
        await self._insert(spec_for(type(member)), member, audit)

    async def update_member(
        self,
        cls: type[M],
        group_id: str,
        user_id: str,
        changes: Mapping[str, Any],
        *,
        audit: AuditEntry | None = None,
    ) -> M | None:
        """Change a membership; None if there is none."""
        result: M | None = await self._change(spec_for(cls), (group_id, user_id), changes, audit)
        return result

    async def remove_member(
        self, cls: type[M], group_id: str, user_id: str, *, audit: AuditEntry | None = None
    ) -> bool:
        """Remove a membership; False if there was none."""
        return await self._remove(spec_for(cls), (group_id, user_id), audit)

    async def list_members(
        self, cls: type[M], *, group_id: str | None = None, user_id: str | None = None
    ) -> builtins.list[M]:
        """Memberships of a group and/or of a user."""
        spec = spec_for(cls)
        filters: dict[str, str] = {}
        if group_id is not None:
            filters[spec.pk[0]] = group_id
        if user_id is not None:
            filters["user_id"] = user_id
        items, _ = await self._select(spec, filters, limit=1_000_000, offset=0)
        return items
