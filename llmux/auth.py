"""Client authentication: who is calling, resolved from the request's credentials.

`Authenticator` is the seam the governance layer (virtual keys, users, teams) plugs into; for
now there is the master key and the open gateway (no master key configured). Pure: no aiohttp.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from llmux.errors import AuthenticationFailed

__all__ = [
    "Authenticator",
    "MasterKeyAuthenticator",
    "OpenAuthenticator",
    "Principal",
    "credential_from",
    "make_authenticator",
]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    id: str
    kind: Literal["anonymous", "master"]


ANONYMOUS = Principal("anonymous", "anonymous")
MASTER = Principal("master", "master")


def credential_from(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: `Authorization: Bearer <key>` or `x-api-key: <key>`."""
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class Authenticator(Protocol):
    """Resolves a credential to a Principal or raises `AuthenticationFailed`."""

    async def authenticate(self, credential: str | None) -> Principal:
        """The caller behind `credential`."""
        ...


class OpenAuthenticator:
    """No master key configured: every caller is anonymous and allowed."""

    async def authenticate(self, credential: str | None) -> Principal:
        """Always the anonymous principal."""
        return ANONYMOUS


class MasterKeyAuthenticator:
    """Only the configured master key gets in; compared in constant time."""

    def __init__(self, master_key: str) -> None:
        self._key = master_key.encode()

    async def authenticate(self, credential: str | None) -> Principal:
        """The master principal, or 401."""
        if credential is None:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
                "or in the 'x-api-key' header."
            )
        if not hmac.compare_digest(credential.encode(), self._key):
            raise AuthenticationFailed("Incorrect API key provided.")
        return MASTER


def make_authenticator(master_key: str | None) -> Authenticator:
    """The authenticator the config asks for."""
    if master_key:
        return MasterKeyAuthenticator(master_key)
    return OpenAuthenticator()
