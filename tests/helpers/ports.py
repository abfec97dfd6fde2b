"""Loopback ports for servers a test starts by number (subprocesses, configs with fixed ports).

Binding port 0 and releasing it hands back a port from the kernel's ephemeral range, and the
next outbound connection anywhere on the machine may take that very port as its local end
before the server binds it (CI failed once with EADDRINUSE that way). The kernel never hands out
a port below the ephemeral range implicitly, so one taken from there that binds now stays free
until this process binds it; each is issued once per test run.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DEFAULT_EPHEMERAL_LOW = 32768
_SPAN = 10_000
_ATTEMPTS = 200
_issued: set[int] = set()
_random = random.SystemRandom()


def free_port() -> int:
    """A loopback port below the ephemeral range that nothing listens on, not issued before."""
    high = _ephemeral_low()
    low = max(1024, high - _SPAN)
    for _ in range(_ATTEMPTS):
        port = _random.randrange(low, high)
        if port not in _issued and _binds(port):
            _issued.add(port)
            return port
    raise RuntimeError(f"no free loopback port in {low}..{high - 1}")


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_LOW


def _binds(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
