"""Versioned schema migrations: the `NNNN_name.sql` files shipped as package data.

Each store keeps a `schema_migrations` table and applies the pending files in version order,
all in one transaction (Postgres also takes an advisory lock, so replicas starting together
migrate once). Applying is idempotent: a second run finds nothing pending. Statements in a
file are separated by `;` at the end of a line; the files hold no other semicolons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmux.store.base import Store

__all__ = ["Migration", "load_migrations", "migrate"]

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its version, name and statements."""

    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> tuple[str, ...]:
    """The statements of a migration file, comments and blank lines dropped."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    chunks = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
    return tuple(chunk.strip() for chunk in chunks if chunk.strip())


def load_migrations(dialect: str) -> list[Migration]:
    """The migrations of an engine (`sqlite` or `postgres`), in version order."""
    folder = resources.files("llmux.store.migrations").joinpath(dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is not None:
            statements = split_statements(entry.read_text(encoding="utf-8"))
            found.append(Migration(int(match[1]), match[2], statements))
    found.sort(key=lambda migration: migration.version)
    return found


async def migrate(store: Store) -> list[int]:
    """Bring a store's schema up to date; return the versions applied (for `llmux migrate`)."""
    return await store.migrate()
