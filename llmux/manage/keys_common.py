"""Helpers the key and user endpoints share: duration and budget fields, paging, issuing keys.

`llmux.manage.keys` and `llmux.manage.users` both accept LiteLLM's duration strings and
per-model budgets, list records page by page, and create keys (checking the alias is free).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final, TypeVar

import msgspec

from llmux.errors import Conflict, UnprocessableEntity
from llmux.governance.durations import Duration, next_reset, parse_duration
from llmux.manage.keys_wire import GeneratedKey
from llmux.manage.routes import Ctx
from llmux.store.base import AlreadyExists, FilterValue, Store
from llmux.store.records import Entity, Key, ModelBudget

__all__ = [
    "budget_reset_at",
    "check_alias",
    "check_model_budget",
    "collect",
    "issue_key",
    "page_count",
    "parse_field_duration",
    "settings_changes",
]

E = TypeVar("E", bound=Entity)

_COLLECT_PAGE: Final = 1000


def parse_field_duration(field: str, text: str) -> Duration:
    """`text` as a duration, or 422 naming `field`."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UnprocessableEntity(str(exc), param=field) from None


def budget_reset_at(ctx: Ctx, budget_duration: str | None, now: datetime) -> datetime | None:
    """When a budget period starting `now` ends: rolling, or calendar-aligned per config."""
    if budget_duration is None:
        return None
    duration = parse_field_duration("budget_duration", budget_duration)
    return next_reset(duration, now, ctx.calendar_aligned)


async def collect(store: Store, cls: type[E], filters: Mapping[str, FilterValue]) -> list[E]:
    """Every record of `cls` matching `filters` (all pages)."""
    found: list[E] = []
    page = 1
    while True:
        batch = await store.list(cls, filters=filters, page=page, size=_COLLECT_PAGE)
        found.extend(batch.items)
        if len(found) >= batch.total or not batch.items:
            return found
        page += 1


def page_count(total: int, size: int) -> int:
    """How many pages of `size` hold `total` items."""
    return math.ceil(total / size)


async def check_alias(store: Store, alias: str, token: str | None) -> None:
    """409 naming `key_alias` when another key than `token` already has `alias`."""
    holder = await store.get_key_by_alias(alias)
    if holder is not None and holder.token != token:
        raise Conflict(f"The key alias '{alias}' is already taken.", param="key_alias")


def settings_changes(
    ctx: Ctx, settings: msgspec.Struct, fields: Iterable[str], now: datetime
) -> dict[str, Any]:
    """The `fields` a key or user request sets, plus `budget_duration` with the end of its first
    period (`budget_reset_at`); every `model_max_budget` entry checked (422)."""
    changes = {
        name: value
        for name in fields
        if not isinstance(value := getattr(settings, name), msgspec.UnsetType)
    }
    budget_duration = getattr(settings, "budget_duration", msgspec.UNSET)
    if not isinstance(budget_duration, msgspec.UnsetType):
        changes["budget_duration"] = budget_duration
        changes["budget_reset_at"] = budget_reset_at(ctx, budget_duration, now)
    for model, budget in changes.get("model_max_budget", {}).items():
        check_model_budget(model, budget)
    return changes


def check_model_budget(model: str, budget: ModelBudget) -> None:
    """422 naming `model_max_budget` for a negative limit or a bad `time_period`."""
    if budget.budget_limit < 0:
        raise UnprocessableEntity(
            f"Invalid 'model_max_budget.{model}.budget_limit': must be >= 0.",
            param="model_max_budget",
        )
    if budget.time_period is not None:
        parse_field_duration("model_max_budget", budget.time_period)


async def issue_key(ctx: Ctx, raw: str, key: Key) -> GeneratedKey:
    """Store the new `key` (value `raw`) with its audit entry; 409 on a taken value or alias."""
    if key.key_alias is not None:
        await check_alias(ctx.store, key.key_alias, None)
    try:
        await ctx.store.create(key, audit=ctx.audit("created", "key", key.token))
    except AlreadyExists:
        raise Conflict("A key with this value already exists.", param="key") from None
    # The gateway may have cached "no such key" for this value: drop that answer.
    ctx.invalidate_key(key.token)
    return GeneratedKey(key=raw, **msgspec.structs.asdict(key))
