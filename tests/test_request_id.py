"""Every gateway response carries `x-request-id`: the client's when sane, else a fresh one.

Covered: JSON 200, SSE streams, validation 4xx, unknown routes, upstream 5xx; the SDK exposes
the id as `exc.request_id` on errors.
"""

from __future__ import annotations

import re

import openai
from openai.types.chat import ChatCompletionMessageParam

from llmux.serve import Gateway
from tests.helpers.edge import raw_request, rejected
from tests.helpers.upstream import FakeUpstream, Reply

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
SANE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def fresh_id(value: str | None) -> str:
    """Assert `value` is a usable request id and return it."""
    assert value is not None
    assert SANE.match(value), value
    return value


async def test_json_response_has_request_id(client: openai.AsyncOpenAI) -> None:
    """A successful non-streaming chat carries an `x-request-id` header."""
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    assert raw.status_code == 200
    fresh_id(raw.headers.get("x-request-id"))


async def test_each_request_gets_its_own_id(client: openai.AsyncOpenAI) -> None:
    """Two requests without a client id get two different generated ids."""
    first = await client.models.with_raw_response.list()
    second = await client.models.with_raw_response.list()
    assert fresh_id(first.headers.get("x-request-id")) != fresh_id(
        second.headers.get("x-request-id")
    )


async def test_stream_response_has_request_id(client: openai.AsyncOpenAI) -> None:
    """An SSE stream carries `x-request-id` on its response headers."""
    async with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=HELLO, stream=True
    ) as response:
        lines = [line async for line in response.iter_lines()]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "data: [DONE]" in lines
    fresh_id(response.headers.get("x-request-id"))


async def test_validation_error_has_request_id(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """A 404 for an unknown model exposes the request id to the SDK as `exc.request_id`."""
    exc = await rejected(client.chat.completions.create(model="no-such-model", messages=HELLO))
    assert exc.status_code == 404
    fresh_id(exc.request_id)


async def test_unknown_route_has_request_id(gateway: Gateway) -> None:
    """A 404 from the router for an unknown path carries `x-request-id` too."""
    reply = await raw_request("GET", f"http://127.0.0.1:{gateway.port}/v2/nothing")
    assert reply.status == 404
    fresh_id(reply.headers.get("x-request-id"))


async def test_upstream_error_has_request_id(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """An upstream 5xx relayed to the client carries the request id."""
    upstream.enqueue(Reply(500, b"oops", {"content-type": "text/plain"}))
    exc = await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert exc.status_code == 500
    fresh_id(exc.request_id)


async def test_sane_client_id_is_echoed(client: openai.AsyncOpenAI) -> None:
    """A well-formed `x-request-id` from the client comes back unchanged."""
    sent = "trace-2f1c.9:Ab_7"
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, extra_headers={"x-request-id": sent}
    )
    assert raw.headers.get("x-request-id") == sent


async def test_sane_client_id_is_echoed_on_errors(client: openai.AsyncOpenAI) -> None:
    """The client's id is also the one the SDK reports on an error."""
    sent = "client-trace-42"
    exc = await rejected(
        client.chat.completions.create(
            model="no-such-model", messages=HELLO, extra_headers={"x-request-id": sent}
        )
    )
    assert exc.request_id == sent


async def test_overlong_client_id_is_replaced(client: openai.AsyncOpenAI) -> None:
    """An `x-request-id` longer than 128 characters is replaced by a generated one."""
    sent = "a" * 300
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, extra_headers={"x-request-id": sent}
    )
    assert fresh_id(raw.headers.get("x-request-id")) != sent


async def test_client_id_with_bad_characters_is_replaced(client: openai.AsyncOpenAI) -> None:
    """An `x-request-id` with spaces or markup is replaced by a generated one."""
    sent = "abc <script>alert(1)</script> def"
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, extra_headers={"x-request-id": sent}
    )
    received = fresh_id(raw.headers.get("x-request-id"))
    assert received != sent
    assert "script" not in received
