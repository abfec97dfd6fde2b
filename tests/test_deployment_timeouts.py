"""Per-deployment timeouts: a model entry's `timeouts` override its provider's, field by field."""

from __future__ import annotations

from llmux.config import ModelEntry, ProviderConfig, parse_config
from llmux.runtime import deployment_timeouts
from llmux.upstream import Timeouts

PROVIDER = """
providers:
  - name: p
    type: openai-compatible
    base_url: http://127.0.0.1:1/v1
    api_key: sk-x
    timeouts: {connect: 5s, first_byte: 60s, idle: 30s, total: 90s}
    models:
      - name: fast
        timeouts: {first_byte: 2s, idle: 500ms}
      - plain
"""


def _provider() -> ProviderConfig:
    return parse_config(PROVIDER, "t.yaml", {}).config.providers[0]


def _entry(provider: ProviderConfig, index: int) -> ModelEntry:
    item = provider.models[index]
    return ModelEntry(name=item) if isinstance(item, str) else item


def test_set_fields_override_and_unset_fields_inherit() -> None:
    """`first_byte` and `idle` come from the entry; `connect` and `total` from the provider."""
    provider = _provider()
    timeouts = deployment_timeouts(provider, _entry(provider, 0), 600.0)
    assert timeouts == Timeouts(connect=5.0, first_byte=2.0, idle=0.5, total=90.0)


def test_entry_without_timeouts_uses_the_provider() -> None:
    """A model entry without `timeouts` (here the plain-string form) keeps the provider's."""
    provider = _provider()
    timeouts = deployment_timeouts(provider, _entry(provider, 1), 600.0)
    assert timeouts == Timeouts(connect=5.0, first_byte=60.0, idle=30.0, total=90.0)


def test_server_write_timeout_caps_an_overridden_total() -> None:
    """`server.write_timeout` still bounds a deployment's own `total`."""
    provider = parse_config(
        PROVIDER.replace("idle: 500ms}", "idle: 500ms, total: 1h}"), "t.yaml", {}
    ).config.providers[0]
    assert deployment_timeouts(provider, _entry(provider, 0), 120.0).total == 120.0
