"""The process runtime: uvloop, the gateway and admin sites, workers, signals, graceful drain.

`Gateway` runs both apps inside an existing event loop (tests use it directly). `run()` is what
`llmux serve` calls: one process, or a supervisor that keeps N workers sharing the ports through
SO_REUSEPORT and restarts any that die. On SIGTERM/SIGINT a process stops accepting, reports
not-ready, lets in-flight requests and streams finish within `server.shutdown_grace`, then exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for_sentinels
from multiprocessing.process import BaseProcess
from types import FrameType, TracebackType
from typing import TYPE_CHECKING

import msgspec
import uvloop
from aiohttp import web

from llmux.admin import create_admin_app
from llmux.appkeys import READINESS
from llmux.config import LoadedConfig
from llmux.governance.service import Governance
from llmux.lifecycle import Lifecycle
from llmux.log import AccessLog, configure, get_logger, use_hot_path_writer
from llmux.loopmonitor import LoopMonitor
from llmux.metrics import Metrics, mark_worker_dead
from llmux.readiness import Check, Readiness
from llmux.reload import ConfigState, ConfigWatcher, Reloader
from llmux.runtime import Runtime, RuntimeHolder, build_runtime
from llmux.server import create_app
from llmux.state import RedisLink, open_link
from llmux.store import Store, StoreError, open_store
from llmux.tracing import setup_tracing
from llmux.upstream import HttpTransport
from llmux.workerbus import WORKER_BUS_ENV

if TYPE_CHECKING:
    from llmux.otel import Tracing

__all__ = ["Gateway", "Overrides", "apply_overrides", "run", "store_url"]

_RESTART_WINDOW = 10.0
_GC_GEN0_THRESHOLD = 20_000
_MAX_FAST_RESTARTS = 5


@dataclass(frozen=True, slots=True)
class Overrides:
    """Command-line values that win over the config file."""

    host: str | None = None
    port: int | None = None
    admin_port: int | None = None


def apply_overrides(loaded: LoadedConfig, overrides: Overrides) -> LoadedConfig:
    """A copy of `loaded` with the command-line listen addresses applied."""
    changes = {
        key: value
        for key, value in (
            ("host", overrides.host),
            ("port", overrides.port),
            ("admin_port", overrides.admin_port),
        )
        if value is not None
    }
    if not changes:
        return loaded
    server = msgspec.structs.replace(loaded.config.server, **changes)
    config = msgspec.structs.replace(loaded.config, server=server)
    return LoadedConfig(config, loaded.path, loaded.checksum, loaded.warnings)


_DEFAULT_STORES = {"development": "memory://", "standalone": "sqlite://llmux.db"}


def store_url(loaded: LoadedConfig) -> str:
    """`store.url`, or the default of the deployment mode (distributed mode must name one)."""
    config = loaded.config
    if config.store.url:
        return config.store.url
    default = _DEFAULT_STORES.get(config.deployment.mode)
    if default is None:
        raise ValueError(
            f"{loaded.path}: store.url: required in distributed mode (postgresql://...)"
        )
    return default


class Gateway:
    """Both apps of one process, started and stopped as a unit inside a running loop."""

    def __init__(self, loaded: LoadedConfig, *, reuse_port: bool = False) -> None:
        self.loaded = loaded
        self.lifecycle = Lifecycle()
        self.metrics = Metrics()
        self._loop_monitor = LoopMonitor(self.metrics.observe_loop_lag)
        self._reuse_port = reuse_port
        self._http = HttpTransport(loaded.config.upstream)
        self.redis: RedisLink | None = None
        """The shared routing state's link, when `routing.distributed` is on."""
        self.store: Store | None = None
        """Keys, spend, audit and stored responses (`store.url`)."""
        self.governance: Governance | None = None
        """Key cache, limits, budgets and the spend writer (started with the store)."""
        self.tracing: Tracing | None = None
        """OpenTelemetry export, when `tracing.enabled` (set up by `start`)."""
        logging = loaded.config.logging
        self.access_log = AccessLog(
            enabled=logging.access_log, level=logging.level, fmt=logging.format
        )
        use_hot_path_writer(self.access_log)
        self._runners: list[web.AppRunner] = []
        self.holder: RuntimeHolder | None = None
        """The runtime serving now (swapped by `reload`)."""
        self.reloader: Reloader | None = None
        self._watcher: ConfigWatcher | None = None
        self.port = 0
        self.admin_port = 0

    async def start(self) -> None:
        """Open the upstream pool, bind both ports and report ready.

        A start that fails part way (a port taken, the store unreachable) closes what it had
        opened before raising, so the caller has nothing to stop.
        """
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self._loop_monitor.start()
        await self._http.start()
        config = self.loaded.config
        self.tracing = setup_tracing(config)
        if config.routing.distributed:
            self.redis = open_link(config.redis, self.metrics)
        url = store_url(self.loaded)
        self.store = await open_store(url, migrate=config.store.migrate)
        self.governance = Governance(config, self.store, self.metrics, url)
        await self.governance.start()
        holder = self.holder = RuntimeHolder(
            build_runtime(self.loaded, self._http, self.metrics, self.redis)
        )
        self.reloader = Reloader(holder, self._rebuild)
        self.governance.peers.attach(self.reloader, holder)
        gateway = create_app(
            holder, self.metrics, self.lifecycle, self.access_log, self.store, self.governance
        )
        readiness = self._readiness()
        gateway[READINESS] = readiness
        self.port = await self._listen(gateway, config.server.port)
        if config.server.admin_port:
            admin = create_admin_app(
                config,
                self.metrics,
                self.lifecycle,
                holder,
                self.store,
                self.governance,
                self.reloader,
            )
            admin[READINESS] = readiness
            self.admin_port = await self._listen(admin, config.server.admin_port)
        if config.server.watch_config:
            self._watcher = ConfigWatcher(self.reloader)
            self._watcher.start()
        self.lifecycle.state = "ready"
        get_logger().info(
            "listening", host=config.server.host, port=self.port, admin_port=self.admin_port
        )

    async def reload(self, expected_checksum: str | None = None) -> ConfigState:
        """Reload the config file and swap the runtime (see `llmux.reload`); the new state."""
        assert self.reloader is not None, "the gateway is not started"
        return await self.reloader.reload(expected_checksum)

    def _rebuild(self, loaded: LoadedConfig, previous: Runtime) -> Runtime:
        return build_runtime(loaded, self._http, self.metrics, self.redis, previous=previous)

    def _readiness(self) -> Readiness:
        """The store always; Redis when governance counts there (distributed mode)."""
        assert self.store is not None and self.governance is not None
        checks: dict[str, Check] = {"store": self.store.ping}
        redis = self.governance.redis
        if redis is not None:
            checks["redis"] = redis.ping
        return Readiness(checks)

    async def _listen(self, app: web.Application, port: int) -> int:
        server = self.loaded.config.server
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=server.shutdown_grace,
            keepalive_timeout=server.keepalive_timeout,
        )
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(
            runner, server.host, port, reuse_port=self._reuse_port or None, backlog=2048
        )
        await site.start()
        addresses = runner.addresses
        return int(addresses[0][1]) if addresses else port

    async def stop(self) -> None:
        """Stop accepting, drain in-flight requests up to the grace period, close the pool."""
        self.lifecycle.state = "draining"
        get_logger().info("draining", grace_seconds=self.loaded.config.server.shutdown_grace)
        try:
            if self._watcher is not None:
                await self._watcher.stop()
                self._watcher = None
            for runner in self._runners:
                await runner.cleanup()
        finally:
            await self._loop_monitor.stop()
            self._runners.clear()
            await self._http.close()
            if self.redis is not None:
                await self.redis.close()
                self.redis = None
            if self.governance is not None:
                await self.governance.close()
                self.governance = None
            if self.store is not None:
                await self.store.close()
                self.store = None
            self.access_log.flush()
            if self.tracing is not None:
                self.tracing.shutdown()
                self.tracing = None
        get_logger().info("stopped")

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def _serve_until_signalled(loaded: LoadedConfig, reuse_port: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    gateway = Gateway(loaded, reuse_port=reuse_port)
    await gateway.start()
    try:
        _tune_gc()
        await stop.wait()
    finally:
        await gateway.stop()


def _tune_gc() -> None:
    """Keep the collector off the request path.

    Start-up objects (modules, config, routing tables) live for the whole process: freezing
    them spares every full collection from walking them again. With the default gen-0 threshold
    of 700, the objects of ~50 requests in flight trigger a young collection every few requests,
    which measured ~30 µs of CPU per request; at 20,000 the collector still runs whenever
    cyclic garbage accumulates, just not on every burst of in-flight state.
    """
    gc.freeze()
    gc.set_threshold(_GC_GEN0_THRESHOLD, 20, 50)


def serve_process(loaded: LoadedConfig, reuse_port: bool) -> None:
    """Run one serving process until SIGTERM/SIGINT."""
    logging = loaded.config.logging
    configure(logging.level, logging.format)
    uvloop.run(_serve_until_signalled(loaded, reuse_port))


def run(loaded: LoadedConfig, workers: int) -> int:
    """`llmux serve`: one process, or a supervisor of `workers` processes."""
    if workers <= 1:
        try:
            serve_process(loaded, reuse_port=False)
        except (OSError, StoreError) as error:
            # A port taken or a store unreachable at start is an operator's problem to read,
            # not a traceback: the failed start has already closed what it opened.
            get_logger().error("start_failed", error=str(error))
            return 1
        return 0
    return _Supervisor(loaded, workers).run()


class _Supervisor:
    """Keeps N workers alive, forwards shutdown signals and waits for them to drain."""

    def __init__(self, loaded: LoadedConfig, workers: int) -> None:
        self._loaded = loaded
        self._count = workers
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[BaseProcess] = []
        self._stopping = False
        self._restarts: list[float] = []

    def run(self) -> int:
        logging = self._loaded.config.logging
        configure(logging.level, logging.format)
        config = self._loaded.config
        if config.auth.master_key and config.deployment.mode != "distributed":
            get_logger().warning(
                "governance_per_worker",
                workers=self._count,
                message="rate limits and budgets are counted in each worker; with"
                " --workers use deployment.mode: distributed (Redis) to count them once",
            )
        directory = tempfile.mkdtemp(prefix="llmux-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        # Workers inherit the environment: the bus carries key and tenancy invalidations and
        # announced admin actions between them when there is no Redis (see llmux.workerbus).
        bus = tempfile.mkdtemp(prefix="llmux-bus-")
        os.environ[WORKER_BUS_ENV] = bus
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self._workers = [self._spawn() for _ in range(self._count)]
            get_logger().info("workers_started", workers=self._count)
            return self._watch()
        finally:
            self._terminate_all()
            shutil.rmtree(directory, ignore_errors=True)
            shutil.rmtree(bus, ignore_errors=True)

    def _spawn(self) -> BaseProcess:
        process = self._context.Process(
            target=serve_process, args=(self._loaded, True), name="llmux-worker"
        )
        process.start()
        return process

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        for process in self._workers:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def _watch(self) -> int:
        while True:
            alive = [p for p in self._workers if p.is_alive()]
            if self._stopping:
                grace = self._loaded.config.server.shutdown_grace + 5.0
                deadline = time.monotonic() + grace
                for process in alive:
                    process.join(max(deadline - time.monotonic(), 0.0))
                return 0
            for index, process in enumerate(self._workers):
                if not process.is_alive() and not self._replace(index, process):
                    return 1
            wait_for_sentinels([p.sentinel for p in self._workers], timeout=1.0)

    def _replace(self, index: int, dead: BaseProcess) -> bool:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < _RESTART_WINDOW] + [now]
        if dead.pid is not None:
            mark_worker_dead(dead.pid)
        get_logger().error("worker_died", pid=dead.pid, exitcode=dead.exitcode)
        if len(self._restarts) > _MAX_FAST_RESTARTS:
            get_logger().error("workers_crash_looping", restarts=len(self._restarts))
            self._stopping = True
            return False
        self._workers[index] = self._spawn()
        return True

    def _terminate_all(self) -> None:
        for process in self._workers:
            if process.is_alive():
                process.kill()
                process.join(1.0)
