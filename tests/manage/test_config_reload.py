"""Config reload on a live gateway: `/control/config`, `/control/config/reload`, the file watcher,
and what a swap keeps (router state of unchanged deployments, in-flight streams)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from llmux.reload import ConfigWatcher
from llmux.serve import Gateway
from tests.helpers.edge import RawReply, data_payloads, eventually_async, raw_request
from tests.helpers.gateway import gateway_from
from tests.helpers.governance import MASTER_KEY
from tests.helpers.manage import actor_key, admin_call
from tests.helpers.ports import free_port
from tests.helpers.upstream import FakeUpstream, sse_frames

ONE = "one/gpt-4o-mini"
TWO = "two/gpt-4o-mini"
RELOAD = "/control/config/reload"


class GatedUpstream:
    """An OpenAI upstream that only streams: first frame, then a wait for `release()`."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self._gate = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def release(self) -> None:
        """Let every held stream finish."""
        self._gate.set()

    async def start(self) -> None:
        """Listen on a loopback port."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"

    async def stop(self) -> None:
        """Release held streams and close."""
        self.release()
        assert self._runner is not None
        await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        frames = sse_frames("chat_stream.sse")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(frames[0])
        self.entered.set()
        await self._gate.wait()
        for frame in frames[1:]:
            await response.write(frame)
        await response.write_eof()
        return response


def config_text(providers: dict[str, tuple[str, str]], *, watch: bool = False) -> str:
    """A governed config; `providers` maps a name to its base URL and its `models:` YAML."""
    blocks = "".join(
        f"  - name: {name}\n    type: openai-compatible\n    base_url: {url}\n"
        f"    api_key: sk-{name}\n    models: {models}\n"
        for name, (url, models) in providers.items()
    )
    return (
        f"server:\n  host: 127.0.0.1\n  port: 0\n  admin_port: {free_port()}\n"
        f"  watch_config: {str(watch).lower()}\n"
        f"providers:\n{blocks}"
        f"auth:\n  master_key: {MASTER_KEY}\n"
        "store: {url: 'memory://'}\n"
    )


@pytest.fixture
async def gated() -> AsyncIterator[GatedUpstream]:
    """The upstream of provider `one`, holding streams until released."""
    upstream = GatedUpstream()
    await upstream.start()
    yield upstream
    await upstream.stop()


@pytest.fixture
async def other() -> AsyncIterator[FakeUpstream]:
    """The upstream of provider `two`, answering at once."""
    upstream = FakeUpstream()
    await upstream.start()
    yield upstream
    await upstream.stop()


@pytest.fixture
def path(tmp_path: Path, gated: GatedUpstream) -> Path:
    """The config file: provider `one` serves `gpt-4o-mini`."""
    file = tmp_path / "llmux.yaml"
    write(file, config_text({"one": (gated.url, "[gpt-4o-mini]")}))
    return file


@pytest.fixture
async def gateway(path: Path) -> AsyncIterator[Gateway]:
    """A gateway serving the config file `path`."""
    async with gateway_from(path) as running:
        yield running


def write(path: Path, text: str) -> None:
    """Replace the config file's text."""
    path.write_text(text)


def checksum(path: Path) -> str:
    """The sha256 of the file's text, as the loader records it."""
    return hashlib.sha256(path.read_text().encode()).hexdigest()


def switch_to_two(path: Path, other: FakeUpstream) -> None:
    """Rewrite the config: `gpt-4o-mini` now comes from provider `two` only."""
    write(path, config_text({"two": (other.url, "[gpt-4o-mini]")}))


async def chat(gateway: Gateway, model: str = "gpt-4o-mini") -> RawReply:
    """One non-streaming chat completion with the master key."""
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
    return await raw_request(
        "POST",
        f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"},
    )


async def stream(gateway: Gateway) -> RawReply:
    """One streamed chat completion with the master key, read to its end."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    return await raw_request(
        "POST",
        f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
        data=json.dumps({**body, "stream": True}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"},
    )


async def deployment_view(gateway: Gateway, deployment: str) -> dict[str, Any]:
    """One deployment of `GET /control/deployments`."""
    reply = await admin_call(gateway, "GET", "/control/deployments")
    found: dict[str, Any] = next(item for item in reply.json["data"] if item["id"] == deployment)
    return found


async def test_config_answers_path_checksum_and_load_time(gateway: Gateway, path: Path) -> None:
    """`GET /control/config` names the file, its sha256 and when it was loaded."""
    reply = await admin_call(gateway, "GET", "/control/config")
    assert reply.status == 200
    assert set(reply.json) == {"path", "checksum", "loaded_at"}
    assert (reply.json["path"], reply.json["checksum"]) == (str(path), checksum(path))
    assert datetime.fromisoformat(reply.json["loaded_at"]).tzinfo is not None


async def test_reload_answers_the_new_checksum(
    gateway: Gateway, path: Path, gated: GatedUpstream, other: FakeUpstream
) -> None:
    """A reload of a changed file answers its checksum, and `/control/config` agrees."""
    switch_to_two(path, other)
    reloaded = await admin_call(gateway, "POST", RELOAD, {})
    assert (reloaded.status, reloaded.json["checksum"]) == (200, checksum(path))
    assert (await admin_call(gateway, "GET", "/control/config")).json == reloaded.json


async def test_requests_after_reload_use_the_new_config(
    gateway: Gateway, path: Path, gated: GatedUpstream, other: FakeUpstream
) -> None:
    """After the swap `gpt-4o-mini` goes to provider `two`."""
    switch_to_two(path, other)
    await admin_call(gateway, "POST", RELOAD)
    reply = await chat(gateway)
    assert (reply.status, reply.headers["x-llmux-deployment"]) == (200, TWO)
    assert len(other.received) == 1


async def test_stream_in_flight_during_reload_completes_on_the_old_config(
    gateway: Gateway, path: Path, gated: GatedUpstream, other: FakeUpstream
) -> None:
    """A stream held open across the swap finishes from `one`; the next request uses `two`."""
    held = asyncio.create_task(stream(gateway))
    await gated.entered.wait()
    switch_to_two(path, other)
    assert (await admin_call(gateway, "POST", RELOAD)).status == 200
    after = await chat(gateway)
    gated.release()
    finished = await held
    assert after.headers["x-llmux-deployment"] == TWO
    assert (finished.status, finished.headers["x-llmux-deployment"]) == (200, ONE)
    assert data_payloads(finished.body)[-1] == b"[DONE]"


async def test_invalid_file_is_400_with_its_located_error(gateway: Gateway, path: Path) -> None:
    """A file the loader rejects: 400 `invalid_config` carrying `file:line: key: problem`."""
    text = config_text({"one": ("http://127.0.0.1:9/v1", "[gpt-4o-mini]")})
    text = text.replace("type: openai-compatible", "type: no-such-type")
    write(path, text)
    line = text.splitlines().index("    type: no-such-type") + 1
    reply = await admin_call(gateway, "POST", RELOAD)
    assert (reply.status, reply.json["error"]["code"]) == (400, "invalid_config")
    assert reply.json["error"]["message"].startswith(
        "The config file is invalid; the running config keeps serving. "
        f"{path}:{line}: providers[0].type: invalid value"
    )


async def test_invalid_file_keeps_the_old_config_serving(
    gateway: Gateway, path: Path, gated: GatedUpstream
) -> None:
    """After a rejected reload the old checksum and the old deployments still serve, and a
    stream in flight during the attempt completes."""
    served = checksum(path)
    held = asyncio.create_task(stream(gateway))
    await gated.entered.wait()
    write(path, "providers: [unclosed\n")
    assert (await admin_call(gateway, "POST", RELOAD)).status == 400
    gated.release()
    assert (await held).status == 200
    assert (await admin_call(gateway, "GET", "/control/config")).json["checksum"] == served
    assert (await stream(gateway)).headers["x-llmux-deployment"] == ONE


async def test_stale_expected_checksum_is_409(gateway: Gateway, path: Path) -> None:
    """`expected_checksum` other than the serving one: 409 `checksum_mismatch`, no reload."""
    served = checksum(path)
    reply = await admin_call(gateway, "POST", RELOAD, {"expected_checksum": "0" * 64})
    assert reply.status == 409
    assert reply.json["error"] == {
        "message": f"The serving config's checksum is {served}, not {'0' * 64}: it changed"
        " since you read it.",
        "type": "invalid_request_error",
        "param": "expected_checksum",
        "code": "checksum_mismatch",
    }


async def test_matching_expected_checksum_reloads(
    gateway: Gateway, path: Path, gated: GatedUpstream, other: FakeUpstream
) -> None:
    """`expected_checksum` equal to the serving one: the reload goes through."""
    served = checksum(path)
    switch_to_two(path, other)
    reply = await admin_call(gateway, "POST", RELOAD, {"expected_checksum": served})
    assert (reply.status, reply.json["checksum"]) == (200, checksum(path))


async def test_unknown_reload_field_is_422(gateway: Gateway) -> None:
    """A typo in the reload body is a 422 naming it."""
    reply = await admin_call(gateway, "POST", RELOAD, {"expected_checksun": "x"})
    assert (reply.status, reply.json["error"]["param"]) == (422, "expected_checksun")


async def test_unchanged_deployment_keeps_its_cooldown(
    gateway: Gateway, path: Path, gated: GatedUpstream, other: FakeUpstream
) -> None:
    """A deployment whose config did not change stays cooling across a reload."""
    await admin_call(
        gateway, "POST", "/control/deployments/cooldown", {"deployment": ONE, "seconds": 60}
    )
    write(
        path,
        config_text({"one": (gated.url, "[gpt-4o-mini]"), "two": (other.url, "[gpt-4o-mini]")}),
    )
    await admin_call(gateway, "POST", RELOAD)
    assert (await deployment_view(gateway, ONE))["state"] == "cooling"
    assert (await deployment_view(gateway, TWO))["state"] == "healthy"


async def test_changed_deployment_starts_fresh(
    gateway: Gateway, path: Path, gated: GatedUpstream
) -> None:
    """A deployment whose settings changed (here its rpm) loses its old cooldown."""
    await admin_call(
        gateway, "POST", "/control/deployments/cooldown", {"deployment": ONE, "seconds": 60}
    )
    write(path, config_text({"one": (gated.url, "[{name: gpt-4o-mini, rpm: 10}]")}))
    await admin_call(gateway, "POST", RELOAD)
    view = await deployment_view(gateway, ONE)
    assert (view["state"], view["rpm_limit"]) == ("healthy", 10)


async def test_in_flight_count_carries_over_and_drains(
    gateway: Gateway, path: Path, gated: GatedUpstream, other: FakeUpstream
) -> None:
    """A stream started before the reload counts as in flight after it, and stops counting
    when it ends on the old runtime."""
    held = asyncio.create_task(stream(gateway))
    await gated.entered.wait()
    write(
        path,
        config_text({"one": (gated.url, "[gpt-4o-mini]"), "two": (other.url, "[gpt-4o-mini]")}),
    )
    await admin_call(gateway, "POST", RELOAD)
    during = (await deployment_view(gateway, ONE))["in_flight"]
    gated.release()
    await held
    assert (during, (await deployment_view(gateway, ONE))["in_flight"]) == (1, 0)


async def test_watcher_reloads_a_changed_file(
    gateway: Gateway, path: Path, gated: GatedUpstream, other: FakeUpstream
) -> None:
    """One poll after the file changed swaps the config in."""
    assert gateway.reloader is not None
    watcher = ConfigWatcher(gateway.reloader)
    switch_to_two(path, other)
    assert await watcher.check() is True
    assert gateway.reloader.state().checksum == checksum(path)


async def test_watcher_skips_a_broken_file_until_it_is_fixed(
    gateway: Gateway, path: Path, gated: GatedUpstream, other: FakeUpstream
) -> None:
    """A broken file is not applied (old config serves); the fixed file then is."""
    assert gateway.reloader is not None
    watcher = ConfigWatcher(gateway.reloader)
    served = checksum(path)
    write(path, "providers: [unclosed\n")
    broken = await watcher.check()
    still = gateway.reloader.state().checksum
    switch_to_two(path, other)
    assert (broken, still, await watcher.check()) == (False, served, True)


async def test_watch_config_reloads_without_a_call(
    tmp_path: Path, gated: GatedUpstream, other: FakeUpstream
) -> None:
    """With `server.watch_config` the gateway picks up an edited file by itself."""
    file = tmp_path / "watched.yaml"
    write(file, config_text({"one": (gated.url, "[gpt-4o-mini]")}, watch=True))
    async with gateway_from(file) as gateway:
        write(file, config_text({"two": (other.url, "[gpt-4o-mini]")}, watch=True))

        async def swapped() -> bool:
            reply = await admin_call(gateway, "GET", "/control/config")
            return bool(reply.json["checksum"] == checksum(file))

        assert await eventually_async(swapped, within=10.0)


async def test_reload_keeps_the_bound_ports(
    gateway: Gateway, path: Path, gated: GatedUpstream, other: FakeUpstream
) -> None:
    """The listen addresses stay those of the running server (the file says port 0)."""
    switch_to_two(path, other)
    await admin_call(gateway, "POST", RELOAD)
    assert gateway.holder is not None
    server = gateway.holder.current.loaded.config.server
    assert (server.port, server.admin_port) == (
        gateway.loaded.config.server.port,
        gateway.loaded.config.server.admin_port,
    )


async def test_viewer_reads_config(gateway: Gateway) -> None:
    """A `proxy_admin_viewer` may read the serving config."""
    key = await actor_key(gateway, "viewer", role="proxy_admin_viewer")
    assert (await admin_call(gateway, "GET", "/control/config", key=key)).status == 200


async def test_viewer_may_not_reload(gateway: Gateway) -> None:
    """A `proxy_admin_viewer` may only read: 403 `read_only`."""
    key = await actor_key(gateway, "viewer", role="proxy_admin_viewer")
    reply = await admin_call(gateway, "POST", RELOAD, key=key)
    assert (reply.status, reply.json["error"]["code"]) == (403, "read_only")


async def test_internal_user_may_neither_read_nor_reload(gateway: Gateway) -> None:
    """An `internal_user` gets 403 naming the role each needs."""
    key = await actor_key(gateway, "tenant")
    read = await admin_call(gateway, "GET", "/control/config", key=key)
    reload = await admin_call(gateway, "POST", RELOAD, key=key)
    assert (read.status, reload.status) == (403, 403)
    assert read.json["error"]["message"] == (
        "Not allowed: this needs the proxy_admin or proxy_admin_viewer role."
    )
    assert reload.json["error"]["message"] == "Not allowed: this needs the proxy_admin role."


async def test_reload_needs_a_credential(gateway: Gateway) -> None:
    """No credential: 401."""
    assert (await admin_call(gateway, "POST", RELOAD, key=None)).status == 401


async def test_gateway_reload_method_swaps_the_runtime(
    gateway: Gateway, path: Path, gated: GatedUpstream, other: FakeUpstream
) -> None:
    """`Gateway.reload()` is the same reload, for embedders and the CLI."""
    switch_to_two(path, other)
    state = await gateway.reload()
    assert state.checksum == checksum(path)
    assert (await chat(gateway)).headers["x-llmux-deployment"] == TWO


async def test_change_to_a_start_only_section_is_flagged(
    gateway: Gateway, path: Path, gated: GatedUpstream
) -> None:
    """A changed `server` option (read at start) is logged as needing a restart."""
    text = config_text({"one": (gated.url, "[gpt-4o-mini]")})
    write(path, text.replace("  port: 0\n", "  port: 0\n  max_body_size: 1MiB\n"))
    with structlog.testing.capture_logs() as events:
        assert (await admin_call(gateway, "POST", RELOAD)).status == 200
    flagged = [event for event in events if event["event"] == "config_restart_required"]
    assert [event["sections"] for event in flagged] == [["server"]]
