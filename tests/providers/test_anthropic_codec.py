"""Anthropic codec answers: messages -> chat.completion bodies, usage and the error mapping."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmux.errors import UpstreamError, UpstreamProtocolError
from llmux.intake import parse_call
from llmux.providers.anthropic import AnthropicProvider
from llmux.providers.base import Call
from llmux.types import Endpoint, Usage
from tests.helpers.anthropic_upstream import fixture

CODEC = AnthropicProvider()


def _call(**extra: Any) -> Call:
    body = {"model": "claude", "messages": [{"role": "user", "content": "Hi"}], **extra}
    return parse_call(Endpoint.CHAT, json.dumps(body).encode(), "req-1", 1700000000)


def _decode(name: str, call: Call | None = None) -> tuple[dict[str, Any], Usage | None]:
    body, usage = CODEC.decode_response(call or _call(), fixture(name))
    return json.loads(body), usage


def _message(stop_reason: str | None, content: list[dict[str, Any]] | None = None) -> bytes:
    body = {
        "content": content or [{"type": "text", "text": "x"}],
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    return json.dumps(body).encode()


class TestResponse:
    """Complete messages become one OpenAI choice."""

    def test_text_message(self) -> None:
        """Text, finish_reason stop, the client's model name and the OpenAI envelope."""
        body, _ = _decode("chat.json")
        assert body["id"] == "chatcmpl-req-1"
        assert body["object"] == "chat.completion"
        assert (body["created"], body["model"]) == (1700000000, "claude")
        assert body["choices"] == [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! How can I help you today?",
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ]

    def test_usage(self) -> None:
        """input/output tokens become prompt/completion tokens with details."""
        body, usage = _decode("chat.json")
        assert usage == Usage(input_tokens=12, output_tokens=12)
        assert body["usage"]["total_tokens"] == 24
        assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 0

    def test_cached_usage(self) -> None:
        """Prompt tokens include cache reads and writes; both are also counted apart."""
        body, usage = _decode("chat_cached.json")
        assert usage == Usage(
            input_tokens=21 + 188 + 1800,
            output_tokens=14,
            cached_tokens=1800,
            cache_write_tokens=188,
        )
        assert body["usage"]["prompt_tokens"] == 2009
        assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 1800

    def test_parallel_tool_calls(self) -> None:
        """tool_use blocks become tool_calls with JSON-string arguments, in order."""
        body, _ = _decode("chat_tools.json")
        choice = body["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] == "I'll check the weather in both cities."
        calls = choice["message"]["tool_calls"]
        assert [c["id"] for c in calls] == [
            "toolu_01A09q90qw90lq917835lq9",
            "toolu_01B8fd7e6c5b4a3928170abc",
        ]
        assert calls[0]["type"] == "function"
        assert calls[0]["function"]["name"] == "get_weather"
        args = json.loads(calls[0]["function"]["arguments"])
        assert args == {"location": "San Francisco, CA", "unit": "celsius"}

    def test_thinking(self) -> None:
        """Thinking blocks become reasoning_content; thinking tokens reasoning_tokens."""
        body, usage = _decode("chat_thinking.json")
        message = body["choices"][0]["message"]
        assert message["reasoning_content"] == "The user asks 27 * 453. 27 * 453 = 12231."
        assert message["content"] == "27 * 453 = 12,231"
        assert usage is not None and usage.reasoning_tokens == 52

    def test_json_mode_tool_becomes_content(self) -> None:
        """In JSON mode the json_response tool input is the content, finish_reason stop."""
        call = _call(response_format={"type": "json_object"})
        body, _ = _decode("chat_json.json", call)
        choice = body["choices"][0]
        assert json.loads(choice["message"]["content"]) == {"name": "Ada", "age": 36}
        assert "tool_calls" not in choice["message"]
        assert choice["finish_reason"] == "stop"

    def test_json_tool_name_without_json_mode_is_a_tool_call(self) -> None:
        """A client tool that happens to be named json_response stays a tool call."""
        body, _ = _decode("chat_json.json")
        assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == (
            "json_response"
        )

    @pytest.mark.parametrize(
        ("stop_reason", "finish"),
        [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
            (None, "stop"),
        ],
    )
    def test_stop_reasons(self, stop_reason: str | None, finish: str) -> None:
        """Each Anthropic stop_reason maps to its OpenAI finish_reason."""
        body, _ = CODEC.decode_response(_call(), _message(stop_reason))
        assert json.loads(body)["choices"][0]["finish_reason"] == finish

    def test_unknown_blocks_are_skipped(self) -> None:
        """Server-tool blocks carry nothing for an OpenAI client and are skipped."""
        content = [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]
        body, _ = CODEC.decode_response(_call(), _message("end_turn", content))
        assert json.loads(body)["choices"][0]["message"]["content"] is None

    def test_invalid_body(self) -> None:
        """A body that is not a message is a protocol error."""
        with pytest.raises(UpstreamProtocolError):
            CODEC.decode_response(_call(), b"[1, 2]")


class TestErrors:
    """Anthropic error bodies map to the error tree."""

    def _error(
        self, name: str, status: int, headers: dict[str, str] | None = None
    ) -> UpstreamError:
        return CODEC.decode_error(status, fixture(name), headers or {})

    def test_overloaded_is_retryable_503(self) -> None:
        """overloaded_error (529) becomes a retryable 503."""
        error = self._error("error_529.json", 529)
        assert (error.http_status, error.error_type, error.code) == (
            503,
            "service_unavailable",
            "overloaded",
        )
        assert error.retryable
        assert error.message == "Overloaded"

    def test_rate_limit_honours_retry_after(self) -> None:
        """rate_limit_error is a 429 with retry-after."""
        error = self._error("error_429.json", 429, {"retry-after": "7"})
        assert (error.http_status, error.error_type, error.retry_after) == (
            429,
            "rate_limit_error",
            7.0,
        )

    def test_prompt_too_long(self) -> None:
        """A too-long prompt is a 400 with code context_length_exceeded."""
        error = self._error("error_400_context.json", 400)
        assert (error.http_status, error.code) == (400, "context_length_exceeded")
        assert "prompt is too long" in error.message
        assert not error.retryable

    def test_authentication(self) -> None:
        """authentication_error is a 401."""
        error = self._error("error_401.json", 401)
        assert (error.http_status, error.error_type) == (401, "authentication_error")

    @pytest.mark.parametrize(
        ("kind", "status"),
        [
            ("invalid_request_error", 400),
            ("permission_error", 403),
            ("not_found_error", 404),
            ("api_error", 500),
        ],
    )
    def test_other_types(self, kind: str, status: int) -> None:
        """Each documented error type gets its status."""
        body = json.dumps({"type": "error", "error": {"type": kind, "message": "m"}}).encode()
        error = CODEC.decode_error(418, body, {})
        assert (error.http_status, error.code, error.message) == (status, kind, "m")

    def test_unknown_type_keeps_status(self) -> None:
        """An error type we do not know keeps the HTTP status."""
        body = b'{"type":"error","error":{"type":"new_error","message":"m"}}'
        assert CODEC.decode_error(418, body, {}).http_status == 418

    def test_non_json_529(self) -> None:
        """A 529 without a JSON body is still a retryable 503."""
        error = CODEC.decode_error(529, b"<html>busy</html>", {})
        assert error.http_status == 503 and error.retryable
        assert "busy" in error.message


def test_unknown_error_type_on_529_is_503() -> None:
    """An unknown error type sent with HTTP 529 is still the retryable 503."""
    body = b'{"type":"error","error":{"type":"brand_new","message":"m"}}'
    error = CODEC.decode_error(529, body, {})
    assert error.http_status == 503 and error.retryable


def test_message_without_usage() -> None:
    """A message without usage reports zero usage rather than failing."""
    body, usage = CODEC.decode_response(_call(), b'{"content":[],"stop_reason":"end_turn"}')
    assert usage == Usage()
    assert json.loads(body)["usage"]["total_tokens"] == 0


def test_malformed_response_format_is_not_json_mode() -> None:
    """A response_format that is not an object leaves tool calls as tool calls."""
    body, _ = CODEC.decode_response(_call(response_format="json"), fixture("chat_json.json"))
    assert json.loads(body)["choices"][0]["message"]["tool_calls"]
