"""The wire shapes of the `/key/*` endpoints: request, query and response structs.

Field names follow LiteLLM's key management API; `llmux.manage.keys` declares the endpoints that
decode and encode these, and `llmux.manage.users` shares the number and paging types.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType

from llmux.store.records import Key, KeyType, ModelBudget

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
]

NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PageNumber = Annotated[int, msgspec.Meta(ge=1, description="1-based page number.")]
PageSize = Annotated[int, msgspec.Meta(ge=1, le=1000, description="Items per page (1..1000).")]


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
