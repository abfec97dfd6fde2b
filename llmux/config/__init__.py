"""Configuration: the frozen schema and the loader that fills it from YAML."""

from llmux.config.loader import ConfigError, LoadedConfig, is_enabled, load_config, parse_config
from llmux.config.schema import (
    AuthConfig,
    Config,
    LoggingConfig,
    MetricsConfig,
    MockOptions,
    ModelEntry,
    ProviderConfig,
    RoutingConfig,
    ServerConfig,
    TimeoutsConfig,
)

__all__ = [
    "AuthConfig",
    "Config",
    "ConfigError",
    "LoadedConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MockOptions",
    "ModelEntry",
    "ProviderConfig",
    "RoutingConfig",
    "ServerConfig",
    "TimeoutsConfig",
    "is_enabled",
    "load_config",
    "parse_config",
]
