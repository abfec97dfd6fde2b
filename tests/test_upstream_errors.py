"""Upstream HTTP errors reach the client with their status, message, type, param and code kept.

The fake upstream answers with recorded OpenAI error bodies (or a plain-text 500); the official
SDK must raise the same exception class it would raise against OpenAI itself.
"""

from __future__ import annotations

import openai
from openai.types.chat import ChatCompletionMessageParam

from tests.helpers.edge import assert_openai_error, rejected
from tests.helpers.upstream import FakeUpstream, Reply, fixture_bytes

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
RATE_LIMIT_MESSAGE = (
    "Rate limit reached for gpt-4o-mini in organization org-abc on requests per min (RPM): "
    "Limit 3, Used 3, Requested 1. Please try again in 20s."
)
INVALID_UPSTREAM_KEY = (
    b'{"error": {"message": "Incorrect API key provided: sk-upstr***cret. You can find your API'
    b' key at https://platform.openai.com/account/api-keys.", "type": "invalid_request_error",'
    b' "param": null, "code": "invalid_api_key"}}'
)


async def test_upstream_429_is_a_rate_limit_error_with_its_message(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """An upstream 429 reaches the SDK as RateLimitError with the upstream's message and code."""
    upstream.enqueue(Reply(429, fixture_bytes("error_429.json")))
    exc = await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert isinstance(exc, openai.RateLimitError)
    assert RATE_LIMIT_MESSAGE in exc.message
    assert exc.code == "rate_limit_exceeded"
    assert_openai_error(
        exc.response.json(),
        type="requests",
        code="rate_limit_exceeded",
        param=None,
        mentions=(RATE_LIMIT_MESSAGE,),
    )
    assert len(upstream.received) == 1


async def test_upstream_context_length_error_keeps_code_and_param(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """An upstream 400 context_length_exceeded keeps its status, code, param and message."""
    upstream.enqueue(Reply(400, fixture_bytes("error_400_context.json")))
    exc = await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert isinstance(exc, openai.BadRequestError)
    assert exc.code == "context_length_exceeded"
    assert exc.param == "messages"
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code="context_length_exceeded",
        param="messages",
        mentions=("maximum context length is 128000 tokens",),
    )


async def test_upstream_plain_text_500_names_the_upstream_status(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """A plain-text upstream 500 becomes a 5xx JSON error naming the upstream status."""
    upstream.enqueue(
        Reply(500, b"Internal Server Error", {"content-type": "text/plain; charset=utf-8"})
    )
    exc = await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert isinstance(exc, openai.InternalServerError)
    assert 500 <= exc.status_code < 600
    assert_openai_error(
        exc.response.json(),
        type="api_error",
        code=None,
        param=None,
        mentions=("500", "Internal Server Error"),
    )


async def test_upstream_401_is_a_401(client: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    """An upstream that refuses the gateway's key answers the client with 401 and its message."""
    upstream.enqueue(Reply(401, INVALID_UPSTREAM_KEY))
    exc = await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
    assert isinstance(exc, openai.AuthenticationError)
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code="invalid_api_key",
        param=None,
        mentions=("Incorrect API key provided",),
    )
