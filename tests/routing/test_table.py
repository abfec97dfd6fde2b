"""The routing table's aliases and per-group policies, built from `routing` config."""

from __future__ import annotations

import pytest

from llmux.config import ConfigError, parse_config
from llmux.errors import ModelNotFound
from llmux.routing import GroupPolicy
from tests.routing.helpers import table

ROUTING = """strategy: least-busy
latency_buffer: 0.3
aliases: {fast: m, ghost: nowhere}
groups:
  m: {strategy: lowest-latency, weight_by: rpm}"""


def test_alias_resolves_to_its_group() -> None:
    """A name in `routing.aliases` looks up the deployments of the group it names."""
    routed = table("", "", routing=ROUTING)
    assert routed.lookup("fast") == routed.lookup("m")


def test_alias_to_an_unserved_group_is_model_not_found() -> None:
    """An alias whose group no enabled provider serves is a 404 naming the alias."""
    with pytest.raises(ModelNotFound, match="`ghost`"):
        table("", routing=ROUTING).lookup("ghost")


def test_group_override_inherits_unset_keys() -> None:
    """`routing.groups.m` overrides strategy and weight_by; latency_buffer comes from routing."""
    assert table("", routing=ROUTING).policy("m") == GroupPolicy("lowest-latency", "rpm", 0.3)


def test_other_groups_use_the_defaults() -> None:
    """A group without an override gets `routing.strategy` and friends."""
    assert table("", routing=ROUTING).policy("other") == GroupPolicy("least-busy", "auto", 0.3)


def test_deployments_know_their_place_in_the_group() -> None:
    """Each deployment carries its index and its group's size (round-robin rotates on them)."""
    placed = [(d.position, d.peers) for d in table("", "", "").lookup("m")]
    assert placed == [(0, 3), (1, 3), (2, 3)]


def test_negative_latency_buffer_is_rejected() -> None:
    """A negative buffer, default or per group, is a config error naming the key."""
    text = "routing:\n  groups:\n    m: {latency_buffer: -1}\n"
    with pytest.raises(ConfigError, match="latency_buffer"):
        parse_config(text, "routing.yaml", {})
