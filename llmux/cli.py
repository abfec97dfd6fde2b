"""Command line: `llmux serve`, `llmux check-config` and `llmux migrate`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from llmux import __version__
from llmux.config import ConfigError, LoadedConfig, load_config
from llmux.routing import build_table

__all__ = ["main"]

_DEFAULT_CONFIG_ENV = "LLMUX_CONFIG"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmux", description="An OpenAI-compatible LLM gateway.")
    parser.add_argument("--version", action="version", version=f"llmux {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config",
        default=os.environ.get(_DEFAULT_CONFIG_ENV),
        help=f"config file (default: ${_DEFAULT_CONFIG_ENV})",
    )
    serve.add_argument("--host", help="listen address (overrides server.host)")
    serve.add_argument("--port", type=int, help="gateway port (overrides server.port)")
    serve.add_argument(
        "--admin-port", type=int, help="admin port, 0 = off (overrides server.admin_port)"
    )
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    check = commands.add_parser("check-config", help="validate a config file and exit 0 or 1")
    check.add_argument("path")
    migrate = commands.add_parser(
        "migrate", help="bring the store's schema (store.url) up to date and exit"
    )
    migrate.add_argument(
        "--config",
        default=os.environ.get(_DEFAULT_CONFIG_ENV),
        help=f"config file (default: ${_DEFAULT_CONFIG_ENV})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llmux` console script."""
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.path)
    if args.command == "migrate":
        return _migrate(args)
    return _serve(args)


def _load(path: str) -> LoadedConfig | None:
    try:
        return load_config(path)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def _check_config(path: str) -> int:
    loaded = _load(path)
    if loaded is None:
        return 1
    from llmux.providers import REGISTRY

    table = build_table(loaded.config, REGISTRY)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"ok: {path}: {len(loaded.config.providers)} providers, {len(table.groups)} model groups")
    return 0


def _no_config() -> int:
    print(
        f"error: no config file; pass --config PATH or set ${_DEFAULT_CONFIG_ENV}", file=sys.stderr
    )
    return 2


def _migrate(args: argparse.Namespace) -> int:
    if not args.config:
        return _no_config()
    loaded = _load(args.config)
    if loaded is None:
        return 1
    from llmux.serve import store_url
    from llmux.store import StoreError, open_store

    async def apply() -> list[int]:
        store = await open_store(store_url(loaded), migrate=False)
        try:
            return await store.migrate()
        finally:
            await store.close()

    try:
        applied = asyncio.run(apply())
    except (StoreError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if applied:
        print(f"ok: applied migrations {', '.join(str(v) for v in applied)}")
    else:
        print("ok: the schema is up to date")
    return 0


def _serve(args: argparse.Namespace) -> int:
    if not args.config:
        return _no_config()
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    loaded = _load(args.config)
    if loaded is None:
        return 1
    from llmux.serve import Overrides, apply_overrides, run

    loaded = apply_overrides(loaded, Overrides(args.host, args.port, args.admin_port))
    if args.workers > 1 and loaded.config.server.port == 0:
        print("error: --workers needs a fixed port (port 0 picks one per worker)", file=sys.stderr)
        return 2
    return run(loaded, args.workers)
