"""The configuration schema: frozen msgspec Structs that reject unknown keys.

Durations accept `500ms`, `30s`, `10m`, `1h` or a number of seconds; sizes accept `32MiB`,
`512KiB`, `1GB` or a number of bytes. Imports msgspec only; `llmux.config.loader` fills these.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = [
    "AuthConfig",
    "ByteSize",
    "Config",
    "CooldownConfig",
    "DeploymentConfig",
    "DeploymentTimeoutsConfig",
    "Duration",
    "GroupRoutingConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MockOptions",
    "ModelEntry",
    "ProviderConfig",
    "ProviderType",
    "RedisConfig",
    "RoutingConfig",
    "RoutingStrategy",
    "ServerConfig",
    "TimeoutsConfig",
    "UpstreamPoolConfig",
    "WeightBy",
]


class Duration(float):
    """Seconds, written in config as `30s`, `500ms`, `2m`, `1h` or a plain number."""


class ByteSize(int):
    """Bytes, written in config as `32MiB`, `512KiB`, `10MB` or a plain number."""


ProviderType = Literal["openai", "openai-compatible", "azure", "anthropic", "gemini", "mock"]
"""Every provider type llmux knows; each maps to one codec in `llmux.providers`."""

RoutingStrategy = Literal[
    "simple-shuffle", "round-robin", "lowest-latency", "least-busy", "lowest-tpm-rpm", "lowest-cost"
]
"""The six routing strategies."""

WeightBy = Literal["auto", "weight", "rpm", "tpm", "uniform"]
"""What simple-shuffle weighs deployments by; `auto` is the first key any deployment sets."""


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: immutable, and a typo is an error."""


class ServerConfig(_Section, frozen=True):
    """Listening sockets and the limits applied to client connections."""

    host: str = "0.0.0.0"
    port: int = 8080
    admin_port: int = 8081
    read_timeout: Duration = Duration(30.0)
    write_timeout: Duration = Duration(600.0)
    max_body_size: ByteSize = ByteSize(32 * 1024 * 1024)
    shutdown_grace: Duration = Duration(30.0)
    keepalive_timeout: Duration = Duration(75.0)
    abandoned_stream_drain: Duration = Duration(60.0)
    admin_max_body_size: ByteSize = ByteSize(1024 * 1024)
    cors_origins: tuple[str, ...] = ()
    admin_cors_origins: tuple[str, ...] = ()
    watch_config: bool = False


class DeploymentConfig(_Section, frozen=True):
    """Where state lives; see ARCHITECTURE.md "Deployment modes"."""

    mode: Literal["standalone", "distributed", "development"] = "standalone"


class TimeoutsConfig(_Section, frozen=True):
    """Upstream timeouts. Streams have no total limit, only `idle` between frames."""

    connect: Duration = Duration(10.0)
    first_byte: Duration = Duration(600.0)
    idle: Duration = Duration(300.0)
    total: Duration = Duration(600.0)


class DeploymentTimeoutsConfig(_Section, frozen=True):
    """A model entry's overrides of its provider's `timeouts`; an unset field inherits."""

    connect: Duration | None = None
    first_byte: Duration | None = None
    idle: Duration | None = None
    total: Duration | None = None


class MockOptions(_Section, frozen=True):
    """Behaviour of the built-in `mock` provider."""

    latency: Duration = Duration(0.0)
    chunks: int = 8
    chunk_delay: Duration = Duration(0.0)
    embedding_dimensions: int = 8


class ModelEntry(_Section, frozen=True):
    """One model a provider serves; the plain-string form is `ModelEntry(name=...)`."""

    name: str
    upstream_model: str | None = None
    weight: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    input_cost_per_million: float | None = None
    output_cost_per_million: float | None = None
    cached_input_cost_per_million: float | None = None
    cache_write_cost_per_million: float | None = None
    tags: tuple[str, ...] = ()
    order: int | None = None
    max_output_tokens: int | None = None
    thinking_budget: int | None = None
    timeouts: DeploymentTimeoutsConfig | None = None
    context_window: int | None = None
    """Tokens of input plus output the upstream model accepts; unset: the built-in catalogue."""


class ProviderConfig(_Section, frozen=True):
    """One upstream account: its type, credentials, base URL and models."""

    name: str
    type: ProviderType
    api_key: str | None = None
    base_url: str | None = None
    api_version: str | None = None
    models: tuple[str | ModelEntry, ...] = ()
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    timeouts: TimeoutsConfig = TimeoutsConfig()
    mock: MockOptions = MockOptions()


class GroupRoutingConfig(_Section, frozen=True):
    """Per-group overrides of the routing defaults (`routing.groups.<group>`); unset inherits."""

    strategy: RoutingStrategy | None = None
    weight_by: WeightBy | None = None
    latency_buffer: float | None = None


class CooldownConfig(_Section, frozen=True):
    """Per-deployment circuit breaking (`routing.cooldown`)."""

    enabled: bool = True
    period: Duration = Duration(60.0)
    max_period: Duration = Duration(600.0)
    failure_rate: float = 0.5
    min_samples: int = 5
    window: Duration = Duration(60.0)
    max_wait: Duration = Duration(0.0)


class RoutingConfig(_Section, frozen=True):
    """How a model group picks a deployment, and what happens when one fails."""

    strategy: RoutingStrategy = "simple-shuffle"
    fallback_enabled: bool = True
    retry_count: int = 2
    distributed: bool = False
    cooldown: CooldownConfig = CooldownConfig()
    fallbacks: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    context_window_fallbacks: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    content_policy_fallbacks: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    weight_by: WeightBy = "auto"
    latency_buffer: float = 0.1
    aliases: dict[str, str] = msgspec.field(default_factory=dict)
    groups: dict[str, GroupRoutingConfig] = msgspec.field(default_factory=dict)


class MetricsConfig(_Section, frozen=True):
    """Prometheus exposition on the admin port."""

    enabled: bool = True
    path: str = "/metrics"


class AuthConfig(_Section, frozen=True):
    """Client authentication for /v1: the master key and the store's virtual keys."""

    master_key: str | None = None
    key_cache_ttl: Duration = Duration(30.0)
    stale_key_ttl: Duration = Duration(600.0)


class StoreConfig(_Section, frozen=True):
    """Where keys, teams, budgets, spend, audit and stored responses live."""

    url: str | None = None
    migrate: bool = True


class RateLimitConfig(_Section, frozen=True):
    """Governance rate limits (key, user, team, organization, end user)."""

    fail_open: bool = True


class BudgetsConfig(_Section, frozen=True):
    """Governance budgets."""

    calendar_aligned: bool = False
    reset_check_interval: Duration = Duration(30.0)


class SpendConfig(_Section, frozen=True):
    """The spend ledger's background writer."""

    enabled: bool = True
    batch_size: int = 500
    flush_interval: Duration = Duration(0.5)
    max_buffer: int = 100_000
    spill_path: str | None = None


class GovernanceConfig(_Section, frozen=True):
    """Rate limits, budgets and the spend ledger."""

    rate_limits: RateLimitConfig = RateLimitConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    spend: SpendConfig = SpendConfig()


class LoggingConfig(_Section, frozen=True):
    """structlog output."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"
    access_log: bool = True
    log_bodies: bool = False
    body_max_bytes: ByteSize = ByteSize(4096)


class TracingConfig(_Section, frozen=True):
    """OpenTelemetry traces (needs the `llmux[otel]` extra)."""

    enabled: bool = False
    exporter: Literal["otlp-http", "otlp-grpc"] = "otlp-http"
    endpoint: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    sample_ratio: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    capture_content: bool = False
    service_name: str = "llmux"


class UpstreamPoolConfig(_Section, frozen=True):
    """The one pooled HTTP client every upstream call goes through."""

    max_connections: int = 1000
    max_connections_per_host: int = 0
    keepalive_timeout: Duration = Duration(30.0)


class RedisConfig(_Section, frozen=True):
    """The Redis that `routing.distributed` shares routing state through."""

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "llmux:"
    connect_timeout: Duration = Duration(1.0)
    op_timeout: Duration = Duration(0.25)


class Config(_Section, frozen=True):
    """The whole llmux configuration."""

    server: ServerConfig = ServerConfig()
    deployment: DeploymentConfig = DeploymentConfig()
    providers: tuple[ProviderConfig, ...] = ()
    routing: RoutingConfig = RoutingConfig()
    metrics: MetricsConfig = MetricsConfig()
    auth: AuthConfig = AuthConfig()
    logging: LoggingConfig = LoggingConfig()
    tracing: TracingConfig = TracingConfig()
    upstream: UpstreamPoolConfig = UpstreamPoolConfig()
    redis: RedisConfig = RedisConfig()
    store: StoreConfig = StoreConfig()
    governance: GovernanceConfig = GovernanceConfig()
