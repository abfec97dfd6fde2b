"""Authentication for /v1: resolves the caller and stores the Principal on the request."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from llmux.appkeys import AUTHENTICATOR, PRINCIPAL
from llmux.auth import credential_from

__all__ = ["auth_middleware"]

_PROTECTED_PREFIX = "/v1/"


def auth_middleware() -> Middleware:
    """Only /v1 needs credentials; health checks stay open for probes."""

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(_PROTECTED_PREFIX):
            authenticator = request.app[AUTHENTICATOR]
            request[PRINCIPAL] = await authenticator.authenticate(credential_from(request.headers))
        response: web.StreamResponse = await handler(request)
        return response

    return impl
