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
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from llmux.errors import Conflict, InvalidRequest, UnprocessableEntity
from llmux.governance.durations import Duration, expires_at, next_reset, parse_duration
from llmux.governance.keys import KEY_PREFIX, display_name, generate_key, hash_key
from llmux.manage.access import (
    hidden,
    manages_key,
    manages_org,
    manages_team,
    require,
    sees_key,
    sees_org,
    sees_team,
    sees_user,
)
from llmux.manage.actor import Actor
from llmux.manage.routes import MANAGE_CONFIG, Ctx, endpoint
from llmux.store.base import AlreadyExists, FilterValue, Store
from llmux.store.records import (
    Budget,
    Entity,
    Key,
    KeyType,
    ModelBudget,
    Organization,
    Team,
    TeamMembership,
    User,
    utcnow,
)

__all__ = [
    "DeleteKeysRequest",
    "DeletedKeys",
    "GenerateKeyRequest",
    "GeneratedKey",
    "KeyInfo",
    "KeyInfoQuery",
    "KeyList",
    "KeyListQuery",
    "KeyRef",
    "KeySettings",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PageNumber",
    "PageSize",
    "RegenerateKeyRequest",
    "UpdateKeyRequest",
    "budget_reset_at",
    "check_alias",
    "check_model_budget",
    "collect",
    "issue_key",
    "page_count",
    "parse_field_duration",
]

E = TypeVar("E", bound=Entity)

NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PageNumber = Annotated[int, msgspec.Meta(ge=1, description="1-based page number.")]
PageSize = Annotated[int, msgspec.Meta(ge=1, le=1000, description="Items per page (1..1000).")]

_COLLECT_PAGE: Final = 1000
_OWNER_FIELDS: Final = frozenset({"key_alias", "metadata", "tags", "aliases"})
"""What a key's owner may change without rights above the key (and `blocked: true`)."""
_PLACEMENT: Final = ("team_id", "user_id", "organization_id")


class KeySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields `/key/generate` and `/key/update` share; an absent field is left as it is."""

    duration: str | None | UnsetType = msgspec.field(default=UNSET)
    """Lifetime ("30d"); null: never expires."""
    key_alias: str | None | UnsetType = UNSET
    team_id: str | None | UnsetType = UNSET
    user_id: str | None | UnsetType = UNSET
    organization_id: str | None | UnsetType = UNSET
    budget_id: str | None | UnsetType = UNSET
    models: list[str] | UnsetType = UNSET
    aliases: dict[str, str] | UnsetType = UNSET
    max_budget: NonNegativeFloat | None | UnsetType = UNSET
    soft_budget: NonNegativeFloat | None | UnsetType = UNSET
    budget_duration: str | None | UnsetType = UNSET
    max_parallel_requests: NonNegativeInt | None | UnsetType = UNSET
    tpm_limit: NonNegativeInt | None | UnsetType = UNSET
    rpm_limit: NonNegativeInt | None | UnsetType = UNSET
    model_max_budget: dict[str, ModelBudget] | UnsetType = UNSET
    model_rpm_limit: dict[str, NonNegativeInt] | UnsetType = UNSET
    model_tpm_limit: dict[str, NonNegativeInt] | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    tags: list[str] | UnsetType = UNSET
    blocked: bool | UnsetType = UNSET
    key_type: KeyType | UnsetType = UNSET
    spend: NonNegativeFloat | UnsetType = UNSET


class GenerateKeyRequest(KeySettings, kw_only=True, forbid_unknown_fields=True):
    """`POST /key/generate`: a new key; `key` chooses its value (else a random `sk-...`)."""

    key: str | UnsetType = UNSET


class UpdateKeyRequest(KeySettings, kw_only=True, forbid_unknown_fields=True):
    """`POST /key/update`: change the given fields of `key` (raw key or token)."""

    key: str


class KeyRef(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /key/block` and `/key/unblock`: the key (raw key or token)."""

    key: str


class DeleteKeysRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /key/delete`: keys (raw or token) and/or aliases; at least one must be given."""

    keys: list[str] = []
    key_aliases: list[str] = []


class RegenerateKeyRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /key/regenerate`: a new value for `key`; the old one works for `grace_period`."""

    key: str
    duration: str | None | UnsetType = UNSET
    grace_period: str | None = None


class KeyInfoQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`GET /key/info`: `key` (raw or token); absent: the caller's own key."""

    key: str | None = None


class KeyListQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`GET /key/list`: filters and paging; `return_full_object` lists records, not tokens."""

    page: PageNumber = 1
    size: PageSize = 50
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    key_alias: str | None = None
    return_full_object: bool = False


class GeneratedKey(Key, kw_only=True):
    """A key as created or regenerated: the record plus `key`, its plaintext (shown once)."""

    key: str


class KeyInfo(msgspec.Struct, kw_only=True):
    """`GET /key/info`: the key's token and its record."""

    key: str
    info: Key


class KeyList(msgspec.Struct, kw_only=True):
    """`GET /key/list`: one page of tokens (or records with `return_full_object`)."""

    keys: list[str | Key]
    total_count: int
    current_page: int
    total_pages: int


class DeletedKeys(msgspec.Struct, kw_only=True):
    """`POST /key/delete`: which of the given keys and aliases were deleted now."""

    deleted_keys: list[str]
    deleted_key_aliases: list[str]


# --- shared helpers (users.py uses them too) ------------------------------------------------


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


async def collect(
    store: Store, cls: type[E], filters: Mapping[str, FilterValue]
) -> builtins.list[E]:
    """Every record of `cls` matching `filters` (all pages)."""
    found: builtins.list[E] = []
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
    await ctx.governance.invalidate_key(key.token)
    return GeneratedKey(key=raw, **msgspec.structs.asdict(key))


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
    if not ctx.actor.is_admin and not any(name in changes for name in _PLACEMENT):
        changes["user_id"] = ctx.actor.user_id
    placement = await _place(ctx, {name: changes.get(name) for name in _PLACEMENT})
    changes.update(placement)
    if changes.get("budget_id") is not None:
        await _require_budget(ctx, changes["budget_id"])
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
    key, team = await _managed_key(ctx, body.key)
    changes = _changes(ctx, body)
    _require_above_owner(ctx.actor, key, team, changes)
    if any(name in changes for name in _PLACEMENT):
        current = {name: changes.get(name, getattr(key, name)) for name in _PLACEMENT}
        changes.update(await _place(ctx, current))
    if changes.get("budget_id") is not None:
        await _require_budget(ctx, changes["budget_id"])
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
    by_value = [(ref, await _deletable(ctx, await _find_key(ctx.store, ref))) for ref in body.keys]
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
    key, _ = await _visible_key(ctx, ref)
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
    old, team = await _managed_key(ctx, body.key)
    now = utcnow()
    expires = old.expires
    if not isinstance(body.duration, UnsetType):
        _require_above_owner(ctx.actor, old, team, {"expires": None})
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
    # The new value exists before the old one goes: a failure in between leaves both working.
    rotated = await _issue_rotated(ctx, raw, fresh)
    await _retire(ctx, old, grace, now)
    return rotated


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
    key, _ = await _managed_key(ctx, body.key)
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
    key, team = await _managed_key(ctx, body.key)
    _require_above_owner(ctx.actor, key, team, {"blocked": False})
    return await _apply(ctx, key, {"blocked": False}, "unblocked", body.key)


# --- finding keys and checking rights -------------------------------------------------------


def _shown(ref: str) -> str:
    """How a key reference appears in errors: never the plaintext."""
    return display_name(ref) if ref.startswith(KEY_PREFIX) else ref


async def _find_key(store: Store, ref: str) -> Key | None:
    """The key whose value or token is `ref`."""
    key = await store.get_key(hash_key(ref))
    if key is None and not ref.startswith(KEY_PREFIX):
        key = await store.get_key(ref)
    return key


async def _team_of(store: Store, key: Key) -> Team | None:
    """The key's team record, if it has one."""
    return None if key.team_id is None else await store.get(Team, key.team_id)


async def _visible_key(ctx: Ctx, ref: str) -> tuple[Key, Team | None]:
    """The key and its team, or 404 when it is missing or the caller may not see it."""
    key = await _find_key(ctx.store, ref)
    team = None if key is None else await _team_of(ctx.store, key)
    if key is None or not sees_key(ctx.actor, key, team):
        raise hidden("key", _shown(ref))
    return key, team


async def _managed_key(ctx: Ctx, ref: str) -> tuple[Key, Team | None]:
    """The key and its team; 404 if invisible, 403 if visible but not the caller's to manage."""
    key, team = await _visible_key(ctx, ref)
    require(
        manages_key(ctx.actor, key, team),
        "to own the key, administer its team, or be org_admin of its organization",
    )
    return key, team


def _above_owner(actor: Actor, key: Key, team: Team | None) -> bool:
    """Rights over the key beyond owning it: proxy_admin, its team's or organization's admin."""
    if actor.is_admin or manages_org(actor, key.organization_id):
        return True
    return team is not None and manages_team(actor, team)


def _require_above_owner(
    actor: Actor, key: Key, team: Team | None, changes: Mapping[str, Any]
) -> None:
    """403 when an owner-only caller changes more than its key's names (blocking is allowed)."""
    lifted = sorted(
        name
        for name, value in changes.items()
        if name not in _OWNER_FIELDS and not (name == "blocked" and value is True)
    )
    if lifted and not _above_owner(actor, key, team):
        require(
            False,
            f"admin rights over the key's team or organization to change {', '.join(lifted)}",
        )


async def _place(ctx: Ctx, placement: dict[str, Any]) -> dict[str, Any]:
    """Check the caller may put a key under this team, user and organization; the placement
    with the organization filled in from the team."""
    team_id, user_id, org_id = (placement[name] for name in _PLACEMENT)
    team = None if team_id is None else await _visible_team(ctx, team_id)
    if team is not None and team.organization_id is not None:
        if org_id not in (None, team.organization_id):
            raise InvalidRequest(
                f"Team '{team_id}' belongs to organization '{team.organization_id}'.",
                param="organization_id",
            )
        org_id = team.organization_id
    if org_id is not None:
        await _visible_org(ctx, org_id)
    if user_id is not None:
        await _visible_owner(ctx, user_id, team)
    require(_may_place(ctx.actor, team, user_id, org_id), _placement_right(team, org_id))
    return {"team_id": team_id, "user_id": user_id, "organization_id": org_id}


def _may_place(actor: Actor, team: Team | None, user_id: str | None, org_id: str | None) -> bool:
    """Whether the caller may own, or administer, a key placed like this."""
    if actor.is_admin:
        return True
    own = user_id is not None and user_id == actor.user_id
    if team is not None:
        return manages_team(actor, team) or (own and team.team_id in actor.teams)
    return manages_org(actor, org_id) or own


def _placement_right(team: Team | None, org_id: str | None) -> str:
    """The right a refused placement lacks, for the 403 message."""
    if team is not None:
        return f"admin rights in team '{team.team_id}' (or a key of your own in it)"
    if org_id is not None:
        return f"org_admin rights in organization '{org_id}'"
    return "proxy_admin rights to create a key for another user"


async def _visible_team(ctx: Ctx, team_id: str) -> Team:
    """The team, or 404 when it is missing or not visible to the caller."""
    team = await ctx.store.get(Team, team_id)
    if team is None or not sees_team(ctx.actor, team):
        raise hidden("team", team_id)
    return team


async def _visible_org(ctx: Ctx, organization_id: str) -> Organization:
    """The organization, or 404 when it is missing or not visible to the caller."""
    org = await ctx.store.get(Organization, organization_id)
    if org is None or not sees_org(ctx.actor, org):
        raise hidden("organization", organization_id)
    return org


async def _visible_owner(ctx: Ctx, user_id: str, team: Team | None) -> User:
    """The user a key is for: visible to the caller, or a member of a team it manages."""
    user = await ctx.store.get(User, user_id)
    if user is not None and sees_user(ctx.actor, user):
        return user
    if user is not None and team is not None and manages_team(ctx.actor, team):
        members = await ctx.store.list_members(
            TeamMembership, group_id=team.team_id, user_id=user_id
        )
        if members:
            return user
    raise hidden("user", user_id)


async def _require_budget(ctx: Ctx, budget_id: str) -> None:
    """Only a proxy_admin attaches reusable budgets (they may be larger than the key's own)."""
    require(ctx.actor.is_admin, "proxy_admin rights to attach a reusable budget")
    if await ctx.store.get(Budget, budget_id) is None:
        raise hidden("budget", budget_id)


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
    changes = {
        name: value
        for name in _DIRECT
        if not isinstance(value := getattr(settings, name), UnsetType)
    }
    now = utcnow()
    if not isinstance(settings.duration, UnsetType):
        changes["expires"] = _expiry(settings.duration, now)
    if not isinstance(settings.budget_duration, UnsetType):
        changes["budget_duration"] = settings.budget_duration
        changes["budget_reset_at"] = budget_reset_at(ctx, settings.budget_duration, now)
    for model, budget in changes.get("model_max_budget", {}).items():
        check_model_budget(model, budget)
    return changes


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
        raise hidden("key", _shown(ref))
    await ctx.governance.invalidate_key(key.token)
    return updated


async def _deletable(ctx: Ctx, key: Key | None) -> Key | None:
    """The key if the caller may delete it; None if missing or invisible; 403 if not managed."""
    if key is None:
        return None
    team = await _team_of(ctx.store, key)
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
            await ctx.governance.invalidate_key(key.token)
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
    await ctx.governance.invalidate_key(old.token)


async def _issue_rotated(ctx: Ctx, raw: str, fresh: Key) -> GeneratedKey:
    """Store the rotated key (alias already its own: no alias check against the old one)."""
    await ctx.store.create(fresh, audit=ctx.audit("created", "key", fresh.token))
    await ctx.governance.invalidate_key(fresh.token)
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
