"""The HTTP transport: one pooled aiohttp `ClientSession` per process, explicit limits.

Every aiohttp and asyncio failure is translated to `llmux.errors` here and nowhere else.
Streams get no total timeout (aiohttp's default of 300 s would cut long generations); they are
bounded by `idle` between reads instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping

import aiohttp
from yarl import URL

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

_URL_CACHE_LIMIT = 4096


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
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[tuple[Timeouts, bool], aiohttp.ClientTimeout] = {}

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
        """Send; wait for headers within `first_byte` (streams) or the whole answer (`total`)."""
        if self._session is None:
            raise RuntimeError("HttpTransport.start() was not awaited")
        url = self._url(request.url)
        client_timeout = self._client_timeout(timeouts, request.stream)
        if request.stream:
            hint = f"no response headers within {timeouts.first_byte:g}s"
            with map_transport_errors(request.url, hint):
                async with asyncio.timeout(timeouts.first_byte):
                    response = await self._session.request(
                        request.method,
                        url,
                        headers=request.headers,
                        data=request.body,
                        timeout=client_timeout,
                    )
        else:
            hint = (
                f"connect {timeouts.connect:g}s, first byte {timeouts.first_byte:g}s,"
                f" total {timeouts.total:g}s"
            )
            with map_transport_errors(request.url, hint):
                response = await self._session.request(
                    request.method,
                    url,
                    headers=request.headers,
                    data=request.body,
                    timeout=client_timeout,
                )
        return _HttpResponse(response, request.url, hint, timeouts.idle)

    def _url(self, text: str) -> URL:
        """Parsed URLs, kept: the set of upstream URLs is small and parsing is not free."""
        url = self._urls.get(text)
        if url is None:
            if len(self._urls) >= _URL_CACHE_LIMIT:
                self._urls.clear()
            url = self._urls[text] = URL(text)
        return url

    def _client_timeout(self, timeouts: Timeouts, stream: bool) -> aiohttp.ClientTimeout:
        """Non-streams: `total` covers the whole exchange and `first_byte` every read wait.
        Streams: no total (a long generation must not be cut), `idle` between reads."""
        key = (timeouts, stream)
        found = self._timeouts.get(key)
        if found is None:
            if stream:
                found = aiohttp.ClientTimeout(
                    total=None, sock_connect=timeouts.connect, sock_read=timeouts.idle
                )
            else:
                found = aiohttp.ClientTimeout(
                    total=timeouts.total,
                    sock_connect=timeouts.connect,
                    sock_read=timeouts.first_byte,
                )
            self._timeouts[key] = found
        return found


class _HttpResponse:
    __slots__ = ("_done", "_hint", "_idle", "_response", "_url", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, url: str, hint: str, idle: float) -> None:
        self._response = response
        self._url = url
        self._hint = hint
        self._idle = idle
        self._done = False
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        with map_transport_errors(self._url, self._hint):
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
