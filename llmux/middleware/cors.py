"""CORS for browser clients: preflights answered, allowed origins stamped on every response.

Off unless origins are configured (`server.cors_origins` for the gateway app,
`server.admin_cors_origins` for the admin app). `*` allows any origin. The preflight middleware
runs outermost, before auth, because browsers send preflights without credentials. Response
headers are added when a response is prepared, so streams, errors and router 404s get them too.
No cookies are used, so credentials are never allowed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

__all__ = ["add_cors"]

_ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
_PREFLIGHT_MAX_AGE = "600"
"""Seconds a browser may cache a preflight answer."""


class _Origins:
    """Which origins may read responses; checked once, at app build."""

    def __init__(self, origins: Sequence[str]) -> None:
        self.any = "*" in origins
        self.listed = frozenset(origin.rstrip("/") for origin in origins if origin != "*")

    def allow(self, origin: str | None) -> str | None:
        """The `Access-Control-Allow-Origin` value for `origin`; None when it may not read."""
        if origin is None:
            return None
        if self.any:
            return "*"
        return origin if origin in self.listed else None


def add_cors(app: web.Application, origins: Sequence[str]) -> None:
    """Answer preflights and stamp CORS headers on `app`; does nothing when `origins` is empty."""
    if not origins:
        return
    allowed = _Origins(origins)
    app.middlewares.insert(0, _preflight_middleware(allowed))
    app.on_response_prepare.append(_stamp_headers(allowed))


def _preflight_middleware(allowed: _Origins) -> Middleware:
    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _is_preflight(request) or allowed.allow(request.headers.get(hdrs.ORIGIN)) is None:
            return await handler(request)
        headers = {
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: _ALLOWED_METHODS,
            hdrs.ACCESS_CONTROL_MAX_AGE: _PREFLIGHT_MAX_AGE,
        }
        asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
        if asked:
            headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = asked
        return web.Response(status=204, headers=headers)

    return impl


def _is_preflight(request: web.Request) -> bool:
    return (
        request.method == hdrs.METH_OPTIONS
        and hdrs.ORIGIN in request.headers
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    )


def _stamp_headers(
    allowed: _Origins,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def stamp(request: web.Request, response: web.StreamResponse) -> None:
        value = allowed.allow(request.headers.get(hdrs.ORIGIN))
        if value is None:
            return
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = value
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = "*"
        if value != "*":
            # The answer differs per origin: caches must key on it.
            response.headers.add(hdrs.VARY, hdrs.ORIGIN)

    return stamp
