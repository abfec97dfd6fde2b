"""The `/key/*` management endpoints: generate, update, delete, info, list, regenerate, block.

Request and response shapes follow LiteLLM's key management API (same field names, `sk-` keys,
"30s"/"7d"/"1mo" durations), so ops scripts work by changing the base URL. The plaintext key is
returned exactly twice in its life: by `/key/generate` and by `/key/regenerate`; everything else
names a key by its `token` (SHA-256 hash). A request may name a key by either form.

Rights (see `llmux.manage.access`): a key the caller may not see answers 404 as if missing. The
owner of a key manages it only as far as that cannot lift what someone above set: limits,
budgets, models, expiry, type and unblocking need the key's team admin, its organization's
`org_admin` or a `proxy_admin`. Every change is audited in the same transaction and invalidated
in the gateway's key cache at once. Imports llmux.manage's foundation, governance and store.
Lookups and rights are in `key_access`, shared helpers in `keys_common`, shapes in `keys_wire`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import msgspec
from msgspec import UnsetType

from llmux.errors import Conflict, InvalidRequest, UnprocessableEntity
from llmux.governance.durations import Duration, expires_at
from llmux.governance.keys import KEY_PREFIX, display_name, generate_key, hash_key
from llmux.manage.access import hidden, manages_key, require, sees_key
from llmux.manage.key_access import (
    PLACEMENT,
    find_key,
    managed_key,
    place,
    require_above_owner,
    require_reusable_budget,
    shown,
    team_of,
    visible_key,
)
from llmux.manage.keys_common import (
    check_alias,
    collect,
    issue_key,
    page_count,
    parse_field_duration,
    settings_changes,
)
from llmux.manage.keys_wire import (
    DeletedKeys,
    DeleteKeysRequest,
    GeneratedKey,
    GenerateKeyRequest,
    KeyInfo,
    KeyInfoQuery,
    KeyList,
    KeyListQuery,
    KeyRef,
    KeySettings,
    RegenerateKeyRequest,
    UpdateKeyRequest,
)
from llmux.manage.routes import MANAGE_CONFIG, Ctx, endpoint
from llmux.store.base import FilterValue
from llmux.store.records import Key, Team, utcnow

__all__: list[str] = []
"""Nothing to import: loading the module registers the endpoints; the types are in keys_wire."""


# --- endpoints ------------------------------------------------------------------------------


@endpoint(
    "POST",
    "/key/generate",
    summary="Create a virtual key; its value is returned once.",
    tag="keys",
    response=GeneratedKey,
    body=GenerateKeyRequest,
    writes=True,
)
async def generate(ctx: Ctx, body: GenerateKeyRequest) -> GeneratedKey:
    """Create a key owned by the given user, team and organization (default: the caller)."""
    raw = generate_key() if isinstance(body.key, UnsetType) else _custom_value(ctx, body.key)
    changes = _changes(ctx, body)
    if not ctx.actor.is_admin and not any(name in changes for name in PLACEMENT):
        changes["user_id"] = ctx.actor.user_id
    placement = await place(ctx, {name: changes.get(name) for name in PLACEMENT})
    changes.update(placement)
    if changes.get("budget_id") is not None:
        await require_reusable_budget(ctx, changes["budget_id"])
    creator = ctx.actor.user_id or ctx.actor.id
    key = Key(token=hash_key(raw), key_name=display_name(raw), created_by=creator, **changes)
    return await issue_key(ctx, raw, key)


@endpoint(
    "POST",
    "/key/update",
    summary="Change some fields of a key.",
    tag="keys",
    response=Key,
    body=UpdateKeyRequest,
    writes=True,
)
async def update(ctx: Ctx, body: UpdateKeyRequest) -> Key:
    """Apply the given fields to the key; moving it needs rights where it goes."""
    key, team = await managed_key(ctx, body.key)
    changes = _changes(ctx, body)
    require_above_owner(ctx.actor, key, team, changes)
    if any(name in changes for name in PLACEMENT):
        current = {name: changes.get(name, getattr(key, name)) for name in PLACEMENT}
        changes.update(await place(ctx, current))
    if changes.get("budget_id") is not None:
        await require_reusable_budget(ctx, changes["budget_id"])
    if changes.get("key_alias") is not None:
        await check_alias(ctx.store, changes["key_alias"], key.token)
    return await _apply(ctx, key, changes, "updated", body.key)


@endpoint(
    "POST",
    "/key/delete",
    summary="Delete keys by value, token or alias; deleting a missing key is not an error.",
    tag="keys",
    response=DeletedKeys,
    body=DeleteKeysRequest,
    writes=True,
)
async def delete(ctx: Ctx, body: DeleteKeysRequest) -> DeletedKeys:
    """Delete every given key the caller may see (all checked first, so none or all go)."""
    if not body.keys and not body.key_aliases:
        raise UnprocessableEntity("Give `keys` and/or `key_aliases` to delete.", param="keys")
    by_value = [(ref, await _deletable(ctx, await find_key(ctx.store, ref))) for ref in body.keys]
    by_alias = [
        (alias, await _deletable(ctx, await ctx.store.get_key_by_alias(alias)))
        for alias in body.key_aliases
    ]
    return DeletedKeys(
        deleted_keys=await _delete_found(ctx, by_value),
        deleted_key_aliases=await _delete_found(ctx, by_alias),
    )


@endpoint(
    "GET",
    "/key/info",
    summary="One key's record (default: the caller's own key).",
    tag="keys",
    response=KeyInfo,
    query=KeyInfoQuery,
)
async def info(ctx: Ctx, query: KeyInfoQuery) -> KeyInfo:
    """The key named by `?key=`, or the key the caller authenticated with."""
    ref = query.key
    if ref is None:
        if ctx.actor.key is None:
            raise InvalidRequest(
                "The master key has no key record: name one with `?key=`.", param="key"
            )
        ref = ctx.actor.key.token
    key, _ = await visible_key(ctx, ref)
    return KeyInfo(key=key.token, info=key)


@endpoint(
    "GET",
    "/key/list",
    summary="The keys the caller may see, paginated and filtered.",
    tag="keys",
    response=KeyList,
    query=KeyListQuery,
)
async def list_keys(ctx: Ctx, query: KeyListQuery) -> KeyList:
    """A page of keys matching the filters, among those the caller may see."""
    filters: dict[str, FilterValue] = {
        name: value
        for name in ("user_id", "team_id", "organization_id", "key_alias")
        if (value := getattr(query, name)) is not None
    }
    if ctx.actor.sees_all:
        page = await ctx.store.list(Key, filters=filters, page=query.page, size=query.size)
        items, total = page.items, page.total
    else:
        visible = [key for key in await _visible_keys(ctx) if _matches(key, filters)]
        start = (query.page - 1) * query.size
        items, total = visible[start : start + query.size], len(visible)
    keys: list[str | Key] = list(items) if query.return_full_object else [k.token for k in items]
    return KeyList(
        keys=keys,
        total_count=total,
        current_page=query.page,
        total_pages=page_count(total, query.size),
    )


@endpoint(
    "POST",
    "/key/regenerate",
    summary="Give a key a new value; the old one stops working (after `grace_period`).",
    tag="keys",
    response=GeneratedKey,
    body=RegenerateKeyRequest,
    writes=True,
)
async def regenerate(ctx: Ctx, body: RegenerateKeyRequest) -> GeneratedKey:
    """A new value with the old key's settings and spend; the old value is revoked or expires."""
    old, team = await managed_key(ctx, body.key)
    now = utcnow()
    expires = old.expires
    if not isinstance(body.duration, UnsetType):
        require_above_owner(ctx.actor, old, team, {"expires": None})
        expires = _expiry(body.duration, now)
    grace = None
    if body.grace_period is not None:
        grace = parse_field_duration("grace_period", body.grace_period)
    raw = generate_key()
    fresh = msgspec.structs.replace(
        old,
        token=hash_key(raw),
        key_name=display_name(raw),
        expires=expires,
        created_at=now,
        updated_at=now,
        last_used_at=None,
        version=1,
    )
    # One transaction (the request's): the old key is retired first because the new one takes
    # over its alias, which is unique; a failure in between leaves the old key as it was.
    await _retire(ctx, old, grace, now)
    return await _issue_rotated(ctx, raw, fresh)


@endpoint(
    "POST",
    "/key/block",
    summary="Block a key: the gateway refuses it with 401 key_blocked.",
    tag="keys",
    response=Key,
    body=KeyRef,
    writes=True,
)
async def block(ctx: Ctx, body: KeyRef) -> Key:
    """Set `blocked` on the key."""
    key, _ = await managed_key(ctx, body.key)
    return await _apply(ctx, key, {"blocked": True}, "blocked", body.key)


@endpoint(
    "POST",
    "/key/unblock",
    summary="Unblock a key.",
    tag="keys",
    response=Key,
    body=KeyRef,
    writes=True,
)
async def unblock(ctx: Ctx, body: KeyRef) -> Key:
    """Clear `blocked` on the key (needs rights above its owner)."""
    key, team = await managed_key(ctx, body.key)
    require_above_owner(ctx.actor, key, team, {"blocked": False})
    return await _apply(ctx, key, {"blocked": False}, "unblocked", body.key)


# --- key values -----------------------------------------------------------------------------


def _custom_value(ctx: Ctx, value: str) -> str:
    """A client-chosen key value, checked: `sk-` prefix, not the master key."""
    if not value.startswith(KEY_PREFIX) or len(value) <= len(KEY_PREFIX):
        raise UnprocessableEntity(
            f"Invalid 'key': a custom key must start with '{KEY_PREFIX}'.", param="key"
        )
    if value == ctx.request.app[MANAGE_CONFIG].master_key:
        # Same answer as any taken value: says nothing more about the master key.
        raise Conflict("A key with this value already exists.", param="key")
    return value


# --- building changes and applying them -----------------------------------------------------

_DIRECT: Final = (
    "key_alias",
    "team_id",
    "user_id",
    "organization_id",
    "budget_id",
    "models",
    "aliases",
    "max_budget",
    "soft_budget",
    "max_parallel_requests",
    "tpm_limit",
    "rpm_limit",
    "model_max_budget",
    "model_rpm_limit",
    "model_tpm_limit",
    "metadata",
    "tags",
    "blocked",
    "key_type",
    "spend",
)


def _changes(ctx: Ctx, settings: KeySettings) -> dict[str, Any]:
    """The `Key` fields the request sets, durations turned into instants."""
    now = utcnow()
    expiry = {}
    if not isinstance(settings.duration, UnsetType):
        expiry["expires"] = _expiry(settings.duration, now)
    return {**settings_changes(ctx, settings, _DIRECT, now), **expiry}


def _expiry(duration: str | None, now: datetime) -> datetime | None:
    """When a key given lifetime `duration` at `now` expires (None: never)."""
    if duration is None:
        return None
    return expires_at(parse_field_duration("duration", duration), now)


async def _apply(ctx: Ctx, key: Key, changes: dict[str, Any], action: str, ref: str) -> Key:
    """Write `changes` with an audit entry and drop the key from every gateway's cache."""
    updated = await ctx.store.update(
        Key, key.token, changes, audit=ctx.audit(action, "key", key.token)
    )
    if updated is None:  # deleted between the read and the write
        raise hidden("key", shown(ref))
    ctx.invalidate_key(key.token)
    return updated


async def _deletable(ctx: Ctx, key: Key | None) -> Key | None:
    """The key if the caller may delete it; None if missing or invisible; 403 if not managed."""
    if key is None:
        return None
    team = await team_of(ctx.store, key)
    if not sees_key(ctx.actor, key, team):
        return None
    require(
        manages_key(ctx.actor, key, team),
        "to own the key, administer its team, or be org_admin of its organization",
    )
    return key


async def _delete_found(ctx: Ctx, found: list[tuple[str, Key | None]]) -> list[str]:
    """Delete the found keys; the references of those this call deleted."""
    deleted: list[str] = []
    for ref, key in found:
        if key is None:
            continue
        if await ctx.store.delete(Key, key.token, audit=ctx.audit("deleted", "key", key.token)):
            ctx.invalidate_key(key.token)
            deleted.append(ref)
    return deleted


async def _retire(ctx: Ctx, old: Key, grace: Duration | None, now: datetime) -> None:
    """Revoke the old value now, or let it expire after `grace` (its alias moves on at once)."""
    audit = ctx.audit("rotated", "key", old.token)
    if grace is None:
        await ctx.store.delete(Key, old.token, audit=audit)
    else:
        ends = expires_at(grace, now)
        if old.expires is not None:
            ends = min(ends, old.expires)
        await ctx.store.update(Key, old.token, {"expires": ends, "key_alias": None}, audit=audit)
    ctx.invalidate_key(old.token)


async def _issue_rotated(ctx: Ctx, raw: str, fresh: Key) -> GeneratedKey:
    """Store the rotated key (alias already its own: no alias check against the old one)."""
    await ctx.store.create(fresh, audit=ctx.audit("created", "key", fresh.token))
    ctx.invalidate_key(fresh.token)
    return GeneratedKey(key=raw, **msgspec.structs.asdict(fresh))


# --- listing --------------------------------------------------------------------------------


async def _visible_keys(ctx: Ctx) -> list[Key]:
    """Every key a caller without `sees_all` may see, oldest first."""
    found: dict[str, Key] = {}
    for filters in await _scopes(ctx):
        for key in await collect(ctx.store, Key, filters):
            found[key.token] = key
    return sorted(found.values(), key=lambda key: (key.created_at, key.token))


async def _scopes(ctx: Ctx) -> list[dict[str, FilterValue]]:
    """One store filter per reason a key is visible: own, own user's, managed team or org."""
    actor = ctx.actor
    scopes: list[dict[str, FilterValue]] = []
    if actor.key is not None:
        scopes.append({"token": actor.key.token})
    if actor.user_id is not None:
        scopes.append({"user_id": actor.user_id})
    teams = set(actor.team_admin)
    if actor.org_admin:
        orgs = sorted(actor.org_admin)
        scopes.append({"organization_id": orgs})
        teams |= {t.team_id for t in await collect(ctx.store, Team, {"organization_id": orgs})}
    if teams:
        scopes.append({"team_id": sorted(teams)})
    return scopes


def _matches(key: Key, filters: Mapping[str, FilterValue]) -> bool:
    """Whether the key has every filtered value."""
    return all(getattr(key, name) == value for name, value in filters.items())
