"""The config loader: good files load, bad ones fail as `file:line: key: problem`, env expands."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from llmux.config import ConfigError, LoadedConfig, ModelEntry, load_config, parse_config, schema

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "conf"
EXAMPLE = ROOT / "conf" / "llmux.example.yaml"
QUICKSTART = ROOT / "conf" / "quickstart.yaml"


def _error(text: str, env: dict[str, str] | None = None) -> str:
    """The message of the ConfigError that parsing `text` (named x.yaml) raises."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "x.yaml", env or {})
    return str(caught.value)


def _file_error(name: str) -> tuple[Path, str]:
    """The fixture's path and the message of the ConfigError that loading it raises."""
    path = FIXTURES / name
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    return path, str(caught.value)


def _parse(text: str, env: dict[str, str] | None = None) -> LoadedConfig:
    return parse_config(text, "x.yaml", env or {})


class TestSeedMinimal:
    """The seed README's minimal config loads unchanged."""

    def test_loads_with_key_set(self) -> None:
        """With OPENAI_API_KEY set, every seed value arrives and no warning is raised."""
        loaded = load_config(FIXTURES / "seed_minimal.yaml", env={"OPENAI_API_KEY": "sk-seed"})
        config = loaded.config
        assert (config.server.port, config.server.admin_port) == (8080, 0)
        assert (config.server.read_timeout, config.server.write_timeout) == (30.0, 120.0)
        assert config.deployment.mode == "standalone"
        (provider,) = config.providers
        assert (provider.name, provider.type, provider.api_key) == ("openai", "openai", "sk-seed")
        assert provider.base_url == "https://api.openai.com/v1"
        assert provider.models == ("gpt-4o", "gpt-4o-mini")
        routing = config.routing
        assert (routing.strategy, routing.fallback_enabled) == ("simple-shuffle", True)
        assert (routing.retry_count, routing.distributed) == (3, False)
        assert (config.metrics.enabled, config.metrics.path) == (True, "/metrics")
        assert loaded.warnings == ()

    def test_key_unset_disables_provider_with_one_warning(self) -> None:
        """Without OPENAI_API_KEY the config still loads and names the disabled provider once."""
        loaded = load_config(FIXTURES / "seed_minimal.yaml", env={})
        assert loaded.config.providers[0].api_key == ""
        assert loaded.warnings == (
            "provider 'openai' is disabled: its api_key is empty"
            " (set the environment variable it refers to)",
            "no provider is enabled: every model request will get 404 model_not_found",
        )
        assert len([w for w in loaded.warnings if "'openai'" in w]) == 1


class TestGoodConfigs:
    """Valid configs load into the frozen schema with units converted."""

    def test_example_config_loads_without_env(self) -> None:
        """The documented example loads with no environment and keeps the mock enabled."""
        loaded = load_config(EXAMPLE, env={})
        names = [p.name for p in loaded.config.providers]
        assert names == ["mock", "openai", "local", "azure", "anthropic", "gemini"]
        assert "no provider is enabled" not in " ".join(loaded.warnings)

    def test_quickstart_config_loads_without_env(self) -> None:
        """The quickstart loads with no API keys and warns about each keyless provider."""
        loaded = load_config(QUICKSTART, env={})
        assert [p.name for p in loaded.config.providers] == ["mock", "openai", "anthropic"]
        assert loaded.warnings == tuple(
            f"provider {name!r} is disabled: its api_key is empty"
            " (set the environment variable it refers to)"
            for name in ("openai", "anthropic")
        )

    def test_example_documents_every_option(self) -> None:
        """Every field of every config section appears as a key in the example config."""
        text = EXAMPLE.read_text(encoding="utf-8")
        sections = [
            getattr(schema, name)
            for name in schema.__all__
            if isinstance(getattr(schema, name), type)
            and issubclass(getattr(schema, name), msgspec.Struct)
        ]
        missing = [
            f"{section.__name__}.{field}"
            for section in sections
            for field in section.__struct_fields__
            if not re.search(rf"^\s*(- )?{field}:", text, re.MULTILINE)
        ]
        assert missing == []

    def test_empty_file_gives_defaults(self) -> None:
        """An empty document is a config with every default."""
        assert _parse("").config == schema.Config()

    def test_durations_accept_units(self) -> None:
        """`500ms`, `2m`, `1h` and plain numbers become seconds."""
        config = _parse(
            "server:\n  read_timeout: 500ms\n  write_timeout: 2m\n"
            "  shutdown_grace: 1h\n  keepalive_timeout: 15\n"
        ).config
        server = config.server
        assert (server.read_timeout, server.write_timeout) == (0.5, 120.0)
        assert (server.shutdown_grace, server.keepalive_timeout) == (3600.0, 15.0)

    def test_sizes_accept_binary_and_decimal_units(self) -> None:
        """`512KiB` is 512 * 1024 bytes and `1GB` is 10**9 bytes."""
        assert _parse("server:\n  max_body_size: 512KiB\n").config.server.max_body_size == 524288
        assert _parse("server:\n  max_body_size: 1GB\n").config.server.max_body_size == 10**9

    def test_model_entries_accept_both_forms(self) -> None:
        """A model is a plain name or a mapping with routing and pricing fields."""
        config = _parse(
            "providers:\n"
            "  - name: p\n    type: mock\n    models:\n"
            "      - plain\n"
            "      - name: smart\n        upstream_model: gpt-4o\n        weight: 9\n"
            "        rpm: 10\n        tpm: 1000\n        max_concurrent: 2\n"
            "        input_cost_per_million: 2.5\n        output_cost_per_million: 10\n"
            "        tags: [a, b]\n        order: 1\n"
        ).config
        plain, smart = config.providers[0].models
        assert plain == "plain"
        assert smart == ModelEntry(
            name="smart",
            upstream_model="gpt-4o",
            weight=9.0,
            rpm=10,
            tpm=1000,
            max_concurrent=2,
            input_cost_per_million=2.5,
            output_cost_per_million=10.0,
            tags=("a", "b"),
            order=1,
        )

    def test_config_is_frozen(self) -> None:
        """A loaded config cannot be mutated in place."""
        config = _parse("server:\n  port: 9000\n").config
        with pytest.raises(AttributeError):
            config.server.port = 1  # type: ignore[misc]

    def test_missing_file_is_a_config_error(self, tmp_path: Path) -> None:
        """A path that does not exist fails with the path in the message, not a traceback."""
        path = tmp_path / "absent.yaml"
        with pytest.raises(ConfigError) as caught:
            load_config(path, env={})
        assert str(caught.value) == f"{path}: cannot read config: No such file or directory"


class TestBadConfigs:
    """Each mistake is reported as `file:line: key.path: problem`, exactly."""

    def test_unknown_field(self) -> None:
        """A typo'd key names its line and full key path."""
        path, message = _file_error("unknown_field.yaml")
        assert message == f"{path}:12: providers[0].tpye: unknown field"

    def test_missing_required_field(self) -> None:
        """A provider without `name` points at the start of that provider's entry."""
        path, message = _file_error("missing_required.yaml")
        assert message == f"{path}:8: providers[1].name: required field missing"

    def test_wrong_type(self) -> None:
        """`port: "abc"` is not an integer."""
        path, message = _file_error("wrong_type_port.yaml")
        assert message == f"{path}:4: server.port: expected int, got str"

    def test_invalid_duration(self) -> None:
        """A duration with an unknown unit says what the accepted forms look like."""
        path, message = _file_error("invalid_duration.yaml")
        assert message == (
            f"{path}:5: server.read_timeout: invalid duration '30 fortnights';"
            " use e.g. 500ms, 30s, 5m, 1h"
        )

    def test_negative_duration(self) -> None:
        """A negative number of seconds is refused."""
        message = _error("server:\n  port: 1\n  read_timeout: -1\n")
        assert message == "x.yaml:3: server.read_timeout: a duration cannot be negative"

    def test_invalid_size(self) -> None:
        """A size with an unknown unit says what the accepted forms look like."""
        path, message = _file_error("invalid_size.yaml")
        assert message == (
            f"{path}:4: server.max_body_size: invalid size '32 parsecs';"
            " use e.g. 512KiB, 32MiB, 1GB"
        )

    def test_negative_retry_count(self) -> None:
        """`routing.retry_count: -1` is refused."""
        path, message = _file_error("negative_retry.yaml")
        assert message == f"{path}:6: routing.retry_count: cannot be negative"

    def test_duplicate_provider_names(self) -> None:
        """The second provider with a taken name is the one reported."""
        path, message = _file_error("duplicate_provider.yaml")
        assert message == f"{path}:8: providers[1].name: duplicate provider name 'mock'"

    def test_admin_port_equal_to_port(self) -> None:
        """The admin app cannot listen on the gateway's port."""
        path, message = _file_error("same_ports.yaml")
        assert message == f"{path}:4: server.admin_port: must differ from server.port"

    def test_port_out_of_range(self) -> None:
        """A port above 65535 is refused."""
        message = _error("server:\n  port: 70000\n")
        assert message == "x.yaml:2: server.port: port 70000 is out of range 0-65535"

    def test_unknown_provider_type(self) -> None:
        """A provider type llmux does not know is reported on the `type` line."""
        path, message = _file_error("unknown_provider_type.yaml")
        assert message == f"{path}:5: providers[0].type: invalid value 'bedrock'"

    def test_invalid_yaml_syntax(self) -> None:
        """A YAML syntax error reports the line where the parser stopped."""
        path, message = _file_error("invalid_yaml.yaml")
        assert message == (
            f"{path}:4: invalid YAML: expected <block end>, but found '<block mapping start>'"
        )

    def test_top_level_not_a_mapping(self) -> None:
        """A list at the top level is refused on line 1."""
        path, message = _file_error("top_level_list.yaml")
        assert message == f"{path}:1: the top level must be a mapping"

    def test_compatible_provider_needs_base_url(self) -> None:
        """An openai-compatible provider without `base_url` is refused on its entry."""
        message = _error(
            "providers:\n  - name: local\n    type: openai-compatible\n    models: [m]\n"
        )
        assert message == "x.yaml:2: providers[0].base_url: required for type openai-compatible"

    def test_provider_without_models(self) -> None:
        """A provider must list at least one model."""
        message = _error("providers:\n  - name: p\n    type: mock\n")
        assert message == "x.yaml:2: providers[0].models: list at least one model"

    def test_several_problems_are_all_reported(self) -> None:
        """Cross-field problems are listed one per line, in file order."""
        message = _error("server:\n  port: 9000\n  admin_port: 9000\nrouting:\n  retry_count: -2\n")
        assert message.splitlines() == [
            "x.yaml:3: server.admin_port: must differ from server.port",
            "x.yaml:5: routing.retry_count: cannot be negative",
        ]


class TestEnvExpansion:
    """`${VAR}` and `${VAR:-default}` expand inside values, with shell `:-` semantics."""

    def test_variable_is_substituted(self) -> None:
        """`${VAR}` takes the variable's value."""
        loaded = _parse("auth:\n  master_key: ${KEY}\n", {"KEY": "sk-master"})
        assert loaded.config.auth.master_key == "sk-master"

    def test_variable_inside_a_longer_value(self) -> None:
        """Expansion works in the middle of a string."""
        loaded = _parse("metrics:\n  path: /${P}/metrics\n", {"P": "internal"})
        assert loaded.config.metrics.path == "/internal/metrics"

    def test_default_when_unset(self) -> None:
        """`${VAR:-default}` gives the default when the variable is unset."""
        loaded = _parse("server:\n  host: ${HOST:-127.0.0.1}\n")
        assert loaded.config.server.host == "127.0.0.1"

    def test_default_when_set_to_empty(self) -> None:
        """`${VAR:-default}` also gives the default when the variable is set but empty."""
        loaded = _parse("server:\n  host: ${HOST:-127.0.0.1}\n", {"HOST": ""})
        assert loaded.config.server.host == "127.0.0.1"

    def test_value_wins_over_default(self) -> None:
        """`${VAR:-default}` gives the variable's value when it is non-empty."""
        loaded = _parse("server:\n  host: ${HOST:-127.0.0.1}\n", {"HOST": "10.0.0.5"})
        assert loaded.config.server.host == "10.0.0.5"

    def test_unset_variable_without_default_is_empty(self) -> None:
        """`${VAR}` with VAR unset expands to the empty string."""
        loaded = _parse("auth:\n  master_key: x${MISSING}y\n")
        assert loaded.config.auth.master_key == "xy"

    def test_literal_dollar_is_left_alone(self) -> None:
        """A `$` that is not `${NAME}` stays as written."""
        loaded = _parse("auth:\n  master_key: pa$$word$HOME${}\n", {"HOME": "/root"})
        assert loaded.config.auth.master_key == "pa$$word$HOME${}"

    def test_keys_are_not_expanded(self) -> None:
        """A `${VAR}` in a key is not expanded, so it is reported as an unknown field."""
        message = _error("server:\n  ${FIELD}: 9000\n", {"FIELD": "port"})
        assert message == "x.yaml:2: server.${FIELD}: unknown field"

    def test_values_are_not_parsed_as_yaml(self) -> None:
        """An env value that looks like YAML stays a plain string."""
        loaded = _parse("auth:\n  master_key: ${KEY}\n", {"KEY": "a: b"})
        assert loaded.config.auth.master_key == "a: b"

    def test_ports_from_env_become_integers(self) -> None:
        """Ports given as env strings convert to int."""
        loaded = _parse(
            "server:\n  port: ${PORT}\n  admin_port: ${ADMIN:-9091}\n", {"PORT": "9090"}
        )
        assert (loaded.config.server.port, loaded.config.server.admin_port) == (9090, 9091)

    def test_non_numeric_env_port_is_reported(self) -> None:
        """A port variable that is not a number fails on the port's line."""
        message = _error("server:\n  host: h\n  port: ${PORT}\n", {"PORT": "eighty"})
        assert message == "x.yaml:3: server.port: expected int, got str"

    def test_durations_from_env(self) -> None:
        """A duration given through the environment is parsed with its unit."""
        loaded = _parse("server:\n  read_timeout: ${T:-250ms}\n")
        assert loaded.config.server.read_timeout == 0.25

    def test_unset_api_key_disables_provider(self) -> None:
        """A provider whose `api_key: ${X}` is unset loads disabled, with a warning naming it."""
        loaded = _parse(
            "providers:\n"
            "  - name: mock\n    type: mock\n    models: [mock-gpt]\n"
            "  - name: primary\n    type: openai\n    api_key: ${X}\n    models: [gpt-4o]\n"
        )
        assert loaded.warnings == (
            "provider 'primary' is disabled: its api_key is empty"
            " (set the environment variable it refers to)",
        )

    def test_missing_api_key_disables_key_requiring_provider(self) -> None:
        """An openai provider with no api_key line at all is disabled with a warning."""
        loaded = _parse(
            "providers:\n"
            "  - name: mock\n    type: mock\n    models: [mock-gpt]\n"
            "  - name: primary\n    type: openai\n    models: [gpt-4o]\n"
        )
        assert loaded.warnings == ("provider 'primary' is disabled: type openai needs api_key",)


def test_distributed_mode_requires_a_store_url() -> None:
    """Distributed replicas must name the store they share; there is no default for them."""
    text = "deployment: {mode: distributed}\nrouting: {distributed: true}\n"
    assert _error(text) == (
        "x.yaml:1: store.url: required when deployment.mode is distributed"
        " (a postgresql:// URL the replicas share)"
    )
