"""The message bus between the workers of one `llmux serve --workers N` without Redis.

Each worker caches keys and tenancies in its own memory, and an admin call reaches only one
worker. In distributed mode Redis pub/sub tells every replica; standalone, the supervisor
creates a directory and names it in `LLMUX_WORKER_BUS`, each worker binds a Unix datagram
socket `<pid>.sock` in it, and a publish sends the message to every socket there, the
sender's own included. It carries key and tenancy invalidations and the admin actions other
workers repeat (`llmux.peers`: config reloads, manual cooldowns). Local datagrams are not lost
while the receiver keeps up; an invalidation that is (a receive buffer full of thousands)
still expires at `auth.key_cache_ttl`. The bus satisfies
`llmux.governance.keycache.InvalidationBus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Final

from llmux.log import get_logger

__all__ = ["WORKER_BUS_ENV", "WorkerBus", "worker_bus_from_env"]

WORKER_BUS_ENV: Final = "LLMUX_WORKER_BUS"
"""The environment variable naming the bus directory (set by the supervisor for workers)."""

_MAX_MESSAGE: Final = 4096
_EPOCH: Final = 1
"""Bound once for the life of the worker: entries never need the disconnected TTL."""


def worker_bus_from_env() -> WorkerBus | None:
    """The bus of this worker's supervisor, or None when not running as one of N workers."""
    directory = os.environ.get(WORKER_BUS_ENV)
    return WorkerBus(Path(directory)) if directory else None


class WorkerBus:
    """One worker's end of the bus: a datagram socket in the shared directory."""

    def __init__(self, directory: Path, name: str | None = None) -> None:
        self._directory = directory
        self._path = directory / f"{name or os.getpid()}.sock"
        self._sock: socket.socket | None = None
        self._on_message: Callable[[str], None] | None = None

    @property
    def epoch(self) -> int | None:
        """Constant while the socket is bound; None before `start` and after `close`."""
        return _EPOCH if self._sock is not None else None

    async def start(self, on_message: Callable[[str], None]) -> None:
        """Bind this worker's socket and call `on_message` for every message published."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()  # left by an earlier process with the same pid
            sock.bind(str(self._path))
            sock.setblocking(False)
        except OSError as error:
            sock.close()
            # Without the bus the key cache falls back to its disconnected TTL (about 1 s).
            get_logger().warning("worker_bus_unavailable", path=str(self._path), error=str(error))
            return
        self._sock, self._on_message = sock, on_message
        asyncio.get_running_loop().add_reader(sock.fileno(), self._receive)

    def _receive(self) -> None:
        assert self._sock is not None and self._on_message is not None
        while True:
            try:
                data = self._sock.recv(_MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            self._on_message(data.decode())

    async def publish(self, message: str) -> None:
        """Send `message` to every worker (this one included)."""
        if self._sock is None:
            return
        data = message.encode()
        for peer in self._directory.glob("*.sock"):
            try:
                self._sock.sendto(data, str(peer))
            except (ConnectionRefusedError, FileNotFoundError):
                # A worker that exited without removing its socket: nobody reads it now.
                with contextlib.suppress(FileNotFoundError):
                    peer.unlink()
            except BlockingIOError:
                get_logger().warning("worker_bus_full", peer=peer.name)

    async def close(self) -> None:
        """Stop receiving and remove this worker's socket."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
