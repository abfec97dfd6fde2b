"""Model groups, the deployments that serve them, aliases and each group's routing policy.

Pure data plus pure functions over config; no I/O. A model group is the name clients send; each
`providers[].models` entry adds one deployment to its group. `provider/model` addresses one
provider's deployment directly; `routing.aliases` maps other names onto groups.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from llmux.config import Config, ModelEntry, ProviderConfig, is_enabled
from llmux.config.schema import RoutingConfig, RoutingStrategy, WeightBy
from llmux.errors import ModelNotFound
from llmux.routing.catalogue import known_context_window

__all__ = ["Deployment", "GroupPolicy", "RoutingTable", "attempt_order", "build_table"]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One provider serving one model group under an upstream model name."""

    id: str
    group: str
    provider: str
    upstream_model: str
    weight: float | None
    entry: ModelEntry
    position: int = 0
    """Index in its group (config order); round-robin rotates over it."""
    peers: int = 1
    """How many deployments its group has."""
    context_window: int | None = None
    """Tokens the upstream model accepts (config, else the catalogue); None: unknown."""


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    """How one model group orders its deployments: `routing` defaults plus `routing.groups`."""

    strategy: RoutingStrategy = "simple-shuffle"
    weight_by: WeightBy = "auto"
    latency_buffer: float = 0.1


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """Every model group and its deployments, built once per config."""

    groups: dict[str, tuple[Deployment, ...]]
    by_id: dict[str, Deployment]
    aliases: dict[str, str] = field(default_factory=dict)
    policies: dict[str, GroupPolicy] = field(default_factory=dict)
    default_policy: GroupPolicy = GroupPolicy()

    def lookup(self, model: str) -> tuple[Deployment, ...]:
        """The deployments that may serve `model` (an alias, a group name or `provider/model`)."""
        found = self.groups.get(self.aliases.get(model, model))
        if found is None:
            single = self.by_id.get(model)
            if single is None:
                raise ModelNotFound(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    param="model",
                )
            found = (single,)
        return found

    def policy(self, group: str) -> GroupPolicy:
        """The routing policy of `group` (a group name, not an alias)."""
        return self.policies.get(group, self.default_policy)

    def group_names(self) -> list[str]:
        """Model group names in config order."""
        return list(self.groups)


def build_table(config: Config, supported_types: Iterable[str]) -> RoutingTable:
    """Collect the deployments of every enabled provider whose type has a codec."""
    supported = frozenset(supported_types)
    groups: dict[str, list[Deployment]] = {}
    for provider in config.providers:
        if not is_enabled(provider) or provider.type not in supported:
            continue
        for deployment in _deployments(provider):
            groups.setdefault(deployment.group, []).append(deployment)
    placed = {
        name: tuple(replace(d, position=index, peers=len(deps)) for index, d in enumerate(deps))
        for name, deps in groups.items()
    }
    by_id: dict[str, Deployment] = {}
    for deps in placed.values():
        for deployment in deps:
            by_id.setdefault(deployment.id, deployment)
    routing = config.routing
    default = _default_policy(routing)
    return RoutingTable(
        placed,
        by_id,
        aliases=dict(routing.aliases),
        policies={name: _group_policy(routing, name, default) for name in routing.groups},
        default_policy=default,
    )


def _default_policy(routing: RoutingConfig) -> GroupPolicy:
    return GroupPolicy(routing.strategy, routing.weight_by, routing.latency_buffer)


def _group_policy(routing: RoutingConfig, name: str, default: GroupPolicy) -> GroupPolicy:
    override = routing.groups[name]
    return GroupPolicy(
        override.strategy or default.strategy,
        override.weight_by or default.weight_by,
        default.latency_buffer if override.latency_buffer is None else override.latency_buffer,
    )


def _deployments(provider: ProviderConfig) -> Iterable[Deployment]:
    for item in provider.models:
        entry = ModelEntry(name=item) if isinstance(item, str) else item
        upstream = entry.upstream_model or entry.name
        yield Deployment(
            id=f"{provider.name}/{entry.name}",
            group=entry.name,
            provider=provider.name,
            upstream_model=upstream,
            weight=entry.weight,
            entry=entry,
            context_window=entry.context_window or known_context_window(upstream),
        )


def attempt_order(
    deployments: Sequence[Deployment], attempts: int, rng: random.Random
) -> list[Deployment]:
    """Weighted shuffle without replacement, repeated to fill `attempts` tries.

    A deployment without `weight` counts as weight 1, never 0, so it is not silently starved.
    """
    if len(deployments) == 1:
        return [deployments[0]] * attempts
    order: list[Deployment] = []
    while len(order) < attempts:
        order.extend(_weighted_shuffle(deployments, rng))
    return order[:attempts]


def _weighted_shuffle(deployments: Sequence[Deployment], rng: random.Random) -> list[Deployment]:
    # Efraimidis-Spirakis: sort by u^(1/w); equivalent to repeated weighted draws.
    keyed = []
    for deployment in deployments:
        weight = deployment.weight if deployment.weight is not None else 1.0
        key = rng.random() ** (1.0 / weight) if weight > 0 else -1.0
        keyed.append((key, deployment))
    keyed.sort(key=lambda pair: pair[0], reverse=True)
    return [deployment for _, deployment in keyed]
