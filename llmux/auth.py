"""Client authentication: who is calling, resolved from the request's credentials.

No master key configured: the gateway is open and every caller is anonymous. With one, a
caller presents the master key or a virtual key (`sk-...`, looked up by its SHA-256 in the
store through the key cache, with its user, team and organization). Expired and blocked keys
get 401; keys made for the admin API only, and keys whose user, team or organization is
blocked, get 403. Each check names what failed. Pure: no aiohttp.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from llmux.errors import AuthenticationFailed, PermissionDenied, ServiceUnavailable
from llmux.governance.keycache import LastUsed
from llmux.governance.keys import hash_key
from llmux.governance.tenancy import Tenancy, TenancyResolver
from llmux.metrics import Metrics
from llmux.store.base import StoreUnavailable

__all__ = [
    "ANONYMOUS",
    "MASTER",
    "Authenticator",
    "MasterKeyAuthenticator",
    "OpenAuthenticator",
    "Principal",
    "VirtualKeyAuthenticator",
    "credential_from",
    "make_authenticator",
]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    id: str
    """`anonymous`, `master`, or the virtual key's hash."""
    kind: Literal["anonymous", "master", "key"]
    team_id: str | None = None
    tenancy: Tenancy | None = None
    """The virtual key with its user, team and organization (kind `key` only)."""


ANONYMOUS = Principal("anonymous", "anonymous")
MASTER = Principal("master", "master")
_GATEWAY_KEY_TYPES = frozenset({"default", "llm_api"})


def credential_from(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: `Authorization: Bearer <key>`, `x-api-key` or `api-key`."""
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for name in ("x-api-key", "api-key"):
        key = headers.get(name)
        if key and key.strip():
            return key.strip()
    return None


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


def _missing() -> AuthenticationFailed:
    return AuthenticationFailed(
        "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
        "or in the 'x-api-key' header."
    )


class MasterKeyAuthenticator:
    """Only the configured master key gets in; compared in constant time."""

    def __init__(self, master_key: str) -> None:
        self._key = master_key.encode()

    async def authenticate(self, credential: str | None) -> Principal:
        """The master principal, or 401."""
        if credential is None:
            raise _missing()
        if not hmac.compare_digest(credential.encode(), self._key):
            raise AuthenticationFailed("Incorrect API key provided.")
        return MASTER


class VirtualKeyAuthenticator:
    """The master key, or a virtual key from the store with everything above it."""

    def __init__(
        self,
        master_key: str,
        resolver: TenancyResolver,
        last_used: LastUsed,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._master = master_key.encode()
        self._resolver = resolver
        self._last_used = last_used
        self._metrics = metrics
        self._clock = clock

    async def authenticate(self, credential: str | None) -> Principal:
        """The caller, or 401/403 naming what is wrong (503 when the store is unreachable)."""
        if credential is None:
            self._metrics.observe_auth_failure("missing")
            raise _missing()
        if hmac.compare_digest(credential.encode(), self._master):
            return MASTER
        token = hash_key(credential)
        try:
            tenancy = await self._resolver.resolve(token)
        except StoreUnavailable:
            self._metrics.observe_store_error("authenticate")
            raise ServiceUnavailable(
                "The key store is unreachable and this key is not cached; retry shortly."
            ) from None
        if tenancy is None:
            self._metrics.observe_auth_failure("invalid")
            raise AuthenticationFailed("Incorrect API key provided.")
        now = self._clock()
        self._check(tenancy, now)
        self._last_used.mark(token, now)
        return Principal(token, "key", tenancy.team_id, tenancy)

    def _check(self, tenancy: Tenancy, now: datetime) -> None:
        key = tenancy.key
        if key.blocked:
            self._metrics.observe_auth_failure("blocked")
            raise AuthenticationFailed("This API key is blocked.", code="key_blocked")
        if key.expires is not None and key.expires <= now:
            self._metrics.observe_auth_failure("expired")
            raise AuthenticationFailed(
                f"This API key expired at {key.expires.isoformat()}.", code="key_expired"
            )
        if key.key_type not in _GATEWAY_KEY_TYPES:
            raise PermissionDenied(
                f"This is a {key.key_type} key: it may call the admin API only.",
                code="key_type_not_allowed",
            )
        for level in tenancy.levels[1:]:
            if level.entity.blocked:
                raise PermissionDenied(
                    f"This key's {level.name} is blocked.", code=f"{level.name}_blocked"
                )


def make_authenticator(
    master_key: str | None,
    resolver: TenancyResolver | None = None,
    last_used: LastUsed | None = None,
    metrics: Metrics | None = None,
) -> Authenticator:
    """The authenticator the config asks for (virtual keys need the governance state)."""
    if not master_key:
        return OpenAuthenticator()
    if resolver is None or last_used is None or metrics is None:
        return MasterKeyAuthenticator(master_key)
    return VirtualKeyAuthenticator(master_key, resolver, last_used, metrics)
