"""The HTTP transport: one pooled aiohttp `ClientSession` per process, explicit limits.

Every aiohttp and asyncio failure is translated to `llmux.errors` here and nowhere else.
Streams get no total timeout (aiohttp's default of 300 s would cut long generations); they are
bounded by `idle` between reads instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping

import aiohttp

from llmux.config.schema import UpstreamPoolConfig
from llmux.errors import (
    LlmuxError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from llmux.types import PreparedRequest
from llmux.upstream.base import Timeouts, UpstreamResponse

__all__ = ["HttpTransport", "map_transport_errors"]


@contextlib.contextmanager
def map_transport_errors(url: str, timeout_hint: str) -> Iterator[None]:
    """Translate aiohttp/asyncio failures into the error tree, most specific first."""
    try:
        yield
    except LlmuxError:
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout(f"upstream {_origin(url)} timed out ({timeout_hint})") from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamConnectError(
            f"cannot connect to upstream {_origin(url)}: {exc.os_error}"
        ) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        raise UpstreamConnectError(
            f"upstream {_origin(url)} dropped the connection: {exc}"
        ) from exc
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamProtocolError(f"upstream {_origin(url)} sent a broken body: {exc}") from exc
    except aiohttp.InvalidURL as exc:
        raise UpstreamError(f"invalid upstream URL {url}", status=500) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamProtocolError(f"upstream {_origin(url)} failed: {exc!r}") from exc


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


class HttpTransport:
    """Sends prepared requests over one shared connection pool."""

    def __init__(self, pool: UpstreamPoolConfig) -> None:
        self._pool = pool
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the pool; call once from the app's cleanup context."""
        connector = aiohttp.TCPConnector(
            limit=self._pool.max_connections,
            limit_per_host=self._pool.max_connections_per_host,
            keepalive_timeout=self._pool.keepalive_timeout,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=True,
            raise_for_status=False,
        )

    async def close(self) -> None:
        """Close the pool and every connection in it."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: PreparedRequest, timeouts: Timeouts) -> UpstreamResponse:
        """Send and wait for headers within `first_byte` (stream) or `total` (non-stream)."""
        if self._session is None:
            raise RuntimeError("HttpTransport.start() was not awaited")
        deadline = time.monotonic() + timeouts.total
        wait = timeouts.first_byte if request.stream else min(timeouts.first_byte, timeouts.total)
        client_timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=timeouts.connect,
            sock_read=timeouts.idle if request.stream else None,
        )
        with map_transport_errors(request.url, f"no response within {wait:g}s"):
            async with asyncio.timeout(wait):
                response = await self._session.request(
                    request.method,
                    request.url,
                    headers=request.headers,
                    data=request.body,
                    timeout=client_timeout,
                )
        return _HttpResponse(response, request.url, deadline, timeouts.idle)


class _HttpResponse:
    __slots__ = ("_deadline", "_done", "_idle", "_response", "_url", "headers", "status")

    def __init__(
        self, response: aiohttp.ClientResponse, url: str, deadline: float, idle: float
    ) -> None:
        self._response = response
        self._url = url
        self._deadline = deadline
        self._idle = idle
        self._done = False
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        remaining = max(self._deadline - time.monotonic(), 0.0)
        with map_transport_errors(self._url, "body not complete within the total timeout"):
            async with asyncio.timeout(remaining):
                body = await self._response.read()
        self._done = True
        return body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        content = self._response.content
        with map_transport_errors(self._url, f"no stream data for {self._idle:g}s"):
            while True:
                chunk = await content.readany()
                if not chunk:
                    break
                yield chunk
        self._done = True

    def release(self) -> None:
        if self._done:
            self._response.release()
        else:
            # An unread body leaves the connection mid-message; it cannot be reused.
            self._response.close()
