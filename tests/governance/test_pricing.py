"""The shipped price table, model-name normalisation and the cost of a call."""

from __future__ import annotations

import pytest

from llmux.pricing import Price, PriceBook, normalise
from llmux.pricing._table import load_table
from llmux.types import Usage

BOOK = PriceBook()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        pytest.param("gpt-4o", Price(2.50, 10.00, 1.25), id="openai"),
        pytest.param("gpt-4.1-mini", Price(0.40, 1.60, 0.10), id="openai-4.1"),
        pytest.param("gpt-5-nano", Price(0.05, 0.40, 0.005), id="openai-5"),
        pytest.param("o4-mini", Price(1.10, 4.40, 0.275), id="openai-o-series"),
        pytest.param("text-embedding-3-small", Price(0.02, 0.0), id="openai-embeddings"),
        pytest.param("claude-sonnet-4-5", Price(3.00, 15.00, 0.30, 3.75), id="anthropic"),
        pytest.param("claude-opus-4-1", Price(15.00, 75.00, 1.50, 18.75), id="anthropic-opus"),
        pytest.param("claude-3-5-haiku", Price(0.80, 4.00, 0.08, 1.00), id="anthropic-haiku"),
        pytest.param("gemini-2.5-pro", Price(1.25, 10.00, 0.125), id="gemini"),
        pytest.param("gemini-2.0-flash-lite", Price(0.075, 0.30), id="gemini-no-cache"),
    ],
)
def test_known_models_have_their_list_prices(model: str, expected: Price) -> None:
    """Each provider's current models are in the shipped table at their list prices."""
    assert BOOK.price(model) == expected


@pytest.mark.parametrize(
    ("upstream", "table"),
    [
        pytest.param("openai/gpt-4o-2024-08-06", "gpt-4o", id="provider-prefix-and-date"),
        pytest.param("azure/gpt-4o-mini", "gpt-4o-mini", id="azure-prefix"),
        pytest.param("claude-sonnet-4-5-20250929", "claude-sonnet-4-5", id="anthropic-date"),
        pytest.param("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet", id="vertex-at"),
        pytest.param(
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet", id="bedrock"
        ),
        pytest.param("models/gemini-2.5-flash", "gemini-2.5-flash", id="gemini-models-prefix"),
        pytest.param("gpt-3.5-turbo-0125", "gpt-3.5-turbo", id="legacy-date"),
        pytest.param("GPT-4o", "gpt-4o", id="case"),
        pytest.param("gpt-5-chat-latest", "gpt-5-chat", id="latest"),
    ],
)
def test_normalise_strips_prefixes_and_snapshots(upstream: str, table: str) -> None:
    """Provider prefixes, snapshot dates and revision suffixes are removed."""
    assert normalise(upstream) == table


def test_dated_snapshot_costs_like_its_model() -> None:
    """A dated upstream name resolves to the undated table entry."""
    assert BOOK.price("openai/gpt-4.1-2025-04-14") == BOOK.price("gpt-4.1")


def test_unlisted_variant_falls_back_to_longest_known_prefix() -> None:
    """`gemini-2.5-flash-preview-05-20` is priced as `gemini-2.5-flash`, not `gemini-2.5`."""
    assert BOOK.price("gemini-2.5-flash-preview-05-20") == BOOK.price("gemini-2.5-flash")


def test_longer_known_name_wins_over_its_prefix() -> None:
    """`o3-pro` has its own price and does not fall back to `o3`."""
    assert BOOK.price("o3-pro-2025-06-10") == Price(20.00, 80.00)


def test_prefix_fallback_stops_at_dash_boundaries() -> None:
    """`gpt-4.5-preview` is not mistaken for `gpt-4` (the prefix must end at a dash)."""
    assert BOOK.price("gpt-4.5-preview") is None


def test_azure_spelling_is_an_alias() -> None:
    """Azure's `gpt-35-turbo` deployment name costs like `gpt-3.5-turbo`."""
    assert BOOK.price("gpt-35-turbo") == BOOK.price("gpt-3.5-turbo")


def test_unknown_model_costs_none() -> None:
    """An unknown model has no price, so the caller can warn and charge 0."""
    assert BOOK.cost("my-private-llm", Usage(input_tokens=10, output_tokens=10)) is None


def test_unknown_model_estimates_zero() -> None:
    """A reservation for an unknown model is 0, matching what it will cost."""
    assert BOOK.estimate("my-private-llm", 1000, 1000) == 0.0


def test_plain_cost_is_input_plus_output() -> None:
    """1M input and 1M output tokens of gpt-4o cost $2.50 + $10.00."""
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert BOOK.cost("gpt-4o", usage) == 12.5


def test_cached_input_is_charged_at_the_cached_price() -> None:
    """Cached tokens are part of input_tokens and cost the cached-input price instead."""
    usage = Usage(input_tokens=1_000_000, cached_tokens=400_000)
    assert BOOK.cost("gpt-4o", usage) == 0.6 * 2.50 + 0.4 * 1.25


def test_cache_writes_are_charged_at_the_cache_write_price() -> None:
    """Anthropic cache writes (part of input_tokens) cost the cache-write price."""
    usage = Usage(
        input_tokens=1_000_000, cached_tokens=200_000, cache_write_tokens=300_000, output_tokens=0
    )
    expected = 0.5 * 3.00 + 0.2 * 0.30 + 0.3 * 3.75
    assert BOOK.cost("claude-sonnet-4-5", usage) == pytest.approx(expected, abs=1e-12)


def test_missing_cache_prices_default_to_the_input_price() -> None:
    """A model without cache prices bills cached and cache-write tokens as plain input."""
    usage = Usage(input_tokens=1_000_000, cached_tokens=250_000, cache_write_tokens=250_000)
    assert BOOK.cost("gpt-3.5-turbo", usage) == 0.50


def test_reasoning_tokens_are_not_charged_twice() -> None:
    """Reasoning tokens are part of output_tokens and billed once at the output price."""
    usage = Usage(input_tokens=0, output_tokens=1_000_000, reasoning_tokens=900_000)
    assert BOOK.cost("o3", usage) == 8.00


def test_more_cached_than_input_is_not_a_negative_charge() -> None:
    """A misreported usage with cached > input charges no negative uncached input."""
    usage = Usage(input_tokens=100, cached_tokens=200)
    cost = BOOK.cost("gpt-4o", usage)
    assert cost is not None
    assert cost >= 0


def test_cost_is_exact_and_order_independent() -> None:
    """Summing the cost of one token a million times equals the cost of a million tokens."""
    one = BOOK.cost("gemini-1.5-flash-8b", Usage(input_tokens=1))
    assert one == 0.0375 / 1_000_000
    assert BOOK.cost("gemini-1.5-flash-8b", Usage(input_tokens=1_000_000)) == 0.0375


def test_same_usage_costs_the_same_every_time() -> None:
    """Cost is a pure function: the same usage (streamed or not) gives the identical float."""
    usage = Usage(input_tokens=12_345, cached_tokens=2_000, output_tokens=678, reasoning_tokens=9)
    assert BOOK.cost("gpt-4.1", usage) == PriceBook().cost("gpt-4.1", usage)


def test_constructor_override_replaces_the_table() -> None:
    """An override configured for a model name wins over the shipped price."""
    book = PriceBook({"gpt-4o": Price(1.0, 2.0)})
    assert book.cost("openai/gpt-4o-2024-11-20", Usage(input_tokens=1_000_000)) == 1.0


def test_override_prices_a_model_the_table_lacks() -> None:
    """An override gives a private model a price."""
    book = PriceBook({"my-private-llm": Price(0.5, 1.5)})
    assert book.cost("my-private-llm", Usage(output_tokens=2_000_000)) == 3.0


def test_per_call_override_wins_over_the_book() -> None:
    """A per-deployment override passed to `cost` is used instead of any lookup."""
    usage = Usage(input_tokens=1_000_000)
    assert BOOK.cost("gpt-4o", usage, override=Price(0.25, 0.0)) == 0.25


def test_estimate_assumes_uncached_input_and_the_full_output_cap() -> None:
    """The reservation estimate is an upper bound: no cache discount, every output token."""
    assert BOOK.estimate("gpt-4o-mini", 1_000_000, 1_000_000) == 0.15 + 0.60


def test_every_shipped_price_is_sane() -> None:
    """No negative price, and cache reads never cost more than plain input."""
    for name in ("gpt-4o", "claude-opus-4-5", "gemini-2.5-flash-lite"):
        assert BOOK.price(name) is not None
    for price in load_table().values():
        assert min(price.input, price.output) >= 0
        assert price.cached_input is None or price.cached_input <= price.input
        assert price.cache_write is None or price.cache_write >= price.input
