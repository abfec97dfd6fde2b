"""Everything built from one loaded config: routing table, bindings and dispatcher.

A reload builds a new `Runtime` and swaps the one reference in `RuntimeHolder`; nothing is
mutated in place, so in-flight requests finish on the runtime they started with. Given the
previous runtime, the new one keeps the routing observations and breaker state of every
deployment whose config did not change; new and changed deployments start fresh.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from llmux.config import LoadedConfig, ProviderConfig, RoutingConfig, is_enabled
from llmux.config.schema import CooldownConfig, DeploymentTimeoutsConfig, ModelEntry
from llmux.cooldown import Breaker, CooldownPolicy, State
from llmux.dispatch import Binding, Dispatcher
from llmux.fallbacks import FallbackPolicy
from llmux.frontdoor.doors import FrontDoors
from llmux.governance.costing import Costing, DeploymentPrice, price_override
from llmux.log import get_logger
from llmux.metrics import Metrics
from llmux.pricing import PriceBook
from llmux.providers import DEFAULT_BASE_URLS, REGISTRY, Target
from llmux.routing import Deployment, RoutingTable, build_table
from llmux.routing.stats import LocalRouterStats
from llmux.state import RedisLink, RedisRouterStats
from llmux.upstream import HttpTransport, MockTransport, Timeouts, Transport

__all__ = ["Runtime", "RuntimeHolder", "build_runtime", "deployment_timeouts"]


@dataclass(frozen=True, slots=True)
class Runtime:
    """The immutable serving state derived from one config."""

    loaded: LoadedConfig
    table: RoutingTable
    dispatcher: Dispatcher
    created: int
    costing: Costing

    def deployments_of(self, model: str) -> list[str]:
        """The deployment ids a model name routes to; 404 `model_not_found` if none."""
        return [deployment.id for deployment in self.table.lookup(model)]


class RuntimeHolder:
    """The one mutable reference: the runtime new requests use."""

    __slots__ = ("current",)

    def __init__(self, runtime: Runtime) -> None:
        self.current = runtime


def build_runtime(
    loaded: LoadedConfig,
    http: HttpTransport,
    metrics: Metrics,
    link: RedisLink | None = None,
    previous: Runtime | None = None,
) -> Runtime:
    """Resolve providers to codecs and transports, and build the routing table.

    With `link` (the process's Redis link, for `routing.distributed`) routing state is shared.
    With `previous` (a reload) unchanged deployments keep their routing state.
    """
    config = loaded.config
    for message in loaded.warnings:
        get_logger().warning("config_warning", message=message)
    for provider in config.providers:
        if is_enabled(provider) and provider.type not in REGISTRY:
            get_logger().warning(
                "provider_type_unavailable",
                provider=provider.name,
                type=provider.type,
                message=f"provider type {provider.type!r} has no codec yet; provider skipped",
            )
    table = build_table(config, REGISTRY)
    for name in config.routing.groups:
        if name not in table.groups:
            get_logger().warning(
                "routing_group_unknown",
                group=name,
                message=f"routing.groups names {name!r}, which no enabled provider serves",
            )
    for alias, group in config.routing.aliases.items():
        if group not in table.groups:
            get_logger().warning(
                "routing_alias_unknown",
                alias=alias,
                group=group,
                message=f"routing.aliases maps {alias!r} to {group!r}, which no enabled"
                " provider serves",
            )
    providers = {p.name: p for p in config.providers}
    bindings: dict[str, Binding] = {}
    transports: dict[str, Transport] = {}
    codecs = {name: FrontDoors(codec) for name, codec in REGISTRY.items()}
    for deployment in table.by_id.values():
        provider = providers[deployment.provider]
        transport = transports.get(provider.name)
        if transport is None:
            transport = transports[provider.name] = _transport(provider, http)
        bindings[deployment.id] = Binding(
            deployment=deployment,
            provider=codecs[provider.type],
            transport=transport,
            target=Target(
                provider=provider.name,
                base_url=_base_url(provider),
                api_key=provider.api_key,
                upstream_model=deployment.upstream_model,
                headers=provider.headers,
                api_version=provider.api_version,
                max_output_tokens=deployment.entry.max_output_tokens,
                thinking_budget=deployment.entry.thinking_budget,
            ),
            timeouts=deployment_timeouts(provider, deployment.entry, config.server.write_timeout),
        )
    metrics.know([*table.groups, *table.aliases], table.by_id)
    shared = None
    if link is not None and config.routing.distributed:
        shared = RedisRouterStats(link, {d.id: d.group for d in table.by_id.values()})
    breaker = _breaker(config.routing.cooldown, metrics, shared)
    if shared is not None:
        shared.bind(breaker)
    dispatcher = Dispatcher(
        table,
        bindings,
        config.routing.retry_count,
        metrics,
        stats=shared,
        breaker=breaker,
        fallbacks=_fallbacks(config.routing, set(table.groups) | set(config.routing.aliases)),
    )
    if previous is not None:
        _carry_state(previous, dispatcher, _unchanged(previous, loaded, table))
    costing = Costing(
        price_book(),
        {
            d.id: DeploymentPrice(d.upstream_model, d.provider, price_override(d.entry))
            for d in table.by_id.values()
        },
    )
    return Runtime(loaded, table, dispatcher, int(time.time()), costing)


def _unchanged(previous: Runtime, loaded: LoadedConfig, table: RoutingTable) -> list[str]:
    """Deployments whose own settings and provider are the same in both configs."""
    old_providers = {p.name: p for p in previous.loaded.config.providers}
    new_providers = {p.name: p for p in loaded.config.providers}
    same = []
    for deployment in table.by_id.values():
        before = previous.table.by_id.get(deployment.id)
        if (
            before is not None
            and _settings(before) == _settings(deployment)
            and old_providers.get(deployment.provider) == new_providers.get(deployment.provider)
        ):
            same.append(deployment.id)
    return same


def _settings(deployment: Deployment) -> tuple[object, ...]:
    # Position and peer count follow from the rest of the group, not from this deployment.
    return (
        deployment.group,
        deployment.upstream_model,
        deployment.weight,
        deployment.entry,
        deployment.context_window,
    )


def _carry_state(previous: Runtime, dispatcher: Dispatcher, deployments: list[str]) -> None:
    dispatcher.breaker.carry_from(previous.dispatcher.breaker, deployments)
    old_stats, new_stats = previous.dispatcher.stats, dispatcher.stats
    # Shared (Redis) stats live outside the process and need no carrying.
    if isinstance(old_stats, LocalRouterStats) and isinstance(new_stats, LocalRouterStats):
        groups = {previous.table.by_id[d].group for d in deployments}
        new_stats.carry_from(old_stats, deployments, groups)


@functools.cache
def price_book() -> PriceBook:
    """The shipped price table, loaded once per process."""
    return PriceBook()


def deployment_timeouts(
    provider: ProviderConfig, entry: ModelEntry, write_timeout: float
) -> Timeouts:
    """The provider's timeouts with the model entry's overrides, field by field."""
    base, own = provider.timeouts, entry.timeouts
    if own is None:
        own = DeploymentTimeoutsConfig()
    return Timeouts(
        connect=base.connect if own.connect is None else own.connect,
        first_byte=base.first_byte if own.first_byte is None else own.first_byte,
        idle=base.idle if own.idle is None else own.idle,
        # server.write_timeout caps how long any non-streaming answer may take.
        total=min(base.total if own.total is None else own.total, write_timeout),
    )


def _breaker(
    cooldown: CooldownConfig, metrics: Metrics, shared: RedisRouterStats | None
) -> Breaker:
    policy = CooldownPolicy(
        enabled=cooldown.enabled,
        period=cooldown.period,
        max_period=cooldown.max_period,
        failure_rate=cooldown.failure_rate,
        min_samples=cooldown.min_samples,
        window=cooldown.window,
        max_wait=cooldown.max_wait,
    )

    def changed(deployment: str, state: State) -> None:
        metrics.set_deployment_state(deployment, int(state))
        if shared is not None and state is State.COOLING:
            shared.cooled(deployment)

    return Breaker(policy, on_change=changed)


def _fallbacks(routing: RoutingConfig, known: set[str]) -> FallbackPolicy:
    maps = {
        "fallbacks": routing.fallbacks,
        "context_window_fallbacks": routing.context_window_fallbacks,
        "content_policy_fallbacks": routing.content_policy_fallbacks,
    }
    for option, table in maps.items():
        for key, targets in table.items():
            for group in (key, *targets):
                if group != "*" and group not in known:
                    get_logger().warning(
                        "fallback_group_unknown",
                        option=f"routing.{option}",
                        group=group,
                        message=f"routing.{option} names {group!r}, which no enabled provider"
                        " serves; it is skipped",
                    )
    policy = FallbackPolicy(
        enabled=routing.fallback_enabled,
        general=routing.fallbacks,
        context_window=routing.context_window_fallbacks,
        content_policy=routing.content_policy_fallbacks,
    )
    return policy.restricted_to(known)


def _transport(provider: ProviderConfig, http: HttpTransport) -> Transport:
    if provider.type == "mock":
        return MockTransport(provider.mock)
    return http


def _base_url(provider: ProviderConfig) -> str:
    url = provider.base_url or DEFAULT_BASE_URLS.get(provider.type, "")
    return url.rstrip("/")
