"""Helpers for tests at the gateway's network edge: error-shape checks, SDK and raw clients, SSE.

Used by the error, auth, resilience, request-id and metrics tests. Nothing here knows llmux's
internals: it speaks HTTP to a running gateway and reads what comes back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import pytest
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families

from llmux.serve import Gateway

__all__ = [
    "ERROR_KEYS",
    "RawReply",
    "assert_openai_error",
    "data_payloads",
    "eventually",
    "eventually_async",
    "metric_samples",
    "raw_request",
    "rejected",
    "sdk_client",
]

ERROR_KEYS = frozenset({"message", "type", "param", "code"})


def assert_openai_error(
    payload: object,
    *,
    type: str,
    code: str | None,
    param: str | None,
    mentions: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check `payload` is exactly `{"error": {message, type, param, code}}` with these values."""
    assert isinstance(payload, dict), payload
    assert set(payload) == {"error"}, payload
    error = payload["error"]
    assert isinstance(error, dict), payload
    assert set(error) == ERROR_KEYS, error
    assert error["type"] == type, error
    assert error["code"] == code, error
    assert error["param"] == param, error
    message = error["message"]
    assert isinstance(message, str) and message, error
    for word in mentions:
        assert word in message, (word, message)
    return error


async def rejected(call: Awaitable[object]) -> openai.APIStatusError:
    """Await an SDK call that must fail with an HTTP error status, and return the error."""
    with pytest.raises(openai.APIStatusError) as info:
        await call
    return info.value


@asynccontextmanager
async def sdk_client(
    gateway: Gateway, api_key: str = "sk-client", **options: Any
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official SDK pointed at `gateway`, without SDK-side retries."""
    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{gateway.port}/v1",
        api_key=api_key,
        max_retries=0,
        **options,
    )
    try:
        yield client
    finally:
        await client.close()


@dataclass(frozen=True)
class RawReply:
    """A whole HTTP response as a raw client saw it."""

    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes

    @property
    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


async def raw_request(
    method: str,
    url: str,
    *,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> RawReply:
    """Send one request with aiohttp (no SDK) and read the whole response."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers=headers) as response,
    ):
        body = await response.read()
        return RawReply(response.status, CIMultiDict(response.headers), body)


def data_payloads(body: bytes) -> list[bytes]:
    """The `data:` payloads of an SSE body, in order."""
    payloads: list[bytes] = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if lines:
            payloads.append(b"\n".join(lines))
    return payloads


async def eventually(check: Callable[[], bool], *, within: float = 3.0) -> bool:
    """Poll `check` until it holds or `within` seconds pass; the last result."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def eventually_async(check: Callable[[], Awaitable[bool]], *, within: float = 3.0) -> bool:
    """Like `eventually`, for a check that needs to await (e.g. read `/metrics`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def metric_samples(gateway: Gateway) -> list[tuple[str, dict[str, str], float]]:
    """Every sample on the admin `/metrics` page as (name, labels, value)."""
    reply = await raw_request("GET", f"http://127.0.0.1:{gateway.admin_port}/metrics")
    assert reply.status == 200, reply
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(reply.body.decode())
        for sample in family.samples
    ]
