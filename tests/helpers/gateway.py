"""Start a real llmux gateway (both apps, real sockets) inside the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from llmux.config import load_config, parse_config
from llmux.serve import Gateway
from tests.helpers.ports import free_port


def upstream_config(
    upstream_url: str,
    *,
    extra: str = "",
    retry_count: int = 0,
    server_extra: str = "",
    first_byte: str = "2s",
    idle: str = "1s",
    total: str = "3s",
) -> str:
    """A config with one OpenAI-compatible provider at `upstream_url` plus the mock.

    `server_extra` holds more `server:` keys (one per line, unindented); `first_byte`, `idle` and
    `total` are the upstream provider's timeouts.
    """
    server_lines = "".join(f"\n  {line}" for line in server_extra.splitlines() if line.strip())
    return f"""
server:
  host: 127.0.0.1
  port: 0
  admin_port: {free_port()}{server_lines}
providers:
  - name: upstream
    type: openai-compatible
    base_url: {upstream_url}
    api_key: sk-upstream-secret
    models:
      - gpt-4o-mini
      - name: smart
        upstream_model: gpt-4o
      - text-embedding-3-small
      - gpt-3.5-turbo-instruct
    timeouts:
      connect: 1s
      first_byte: {first_byte}
      idle: {idle}
      total: {total}
  - name: mock
    type: mock
    models: [mock-gpt, mock-embed]
routing:
  retry_count: {retry_count}
{extra}
"""


@asynccontextmanager
async def running_gateway(config_text: str) -> AsyncIterator[Gateway]:
    """A started gateway for `config_text`; stopped (drained) on exit.

    Without a `store:` section the gateway keeps its state in memory, so tests never share a
    database file.
    """
    if "\nstore:" not in config_text:
        config_text += "\nstore: {url: 'memory://'}\n"
    loaded = parse_config(config_text, "test.yaml", {})
    gateway = Gateway(loaded)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


@asynccontextmanager
async def gateway_from(path: Path) -> AsyncIterator[Gateway]:
    """A gateway started from the config file at `path` (so reloads can re-read it)."""
    gateway = Gateway(load_config(path))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()
