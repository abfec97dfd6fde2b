"""Loads the shipped price table (`prices.json`) and normalises model names for lookup.

Imports msgspec and the standard library only. The table is read once per process, on first use.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass

import msgspec

__all__ = ["Price", "load_table", "normalise"]


@dataclass(frozen=True, slots=True)
class Price:
    """List prices of one model, in USD per 1M tokens (the unit providers publish).

    `cached_input` is the price of input read from the prompt cache and `cache_write` the price
    of input written to it; `None` means the model bills those tokens at the `input` price.
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


class _Entry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    unit: str
    checked: str
    sources: dict[str, str]
    notes: list[str]
    aliases: dict[str, str]
    models: dict[str, _Entry]


_PROVIDER_PREFIX = re.compile(r"^(?:[a-z]{2}\.)?anthropic\.")
"""Bedrock's `anthropic.` / `us.anthropic.` model-id prefix."""
_VERSION_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")
"""Bedrock's `-v2:0` and Vertex's `-v2` revision suffixes."""
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")
"""Snapshot dates: `-2024-08-06` (OpenAI), `-20241022` (Anthropic), `-0613` (legacy OpenAI)."""


def normalise(model: str) -> str:
    """The table name for an upstream model name: lower case, without provider prefix or snapshot.

    `openai/gpt-4o-2024-08-06` -> `gpt-4o`, `models/gemini-2.5-pro` -> `gemini-2.5-pro`,
    `claude-3-5-sonnet-v2@20241022` -> `claude-3-5-sonnet`, `gpt-5-chat-latest` -> `gpt-5-chat`.
    """
    name = model.strip().lower().rsplit("/", 1)[-1]
    name = _PROVIDER_PREFIX.sub("", name.split("@", 1)[0])
    name = name.removesuffix("-latest")
    name = _VERSION_SUFFIX.sub("", name)
    return _DATE_SUFFIX.sub("", name)


@functools.cache
def load_table() -> dict[str, Price]:
    """The shipped prices by normalised model name, aliases included."""
    raw = importlib.resources.files("llmux.pricing").joinpath("prices.json").read_bytes()
    data = msgspec.json.decode(raw, type=_File)
    table = {normalise(name): _price(entry) for name, entry in data.models.items()}
    for alias, target in data.aliases.items():
        table[normalise(alias)] = table[normalise(target)]
    return table


def _price(entry: _Entry) -> Price:
    return Price(entry.input, entry.output, entry.cached_input, entry.cache_write)
