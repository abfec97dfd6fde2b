"""Run `python -m llmux` as a real process and look at its workers through Linux's /proc.

Every process is started in its own session so that cleanup can kill the whole group (the
supervisor and its workers) and nothing outlives the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent.parent
_TCP_LISTEN = "0A"
_TCP_ESTABLISHED = "01"


@contextlib.contextmanager
def llmux_process(args: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m llmux ARGS`, output to `log_path`; the process group is killed on exit."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmux", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            # Workers may outlive a killed supervisor for a moment; the group kill reaches them.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)


async def wait_ready(
    session: aiohttp.ClientSession,
    port: int,
    process: subprocess.Popen[bytes],
    log_path: Path,
) -> None:
    """Poll `/health/ready` on `port` until 200 (10 s at most); fail early if llmux exits."""
    try:
        async with asyncio.timeout(10.0):
            while not await _ready(session, port):
                if process.poll() is not None:
                    code = process.returncode
                    raise AssertionError(f"llmux exited with {code}:\n{_log(log_path)}")
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"llmux not ready within 10s:\n{_log(log_path)}") from None


async def _ready(session: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with session.get(f"http://127.0.0.1:{port}/health/ready") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


def _log(path: Path) -> str:
    return path.read_text(errors="replace")


def children(pid: int) -> list[int]:
    """The direct child processes of `pid`."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found.extend(int(p) for p in (task / "children").read_text().split())
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    return inodes


def _tcp_sockets(port: int, state: str) -> set[str]:
    """Inodes of IPv4 TCP sockets whose local port is `port`, in `state`."""
    inodes: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == state:
            inodes.add(fields[9])
    return inodes


def pids_listening(pids: list[int], port: int) -> list[int]:
    """Those of `pids` that hold a listening socket on `port`."""
    listening = _tcp_sockets(port, _TCP_LISTEN)
    return [pid for pid in pids if _socket_inodes(pid) & listening]


def pids_connected(pids: list[int], port: int) -> list[int]:
    """Those of `pids` that hold an accepted, established connection on `port`."""
    established = _tcp_sockets(port, _TCP_ESTABLISHED)
    return [pid for pid in pids if _socket_inodes(pid) & established]


def is_running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
