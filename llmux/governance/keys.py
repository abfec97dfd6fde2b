"""Virtual key material: new `sk-...` keys, the hash they are stored under, their display name.

A key is shown to its owner once, at creation; the store keeps only `hash_key(key)` (the
`token` of `llmux.store.records.Key`) and `display_name(key)` for listings. Imports nothing
from llmux.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

__all__ = ["KEY_PREFIX", "display_name", "generate_key", "hash_key"]

KEY_PREFIX: Final = "sk-"
"""Every virtual key starts with this, as OpenAI keys do (SDKs and log redaction expect it)."""

_RANDOM_BYTES: Final = 32
_SHOWN_TAIL: Final = 4


def generate_key() -> str:
    """A new virtual key: `sk-` and 32 random bytes, url-safe base64 (43 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def hash_key(key: str) -> str:
    """The SHA-256 hex digest of `key`: the only form a key is stored or looked up in."""
    return hashlib.sha256(key.encode()).hexdigest()


def display_name(key: str) -> str:
    """A recognisable but useless form of `key` for listings: `sk-...` and its last 4 chars."""
    return f"{KEY_PREFIX}...{key.removeprefix(KEY_PREFIX)[-_SHOWN_TAIL:]}"
