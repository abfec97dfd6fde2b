"""Anthropic-shaped errors and the count_tokens estimate for non-Anthropic providers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import ErrorResponse, MessageTokensCount

from llmux.errors import (
    AuthenticationFailed,
    BudgetExceeded,
    InvalidRequest,
    LlmuxError,
    ModelNotFound,
    NoDeploymentAvailable,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from llmux.frontdoor.messages import (
    anthropic_error_body,
    anthropic_error_type,
    count_tokens_body,
    estimate_input_tokens,
)
from llmux.wire.openai import decode_body


class TestErrors:
    """Status -> Anthropic error type, and the body the SDK parses."""

    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (InvalidRequest("bad", param="x"), "invalid_request_error"),
            (AuthenticationFailed("who"), "authentication_error"),
            (PermissionDenied("no"), "permission_error"),
            (ModelNotFound("none"), "not_found_error"),
            (PayloadTooLarge("big"), "request_too_large"),
            (RateLimited("slow"), "rate_limit_error"),
            (BudgetExceeded("spent"), "rate_limit_error"),
            (UpstreamError("boom", status=500), "api_error"),
            (UpstreamError("bad gateway", status=502), "api_error"),
            (NoDeploymentAvailable("none left"), "overloaded_error"),
            (UpstreamError("overloaded", status=529), "overloaded_error"),
            (UpstreamTimeout("late"), "timeout_error"),
            (UpstreamError("payment", status=402), "billing_error"),
            (UpstreamError("teapot", status=418), "invalid_request_error"),
        ],
    )
    def test_type_by_status(self, error: LlmuxError, expected: str) -> None:
        """Each status class maps to the type Anthropic documents for it."""
        assert anthropic_error_type(error) == expected

    def test_body_shape(self) -> None:
        """The body is {"type": "error", "error": {type, message}} and valid for the SDK."""
        body = anthropic_error_body(InvalidRequest("'max_tokens' is required.", param="x"))
        assert json.loads(body) == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "'max_tokens' is required."},
        }
        ErrorResponse.model_validate_json(body)


def _body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 10, **fields}


def _estimate(**fields: Any) -> int:
    return estimate_input_tokens(decode_body(json.dumps(_body(**fields)).encode()))


class TestCountTokens:
    """The documented estimate."""

    def test_text_is_four_characters_a_token(self) -> None:
        """400 characters of system and text plus 4 framing tokens per message."""
        messages = [{"role": "user", "content": "a" * 200}]
        assert _estimate(system="b" * 200, messages=messages) == 100 + 4

    def test_images_cost_a_fixed_amount(self) -> None:
        """Each image adds 1600 tokens, also inside tool results."""
        image = {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}
        result = {"type": "tool_result", "tool_use_id": "t", "content": [image]}
        messages = [{"role": "user", "content": [image, result]}]
        assert _estimate(messages=messages) == 2 * 1600 + 4

    def test_tools_count(self) -> None:
        """Tool definitions add their text and the tool-use overhead."""
        tool = {
            "name": "get_weather",
            "description": "Weather.",
            "input_schema": {"type": "object"},
        }
        plain = _estimate(messages=[{"role": "user", "content": "Hi"}])
        with_tools = _estimate(messages=[{"role": "user", "content": "Hi"}], tools=[tool])
        assert with_tools - plain >= 300

    def test_response_body(self) -> None:
        """count_tokens_body is the API's {"input_tokens": n}."""
        body = json.dumps(_body(messages=[{"role": "user", "content": "abcd"}])).encode()
        count = MessageTokensCount.model_validate_json(count_tokens_body(decode_body(body)))
        assert count.input_tokens == 1 + 4

    def test_bad_body_is_a_400(self) -> None:
        """A malformed request names the field."""
        with pytest.raises(InvalidRequest) as info:
            _estimate(messages="nope")
        assert info.value.param == "messages"
