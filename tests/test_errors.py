"""Client mistakes get a clear 4xx in the OpenAI error shape, and never reach the upstream.

Each test sends one kind of bad request through the official SDK (its low-level `post`/`get`
where the typed methods refuse to build the request) and checks status, `type`, `code`,
`param` and that the message names the problem. Oversize bodies use a gateway with a 1 KiB
`server.max_body_size`; the declared-length case speaks raw HTTP on a socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from llmux.serve import Gateway
from tests.helpers.edge import RawReply, assert_openai_error, rejected, sdk_client
from tests.helpers.gateway import running_gateway, upstream_config
from tests.helpers.upstream import FakeUpstream

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]


@pytest.fixture
async def small_gateway(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    """A gateway whose `server.max_body_size` is 1 KiB."""
    config = upstream_config(upstream.url, server_extra="max_body_size: 1KiB")
    async with running_gateway(config) as running:
        yield running


async def post_chat(client: openai.AsyncOpenAI, body: object) -> openai.APIStatusError:
    """POST `body` (any JSON value) to /chat/completions with the SDK; it must be refused."""
    return await rejected(client.post("/chat/completions", body=body, cast_to=object))


async def post_bytes(client: openai.AsyncOpenAI, content: bytes) -> openai.APIStatusError:
    """POST raw `content` as a JSON request to /chat/completions; it must be refused."""
    headers = {"Content-Type": "application/json"}
    return await rejected(
        client.post(
            "/chat/completions", content=content, cast_to=object, options={"headers": headers}
        )
    )


async def test_malformed_json_is_400(client: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    """A body that is not valid JSON is a 400 saying so."""
    exc = await post_bytes(client, b'{"model": "gpt-4o-mini", "messages": [')
    assert exc.status_code == 400
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code=None,
        param=None,
        mentions=("not valid JSON",),
    )
    assert upstream.received == []


async def test_json_array_body_is_400(client: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    """A JSON array instead of an object is a 400 asking for an object."""
    exc = await post_chat(client, [{"model": "gpt-4o-mini", "messages": HELLO}])
    assert exc.status_code == 400
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code=None,
        param=None,
        mentions=("JSON object",),
    )
    assert upstream.received == []


async def test_empty_body_is_400(client: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    """An empty body is a 400 saying it is empty."""
    exc = await post_bytes(client, b"")
    assert exc.status_code == 400
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code=None,
        param=None,
        mentions=("empty",),
    )
    assert upstream.received == []


async def test_missing_model_is_400_naming_model(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """A chat without `model` is a 400 with param `model`."""
    exc = await post_chat(client, {"messages": HELLO})
    assert isinstance(exc, openai.BadRequestError)
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code=None,
        param="model",
        mentions=("model",),
    )
    assert upstream.received == []


async def test_model_not_a_string_is_400(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """A numeric `model` is a 400 saying it must be a string."""
    exc = await post_chat(client, {"model": 4, "messages": HELLO})
    assert isinstance(exc, openai.BadRequestError)
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code=None,
        param="model",
        mentions=("model", "string"),
    )
    assert upstream.received == []


async def test_missing_messages_is_400_naming_messages(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """A chat without `messages` is a 400 with param `messages`."""
    exc = await post_chat(client, {"model": "gpt-4o-mini"})
    assert isinstance(exc, openai.BadRequestError)
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code=None,
        param="messages",
        mentions=("messages",),
    )
    assert upstream.received == []


async def test_messages_not_a_list_is_400(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """A string where the `messages` array belongs is a 400 naming `messages`."""
    exc = await post_chat(client, {"model": "gpt-4o-mini", "messages": "Hello"})
    assert isinstance(exc, openai.BadRequestError)
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code=None,
        param="messages",
        mentions=("messages", "array"),
    )
    assert upstream.received == []


async def test_empty_messages_is_400(client: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    """An empty `messages` array is a 400 asking for at least one message."""
    exc = await post_chat(client, {"model": "gpt-4o-mini", "messages": []})
    assert isinstance(exc, openai.BadRequestError)
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code=None,
        param="messages",
        mentions=("messages", "at least one"),
    )
    assert upstream.received == []


async def test_message_without_role_names_the_field(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """A message without `role` is a 400 whose param points at that message's role."""
    messages = [{"content": "Hello"}]
    exc = await post_chat(client, {"model": "gpt-4o-mini", "messages": messages})
    assert isinstance(exc, openai.BadRequestError)
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code=None,
        param="messages[0].role",
        mentions=("role", "messages[0]"),
    )
    assert upstream.received == []


async def test_stream_not_a_boolean_is_400(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """`stream: "yes"` is a 400 with param `stream`."""
    exc = await post_chat(client, {"model": "gpt-4o-mini", "messages": HELLO, "stream": "yes"})
    assert isinstance(exc, openai.BadRequestError)
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code=None,
        param="stream",
        mentions=("stream", "boolean"),
    )
    assert upstream.received == []


async def test_streaming_embeddings_is_400(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """Asking for a streamed embedding is a 400 with param `stream`."""
    exc = await rejected(
        client.embeddings.create(
            model="text-embedding-3-small", input="Hello", extra_body={"stream": True}
        )
    )
    assert isinstance(exc, openai.BadRequestError)
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code=None,
        param="stream",
        mentions=("Embeddings", "stream"),
    )
    assert upstream.received == []


async def test_unknown_model_is_404_model_not_found(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """A model no provider serves is a 404 `model_not_found` naming the model."""
    exc = await rejected(client.chat.completions.create(model="gpt-9-ultra", messages=HELLO))
    assert isinstance(exc, openai.NotFoundError)
    assert exc.code == "model_not_found"
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code="model_not_found",
        param="model",
        mentions=("gpt-9-ultra",),
    )
    assert upstream.received == []


async def test_unknown_path_is_404_in_openai_shape(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """A path the gateway does not know is a 404 in the OpenAI error shape naming the path."""
    exc = await rejected(client.get("/no/such/thing", cast_to=object))
    assert isinstance(exc, openai.NotFoundError)
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code="unknown_url",
        param=None,
        mentions=("/v1/no/such/thing",),
    )
    assert upstream.received == []


async def test_wrong_method_is_405(client: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    """GET on /v1/chat/completions is a 405 naming the method to use."""
    exc = await rejected(client.get("/chat/completions", cast_to=object))
    assert exc.status_code == 405
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code="method_not_allowed",
        param=None,
        mentions=("GET", "POST"),
    )
    assert upstream.received == []


def assert_unsupported(exc: openai.APIStatusError, path: str) -> None:
    """`exc` is the 400 `unsupported_endpoint` error naming `path`."""
    assert isinstance(exc, openai.BadRequestError)
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code="unsupported_endpoint",
        param=None,
        mentions=(path, "not supported"),
    )


async def test_audio_speech_is_unsupported(
    client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """/v1/audio/speech is a 400 saying the endpoint is not supported."""
    exc = await rejected(client.audio.speech.create(model="tts-1", voice="alloy", input="Hello"))
    assert_unsupported(exc, "/v1/audio/speech")
    assert upstream.received == []


async def test_batches_are_unsupported(client: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    """/v1/batches is a 400 saying the endpoint is not supported."""
    exc = await rejected(client.batches.list())
    assert_unsupported(exc, "/v1/batches")
    assert upstream.received == []


async def test_files_are_unsupported(client: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    """/v1/files is a 400 saying the endpoint is not supported."""
    exc = await rejected(client.files.list())
    assert_unsupported(exc, "/v1/files")
    assert upstream.received == []


async def test_oversize_body_from_sdk_is_413(
    small_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """A chat whose body passes `server.max_body_size` is a 413 naming the limit."""
    big: list[ChatCompletionMessageParam] = [{"role": "user", "content": "x" * 4096}]
    async with sdk_client(small_gateway) as client:
        exc = await rejected(client.chat.completions.create(model="gpt-4o-mini", messages=big))
    assert exc.status_code == 413
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code="request_too_large",
        param=None,
        mentions=("max_body_size", "1024"),
    )
    assert upstream.received == []


async def test_oversize_chunked_body_is_413(small_gateway: Gateway, upstream: FakeUpstream) -> None:
    """A chunked body (no Content-Length) that grows past the limit is a 413 as well."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(8):
            yield b"x" * 512
        yield b'"}]}'

    headers = {"Content-Type": "application/json"}
    async with sdk_client(small_gateway) as client:
        exc = await rejected(
            client.post(
                "/chat/completions", content=chunks(), cast_to=object, options={"headers": headers}
            )
        )
    assert exc.status_code == 413
    assert_openai_error(
        exc.response.json(),
        type="invalid_request_error",
        code="request_too_large",
        param=None,
        mentions=("max_body_size",),
    )
    assert upstream.received == []


async def send_head_only(port: int, head: bytes) -> RawReply:
    """Write a request head (and no body) on a socket and read one HTTP/1.1 response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *lines = raw_head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)
        }
        body = await reader.readexactly(int(headers["content-length"]))
        return RawReply(int(status_line.split()[1]), headers, body)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_declared_oversize_length_is_413_before_the_body(
    small_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """A declared Content-Length over the limit is refused with 413 without sending the body."""
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: 1048576\r\n"
        b"\r\n"
    )
    reply = await send_head_only(small_gateway.port, head)
    assert reply.status == 413
    assert_openai_error(
        reply.json,
        type="invalid_request_error",
        code="request_too_large",
        param=None,
        mentions=("1048576", "1024", "max_body_size"),
    )
    assert upstream.received == []
