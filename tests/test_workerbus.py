"""The workers' invalidation bus (`llmux.workerbus`) over real Unix datagram sockets."""

from __future__ import annotations

import socket
from pathlib import Path

from llmux.workerbus import WorkerBus
from tests.helpers.edge import eventually


def _names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def test_publish_reaches_every_worker_including_the_sender(tmp_path: Path) -> None:
    """A message one worker publishes is delivered to each bound worker, the sender too."""
    heard: dict[str, list[str]] = {"a": [], "b": []}
    buses = [WorkerBus(tmp_path, name) for name in heard]
    for bus, name in zip(buses, heard, strict=True):
        await bus.start(heard[name].append)
    await buses[0].publish("token-1")
    delivered = await eventually(lambda: heard == {"a": ["token-1"], "b": ["token-1"]})
    for bus in buses:
        await bus.close()
    assert delivered, heard


async def test_publish_removes_a_dead_workers_socket(tmp_path: Path) -> None:
    """A socket file nobody reads any more (its worker was killed) is removed, not an error."""
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
        gone.bind(str(dead))
    bus = WorkerBus(tmp_path, "live")
    await bus.start(lambda message: None)
    await bus.publish("token-1")
    await bus.close()
    assert _names(tmp_path) == []


async def test_closed_bus_removes_its_socket_and_reports_no_epoch(tmp_path: Path) -> None:
    """After close, the worker's socket file is gone and its entries get the short TTL."""
    bus = WorkerBus(tmp_path, "w")
    await bus.start(lambda message: None)
    bound = (bus.epoch, _names(tmp_path))
    await bus.close()
    assert bound == (1, ["w.sock"])
    assert (bus.epoch, _names(tmp_path)) == (None, [])


async def test_unbindable_directory_leaves_the_bus_disconnected(tmp_path: Path) -> None:
    """A bus directory that does not exist: no exception, epoch None (cache TTL falls back)."""
    bus = WorkerBus(tmp_path / "missing", "w")
    await bus.start(lambda message: None)
    await bus.publish("token-1")
    assert bus.epoch is None
