"""The baseline llmux is measured against: the least an aiohttp + uvloop reverse proxy does.

One pooled ClientSession; each request's body is read whole and POSTed upstream, with the
client's key swapped for an upstream key. A JSON answer is read whole and returned; an SSE
answer is relayed chunk by chunk as it arrives. No logging, no parsing, no routing.

Standalone script: it imports only aiohttp and uvloop, never llmux.
"""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import ClientSession, ClientTimeout, DummyCookieJar, TCPConnector, web

SESSION = web.AppKey("session", ClientSession)
UPSTREAM = web.AppKey("upstream", str)
UPSTREAM_KEY = "Bearer sk-upstream"


async def forward(request: web.Request) -> web.StreamResponse:
    """Send the request upstream and relay the answer."""
    body = await request.read()
    headers = {"Content-Type": request.content_type, "Authorization": UPSTREAM_KEY}
    url = request.app[UPSTREAM] + request.raw_path
    session = request.app[SESSION]
    async with session.request(request.method, url, data=body, headers=headers) as upstream:
        content_type = upstream.headers.get("Content-Type", "application/json")
        out_headers = {"Content-Type": content_type}
        if not content_type.startswith("text/event-stream"):
            payload = await upstream.read()
            return web.Response(status=upstream.status, body=payload, headers=out_headers)
        response = web.StreamResponse(status=upstream.status, headers=out_headers)
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client left mid-stream (a load run ending); nothing to relay to
        return response


async def health(request: web.Request) -> web.Response:
    """``GET /health``: 200 once listening."""
    return web.Response(text="ok")


async def make_app(upstream: str) -> web.Application:
    """The proxy app, with a session that lives as long as the app."""
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    connector = TCPConnector(limit=0, ttl_dns_cache=None)
    timeout = ClientTimeout(total=None, sock_connect=10)
    app[SESSION] = ClientSession(connector=connector, timeout=timeout, cookie_jar=DummyCookieJar())

    async def close_session(app: web.Application) -> None:
        await app[SESSION].close()

    app.on_cleanup.append(close_session)
    app.router.add_get("/health", health)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    """Entry point: ``--port`` and ``--upstream http://host:port`` (paths are appended as-is)."""
    parser = argparse.ArgumentParser(description="minimal aiohttp reverse proxy (baseline)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--upstream", required=True, help="origin, e.g. http://127.0.0.1:9100")
    args = parser.parse_args()
    app = make_app(args.upstream)
    loop = uvloop.new_event_loop()
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
