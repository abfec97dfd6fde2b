"""Model prices and the cost of a call: the shipped table (`prices.json`) plus config overrides.

A leaf package: imports `llmux.types` and msgspec only. Prices are USD per 1M tokens.
"""

from __future__ import annotations

from llmux.pricing._table import Price, normalise
from llmux.pricing.book import PriceBook

__all__ = ["Price", "PriceBook", "normalise"]
