"""Opening the SQLite store while another process holds the file (workers starting together)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from llmux.store import StoreUnavailable
from llmux.store.sqlite import SqliteStore


def _hold(path: Path) -> sqlite3.Connection:
    """Another process's connection holding the whole file (as a migrating worker does)."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


async def test_open_waits_for_a_busy_file_then_uses_wal(tmp_path: Path) -> None:
    """A file held for a moment by another connection is opened once it is free, in WAL mode."""
    path = tmp_path / "llmux.db"
    holder = _hold(path)
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, holder.rollback)
    store = await SqliteStore.open(str(path), busy_timeout_ms=3000)
    await store.close()
    holder.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_open_on_a_file_held_too_long_is_unavailable_and_leaks_no_thread(
    tmp_path: Path,
) -> None:
    """Held past the busy timeout: `StoreUnavailable`, and the connection's thread is closed
    (a leaked one would keep a failed worker process from exiting)."""
    path = tmp_path / "llmux.db"
    holder = _hold(path)
    threads = threading.active_count()
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            await SqliteStore.open(str(path), busy_timeout_ms=200)
    finally:
        holder.close()
    assert threading.active_count() == threads
