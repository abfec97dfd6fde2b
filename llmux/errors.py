"""The one exception tree of llmux; every class knows its HTTP status, OpenAI `type` and `code`.

Rendered exactly once, by `llmux.middleware.errors`, as
``{"error": {"message", "type", "param", "code"}}``. Imports msgspec only.

    LlmuxError                      500 api_error
    ├── ClientError                 400 invalid_request_error      (the client's mistake)
    │   ├── InvalidRequest          400 (names the offending `param`)
    │   ├── UnsupportedEndpoint     400 unsupported_endpoint
    │   ├── AuthenticationFailed    401 authentication_error / invalid_api_key
    │   ├── PermissionDenied        403 permission_error
    │   ├── NotFound                404 unknown_url
    │   ├── ModelNotFound           404 model_not_found
    │   ├── MethodNotAllowed        405 method_not_allowed
    │   ├── Conflict                409 conflict (already exists, checksum mismatch)
    │   ├── RequestTimeout          408 request_timeout
    │   ├── PayloadTooLarge         413 request_too_large
    │   └── UnprocessableEntity     422 (a body that fails its schema; names the field)
    ├── HTTPStatusError             any other HTTP-level refusal, its own status
    ├── UpstreamError               upstream's status and message, kept as sent
    │   ├── UpstreamConnectError    502 upstream_connection_error
    │   ├── UpstreamTimeout         504 upstream_timeout
    │   └── UpstreamProtocolError   502 bad_upstream_response
    ├── DeploymentCapacityExceeded  429 rate_limit_error / deployment_capacity_exceeded
    ├── RateLimited                 429 rate_limit_error / rate_limit_exceeded (with Retry-After)
    ├── BudgetExceeded              429 insufficient_quota / budget_exceeded (x-should-retry: false)
    ├── NoDeploymentAvailable       503 no_deployment_available
    │   └── AllDeploymentsCoolingDown  503 all_deployments_cooling_down (with Retry-After)
    └── ServiceUnavailable          503 service_unavailable (draining)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "AllDeploymentsCoolingDown",
    "AuthenticationFailed",
    "BudgetExceeded",
    "ClientError",
    "Conflict",
    "DeploymentCapacityExceeded",
    "HTTPStatusError",
    "InvalidRequest",
    "LlmuxError",
    "MethodNotAllowed",
    "ModelNotFound",
    "NoDeploymentAvailable",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RequestTimeout",
    "ServiceUnavailable",
    "UnprocessableEntity",
    "UnsupportedEndpoint",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "is_retryable_status",
]

_RETRYABLE_STATUSES = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    """Whether an upstream HTTP status is worth another attempt (timeouts, conflicts, 429, 5xx)."""
    return status >= 500 or status in _RETRYABLE_STATUSES


class LlmuxError(Exception):
    """Base of every error llmux renders; subclasses fix status, type and code."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    @property
    def http_status(self) -> int:
        """The HTTP status this error is rendered with."""
        return self.status

    @property
    def error_type(self) -> str:
        """The OpenAI error `type` this error is rendered with."""
        return self.type

    @property
    def retryable(self) -> bool:
        """Whether dispatch may try another attempt after this error."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.http_status}, {self.message!r})"


class ClientError(LlmuxError):
    """The request itself is wrong; never retried, never a 5xx."""

    status = 400
    type = "invalid_request_error"


class InvalidRequest(ClientError):
    """A body or parameter failed validation; `param` names the field."""


class UnsupportedEndpoint(ClientError):
    """An OpenAI endpoint llmux deliberately does not serve."""

    default_code = "unsupported_endpoint"


class AuthenticationFailed(ClientError):
    """Missing or wrong credentials."""

    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(ClientError):
    """Valid credentials that may not do this."""

    status = 403
    type = "permission_error"


class NotFound(ClientError):
    """No route matches the path."""

    status = 404
    default_code = "unknown_url"


class ModelNotFound(ClientError):
    """The requested model is not served by any configured provider."""

    status = 404
    default_code = "model_not_found"


class MethodNotAllowed(ClientError):
    """The path exists but not for this HTTP method."""

    status = 405
    default_code = "method_not_allowed"


class RequestTimeout(ClientError):
    """The client did not send its body within `server.read_timeout`."""

    status = 408
    default_code = "request_timeout"


class PayloadTooLarge(ClientError):
    """The body exceeds `server.max_body_size`."""

    status = 413
    default_code = "request_too_large"


class Conflict(ClientError):
    """The request clashes with the current state (an id already taken, a stale checksum)."""

    status = 409
    default_code = "conflict"


class UnprocessableEntity(ClientError):
    """A well-formed body whose fields fail their schema; `param` names the field."""

    status = 422
    default_code = "invalid_field"


class HTTPStatusError(LlmuxError):
    """Any other HTTP-level refusal, rendered with its own status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self._status = status

    @property
    def http_status(self) -> int:
        return self._status

    @property
    def error_type(self) -> str:
        return "invalid_request_error" if self._status < 500 else "api_error"


class UpstreamError(LlmuxError):
    """The provider answered with an error; status and message are kept as it sent them."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self._status = status
        self._type = error_type
        self.retry_after = retry_after

    @property
    def http_status(self) -> int:
        return self._status

    @property
    def error_type(self) -> str:
        if self._type:
            return self._type
        return "invalid_request_error" if self._status < 500 else "api_error"

    @property
    def retryable(self) -> bool:
        return is_retryable_status(self._status)


class UpstreamConnectError(UpstreamError):
    """The provider could not be reached (refused, reset, DNS)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=502, code="upstream_connection_error")

    @property
    def retryable(self) -> bool:
        return True


class UpstreamTimeout(UpstreamError):
    """The provider did not connect, answer or keep streaming within its timeouts."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=504, error_type="timeout_error", code="upstream_timeout")

    @property
    def retryable(self) -> bool:
        return True


class UpstreamProtocolError(UpstreamError):
    """The provider answered with something that is not its documented wire format."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=502, code="bad_upstream_response")


class DeploymentCapacityExceeded(LlmuxError):
    """Every deployment of the group is at its rpm, tpm or max_concurrent limit; has Retry-After."""

    status = 429
    type = "rate_limit_error"
    default_code = "deployment_capacity_exceeded"


class RateLimited(LlmuxError):
    """A key, user, team, organization or end-user limit refused the request (governance).

    `headers` carry `retry-after` and the `x-ratelimit-*` headers of the limit that refused.
    """

    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(
        self, message: str, *, headers: dict[str, str] | None = None, level: str = "key"
    ) -> None:
        super().__init__(message, headers=headers)
        self.level = level
        """Which limit refused: key, user, team, organization or end_user (a metric label)."""

    @property
    def retryable(self) -> bool:
        """Clients may retry after `Retry-After`."""
        return True


class BudgetExceeded(LlmuxError):
    """A hard budget would be overshot; SDKs must not retry (`x-should-retry: false`)."""

    status = 429
    type = "insufficient_quota"
    default_code = "budget_exceeded"

    def __init__(
        self,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        level: str = "key",
        event: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, headers={"x-should-retry": "false", **(headers or {})})
        self.level = level
        """Which budget refused (key, user, team, organization, end_user, ..._model)."""
        self.event = event
        """The refusing budget line and its amounts, for the audit log; never shown to clients."""


class NoDeploymentAvailable(LlmuxError):
    """Every deployment of the model group is disabled or was tried and failed."""

    status = 503
    type = "service_unavailable_error"
    default_code = "no_deployment_available"


class AllDeploymentsCoolingDown(NoDeploymentAvailable):
    """Every deployment of the model group is in cooldown; `Retry-After` says when one returns."""

    default_code = "all_deployments_cooling_down"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"retry-after": str(retry_after)})
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Clients may retry after `Retry-After` (no `x-should-retry: false`)."""
        return True


class ServiceUnavailable(LlmuxError):
    """The gateway is starting or draining; another replica can take the request."""

    status = 503
    type = "service_unavailable_error"
    default_code = "service_unavailable"

    @property
    def retryable(self) -> bool:
        return True
