"""Routing: model groups from config, `provider/model` addressing, weighted attempt order."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from llmux.config import Config, parse_config
from llmux.errors import ModelNotFound
from llmux.routing import Deployment, RoutingTable, attempt_order, build_table

_SUPPORTED = ("openai", "openai-compatible", "mock")

_CONFIG = """
providers:
  - name: primary
    type: openai
    api_key: sk-primary
    models:
      - gpt-4o-mini
      - name: smart
        upstream_model: gpt-4o
        weight: 9
  - name: backup
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    models:
      - name: smart
        upstream_model: llama-70b
        weight: 1
  - name: keyless
    type: openai
    api_key: ${UNSET_KEY}
    models: [gpt-4o-mini, only-keyless]
  - name: claude
    type: anthropic
    api_key: sk-ant
    models: [claude-sonnet-4-5]
  - name: mock
    type: mock
    models: [mock-gpt]
"""


def _config(text: str = _CONFIG) -> Config:
    return parse_config(text, "routing.yaml", {}).config


def _table() -> RoutingTable:
    return build_table(_config(), _SUPPORTED)


def _deployment(name: str, weight: float | None) -> Deployment:
    """Provider `name`'s deployment of model `m`, configured with `weight` (None: no weight)."""
    entry = "m" if weight is None else f"{{name: m, weight: {weight}}}"
    text = f"providers:\n  - name: {name}\n    type: mock\n    models: [{entry}]\n"
    (found,) = build_table(_config(text), _SUPPORTED).lookup("m")
    assert found.weight == weight
    return found


class TestBuildTable:
    """build_table turns providers' model lists into groups of deployments."""

    def test_groups_in_config_order(self) -> None:
        """Each model name is a group; groups appear in the order config first lists them."""
        assert _table().group_names() == ["gpt-4o-mini", "smart", "mock-gpt"]

    def test_group_collects_every_provider(self) -> None:
        """A group shared by two providers has one deployment per provider, in config order."""
        smart = _table().lookup("smart")
        assert [(d.id, d.upstream_model, d.weight) for d in smart] == [
            ("primary/smart", "gpt-4o", 9.0),
            ("backup/smart", "llama-70b", 1.0),
        ]

    def test_plain_model_uses_its_name_upstream(self) -> None:
        """A plain-string model has no weight and is sent upstream under its own name."""
        (mini,) = _table().lookup("gpt-4o-mini")
        assert (mini.id, mini.group, mini.provider) == (
            "primary/gpt-4o-mini",
            "gpt-4o-mini",
            "primary",
        )
        assert (mini.upstream_model, mini.weight) == ("gpt-4o-mini", None)

    def test_provider_slash_model_addresses_one_deployment(self) -> None:
        """`provider/model` resolves to exactly that provider's deployment."""
        (only,) = _table().lookup("backup/smart")
        assert (only.provider, only.upstream_model) == ("backup", "llama-70b")

    def test_disabled_provider_is_skipped(self) -> None:
        """A provider whose api_key expanded to empty contributes no deployment."""
        table = _table()
        assert [d.provider for d in table.lookup("gpt-4o-mini")] == ["primary"]
        assert "keyless/gpt-4o-mini" not in table.by_id
        assert "only-keyless" not in table.groups

    def test_unsupported_type_is_skipped(self) -> None:
        """A provider whose type has no codec contributes no deployment."""
        table = _table()
        assert "claude-sonnet-4-5" not in table.groups
        assert all(d.provider != "claude" for d in table.by_id.values())

    def test_unknown_model_is_model_not_found(self) -> None:
        """An unknown name raises ModelNotFound naming the model and `param=model`."""
        with pytest.raises(ModelNotFound) as caught:
            _table().lookup("gpt-5-ultra")
        assert caught.value.message == (
            "The model `gpt-5-ultra` does not exist or you do not have access to it."
        )
        assert (caught.value.param, caught.value.code) == ("model", "model_not_found")

    def test_disabled_deployment_cannot_be_addressed_directly(self) -> None:
        """`keyless/gpt-4o-mini` of a disabled provider is not found."""
        with pytest.raises(ModelNotFound):
            _table().lookup("keyless/gpt-4o-mini")


class TestAttemptOrder:
    """attempt_order is a weighted shuffle, repeated to fill the attempts."""

    def test_weights_set_the_first_pick_ratio(self) -> None:
        """With weights 9:1, about 90% of first picks go to the heavy deployment."""
        heavy, light = _table().lookup("smart")
        rng = random.Random(1234)
        firsts = Counter(attempt_order([heavy, light], 1, rng)[0].id for _ in range(2000))
        assert 1700 <= firsts[heavy.id] <= 1900
        assert firsts[heavy.id] + firsts[light.id] == 2000

    def test_missing_weight_counts_as_one(self) -> None:
        """A deployment with no weight against weight 1 gets about half of first picks."""
        unweighted, weighted = _deployment("a", None), _deployment("b", 1.0)
        rng = random.Random(99)
        firsts = Counter(attempt_order([unweighted, weighted], 1, rng)[0].id for _ in range(2000))
        assert 850 <= firsts["a/m"] <= 1150

    def test_missing_weight_is_not_starved(self) -> None:
        """A deployment with no weight still gets some first picks against weight 9."""
        unweighted, heavy = _deployment("a", None), _deployment("b", 9.0)
        rng = random.Random(7)
        firsts = Counter(attempt_order([unweighted, heavy], 1, rng)[0].id for _ in range(2000))
        assert 100 <= firsts["a/m"] <= 300

    def test_zero_weight_goes_last(self) -> None:
        """A weight-0 deployment is never the first pick while another is available."""
        off, on = _deployment("a", 0.0), _deployment("b", 1.0)
        rng = random.Random(5)
        orders = [[d.id for d in attempt_order([off, on], 2, rng)] for _ in range(200)]
        assert all(order == ["b/m", "a/m"] for order in orders)

    def test_each_round_tries_every_deployment_once(self) -> None:
        """Within a round of len(deployments) attempts, no deployment repeats."""
        deployments = [_deployment(name, 1.0) for name in ("a", "b", "c")]
        order = attempt_order(deployments, 3, random.Random(3))
        assert sorted(d.id for d in order) == ["a/m", "b/m", "c/m"]

    def test_attempts_cycle_through_deployments(self) -> None:
        """More attempts than deployments repeat full rounds: 5 attempts over 2 is 2+2+1."""
        heavy, light = _table().lookup("smart")
        order = attempt_order([heavy, light], 5, random.Random(11))
        assert len(order) == 5
        assert {order[0].id, order[1].id} == {heavy.id, light.id}
        assert {order[2].id, order[3].id} == {heavy.id, light.id}

    def test_single_deployment_repeats(self) -> None:
        """One deployment is simply retried `attempts` times."""
        (mini,) = _table().lookup("gpt-4o-mini")
        assert attempt_order([mini], 3, random.Random(0)) == [mini, mini, mini]

    def test_same_seed_same_order(self) -> None:
        """The order depends only on the random source (deterministic under a seed)."""
        smart = _table().lookup("smart")
        first = [d.id for d in attempt_order(smart, 4, random.Random(42))]
        assert [d.id for d in attempt_order(smart, 4, random.Random(42))] == first
