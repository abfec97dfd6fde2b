"""/health/ready: not ready while the store (or Redis, in distributed mode) is unreachable.

The dependencies sit behind a TCP proxy that a test cuts and resumes; readiness flips to 503
`not_ready` naming the dependency, and back to 200 once it answers again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import pytest

from llmux.readiness import Readiness
from llmux.serve import Gateway
from tests.governance._outage import PG_URL, TcpProxy, eventually
from tests.helpers.edge import raw_request
from tests.helpers.gateway import running_gateway, upstream_config


async def _ready(gateway: Gateway) -> tuple[int, object]:
    reply = await raw_request("GET", f"http://127.0.0.1:{gateway.admin_port}/health/ready")
    return reply.status, reply.json


def _until(gateway: Gateway, status: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await _ready(gateway))[0] == status

    return check


@pytest.fixture
async def proxy() -> AsyncIterator[Callable[[int], Awaitable[TcpProxy]]]:
    """Start TCP proxies to local ports; all closed at the end."""
    started: list[TcpProxy] = []

    async def start(port: int) -> TcpProxy:
        relay = TcpProxy("127.0.0.1", port)
        await relay.start()
        started.append(relay)
        return relay

    yield start
    for relay in started:
        await relay.close()


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A unique Postgres schema name, dropped afterwards."""
    name = f"llmux_ready_{uuid.uuid4().hex[:12]}"
    yield name
    connection = await asyncpg.connect(PG_URL)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await connection.close()


async def test_ready_flips_while_postgres_is_unreachable(
    proxy: Callable[[int], Awaitable[TcpProxy]], schema: str
) -> None:
    """Postgres cut: 503 not_ready naming the store; back: 200 ready."""
    relay = await proxy(5432)
    store = f"postgresql://postgres@127.0.0.1:{relay.port}/postgres?schema={schema}"
    config = upstream_config("http://127.0.0.1:9/v1", extra=f"store: {{url: '{store}'}}")
    async with running_gateway(config) as gateway:
        assert await _ready(gateway) == (200, {"status": "ready", "checks": {"store": "ok"}})
        await relay.cut()
        await eventually(_until(gateway, 503))
        status, body = await _ready(gateway)
        assert isinstance(body, dict)
        assert body["status"] == "not_ready"
        assert body["checks"]["store"].startswith("unreachable")
        await relay.resume()
        await eventually(_until(gateway, 200))


async def test_ready_flips_while_redis_is_unreachable(
    proxy: Callable[[int], Awaitable[TcpProxy]],
) -> None:
    """Distributed mode, Redis cut: 503 naming redis; back: 200."""
    relay = await proxy(6379)
    extra = f"""
deployment: {{mode: distributed}}
redis: {{url: "redis://127.0.0.1:{relay.port}/0", key_prefix: "ready-{uuid.uuid4().hex[:8]}:"}}
store: {{url: "memory://"}}
"""
    config = upstream_config("http://127.0.0.1:9/v1", extra=extra).replace(
        "routing:\n", "routing:\n  distributed: true\n"
    )
    async with running_gateway(config) as gateway:
        await eventually(_until(gateway, 200))
        assert (await _ready(gateway))[1] == {
            "status": "ready",
            "checks": {"store": "ok", "redis": "ok"},
        }
        await relay.cut()
        await eventually(_until(gateway, 503))
        body = (await _ready(gateway))[1]
        assert isinstance(body, dict)
        assert body["checks"]["redis"].startswith("unreachable")
        await relay.resume()
        await eventually(_until(gateway, 200))


async def test_readiness_reuses_a_fresh_answer() -> None:
    """Within the interval the checks do not run again."""
    calls = 0

    async def check() -> None:
        nonlocal calls
        calls += 1

    now = [0.0]
    readiness = Readiness({"store": check}, interval=1.0, clock=lambda: now[0])
    assert await readiness.status() == {"store": "ok"}
    await readiness.status()
    assert calls == 1
    now[0] = 1.5
    await readiness.status()
    assert calls == 2


async def test_readiness_reports_the_failure_reason() -> None:
    """A failing check is `unreachable` with the error's type and message."""

    async def check() -> None:
        raise ConnectionRefusedError("port closed")

    readiness = Readiness({"redis": check})
    assert await readiness.status() == {"redis": "unreachable: ConnectionRefusedError: port closed"}


async def test_readiness_bounds_a_hanging_check() -> None:
    """A check that never answers counts as unreachable after the timeout."""

    async def check() -> None:
        await asyncio.Event().wait()

    readiness = Readiness({"store": check}, timeout=0.05)
    assert await readiness.status() == {"store": "unreachable: no answer within 0.05s"}
