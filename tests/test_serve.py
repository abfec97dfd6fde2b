"""`llmux serve` as a real process: drain on SIGTERM, multi-worker metrics, config errors."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import msgspec
import pytest

from llmux.config import parse_config
from llmux.serve import Gateway
from tests.helpers.governance import MASTER_KEY
from tests.helpers.ports import free_port
from tests.helpers.process import (
    ROOT,
    children,
    is_running,
    llmux_process,
    pids_connected,
    pids_listening,
    wait_ready,
)

_CHAT_STREAM = {
    "model": "mock-gpt",
    "messages": [{"role": "user", "content": "Count to ten."}],
    "stream": True,
}
_CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "Hi"}]}
_BOUNDED = aiohttp.ClientTimeout(total=10)
"""No client call in these tests may wait longer than this."""
_SETTLE = 3.0
"""Seconds an announced reload or cooldown may take to show on every worker (no spec bound;
room for a loaded CI machine. Key revocation keeps its 1 s bound)."""


def _write_config(tmp_path: Path, mock: str, *, extra: str = "") -> Path:
    path = tmp_path / "llmux.yaml"
    path.write_text(
        f"""{extra}
server:
  host: 127.0.0.1
  shutdown_grace: 5s
providers:
  - name: mock
    type: mock
    models: [mock-gpt]
    mock: {mock}
logging:
  access_log: false
store:
  url: sqlite://{tmp_path}/llmux.db
"""
    )
    return path


def _serve_args(config: Path, port: int, admin_port: int) -> list[str]:
    return ["serve", "--config", str(config), "--port", str(port), "--admin-port", str(admin_port)]


async def _drain_signal(session: aiohttp.ClientSession, port: int, admin_port: int) -> str:
    """How the draining process turns traffic away: its readiness body, or `refused`."""
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        try:
            async with session.get(f"http://127.0.0.1:{admin_port}/health/ready") as response:
                if response.status == 503:
                    return await response.text()
        except aiohttp.ClientConnectionError:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                return "refused"
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.02)
    return "still ready"


async def test_sigterm_drains_in_flight_stream(tmp_path: Path) -> None:
    """SIGTERM mid-stream: readiness turns 503, the stream still ends with [DONE], exit 0."""
    config = _write_config(tmp_path, "{latency: 0ms, chunks: 20, chunk_delay: 100ms}")
    port, admin_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    with llmux_process(_serve_args(config, port, admin_port), log) as process:
        async with aiohttp.ClientSession(timeout=_BOUNDED) as session:
            await wait_ready(session, admin_port, process, log)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            async with session.post(url, json=_CHAT_STREAM) as response:
                assert response.status == 200
                first = await response.content.readuntil(b"\n\n")
                process.send_signal(signal.SIGTERM)
                turned_away = await _drain_signal(session, port, admin_port)
                rest = await response.content.read()
        exit_code = await asyncio.to_thread(process.wait, 8.0)
    assert first.startswith(b"data: {")
    assert turned_away in ('{"status":"draining","checks":{"store":"ok"}}', "refused")
    assert rest.endswith(b"data: [DONE]\n\n")
    assert b'"finish_reason":"stop"' in rest
    assert exit_code == 0, log.read_text()


@dataclass(frozen=True)
class _Workers:
    """`llmux serve --workers 2`, ready, with a pooled client session."""

    process: subprocess.Popen[bytes]
    session: aiohttp.ClientSession
    port: int
    admin_port: int
    pids: list[int]
    log: Path

    async def stop(self) -> int:
        """SIGTERM the supervisor; its exit code once the workers drained."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, 8.0)


@asynccontextmanager
async def _two_workers(tmp_path: Path, config: Path) -> AsyncIterator[_Workers]:
    port, admin_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    args = [*_serve_args(config, port, admin_port), "--workers", "2"]
    with llmux_process(args, log) as process:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=_BOUNDED) as session:
            await wait_ready(session, admin_port, process, log)
            pids = await _listening_workers(process.pid, port, count=2)
            yield _Workers(process, session, port, admin_port, pids, log)


async def test_workers_share_port_and_sum_metrics(tmp_path: Path) -> None:
    """With --workers 2 both workers serve, /metrics counts every request once, SIGTERM exits 0."""
    sent = 20
    async with _two_workers(tmp_path, _write_config(tmp_path, "{latency: 300ms}")) as run:
        url = f"http://127.0.0.1:{run.port}/v1/chat/completions"
        statuses = await asyncio.gather(*(_post(run.session, url) for _ in range(sent)))
        # The 20 pooled keep-alive connections are still open: see who accepted them.
        serving = pids_connected(run.pids, run.port)
        async with run.session.get(f"http://127.0.0.1:{run.admin_port}/metrics") as response:
            exposition = await response.text()
        exit_code = await run.stop()
        workers_left = [pid for pid in run.pids if is_running(pid)]
    assert statuses == [200] * sent
    assert sorted(serving) == sorted(run.pids)
    assert _sum_samples(exposition, "llmux_requests_total") == sent
    assert exit_code == 0, run.log.read_text()
    assert workers_left == []


async def test_blocked_key_is_refused_by_every_worker(tmp_path: Path) -> None:
    """Standalone with --workers 2: a key blocked through one worker's admin port is refused by
    both workers within a second, though each had it cached (their key cache lasts 30 s)."""
    config = _write_config(tmp_path, "{latency: 0ms}", extra=f"auth: {{master_key: {MASTER_KEY}}}")
    admin = {"Authorization": f"Bearer {MASTER_KEY}"}
    async with _two_workers(tmp_path, config) as run:
        admin_url = f"http://127.0.0.1:{run.admin_port}"
        async with run.session.post(f"{admin_url}/key/generate", json={}, headers=admin) as reply:
            key = (await reply.json())["key"]
        url = f"http://127.0.0.1:{run.port}/v1/chat/completions"
        before = await _statuses(run.session, url, key, 20)
        serving = pids_connected(run.pids, run.port)
        block = {"key": key}
        async with run.session.post(f"{admin_url}/key/block", json=block, headers=admin) as reply:
            blocked = reply.status
        after = await _statuses_once_settled(run.session, url, key, 20, within=1.0)
        await run.stop()
    assert before == [200] * 20
    assert sorted(serving) == sorted(run.pids)
    assert blocked == 200
    assert after == [401] * 20


async def test_reload_through_one_worker_reloads_every_worker(tmp_path: Path) -> None:
    """A config reload asked of one worker's admin port is applied by both workers: a model the
    new file adds is served on every pooled connection within seconds."""
    config = _write_config(tmp_path, "{latency: 0ms}")
    async with _two_workers(tmp_path, config) as run:
        url = f"http://127.0.0.1:{run.port}/v1/chat/completions"
        before = await _statuses(run.session, url, None, 20, model="mock-new")
        serving = pids_connected(run.pids, run.port)
        text = config.read_text().replace("models: [mock-gpt]", "models: [mock-gpt, mock-new]")
        config.write_text(text)
        reload_url = f"http://127.0.0.1:{run.admin_port}/control/config/reload"
        async with run.session.post(reload_url, json={}) as reply:
            reloaded = reply.status
        after = await _statuses_once_settled(
            run.session, url, None, 20, within=_SETTLE, model="mock-new"
        )
        await run.stop()
    assert sorted(serving) == sorted(run.pids)
    assert set(before) == {404}
    assert reloaded == 200
    assert after == [200] * 20
    # Once per worker: the one asked does not repeat its own announcement.
    assert run.log.read_text().count('"event":"config_reloaded"') == 2, run.log.read_text()


async def test_cooldown_through_one_worker_cools_every_worker(tmp_path: Path) -> None:
    """A manual cooldown asked of one worker's admin port is applied by both workers: every
    pooled connection's calls go to the other deployment within seconds."""
    config = tmp_path / "llmux.yaml"
    config.write_text(_TWO_MOCKS.format(store=tmp_path / "llmux.db"))
    async with _two_workers(tmp_path, config) as run:
        url = f"http://127.0.0.1:{run.port}/v1/chat/completions"
        before = await _deployments(run, url)
        serving = pids_connected(run.pids, run.port)
        cooldown = {"deployment": "first/mock-gpt", "seconds": 60}
        admin_url = f"http://127.0.0.1:{run.admin_port}/control/deployments/cooldown"
        async with run.session.post(admin_url, json=cooldown) as reply:
            cooled = reply.status
        deadline = time.monotonic() + _SETTLE
        while "first/mock-gpt" in (picked := await _deployments(run, url)):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        await run.stop()
    assert before == {"first/mock-gpt", "second/mock-gpt"}
    assert sorted(serving) == sorted(run.pids)
    assert cooled == 200
    assert picked == {"second/mock-gpt"}


_TWO_MOCKS = """
server:
  host: 127.0.0.1
  shutdown_grace: 5s
providers:
  - {{name: first, type: mock, models: [mock-gpt], mock: {{latency: 0ms}}}}
  - {{name: second, type: mock, models: [mock-gpt], mock: {{latency: 0ms}}}}
logging:
  access_log: false
store:
  url: sqlite://{store}
"""


async def _deployments(run: _Workers, url: str) -> set[str]:
    """The deployments that answered 20 concurrent pooled calls."""

    async def one() -> str:
        async with run.session.post(url, json=_CHAT) as response:
            await response.read()
            return response.headers.get("x-llmux-deployment", "")

    return set(await asyncio.gather(*(one() for _ in range(20))))


async def _statuses(
    session: aiohttp.ClientSession,
    url: str,
    key: str | None,
    count: int,
    *,
    model: str = "mock-gpt",
) -> list[int]:
    """Statuses of `count` concurrent chat calls (pooled, so spread over the workers)."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    body = {**_CHAT, "model": model}

    async def one() -> int:
        async with session.post(url, json=body, headers=headers) as response:
            await response.read()
            return response.status

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _statuses_once_settled(
    session: aiohttp.ClientSession,
    url: str,
    key: str | None,
    count: int,
    *,
    within: float,
    model: str = "mock-gpt",
) -> list[int]:
    """`_statuses` until they all agree, for at most `within` seconds; the last ones seen."""
    deadline = time.monotonic() + within
    while True:
        statuses = await _statuses(session, url, key, count, model=model)
        if len(set(statuses)) == 1 or time.monotonic() > deadline:
            return statuses
        await asyncio.sleep(0.05)


async def _listening_workers(supervisor: int, port: int, count: int) -> list[int]:
    """The worker pids once `count` of them listen on `port` (bounded wait)."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        listening = pids_listening(children(supervisor), port)
        if len(listening) >= count:
            return listening
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} workers listen on {port}")


async def _post(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(url, json=_CHAT) as response:
        body = msgspec.json.decode(await response.read())
        assert body["model"] == "mock-gpt"
        return response.status


def _sum_samples(exposition: str, name: str) -> float:
    """The sum of every sample of metric `name` (all label sets) in a text exposition."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith((name + "{", name + " ")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_config_error_exits_1_without_traceback(tmp_path: Path) -> None:
    """`serve` on a bad config prints the located error, no traceback, and exits 1."""
    bad = ROOT / "tests" / "fixtures" / "conf" / "unknown_field.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "llmux", "serve", "--config", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == f"error: {bad}:12: providers[0].tpye: unknown field\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_port_in_use_exits_1_naming_the_address(tmp_path: Path) -> None:
    """`serve` whose admin port is taken logs `start_failed` with the address and exits 1."""
    config = _write_config(tmp_path, "{latency: 0ms}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        admin_port = int(taken.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "llmux", *_serve_args(config, free_port(), admin_port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "start_failed" in output
    assert f"('127.0.0.1', {admin_port}): address already in use" in output
    assert "Traceback" not in output


async def test_failed_start_releases_the_gateway_port() -> None:
    """A start that cannot bind the admin port closes the gateway port it had already bound."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = free_port()
        config = _in_process_config(port, admin_port=int(taken.getsockname()[1]))
        gateway = Gateway(parse_config(config, "test.yaml", {}))
        with pytest.raises(OSError, match="address already in use"):
            await gateway.start()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


def _in_process_config(port: int, admin_port: int) -> str:
    return f"""
server: {{host: 127.0.0.1, port: {port}, admin_port: {admin_port}}}
providers: [{{name: mock, type: mock, models: [mock-gpt]}}]
logging: {{access_log: false}}
store: {{url: 'memory://'}}
"""
