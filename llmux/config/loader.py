"""Load a YAML config file into the frozen `Config`, with errors that name file, line and key.

Pipeline: ruamel.yaml (safe) -> `${VAR}` / `${VAR:-default}` expansion on string scalars ->
`msgspec.convert` into `llmux.config.schema.Config` -> cross-field checks. The only module that
imports ruamel.yaml.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import msgspec
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from llmux.config.schema import ByteSize, Config, CooldownConfig, Duration

__all__ = ["ConfigError", "LoadedConfig", "load_config", "parse_config"]

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    None: 1,
}
_PATH_TOKEN = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_KEY_REQUIRING_TYPES = frozenset({"openai", "azure", "anthropic", "gemini"})

PathKey = tuple[str | int, ...]


class ConfigError(Exception):
    """A config file that cannot be used; `str()` is `file:line: key.path: problem` lines."""


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config plus where it came from and what the loader warned about."""

    config: Config
    path: str
    checksum: str
    warnings: tuple[str, ...]


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, expand, decode and check the config file at `path`."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read config: {exc.strerror or exc}") from exc
    return parse_config(text, name, os.environ if env is None else env)


def parse_config(text: str, name: str, env: Mapping[str, str]) -> LoadedConfig:
    """Parse config `text` (named `name` in errors) with `${VAR}` taken from `env`."""
    data, lines = _read_yaml(text, name)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}:1: the top level must be a mapping")
    expanded = _expand(data, env)
    try:
        config = msgspec.convert(expanded, Config, strict=False, dec_hook=_decode_scalar)
    except msgspec.ValidationError as exc:
        path, problem = _explain(str(exc))
        raise ConfigError(_locate(name, lines, path, problem)) from None
    problems = list(_check(config))
    if problems:
        raise ConfigError("\n".join(_locate(name, lines, p, msg) for p, msg in problems))
    checksum = hashlib.sha256(text.encode()).hexdigest()
    return LoadedConfig(config, name, checksum, tuple(_warnings(config, data)))


def _read_yaml(text: str, name: str) -> tuple[Any, dict[PathKey, int]]:
    yaml = YAML(typ="safe", pure=True)
    try:
        node = yaml.compose(StringIO(text))
        data = yaml.load(StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(f"{name}:{line}: invalid YAML: {exc.problem or exc.context}") from None
    except YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML: {exc}") from None
    lines: dict[PathKey, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def _index_lines(node: Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, str(key_node.value))
            _index_lines(value_node, key_path, lines)
            lines[key_path] = key_node.start_mark.line + 1
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines)


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    """Expand `${VAR}` and `${VAR:-default}` inside string scalars only, never in keys."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        return _ENV_PATTERN.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {key: _expand(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, env) for item in value]
    return value


def _decode_scalar(kind: type, value: Any) -> Any:
    if kind is Duration:
        return Duration(_parse_duration(value))
    if kind is ByteSize:
        return ByteSize(_parse_size(value))
    raise NotImplementedError


def _parse_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_PATTERN.match(str(value))
        if match is None:
            raise ValueError(f"invalid duration {value!r}; use e.g. 500ms, 30s, 5m, 1h")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _parse_size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a size such as 32MiB")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE_PATTERN.match(str(value))
        if match is None:
            raise ValueError(f"invalid size {value!r}; use e.g. 512KiB, 32MiB, 1GB")
        unit = match.group(2).lower() if match.group(2) else None
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError("a size must be positive")
    return size


def _explain(message: str) -> tuple[PathKey, str]:
    """Turn msgspec's `... - at `$.a[0]`` into a key path and a short problem."""
    text, _, where = message.partition(" - at `")
    path = _parse_path(where.rstrip("`")) if where else ()
    if match := re.match(r"Object contains unknown field `([^`]*)`", text):
        return (*path, match.group(1)), "unknown field"
    if match := re.match(r"Object missing required field `([^`]*)`", text):
        return (*path, match.group(1)), "required field missing"
    if match := re.match(r"Expected `([^`]*)`, got `([^`]*)`", text):
        return path, f"expected {match.group(1)}, got {match.group(2)}"
    if match := re.match(r"Invalid enum value (.*)", text):
        return path, f"invalid value {match.group(1)}"
    return path, text[:1].lower() + text[1:]


def _parse_path(where: str) -> PathKey:
    parts: list[str | int] = []
    for match in _PATH_TOKEN.finditer(where.removeprefix("$")):
        name, index, single, double = match.groups()
        if index is not None:
            parts.append(int(index))
        else:
            parts.append(name or single or double or "")
    return tuple(parts)


def _locate(name: str, lines: dict[PathKey, int], path: PathKey, problem: str) -> str:
    """Format one problem as `file:line: dotted.key: problem` using the closest known line."""
    probe = path
    while probe and probe not in lines:
        probe = probe[:-1]
    line = lines.get(probe, 1)
    dotted = _dotted(path)
    return f"{name}:{line}: {dotted}: {problem}" if dotted else f"{name}:{line}: {problem}"


def _dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _check(config: Config) -> list[tuple[PathKey, str]]:
    """Cross-field rules a type cannot say."""
    problems: list[tuple[PathKey, str]] = []
    server = config.server
    for key, port in (("port", server.port), ("admin_port", server.admin_port)):
        if not 0 <= port <= 65535:
            problems.append((("server", key), f"port {port} is out of range 0-65535"))
    if server.admin_port and server.admin_port == server.port:
        problems.append((("server", "admin_port"), "must differ from server.port"))
    if config.routing.retry_count < 0:
        problems.append((("routing", "retry_count"), "cannot be negative"))
    if config.routing.latency_buffer < 0:
        problems.append((("routing", "latency_buffer"), "cannot be negative"))
    for group, override in config.routing.groups.items():
        if override.latency_buffer is not None and override.latency_buffer < 0:
            problems.append((("routing", "groups", group, "latency_buffer"), "cannot be negative"))
    problems.extend(_check_cooldown(config.routing.cooldown))
    if config.deployment.mode == "distributed" and not config.routing.distributed:
        problems.append(
            (
                ("routing", "distributed"),
                "must be true when deployment.mode is distributed (replicas share routing state"
                " through Redis)",
            )
        )
    if config.deployment.mode == "distributed" and not config.store.url:
        problems.append(
            (
                ("store", "url"),
                "required when deployment.mode is distributed (a postgresql:// URL the"
                " replicas share)",
            )
        )
    seen: set[str] = set()
    for index, provider in enumerate(config.providers):
        problems.extend(_check_provider(index, provider, seen))
    return problems


def _check_cooldown(cooldown: CooldownConfig) -> list[tuple[PathKey, str]]:
    where = ("routing", "cooldown")
    problems: list[tuple[PathKey, str]] = []
    if not 0.0 < cooldown.failure_rate <= 1.0:
        problems.append(((*where, "failure_rate"), "must be above 0 and at most 1"))
    if cooldown.min_samples < 1:
        problems.append(((*where, "min_samples"), "must be at least 1"))
    if cooldown.window <= 0:
        problems.append(((*where, "window"), "must be positive"))
    if cooldown.max_period < cooldown.period:
        problems.append(((*where, "max_period"), "cannot be shorter than routing.cooldown.period"))
    return problems


def _check_provider(index: int, provider: Any, seen: set[str]) -> list[tuple[PathKey, str]]:
    where: PathKey = ("providers", index)
    problems: list[tuple[PathKey, str]] = []
    if not provider.name or "/" in provider.name:
        problems.append(((*where, "name"), "must be a non-empty name without '/'"))
    if provider.name in seen:
        problems.append(((*where, "name"), f"duplicate provider name {provider.name!r}"))
    seen.add(provider.name)
    if provider.type in ("openai-compatible", "azure") and not provider.base_url:
        problems.append(((*where, "base_url"), f"required for type {provider.type}"))
    if provider.base_url and not provider.base_url.startswith(("http://", "https://")):
        problems.append(((*where, "base_url"), "must start with http:// or https://"))
    if not provider.models:
        problems.append(((*where, "models"), "list at least one model"))
    for position, entry in enumerate(provider.models):
        name = entry if isinstance(entry, str) else entry.name
        if not name:
            problems.append(((*where, "models", position), "model name cannot be empty"))
        weight = None if isinstance(entry, str) else entry.weight
        if weight is not None and weight < 0:
            problems.append(((*where, "models", position, "weight"), "cannot be negative"))
    return problems


def _warnings(config: Config, raw: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for provider in config.providers:
        if provider.api_key == "":
            out.append(
                f"provider {provider.name!r} is disabled: its api_key is empty"
                " (set the environment variable it refers to)"
            )
        elif provider.api_key is None and provider.type in _KEY_REQUIRING_TYPES:
            out.append(
                f"provider {provider.name!r} is disabled: type {provider.type} needs api_key"
            )
    if not any(is_enabled(p) for p in config.providers) and raw.get("providers"):
        out.append("no provider is enabled: every model request will get 404 model_not_found")
    return out


def is_enabled(provider: Any) -> bool:
    """Whether a provider can serve traffic (an empty or missing required key disables it)."""
    if provider.api_key == "":
        return False
    return not (provider.api_key is None and provider.type in _KEY_REQUIRING_TYPES)
