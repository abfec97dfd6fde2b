"""Shared fixtures: a fake upstream, a gateway in front of it, and official SDK clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from llmux.serve import Gateway
from tests.helpers.gateway import running_gateway, upstream_config
from tests.helpers.upstream import FakeUpstream, started_fakes


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    """A fake OpenAI upstream replaying recorded fixtures."""
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def gateway(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """A gateway with the fake upstream and the mock provider, no retries, no auth."""
    async with running_gateway(upstream_config(upstream.url)) as running:
        yield running


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official OpenAI SDK pointed at the gateway."""
    sdk = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{gateway.port}/v1", api_key="sk-client", max_retries=0
    )
    yield sdk
    await sdk.close()


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeUpstream, FakeUpstream, FakeUpstream]]:
    """Three fake upstreams, for gateways with providers `one`, `two` and `spare`."""
    async with started_fakes(3) as (one, two, spare):
        yield one, two, spare
