"""Governed llmux targets for the benchmark: standalone (SQLite) and distributed (Postgres +
Redis), each with a virtual key whose user, team and organization all carry rate limits and
budgets, so every request goes through authentication, four levels of limits, four budget
lines and the spend ledger. The limits are far above what a run can reach: nothing is refused,
the point is the cost of checking.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from benchmarks import _wrk

__all__ = ["GOVERNED", "MASTER_KEY", "Governed", "governed_config", "seed_key"]

MASTER_KEY = "sk-bench-master"
_RPM = 10**9
_TPM = 10**12
_BUDGET = 10.0**9


@dataclass(frozen=True)
class Governed:
    """One governed target: its name and how its store and counters are reached."""

    name: str
    distributed: bool


GOVERNED = {
    "llmux-gov": Governed("llmux-gov", distributed=False),
    "llmux-dist": Governed("llmux-dist", distributed=True),
}
"""Target name -> governance mode; both are llmux with `auth.master_key` and a seeded key."""


def governed_config(base: str, target: Governed, store_url: str, redis_prefix: str) -> str:
    """`base` (the generated llmux config) with governance on for `target`."""
    extra = f"""
auth:
  master_key: {MASTER_KEY}
"""
    if target.distributed:
        extra += f"""
deployment:
  mode: distributed
routing:
  distributed: true
redis:
  key_prefix: "{redis_prefix}"
"""
    return base.replace("__STORE_URL__", store_url) + extra


def store_for(target: Governed, sqlite_path: str) -> tuple[str, str]:
    """The store URL and Redis prefix of a run (a fresh Postgres schema in distributed mode)."""
    if not target.distributed:
        return f"sqlite:///{sqlite_path}", "llmux-bench:"
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    return f"postgresql://postgres@127.0.0.1:5432/postgres?schema={schema}", f"{schema}:"


def seed_key(store_url: str) -> None:
    """Create the organization, team, user and virtual key the load uses (`_wrk.API_KEY`)."""
    asyncio.run(_seed(store_url))


async def _seed(store_url: str) -> None:
    from llmux.governance.keys import display_name, hash_key
    from llmux.store import open_store
    from llmux.store.records import Key, Organization, Team, User

    store = await open_store(store_url)
    try:
        await store.create(
            Organization(
                organization_id="bench-org", rpm_limit=_RPM, tpm_limit=_TPM, max_budget=_BUDGET
            )
        )
        await store.create(
            Team(
                team_id="bench-team",
                organization_id="bench-org",
                rpm_limit=_RPM,
                tpm_limit=_TPM,
                max_budget=_BUDGET,
            )
        )
        await store.create(
            User(user_id="bench-user", rpm_limit=_RPM, tpm_limit=_TPM, max_budget=_BUDGET)
        )
        key = _wrk.API_KEY
        await store.create(
            Key(
                token=hash_key(key),
                key_name=display_name(key),
                user_id="bench-user",
                team_id="bench-team",
                max_parallel_requests=10**6,
                rpm_limit=_RPM,
                tpm_limit=_TPM,
                max_budget=_BUDGET,
            )
        )
    finally:
        await store.close()


async def _drop_schema(store_url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

    schema = store_url.rsplit("schema=", 1)[-1]
    connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


def drop_store(store_url: str) -> None:
    """Remove a distributed run's Postgres schema."""
    if store_url.startswith("postgresql://"):
        asyncio.run(_drop_schema(store_url))
