"""The HTTP transport: one pooled aiohttp `ClientSession` per process, explicit limits.

Every aiohttp and asyncio failure is translated to `llmux.errors` here and nowhere else
(`translate_transport_error`). Non-streams are bounded by one timer: `connect` plus
min(`first_byte`, `total`) for the whole exchange (an upstream sends nothing before it has the
whole answer). Streams get no total timeout (aiohttp's default of 300 s would cut long
generations): `first_byte` bounds the wait for response headers, `idle` each gap between reads
(enforced by a self-re-arming watchdog rather than a timer per read).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping

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

__all__ = ["HttpTransport", "map_transport_errors", "translate_transport_error"]

_URL_CACHE_LIMIT = 4096


def translate_transport_error(exc: BaseException, url: str, timeout_hint: str) -> LlmuxError:
    """The error-tree equivalent of an aiohttp/asyncio failure, most specific match first."""
    origin = _origin(url)
    if isinstance(exc, LlmuxError):
        return exc
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"upstream {origin} timed out ({timeout_hint})")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectError(f"cannot connect to upstream {origin}: {exc.os_error}")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return UpstreamConnectError(f"upstream {origin} dropped the connection: {exc}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamProtocolError(f"upstream {origin} sent a broken body: {exc}")
    if isinstance(exc, aiohttp.InvalidURL):
        return UpstreamError(f"invalid upstream URL {url}", status=500)
    return UpstreamProtocolError(f"upstream {origin} failed: {exc!r}")


_TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError)


@contextlib.contextmanager
def map_transport_errors(url: str, timeout_hint: str) -> Iterator[None]:
    """Translate aiohttp/asyncio failures raised inside the block into the error tree."""
    try:
        yield
    except _TRANSPORT_ERRORS as exc:
        raise translate_transport_error(exc, url, timeout_hint) from exc


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
        """Send and return once response headers are in (streams) or the answer started."""
        session = self._session
        if session is None:
            raise RuntimeError("HttpTransport.start() was not awaited")
        url = self._url(request.url)
        client_timeout = self._client_timeout(timeouts, request.stream)
        pending = session.request(
            request.method,
            url,
            headers=request.headers,
            data=request.body,
            timeout=client_timeout,
        )
        try:
            if request.stream:
                async with asyncio.timeout(timeouts.first_byte):
                    response = await pending
            else:
                response = await pending
        except _TRANSPORT_ERRORS as exc:
            hint = _hint(timeouts, request.stream)
            raise translate_transport_error(exc, request.url, hint) from exc
        watchdog = _IdleWatchdog(response, timeouts.idle) if request.stream else None
        return _HttpResponse(response, request.url, timeouts, watchdog)

    def _url(self, text: str) -> URL:
        """Parsed URLs, kept: the set of upstream URLs is small and parsing is not free."""
        url = self._urls.get(text)
        if url is None:
            if len(self._urls) >= _URL_CACHE_LIMIT:
                self._urls.clear()
            url = self._urls[text] = URL(text)
        return url

    def _client_timeout(self, timeouts: Timeouts, stream: bool) -> aiohttp.ClientTimeout:
        key = (timeouts, stream)
        found = self._timeouts.get(key)
        if found is None:
            if stream:
                # The idle limit is enforced by `_IdleWatchdog`, not aiohttp's sock_read.
                found = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect)
            else:
                # One timer for the whole exchange; a per-read timer costs a reschedule per read.
                found = aiohttp.ClientTimeout(
                    total=min(timeouts.first_byte, timeouts.total), sock_connect=timeouts.connect
                )
            self._timeouts[key] = found
        return found


def _hint(timeouts: Timeouts, stream: bool) -> str:
    if stream:
        return f"no response headers within {timeouts.first_byte:g}s"
    limit = min(timeouts.first_byte, timeouts.total)
    return f"no complete answer within {limit:g}s"


class _IdleWatchdog:
    """Fails a stream that stays silent for `idle` seconds.

    aiohttp's `sock_read` cancels and re-arms a timer on every read, which measured ~10% of a
    stream's relay CPU. Here a read only records the time; the one timer re-arms itself when
    it fires early, so there is one timer per idle period rather than one per read.
    """

    __slots__ = ("_handle", "_idle", "_loop", "_response", "last_read")

    def __init__(self, response: aiohttp.ClientResponse, idle: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._response = response
        self._idle = idle
        self.last_read = self._loop.time()
        self._handle = self._loop.call_at(self.last_read + idle, self._check)

    def touch(self) -> None:
        """Data arrived: the idle period starts again."""
        self.last_read = self._loop.time()

    def _check(self) -> None:
        deadline = self.last_read + self._idle
        if self._loop.time() < deadline:
            self._handle = self._loop.call_at(deadline, self._check)
            return
        # The same exception aiohttp's own read timeout sets; the reader raises it at once.
        self._response.content.set_exception(aiohttp.SocketTimeoutError("stream idle"))

    def cancel(self) -> None:
        """Stop watching (the stream ended or was abandoned)."""
        self._handle.cancel()


class _HttpResponse:
    __slots__ = ("_done", "_response", "_timeouts", "_url", "_watchdog", "headers", "status")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        url: str,
        timeouts: Timeouts,
        watchdog: _IdleWatchdog | None,
    ) -> None:
        self._response = response
        self._url = url
        self._timeouts = timeouts
        self._watchdog = watchdog
        self._done = False
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            body = await self._response.read()
        except _TRANSPORT_ERRORS as exc:
            raise translate_transport_error(exc, self._url, _hint(self._timeouts, False)) from exc
        self._done = True
        return body

    async def read_chunk(self) -> bytes:
        try:
            chunk = await self._response.content.readany()
        except _TRANSPORT_ERRORS as exc:
            hint = f"no stream data for {self._timeouts.idle:g}s"
            raise translate_transport_error(exc, self._url, hint) from exc
        if not chunk:
            self._done = True
        elif self._watchdog is not None:
            self._watchdog.touch()
        return chunk

    def release(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._done:
            self._response.release()
        else:
            # An unread body leaves the connection mid-message; it cannot be reused.
            self._response.close()
