"""`PriceBook`: the cost of a call from its usage, with exact, deterministic arithmetic.

Prices are USD per 1M tokens, which is micro-dollars per token. Each price is turned into an
integer number of pico-dollars per token (1e-12 USD; any price with up to six decimals is
exact), token counts multiply it as integers, and the sum becomes a float once, at the end. So a
cost depends only on the model and the usage: a streamed call and a non-streamed call with the
same usage cost exactly the same, in any order of accumulation.

Imports `llmux.types` and the table loader only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import final

from llmux.pricing._table import Price, load_table, normalise
from llmux.types import Usage

__all__ = ["PriceBook"]

_PICO_PER_MICRO = 1_000_000
"""Pico-dollars per micro-dollar: a price per 1M tokens times this is pico-dollars per token."""
_PICO_PER_USD = 1_000_000_000_000
_CACHE_LIMIT = 4096
"""Model names whose lookup is memoised; the names come from config, so this is never reached."""


@final
class PriceBook:
    """The shipped price table plus configured overrides, looked up by upstream model name.

    Lookup tries the exact name, then the normalised name (no provider prefix such as `openai/`
    or `models/`, no snapshot suffix such as `-2024-08-06` or `@20241022`), then the longest
    known prefix that ends at a `-` (`gpt-4o-search-preview` -> `gpt-4o`). Overrides win over
    the shipped table at every step.
    """

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        self._table = dict(load_table())
        for name, price in (overrides or {}).items():
            self._table[name.strip().lower()] = price
            self._table[normalise(name)] = price
        self._found: dict[str, Price | None] = {}

    def price(self, model: str) -> Price | None:
        """The prices of `model`, or `None` when neither the table nor an override knows it."""
        if model in self._found:
            return self._found[model]
        price = self._lookup(model)
        if len(self._found) < _CACHE_LIMIT:
            self._found[model] = price
        return price

    def cost(self, model: str, usage: Usage, override: Price | None = None) -> float | None:
        """USD cost of one call; `None` for an unknown model (the caller charges 0 and warns).

        `usage.input_tokens` includes cached and cache-write tokens and `output_tokens` includes
        reasoning tokens (the OpenAI convention `llmux.types.Usage` follows), so: uncached input
        at the input price, cache reads at `cached_input`, cache writes at `cache_write` (both
        default to the input price) and all output at the output price. A provider that reports
        more cached tokens than input tokens is charged no negative uncached input.
        """
        price = override or self.price(model)
        if price is None:
            return None
        uncached = max(usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
        pico = (
            uncached * _pico(price.input)
            + usage.cached_tokens * _pico(_or(price.cached_input, price.input))
            + usage.cache_write_tokens * _pico(_or(price.cache_write, price.input))
            + usage.output_tokens * _pico(price.output)
        )
        return pico / _PICO_PER_USD

    def estimate(
        self,
        model: str,
        input_tokens: int,
        max_output_tokens: int,
        override: Price | None = None,
    ) -> float:
        """An upper-bound USD cost for a budget reservation: all input uncached, all output used.

        An unknown model estimates 0 (it will also cost 0, see `cost`).
        """
        usage = Usage(input_tokens=input_tokens, output_tokens=max_output_tokens)
        return self.cost(model, usage, override) or 0.0

    def _lookup(self, model: str) -> Price | None:
        exact = self._table.get(model.strip().lower())
        if exact is not None:
            return exact
        name = normalise(model)
        while True:
            price = self._table.get(name)
            if price is not None or "-" not in name:
                return price
            name = name.rsplit("-", 1)[0]


def _pico(usd_per_million: float) -> int:
    return round(usd_per_million * _PICO_PER_MICRO)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
