"""Config reload: build and validate the new config, then swap the serving runtime atomically.

`Reloader.reload` reads the config file the gateway was started with, builds a new `Runtime`
from it (unchanged deployments keep their routing state, see `llmux.runtime`) and swaps
`RuntimeHolder.current` in one assignment. Requests already running hold the old runtime and
finish on it; the next request uses the new one. An invalid file raises `InvalidRequest` with
the loader's `file:line: key: problem` text and the old config keeps serving. What a reload
applies is `providers` and `routing` (with prices and limits); the other sections (server,
auth, store, redis, governance, logging, ...) are read once at start, so a reload keeps the
running server's host and ports and logs `config_restart_required` naming changed sections.

`ConfigWatcher` polls the file (`server.watch_config`): when its mtime or size moves and its
checksum differs from the one serving, it reloads; a broken file is logged once per checksum.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from aiohttp import web

from llmux.config import ConfigError, LoadedConfig, load_config
from llmux.errors import Conflict, InvalidRequest, LlmuxError
from llmux.log import get_logger
from llmux.runtime import Runtime, RuntimeHolder

__all__ = ["RELOADER", "ConfigState", "ConfigWatcher", "Reloader"]

Build = Callable[[LoadedConfig, Runtime], Runtime]
"""Builds the runtime for a new config, given the one serving now."""
Load = Callable[[str], LoadedConfig]
"""Reads and validates the config file at a path (`load_config`)."""

_RESTART_SECTIONS = (
    "server",
    "deployment",
    "metrics",
    "auth",
    "logging",
    "tracing",
    "upstream",
    "redis",
    "store",
    "governance",
)
"""Sections read once at start: a reload swaps `providers` and `routing` only."""


class ConfigState(msgspec.Struct, frozen=True, kw_only=True):
    """The config serving now: where it came from, its checksum and when it was loaded."""

    path: str
    checksum: str
    loaded_at: datetime


class Reloader:
    """Swaps the gateway's runtime for one built from the config file, one reload at a time."""

    def __init__(self, holder: RuntimeHolder, build: Build, load: Load = load_config) -> None:
        self._holder = holder
        self._build = build
        self._load = load
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    @property
    def path(self) -> str:
        """The config file reloads read."""
        return self._holder.current.loaded.path

    def state(self) -> ConfigState:
        """The serving config's path, checksum and load time."""
        runtime = self._holder.current
        return ConfigState(
            path=runtime.loaded.path,
            checksum=runtime.loaded.checksum,
            loaded_at=datetime.fromtimestamp(runtime.created, UTC),
        )

    async def reload(self, expected_checksum: str | None = None) -> ConfigState:
        """Load, build and swap in the config file; the new state.

        `expected_checksum` guards against a concurrent change: when given it must be the
        checksum serving now (409 otherwise). An invalid file is a 400 with its located error.
        """
        async with self._lock:
            current = self._holder.current
            if expected_checksum is not None and expected_checksum != current.loaded.checksum:
                raise Conflict(
                    f"The serving config's checksum is {current.loaded.checksum}, not"
                    f" {expected_checksum}: it changed since you read it.",
                    param="expected_checksum",
                    code="checksum_mismatch",
                )
            loaded = _keep_listen_addresses(await self._read(current.loaded.path), current.loaded)
            self._holder.current = self._build(loaded, current)
            _log_swap(current.loaded, loaded)
            return self.state()

    def reload_soon(self) -> None:
        """Reload in the background, for another process that reloaded on request."""
        task = asyncio.create_task(self._reload_logged(), name="llmux-peer-reload")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except LlmuxError:
            pass  # an invalid file: `_read` logged it, and the old config keeps serving
        except Exception as error:  # a background task must not die with an unseen error
            get_logger().warning("config_reload_failed", path=self.path, error=str(error))

    async def _read(self, path: str) -> LoadedConfig:
        try:
            return await asyncio.to_thread(self._load, path)
        except ConfigError as exc:
            get_logger().warning("config_reload_rejected", path=path, error=str(exc))
            raise InvalidRequest(
                f"The config file is invalid; the running config keeps serving. {exc}",
                code="invalid_config",
            ) from None


def _keep_listen_addresses(loaded: LoadedConfig, serving: LoadedConfig) -> LoadedConfig:
    """`loaded` with the running server's host and ports (the sockets stay bound)."""
    running = serving.config.server
    server = msgspec.structs.replace(
        loaded.config.server, host=running.host, port=running.port, admin_port=running.admin_port
    )
    config = msgspec.structs.replace(loaded.config, server=server)
    return LoadedConfig(config, loaded.path, loaded.checksum, loaded.warnings)


def _log_swap(old: LoadedConfig, new: LoadedConfig) -> None:
    get_logger().info("config_reloaded", path=new.path, checksum=new.checksum)
    stale = [name for name in _RESTART_SECTIONS if _section(old, name) != _section(new, name)]
    if stale:
        get_logger().warning(
            "config_restart_required",
            sections=stale,
            message="these sections are read at start; restart to apply their changes",
        )


def _section(loaded: LoadedConfig, name: str) -> object:
    return getattr(loaded.config, name, None)


RELOADER = web.AppKey("reloader", Reloader)
"""The admin app's handle on config reloads (`/control/config`)."""


class ConfigWatcher:
    """Polls the config file and reloads when its content changes (`server.watch_config`)."""

    def __init__(self, reloader: Reloader, interval: float = 1.0) -> None:
        self._reloader = reloader
        self._interval = interval
        self._seen: tuple[int, int] | None = _stamp(reloader.path)
        self._rejected: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> bool:
        """One poll: reload if the file changed since the last look; whether it reloaded."""
        path = self._reloader.path
        stamp = _stamp(path)
        if stamp is None or stamp == self._seen:
            return False
        self._seen = stamp
        checksum = await asyncio.to_thread(_checksum, path)
        if checksum in (self._reloader.state().checksum, self._rejected):
            return False
        try:
            await self._reloader.reload()
        except LlmuxError:
            # Logged by the reloader; remember it so a broken file is not retried every poll.
            self._rejected = checksum
            return False
        self._rejected = None
        return True

    def start(self) -> None:
        """Start polling in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="config-watcher")

    async def stop(self) -> None:
        """Stop polling (waits for a reload in progress to be cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except OSError as exc:
                get_logger().warning(
                    "config_watch_failed", path=self._reloader.path, error=str(exc)
                )


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _checksum(path: str) -> str:
    # The same digest `load_config` records: sha256 of the file's text.
    return hashlib.sha256(Path(path).read_text(encoding="utf-8").encode()).hexdigest()
