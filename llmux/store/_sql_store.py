"""`SqlStore`: the spend ledger, budget resets, stored responses and the audit log in SQL.

It completes `SqlRecords` into the full `Store`; `SqliteStore` and `PostgresStore` subclass it
and supply connections and encodings. Portable SQL, `?` placeholders, as in `_sql`.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import msgspec

from llmux.store._sql import Conn, SqlRecords, json_text, where_sql
from llmux.store._tables import (
    AUDIT_COLUMNS,
    DAILY_SUMS,
    KIND_SPECS,
    SPEND_COLUMNS,
    SPEND_MATCH_FIELDS,
    check_paging,
    daily_deltas,
    dedupe_rows,
    spend_increments,
)
from llmux.store.base import AuditFilter, Page, SpendFilter
from llmux.store.records import (
    AuditEntry,
    DailySpend,
    DimensionKind,
    DueReset,
    SpendKind,
    SpendRow,
    SpendTotals,
    StoredResponse,
)

__all__ = ["SqlStore"]

_BATCH = 500  # rows per multi-row INSERT: well under both engines' bound-parameter limits
_RESPONSE_COLUMNS = ("response_id", "owner", "team_id", "created_at", "model")
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])


class SqlStore(SqlRecords):
    """The complete SQL `Store`: `SqlRecords` plus spend, budgets, responses and audit reads."""

    # --- spend ----------------------------------------------------------------------------

    async def ping(self) -> None:
        """One `SELECT 1`; `StoreUnavailable` when the database does not answer."""
        async with self._read() as conn:
            await conn.fetch("SELECT 1")

    async def add_spend(self, rows: Sequence[SpendRow]) -> int:
        """Record new rows, their daily aggregates and entity spend; skip known request ids."""
        # Sorted, so concurrent batches sharing request ids take their locks in one order.
        unique = sorted(dedupe_rows(rows), key=lambda row: row.request_id)
        if not unique:
            return 0
        async with self._tx() as conn:
            fresh: builtins.list[SpendRow] = []
            for start in range(0, len(unique), _BATCH):
                fresh.extend(await self._insert_spend(conn, unique[start : start + _BATCH]))
            await self._add_daily(conn, fresh)
            # A fixed lock order (table, id) so concurrent batches on replicas cannot deadlock.
            increments = sorted(
                spend_increments(fresh).items(), key=lambda item: (item[0][0].table, item[0][1])
            )
            for (spec, ident), cost in increments:
                sql = f"UPDATE {spec.table} SET spend = spend + ? WHERE {self._pkwhere_sql(spec)}"
                await conn.execute(sql, [cost, *ident])
        return len(fresh)

    async def _insert_spend(self, conn: Conn, rows: Sequence[SpendRow]) -> builtins.list[SpendRow]:
        marks = "(" + ", ".join("?" * len(SPEND_COLUMNS)) + ")"
        sql = (
            f"INSERT INTO spend_logs ({', '.join(SPEND_COLUMNS)}) VALUES "
            + ", ".join([marks] * len(rows))
            + " ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
        )
        args = [self._in(name, getattr(row, name)) for row in rows for name in SPEND_COLUMNS]
        inserted = {row[0] for row in await conn.fetch(sql, args)}
        return [row for row in rows if row.request_id in inserted]

    async def _add_daily(self, conn: Conn, rows: Sequence[SpendRow]) -> None:
        deltas = sorted(daily_deltas(rows), key=lambda d: (d.kind, d.value, d.day))
        if not deltas:
            return
        columns = ("day", "kind", "value", *DAILY_SUMS)
        sums = ", ".join(f"{name} = daily_spend.{name} + excluded.{name}" for name in DAILY_SUMS)
        sql = (
            f"INSERT INTO daily_spend ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT (kind, value, day) DO UPDATE SET {sums}"
        )
        await conn.execute_many(
            sql, [[self._in(name, getattr(delta, name)) for name in columns] for delta in deltas]
        )

    def _spendwhere_sql(self, f: SpendFilter) -> tuple[str, builtins.list[Any]]:
        clauses = [
            (name, "=", getattr(f, name))
            for name in SPEND_MATCH_FIELDS
            if getattr(f, name) is not None
        ]
        if f.start is not None:
            clauses.append(("started_at", ">=", self._dt_in(f.start)))
        if f.end is not None:
            clauses.append(("started_at", "<", self._dt_in(f.end)))
        return where_sql(clauses)

    async def spend_logs(
        self, filters: SpendFilter, *, page: int = 1, size: int = 50
    ) -> Page[SpendRow]:
        """Matching spend rows, newest first."""
        check_paging(page, size)
        where, args = self._spendwhere_sql(filters)
        columns = ", ".join(SPEND_COLUMNS)
        async with self._read() as conn:
            count = await conn.fetch(f"SELECT count(*) FROM spend_logs{where}", args)
            rows = await conn.fetch(
                f"SELECT {columns} FROM spend_logs{where} "
                "ORDER BY started_at DESC, request_id LIMIT ? OFFSET ?",
                [*args, size, (page - 1) * size],
            )
        items = [msgspec.convert(self._row_dict(SPEND_COLUMNS, row), SpendRow) for row in rows]
        return Page(items=items, total=int(count[0][0]), page=page, size=size)

    async def spend_totals(self, filters: SpendFilter) -> SpendTotals:
        """Sums over matching spend rows."""
        where, args = self._spendwhere_sql(filters)
        sql = (
            "SELECT count(*), CAST(COALESCE(sum(input_tokens), 0) AS BIGINT), "
            "CAST(COALESCE(sum(output_tokens), 0) AS BIGINT), COALESCE(sum(cost), 0) "
            f"FROM spend_logs{where}"
        )
        async with self._read() as conn:
            requests, input_tokens, output_tokens, cost = (await conn.fetch(sql, args))[0]
        return SpendTotals(
            requests=int(requests),
            input_tokens=int(input_tokens),
            output_tokens=int(output_tokens),
            cost=float(cost),
        )

    async def daily_spend(
        self,
        kind: DimensionKind,
        *,
        start: date,
        end: date,
        values: Sequence[str] | None = None,
    ) -> builtins.list[DailySpend]:
        """Daily aggregates of one dimension in [start, end], by day then value."""
        clauses: builtins.list[tuple[str, str, Any]] = [
            ("kind", "=", kind),
            ("day", ">=", self._day_in(start)),
            ("day", "<=", self._day_in(end)),
        ]
        if values is not None:
            clauses.append(("value", "IN", builtins.list(values)))
        where, args = where_sql(clauses)
        columns = ("day", "kind", "value", *DAILY_SUMS)
        sql = f"SELECT {', '.join(columns)} FROM daily_spend{where} ORDER BY day, value"
        async with self._read() as conn:
            rows = await conn.fetch(sql, args)
        return [msgspec.convert(self._row_dict(columns, row), DailySpend) for row in rows]

    # --- budgets and keys bookkeeping -----------------------------------------------------

    async def reset_budget(
        self,
        kind: SpendKind,
        id: str,
        next_reset_at: datetime | None,
        *,
        audit: AuditEntry | None = None,
    ) -> bool:
        """Zero an entity's spend and set its next reset time."""
        spec = KIND_SPECS[kind]
        async with self._tx() as conn:
            old = await self._load(conn, spec, (id,), lock=True)
            if old is None:
                return False
            await conn.execute(
                f"UPDATE {spec.table} SET spend = 0, budget_reset_at = ? "
                f"WHERE {self._pkwhere_sql(spec)}",
                [self._in("budget_reset_at", next_reset_at), id],
            )
            new = msgspec.structs.replace(old, spend=0.0, budget_reset_at=next_reset_at)
            await self._write_audit(conn, audit, old, new)
            return True

    async def due_budget_resets(self, now: datetime) -> builtins.list[DueReset]:
        """Entities whose budget_reset_at has passed."""
        due: builtins.list[DueReset] = []
        async with self._read() as conn:
            for kind, spec in KIND_SPECS.items():
                rows = await conn.fetch(
                    f"SELECT {spec.pk[0]}, budget_duration, budget_reset_at FROM {spec.table} "
                    "WHERE budget_reset_at <= ?",
                    [self._dt_in(now)],
                )
                due.extend(
                    DueReset(
                        kind=kind,
                        id=ident,
                        budget_duration=duration,
                        budget_reset_at=self._dt_out(at),
                    )
                    for ident, duration, at in rows
                )
        return due

    async def touch_keys(self, last_used: Mapping[str, datetime]) -> None:
        """Move keys' last_used_at forward (never backwards)."""
        if not last_used:
            return
        sql = (
            "UPDATE keys SET last_used_at = ? "
            "WHERE token = ? AND (last_used_at IS NULL OR last_used_at < ?)"
        )
        rows = [
            [self._dt_in(when), token, self._dt_in(when)]
            for token, when in sorted(last_used.items())
        ]
        async with self._tx() as conn:
            await conn.execute_many(sql, rows)

    # --- stored responses -----------------------------------------------------------------

    async def put_response(self, response: StoredResponse) -> None:
        """Store or replace a response."""
        columns = (*_RESPONSE_COLUMNS, "input_items", "output", "response")
        updates = ", ".join(f"{name} = excluded.{name}" for name in columns[1:])
        sql = (
            f"INSERT INTO responses ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT (response_id) DO UPDATE SET {updates}"
        )
        args = [self._in(name, getattr(response, name)) for name in _RESPONSE_COLUMNS]
        args += [json_text(response.input_items), json_text(response.output)]
        args.append(bytes(response.response).decode())
        async with self._tx() as conn:
            await conn.execute(sql, args)

    def _owner_clause(self, response_id: str, owner: str | None) -> tuple[str, builtins.list[Any]]:
        clauses: builtins.list[tuple[str, str, Any]] = [("response_id", "=", response_id)]
        if owner is not None:
            clauses.append(("owner", "=", owner))
        return where_sql(clauses)

    async def get_response(self, response_id: str, *, owner: str | None) -> StoredResponse | None:
        """The owner's response, or None."""
        where, args = self._owner_clause(response_id, owner)
        columns = ", ".join((*_RESPONSE_COLUMNS, "input_items", "output", "response"))
        async with self._read() as conn:
            rows = await conn.fetch(f"SELECT {columns} FROM responses{where}", args)
        if not rows:
            return None
        row = rows[0]
        fields = self._row_dict(_RESPONSE_COLUMNS, row[: len(_RESPONSE_COLUMNS)])
        return StoredResponse(
            **fields,
            input_items=_RAW_LIST.decode(row[5]),
            output=_RAW_LIST.decode(row[6]),
            response=msgspec.Raw(row[7].encode()),
        )

    async def delete_response(self, response_id: str, *, owner: str | None) -> bool:
        """Delete the owner's response."""
        where, args = self._owner_clause(response_id, owner)
        async with self._tx() as conn:
            return bool(await conn.execute(f"DELETE FROM responses{where}", args))

    # --- audit ----------------------------------------------------------------------------

    async def add_audit(self, entry: AuditEntry) -> None:
        """Append an event that changes no record."""
        async with self._tx() as conn:
            await self._write_audit(conn, entry, None, None)

    async def audit_log(
        self, filters: AuditFilter, *, page: int = 1, size: int = 50
    ) -> Page[AuditEntry]:
        """Matching audit entries, newest first."""
        check_paging(page, size)
        names = ("actor", "action", "object_type", "object_id", "request_id")
        clauses = [
            (name, "=", getattr(filters, name))
            for name in names
            if getattr(filters, name) is not None
        ]
        if filters.start is not None:
            clauses.append(("at", ">=", self._dt_in(filters.start)))
        if filters.end is not None:
            clauses.append(("at", "<", self._dt_in(filters.end)))
        where, args = where_sql(clauses)
        async with self._read() as conn:
            count = await conn.fetch(f"SELECT count(*) FROM audit_log{where}", args)
            rows = await conn.fetch(
                f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_log{where} "
                "ORDER BY at DESC, id LIMIT ? OFFSET ?",
                [*args, size, (page - 1) * size],
            )
        items = [self._audit_entry(row) for row in rows]
        return Page(items=items, total=int(count[0][0]), page=page, size=size)

    def _audit_entry(self, row: Sequence[Any]) -> AuditEntry:
        return msgspec.convert(self._row_dict(AUDIT_COLUMNS, row), AuditEntry)

    async def get_audit(self, entry_id: str) -> AuditEntry | None:
        """One audit entry by id."""
        sql = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_log WHERE id = ?"
        async with self._read() as conn:
            rows = await conn.fetch(sql, [entry_id])
        return self._audit_entry(rows[0]) if rows else None
