"""Azure OpenAI through the gateway: deployment URLs, api-version, auth, Azure stream quirks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from llmux.serve import Gateway
from tests.helpers.edge import rejected, sdk_client
from tests.helpers.gateway import running_gateway
from tests.helpers.upstream import FakeUpstream, Reply, Stream

AZURE = Path(__file__).parent / "fixtures" / "azure"
HELLO: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]


def azure_config(root: str, *, api_key: str = "azure-secret", api_version: str = "") -> str:
    """A gateway with one Azure resource serving `gpt-4o` from deployment `prod-gpt4o`."""
    version = f"\n    api_version: {api_version}" if api_version else ""
    return f"""
server: {{host: 127.0.0.1, port: 0, admin_port: 0}}
providers:
  - name: azure
    type: azure
    api_key: "{api_key}"
    base_url: {root}{version}
    models:
      - name: gpt-4o
        upstream_model: prod-gpt4o
      - name: embed
        upstream_model: prod-embed
"""


@pytest.fixture
async def azure_gateway(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """The gateway in front of the fake upstream posing as an Azure resource."""
    async with running_gateway(azure_config(f"http://127.0.0.1:{upstream.port}")) as gateway:
        yield gateway


def _frames() -> list[bytes]:
    text = (AZURE / "chat_stream.sse").read_bytes()
    return [block + b"\n\n" for block in text.split(b"\n\n") if block.strip()]


async def test_chat_goes_to_the_deployment_url_with_api_version(
    azure_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """A chat for `gpt-4o` is POSTed to the deployment path with the default GA api-version."""
    async with sdk_client(azure_gateway) as client:
        completion = await client.chat.completions.create(model="gpt-4o", messages=HELLO)
    sent = upstream.received[0]
    assert sent.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert completion.model == "gpt-4o"


async def test_api_key_header_replaces_bearer(
    azure_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """The key goes in `api-key`; no Authorization header and never the client's key."""
    async with sdk_client(azure_gateway) as client:
        await client.chat.completions.create(model="gpt-4o", messages=HELLO)
    headers = {k.lower(): v for k, v in upstream.received[0].headers.items()}
    assert headers["api-key"] == "azure-secret"
    assert "authorization" not in headers


async def test_configured_api_version_is_used(upstream: FakeUpstream) -> None:
    """`api_version` on the provider overrides the default."""
    config = azure_config(f"http://127.0.0.1:{upstream.port}", api_version="2025-01-01-preview")
    async with running_gateway(config) as gateway, sdk_client(gateway) as client:
        await client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert upstream.received[0].query == {"api-version": "2025-01-01-preview"}


async def test_bearer_token_is_sent_as_authorization(upstream: FakeUpstream) -> None:
    """An `api_key` of `Bearer <token>` (Entra ID) is sent as Authorization, not api-key."""
    config = azure_config(f"http://127.0.0.1:{upstream.port}", api_key="Bearer eyJ0b2tlbg")
    async with running_gateway(config) as gateway, sdk_client(gateway) as client:
        await client.chat.completions.create(model="gpt-4o", messages=HELLO)
    headers = {k.lower(): v for k, v in upstream.received[0].headers.items()}
    assert headers["authorization"] == "Bearer eyJ0b2tlbg"
    assert "api-key" not in headers


async def test_base_url_ending_in_openai_is_accepted(upstream: FakeUpstream) -> None:
    """A pasted endpoint that already ends in `/openai` does not double the segment."""
    config = azure_config(f"http://127.0.0.1:{upstream.port}/openai")
    async with running_gateway(config) as gateway, sdk_client(gateway) as client:
        await client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert upstream.received[0].path == "/openai/deployments/prod-gpt4o/chat/completions"


async def test_stream_with_prompt_filter_chunk_relays_the_answer(
    azure_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """Azure's leading prompt-filter chunk passes through; content, finish and model are right."""
    upstream.enqueue(Stream(_frames()))
    async with sdk_client(azure_gateway) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert text == "Hello from Azure"
    assert finishes[-1] == "stop"
    assert {c.model for c in chunks} == {"gpt-4o"}
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 16


async def test_embeddings_go_to_the_embedding_deployment(
    azure_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """Embeddings use the embeddings path of their own deployment."""
    async with sdk_client(azure_gateway) as client:
        result = await client.embeddings.create(model="embed", input=["a", "b"])
    assert upstream.received[0].path == "/openai/deployments/prod-embed/embeddings"
    assert len(result.data) == 2


async def test_content_filter_error_is_a_clear_400(
    azure_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """Azure's 400 content_filter error reaches the client with its code and message."""
    upstream.enqueue(Reply(400, (AZURE / "error_content_filter.json").read_bytes()))
    async with sdk_client(azure_gateway) as client:
        exc = await rejected(client.chat.completions.create(model="gpt-4o", messages=HELLO))
    assert exc.status_code == 400
    assert exc.code == "content_filter"
    assert "content management policy" in exc.message


async def test_responses_are_served_over_the_chat_deployment(
    azure_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """/v1/responses on Azure is translated over the deployment's chat completions."""
    async with sdk_client(azure_gateway) as client:
        response = await client.responses.create(model="gpt-4o", input="Hi")
    sent = upstream.received[0]
    assert sent.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert sent.json["messages"] == [{"role": "user", "content": "Hi"}]
    assert response.model == "gpt-4o"
    assert response.status == "completed"
    assert response.output_text
