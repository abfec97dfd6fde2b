"""The `llmux` command line: check-config's exit codes and messages, serve's usage errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from llmux import __version__

ROOT = Path(__file__).resolve().parent.parent
_TIMEOUT = 30.0


def _llmux(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m llmux ARGS` from the repository root with a clean API-key environment."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and k not in ("LLMUX_CONFIG", "LLMUX_MASTER_KEY")
    }
    return subprocess.run(
        [sys.executable, "-m", "llmux", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )


def test_check_config_accepts_example() -> None:
    """The documented example config passes check-config with no environment variables."""
    result = _llmux("check-config", "conf/llmux.example.yaml")
    assert result.returncode == 0
    assert result.stdout.startswith("ok: conf/llmux.example.yaml: 6 providers,")


def test_check_config_accepts_quickstart() -> None:
    """The quickstart config passes check-config with no API keys."""
    result = _llmux("check-config", "conf/quickstart.yaml")
    assert result.returncode == 0
    assert result.stdout.startswith("ok: conf/quickstart.yaml: 3 providers,")


def test_check_config_prints_disabled_provider_warning() -> None:
    """A provider disabled by an unset key is reported on stderr, and the check still passes."""
    result = _llmux("check-config", "tests/fixtures/conf/seed_minimal.yaml")
    assert result.returncode == 0
    assert (
        "warning: provider 'openai' is disabled: its api_key is empty"
        " (set the environment variable it refers to)\n"
    ) in result.stderr


def test_check_config_rejects_unknown_field_with_location() -> None:
    """A bad config exits 1 with exactly `file:line: key: problem` on stderr."""
    result = _llmux("check-config", "tests/fixtures/conf/unknown_field.yaml")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: tests/fixtures/conf/unknown_field.yaml:12: providers[0].tpye: unknown field\n"
    )


def test_check_config_missing_file_exits_1() -> None:
    """A path that does not exist is a config error, not a traceback."""
    result = _llmux("check-config", "conf/does-not-exist.yaml")
    assert result.returncode == 1
    assert result.stderr == (
        "error: conf/does-not-exist.yaml: cannot read config: No such file or directory\n"
    )


def test_serve_without_config_exits_2() -> None:
    """`serve` with neither --config nor LLMUX_CONFIG says how to pass one and exits 2."""
    result = _llmux("serve")
    assert result.returncode == 2
    assert result.stderr == "error: no config file; pass --config PATH or set $LLMUX_CONFIG\n"


def test_serve_rejects_zero_workers() -> None:
    """`--workers 0` is a usage error."""
    result = _llmux("serve", "--config", "conf/quickstart.yaml", "--workers", "0")
    assert result.returncode == 2
    assert result.stderr == "error: --workers must be at least 1\n"


def test_version() -> None:
    """`--version` prints the package version and exits 0."""
    result = _llmux("--version")
    assert result.returncode == 0
    assert result.stdout == f"llmux {__version__}\n"


def _store_config(tmp_path: Path) -> Path:
    config = tmp_path / "llmux.yaml"
    config.write_text(
        "providers: [{name: mock, type: mock, models: [m]}]\n"
        f"store: {{url: 'sqlite://{tmp_path}/llmux.db'}}\n"
    )
    return config


def test_migrate_applies_the_schema_to_a_new_store(tmp_path: Path) -> None:
    """`llmux migrate` creates the SQLite store and applies every migration."""
    result = _llmux("migrate", "--config", str(_store_config(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: applied migrations 1")
    assert (tmp_path / "llmux.db").is_file()


def test_migrate_twice_has_nothing_to_do(tmp_path: Path) -> None:
    """A second `llmux migrate` finds the schema current and changes nothing."""
    config = str(_store_config(tmp_path))
    _llmux("migrate", "--config", config)
    result = _llmux("migrate", "--config", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok: the schema is up to date\n"


def test_migrate_without_config_exits_2() -> None:
    """`llmux migrate` with no config names the missing flag."""
    result = _llmux("migrate")
    assert result.returncode == 2
    assert "no config file" in result.stderr
