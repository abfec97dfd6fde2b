"""Persistent governance state: records, the `Store` Protocol, and its three backends.

`open_store(url)` picks the backend from the URL: `memory://` (development),
`sqlite:///abs/path/file.db` or `sqlite://relative/file.db` (standalone default;
`sqlite:///:memory:` for a throwaway database) or
`postgresql://user@host/db?schema=name` (distributed; `schema` defaults to `public`).
Migrations run on open unless `migrate=False` (then run `llmux migrate`).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from llmux.store.base import (
    AlreadyExists,
    AuditFilter,
    Page,
    SpendFilter,
    Store,
    StoreError,
    StoreUnavailable,
    ValueTaken,
)
from llmux.store.memory import MemoryStore

__all__ = [
    "AlreadyExists",
    "AuditFilter",
    "MemoryStore",
    "Page",
    "SpendFilter",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "ValueTaken",
    "open_store",
]


async def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the store a URL names and, unless told not to, bring its schema up to date."""
    store = await _open(url)
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store


async def _open(url: str) -> Store:
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryStore()
    if parts.scheme == "sqlite":
        from llmux.store.sqlite import SqliteStore

        path = parts.netloc + parts.path
        if path in {"", "/"}:
            raise ValueError(f"sqlite URL needs a file path (sqlite:///path/to.db), got {url!r}")
        return await SqliteStore.open(":memory:" if path == "/:memory:" else path)
    if parts.scheme in {"postgres", "postgresql"}:
        from llmux.store.postgres import PostgresStore

        query = dict(parse_qsl(parts.query))
        schema = query.pop("schema", "public")
        dsn = urlunsplit(parts._replace(query=urlencode(query)))
        return await PostgresStore.open(dsn, schema=schema)
    raise ValueError(f"unsupported store URL {url!r} (memory://, sqlite:///..., postgresql://...)")
