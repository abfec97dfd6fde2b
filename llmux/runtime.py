"""Everything built from one loaded config: routing table, bindings and dispatcher.

A reload builds a new `Runtime` and swaps the one reference in `RuntimeHolder`; nothing is
mutated in place, so in-flight requests finish on the runtime they started with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from llmux.config import LoadedConfig, ProviderConfig, RoutingConfig, is_enabled
from llmux.config.schema import CooldownConfig, DeploymentTimeoutsConfig, ModelEntry
from llmux.cooldown import Breaker, CooldownPolicy, State
from llmux.dispatch import Binding, Dispatcher
from llmux.fallbacks import FallbackPolicy
from llmux.log import get_logger
from llmux.metrics import Metrics
from llmux.providers import DEFAULT_BASE_URLS, REGISTRY, Target
from llmux.routing import RoutingTable, build_table
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


class RuntimeHolder:
    """The one mutable reference: the runtime new requests use."""

    __slots__ = ("current",)

    def __init__(self, runtime: Runtime) -> None:
        self.current = runtime


def build_runtime(
    loaded: LoadedConfig, http: HttpTransport, metrics: Metrics, link: RedisLink | None = None
) -> Runtime:
    """Resolve providers to codecs and transports, and build the routing table.

    With `link` (the process's Redis link, for `routing.distributed`) routing state is shared.
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
    for deployment in table.by_id.values():
        provider = providers[deployment.provider]
        transport = transports.get(provider.name)
        if transport is None:
            transport = transports[provider.name] = _transport(provider, http)
        bindings[deployment.id] = Binding(
            deployment=deployment,
            provider=REGISTRY[provider.type],
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
    return Runtime(loaded, table, dispatcher, int(time.time()))


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
