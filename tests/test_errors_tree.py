"""The error tree: every class renders as an OpenAI error, and every transport failure is mapped."""

from __future__ import annotations

import errno
import inspect
import ssl

import aiohttp
import msgspec
import pytest
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from llmux import errors
from llmux.errors import (
    HTTPStatusError,
    LlmuxError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    is_retryable_status,
)
from llmux.middleware.errors import render_error
from llmux.upstream.http import map_transport_errors

_URL = "https://up.example/v1/chat/completions"
_KEY = ConnectionKey("up.example", 443, True, True, None, None, None, None)
_REQUEST = aiohttp.RequestInfo(URL(_URL), "POST", CIMultiDictProxy(CIMultiDict()), URL(_URL))

_ERROR_CLASSES = [
    cls
    for name in errors.__all__
    if inspect.isclass(cls := getattr(errors, name)) and issubclass(cls, BaseException)
]


def _llmux_error(cls: type[BaseException]) -> LlmuxError:
    """An instance of one of our classes, built as its constructor requires."""
    if cls is HTTPStatusError:
        return HTTPStatusError("I'm a teapot", status=418)
    error = cls("something went wrong")
    assert isinstance(error, LlmuxError)
    return error


class TestRendering:
    """Every class renders once, as `{"error": {message, type, param, code}}`."""

    def test_all_classes_are_found(self) -> None:
        """The scan sees the whole tree (guards the parametrised test below)."""
        assert LlmuxError in _ERROR_CLASSES
        assert len(_ERROR_CLASSES) == len(errors.__all__) - 1

    @pytest.mark.parametrize("cls", _ERROR_CLASSES, ids=lambda cls: cls.__name__)
    def test_renders_error_status_and_type(self, cls: type[BaseException]) -> None:
        """Each class renders with a 4xx/5xx status, a non-empty type and all four keys."""
        error = _llmux_error(cls)
        response = render_error(error)
        assert 400 <= response.status <= 599
        assert isinstance(response.body, bytes)
        detail = msgspec.json.decode(response.body)["error"]
        assert set(detail) == {"message", "type", "param", "code"}
        assert isinstance(detail["type"], str) and detail["type"]
        assert detail["message"] == error.message

    @pytest.mark.parametrize(
        "cls",
        [c for c in _ERROR_CLASSES if issubclass(c, errors.ClientError)],
        ids=lambda cls: cls.__name__,
    )
    def test_client_errors_are_4xx_and_not_retryable(self, cls: type[BaseException]) -> None:
        """The client's mistakes are never 5xx and never retried."""
        error = _llmux_error(cls)
        assert 400 <= error.http_status < 500
        assert not error.retryable

    def test_upstream_error_keeps_its_status_and_type(self) -> None:
        """An upstream's 429 renders as 429 with the upstream's type and a retry-after header."""
        error = UpstreamError("slow down", status=429, error_type="requests", retry_after=1.2)
        response = render_error(error)
        assert response.status == 429
        assert response.headers["retry-after"] == "2"
        assert isinstance(response.body, bytes)
        assert msgspec.json.decode(response.body)["error"]["type"] == "requests"

    def test_http_status_error_type_follows_status(self) -> None:
        """A 4xx HTTPStatusError is an invalid_request_error, a 5xx an api_error."""
        assert HTTPStatusError("x", status=418).error_type == "invalid_request_error"
        assert HTTPStatusError("x", status=503).error_type == "api_error"

    def test_transport_errors_are_retryable(self) -> None:
        """Connect failures and timeouts may be retried on another attempt."""
        assert UpstreamConnectError("refused").retryable
        assert UpstreamTimeout("slow").retryable
        assert UpstreamProtocolError("garbage").retryable


class TestRetryableStatus:
    """is_retryable_status: timeouts, conflicts, 429 and 5xx are worth another attempt."""

    @pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
    def test_retryable(self, status: int) -> None:
        """Transient statuses are retryable."""
        assert is_retryable_status(status)

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
    def test_not_retryable(self, status: int) -> None:
        """The request's own faults are not."""
        assert not is_retryable_status(status)


def _aiohttp_error(cls: type[BaseException]) -> BaseException:
    """An instance of an aiohttp client exception, built as its constructor requires."""
    if issubclass(cls, aiohttp.ClientConnectorCertificateError):
        return cls(_KEY, ssl.SSLCertVerificationError("certificate verify failed"))
    if issubclass(cls, aiohttp.ClientConnectorError):
        return cls(_KEY, OSError(errno.ECONNREFUSED, "Connection refused"))
    if issubclass(cls, aiohttp.ClientResponseError):
        return cls(_REQUEST, (), status=502, message="Bad Gateway")
    if issubclass(cls, aiohttp.InvalidURL):
        return cls("http://[::1/v1", "invalid host")
    if issubclass(cls, aiohttp.ServerFingerprintMismatch):
        return cls(b"expected", b"got", "up.example", 443)
    return cls("upstream problem")


_TRANSPORT_ERRORS: list[type[BaseException]] = [
    cls
    for name in aiohttp.__all__
    if inspect.isclass(cls := getattr(aiohttp, name)) and issubclass(cls, aiohttp.ClientError)
] + [TimeoutError]


def _mapped(exc: BaseException) -> BaseException:
    """What map_transport_errors turns `exc` into."""
    with pytest.raises(BaseException) as caught, map_transport_errors(_URL, "within 1s"):
        raise exc
    return caught.value


class TestTransportMapping:
    """map_transport_errors leaves no aiohttp or asyncio failure unmapped."""

    def test_scan_finds_aiohttp_exceptions(self) -> None:
        """The parametrised list holds aiohttp's whole client exception family."""
        assert aiohttp.ClientError in _TRANSPORT_ERRORS
        assert aiohttp.ServerDisconnectedError in _TRANSPORT_ERRORS
        assert len(_TRANSPORT_ERRORS) >= 20

    @pytest.mark.parametrize("cls", _TRANSPORT_ERRORS, ids=lambda cls: cls.__name__)
    def test_all_exceptions_mapped(self, cls: type[BaseException]) -> None:
        """Every client exception becomes an UpstreamError, chained to the original."""
        original = _aiohttp_error(cls)
        mapped = _mapped(original)
        assert isinstance(mapped, UpstreamError)
        assert mapped.__cause__ is original
        assert 500 <= mapped.http_status <= 599

    @pytest.mark.parametrize(
        ("cls", "expected"),
        [
            (TimeoutError, UpstreamTimeout),
            (aiohttp.ServerTimeoutError, UpstreamTimeout),
            (aiohttp.ConnectionTimeoutError, UpstreamTimeout),
            (aiohttp.SocketTimeoutError, UpstreamTimeout),
            (aiohttp.ClientConnectorError, UpstreamConnectError),
            (aiohttp.ClientConnectorDNSError, UpstreamConnectError),
            (aiohttp.ServerDisconnectedError, UpstreamConnectError),
            (aiohttp.ClientOSError, UpstreamConnectError),
            (aiohttp.ClientPayloadError, UpstreamProtocolError),
            (aiohttp.ClientResponseError, UpstreamProtocolError),
        ],
        ids=lambda value: getattr(value, "__name__", str(value)),
    )
    def test_specific_mapping(
        self, cls: type[BaseException], expected: type[UpstreamError]
    ) -> None:
        """Timeouts, connection failures and broken bodies get their own classes."""
        assert type(_mapped(_aiohttp_error(cls))) is expected

    def test_connect_error_names_origin_not_path(self) -> None:
        """The message names the upstream's origin and the OS error, not the request path."""
        mapped = _mapped(_aiohttp_error(aiohttp.ClientConnectorError))
        assert isinstance(mapped, UpstreamError)
        assert mapped.message == (
            "cannot connect to upstream https://up.example: [Errno 111] Connection refused"
        )

    def test_timeout_message_carries_the_hint(self) -> None:
        """A timeout says which limit was hit."""
        mapped = _mapped(TimeoutError())
        assert isinstance(mapped, UpstreamError)
        assert mapped.message == "upstream https://up.example timed out (within 1s)"

    def test_llmux_errors_pass_through(self) -> None:
        """An error already in our tree is re-raised untouched."""
        original = UpstreamError("kept", status=418)
        assert _mapped(original) is original
