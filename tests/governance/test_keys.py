"""Virtual key material: format, hashing and display names (`llmux.governance.keys`)."""

from __future__ import annotations

import hashlib
import re

from llmux.governance.keys import display_name, generate_key, hash_key


def test_generated_key_is_sk_and_32_urlsafe_random_bytes() -> None:
    """A new key is `sk-` followed by 43 url-safe base64 characters (32 bytes)."""
    assert re.fullmatch(r"sk-[A-Za-z0-9_\-]{43}", generate_key())


def test_generated_keys_differ() -> None:
    """Every call returns a new key."""
    assert len({generate_key() for _ in range(100)}) == 100


def test_hash_is_sha256_hex_of_the_whole_key() -> None:
    """The stored form is the SHA-256 hex digest of the key, prefix included."""
    assert hash_key("sk-test") == hashlib.sha256(b"sk-test").hexdigest()
    assert len(hash_key(generate_key())) == 64


def test_display_name_shows_only_the_last_four_characters() -> None:
    """Listings show `sk-...` and the key's last four characters."""
    assert display_name("sk-abcdefghxyz1") == "sk-...xyz1"


def test_display_name_of_a_short_key_never_repeats_the_prefix() -> None:
    """A key shorter than the shown tail still displays without a doubled prefix."""
    assert display_name("sk-ab") == "sk-...ab"
