"""The context-window filter: the built-in catalogue, config overrides, and `fit_context`."""

from __future__ import annotations

import pytest

from llmux.errors import InvalidRequest
from llmux.routing import fit_context, known_context_window
from tests.routing.helpers import group


@pytest.mark.parametrize(
    ("model", "window"),
    [
        ("gpt-4o", 128_000),
        ("gpt-4o-2024-08-06", 128_000),
        ("gpt-4o-mini-2024-07-18", 128_000),
        ("gpt-4.1-nano-2025-04-14", 1_047_576),
        ("o1-mini-2024-09-12", 128_000),
        ("o3-mini", 200_000),
        ("claude-3-5-sonnet-20241022", 200_000),
        ("claude-3-7-sonnet-latest", 200_000),
        ("claude-sonnet-4-5@20250929", 200_000),
        ("gemini-1.5-pro-002", 2_097_152),
        ("models/gemini-2.5-flash", 1_048_576),
    ],
)
def test_catalogue_knows_current_models_and_dated_names(model: str, window: int) -> None:
    """Exact names, dated or suffixed names and `vendor/` prefixes find their window."""
    assert known_context_window(model) == window


@pytest.mark.parametrize("model", ["gpt-4", "llama-3.1-70b", "my-azure-deployment", "o"])
def test_catalogue_does_not_guess_unknown_models(model: str) -> None:
    """A name that is no catalogue entry (nor one followed by a suffix) is unknown."""
    assert known_context_window(model) is None


def test_config_context_window_overrides_the_catalogue() -> None:
    """A model entry's `context_window` wins; otherwise the upstream model's catalogue entry."""
    configured, catalogued, unknown = group(
        "upstream_model: gpt-4o, context_window: 8000",
        "upstream_model: claude-3-5-haiku-20241022",
        "",
    )
    assert configured.context_window == 8000
    assert catalogued.context_window == 200_000
    assert unknown.context_window is None


def test_fit_context_drops_only_too_small_known_windows() -> None:
    """A known window under the need is dropped; larger and unknown windows stay."""
    small, large, unknown = group("context_window: 100", "context_window: 1000", "")
    kept, dropped = fit_context([small, large, unknown], "m", lambda: 500)
    assert kept == [large, unknown]
    assert dropped == [small]


def test_fit_context_skips_the_estimate_when_no_window_is_known() -> None:
    """With no known window nothing is estimated (the body is never decoded)."""
    deployments = group("", "")

    def needed() -> int:
        raise AssertionError("estimated")

    assert fit_context(deployments, "m", needed) == (list(deployments), [])


def test_fit_context_with_none_left_is_context_length_exceeded() -> None:
    """When every window is too small: 400 `context_length_exceeded` naming model and estimate."""
    deployments = group("context_window: 100", "context_window: 200")
    with pytest.raises(InvalidRequest) as caught:
        fit_context(deployments, "m", lambda: 4321)
    error = caught.value
    assert (error.http_status, error.code) == (400, "context_length_exceeded")
    assert "`m`" in error.message and "4321" in error.message and "200" in error.message
    assert not error.retryable
