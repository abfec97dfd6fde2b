"""Anthropic codec requests: OpenAI chat bodies translated to the Messages API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmux.errors import InvalidRequest
from llmux.intake import parse_call
from llmux.providers.anthropic import AnthropicProvider
from llmux.providers.base import Target
from llmux.types import Endpoint

CODEC = AnthropicProvider()
TARGET = Target(
    provider="claude",
    base_url="https://api.anthropic.com",
    api_key="sk-ant-secret",
    upstream_model="claude-sonnet-4-5-20250929",
    headers={"anthropic-beta": "prompt-caching-2024-07-31"},
)
HI = [{"role": "user", "content": "Hi"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _sent(body: dict[str, Any], target: Target = TARGET) -> dict[str, Any]:
    """The JSON body the codec sends upstream for the client's `body`."""
    prepared = CODEC.encode_request(_call(body), target)
    assert prepared.body is not None
    result: dict[str, Any] = json.loads(prepared.body)
    return result


def _call(body: dict[str, Any]) -> Any:
    return parse_call(Endpoint.CHAT, json.dumps({"model": "claude", **body}).encode(), "r1")


def _target(**changes: Any) -> Target:
    fields = {
        "provider": "claude",
        "base_url": "https://api.anthropic.com",
        "api_key": "k",
        "upstream_model": "claude-x",
        "headers": {},
    }
    return Target(**{**fields, **changes})


def _rejected(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        _sent(body)
    return info.value


class TestEnvelope:
    """URL, headers and top-level fields."""

    def test_url_and_headers(self) -> None:
        """POST {base_url}/v1/messages with x-api-key, anthropic-version and extra headers."""
        prepared = CODEC.encode_request(_call({"messages": HI}), TARGET)
        assert (prepared.method, prepared.url) == ("POST", "https://api.anthropic.com/v1/messages")
        assert prepared.headers == {
            "content-type": "application/json",
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "prompt-caching-2024-07-31",
            "x-api-key": "sk-ant-secret",
        }
        assert prepared.stream is False

    def test_api_version_override(self) -> None:
        """The provider's api_version is sent as anthropic-version."""
        prepared = CODEC.encode_request(_call({"messages": HI}), _target(api_version="2099-01-01"))
        assert prepared.headers["anthropic-version"] == "2099-01-01"

    def test_base_url_with_v1_is_not_doubled(self) -> None:
        """A base_url pasted with /v1 still reaches /v1/messages."""
        prepared = CODEC.encode_request(_call({"messages": HI}), _target(base_url="http://a/v1"))
        assert prepared.url == "http://a/v1/messages"

    def test_stream_flag_and_accept(self) -> None:
        """A streaming call sends stream: true and accepts SSE."""
        prepared = CODEC.encode_request(_call({"messages": HI, "stream": True}), TARGET)
        assert prepared.body is not None
        assert json.loads(prepared.body)["stream"] is True
        assert prepared.headers["accept"] == "text/event-stream"
        assert prepared.stream is True

    def test_minimal_body(self) -> None:
        """A plain chat becomes model, one user turn and the default max_tokens."""
        assert _sent({"messages": HI}) == {
            "model": "claude-sonnet-4-5-20250929",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "max_tokens": 4096,
        }

    def test_sampling_fields(self) -> None:
        """stop, temperature, top_p and user map to their Anthropic names."""
        sent = _sent(
            {"messages": HI, "stop": ["END", "##"], "temperature": 0.2, "top_p": 0.9, "user": "u-7"}
        )
        assert sent["stop_sequences"] == ["END", "##"]
        assert (sent["temperature"], sent["top_p"]) == (0.2, 0.9)
        assert sent["metadata"] == {"user_id": "u-7"}

    def test_stop_string(self) -> None:
        """A single stop string becomes a one-item stop_sequences list."""
        assert _sent({"messages": HI, "stop": "END"})["stop_sequences"] == ["END"]

    def test_n_above_one_is_rejected(self) -> None:
        """n > 1 is a 400 naming `n`: Anthropic returns one choice."""
        assert _rejected({"messages": HI, "n": 2}).param == "n"


class TestMaxTokens:
    """Anthropic requires max_tokens: client value, deployment default, then 4096."""

    def test_max_completion_tokens_wins(self) -> None:
        """max_completion_tokens is preferred over max_tokens."""
        sent = _sent({"messages": HI, "max_completion_tokens": 50, "max_tokens": 70})
        assert sent["max_tokens"] == 50

    def test_legacy_max_tokens(self) -> None:
        """max_tokens is used when max_completion_tokens is absent."""
        assert _sent({"messages": HI, "max_tokens": 70})["max_tokens"] == 70

    def test_deployment_default(self) -> None:
        """The deployment's max_output_tokens applies when the client sets none."""
        assert _sent({"messages": HI}, _target(max_output_tokens=900))["max_tokens"] == 900


class TestMessages:
    """System hoisting, turn merging, content parts and tool round trips."""

    def test_system_and_developer_are_hoisted(self) -> None:
        """System and developer messages join into the top-level system string."""
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            *HI,
        ]
        sent = _sent({"messages": messages})
        assert sent["system"] == "Be brief.\n\nUse French."
        assert [m["role"] for m in sent["messages"]] == ["user"]

    def test_consecutive_same_role_merged(self) -> None:
        """Two user messages in a row become one user turn with two text blocks."""
        messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
        assert _sent({"messages": messages})["messages"] == [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ]

    def test_data_url_image(self) -> None:
        """A base64 data URL becomes a base64 image source with its media type."""
        part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        content = _sent({"messages": [{"role": "user", "content": [part]}]})["messages"][0]
        assert content["content"] == [
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
            }
        ]

    def test_http_url_image(self) -> None:
        """An https URL becomes a url image source next to the text part."""
        parts = [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ]
        content = _sent({"messages": [{"role": "user", "content": parts}]})["messages"][0]
        assert content["content"] == [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        ]

    def test_bad_image_url_names_field(self) -> None:
        """An image URL that is neither http(s) nor base64 data is a 400 naming it."""
        part = {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}
        error = _rejected({"messages": [{"role": "user", "content": [part]}]})
        assert error.param == "messages[0].content[0].image_url.url"

    def test_tool_round_trip(self) -> None:
        """Assistant tool_calls become tool_use blocks; tool messages one user turn of results."""
        messages = [
            *HI,
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "?"}]},
        ]
        sent = _sent({"messages": messages})["messages"]
        assert sent[1] == {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
            ],
        }
        assert sent[2] == {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "?"},
            ],
        }

    def test_invalid_arguments_name_the_message(self) -> None:
        """Tool call arguments that are not a JSON object are a 400 naming the message."""
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
        messages = [*HI, {"role": "assistant", "tool_calls": [call]}]
        error = _rejected({"messages": messages})
        assert error.param == "messages[1].tool_calls[0].function.arguments"

    def test_tool_message_needs_id(self) -> None:
        """A tool message without tool_call_id is a 400 naming it."""
        error = _rejected({"messages": [*HI, {"role": "tool", "content": "x"}]})
        assert error.param == "messages[1].tool_call_id"

    def test_unknown_role_is_rejected(self) -> None:
        """A role Anthropic cannot express is a 400 naming it."""
        error = _rejected({"messages": [{"role": "function", "content": "x"}]})
        assert error.param == "messages[0].role"

    def test_only_system_is_rejected(self) -> None:
        """A conversation with no user or assistant turn is a 400 on messages."""
        error = _rejected({"messages": [{"role": "system", "content": "x"}]})
        assert error.param == "messages"


class TestTools:
    """Function tools and tool_choice."""

    def test_function_tool(self) -> None:
        """A function tool becomes name, description and input_schema."""
        assert _sent({"messages": HI, "tools": [TOOL]})["tools"] == [
            {
                "name": "get_weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                "description": "Weather for a city",
            }
        ]

    def test_tool_without_parameters(self) -> None:
        """A tool without parameters gets an empty object schema."""
        tool = {"type": "function", "function": {"name": "ping"}}
        sent = _sent({"messages": HI, "tools": [tool]})["tools"][0]
        assert sent == {"name": "ping", "input_schema": {"type": "object", "properties": {}}}

    @pytest.mark.parametrize(
        ("choice", "expected"),
        [
            ("auto", {"type": "auto"}),
            ("none", {"type": "none"}),
            ("required", {"type": "any"}),
            (
                {"type": "function", "function": {"name": "get_weather"}},
                {"type": "tool", "name": "get_weather"},
            ),
        ],
    )
    def test_tool_choice(self, choice: Any, expected: dict[str, Any]) -> None:
        """auto/none/required/named map to auto/none/any/tool."""
        assert (
            _sent({"messages": HI, "tools": [TOOL], "tool_choice": choice})["tool_choice"]
            == expected
        )

    def test_parallel_tool_calls_false(self) -> None:
        """parallel_tool_calls false disables parallel tool use."""
        sent = _sent({"messages": HI, "tools": [TOOL], "parallel_tool_calls": False})
        assert sent["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}

    def test_unknown_tool_choice(self) -> None:
        """An unknown tool_choice string is a 400 naming tool_choice."""
        assert (
            _rejected({"messages": HI, "tools": [TOOL], "tool_choice": "maybe"}).param
            == "tool_choice"
        )

    def test_non_function_tool(self) -> None:
        """A tool that is not a function is a 400 naming its type."""
        tool = {"type": "custom", "function": {"name": "x"}}
        assert _rejected({"messages": HI, "tools": [tool]}).param == "tools[0].type"


class TestJsonAndThinking:
    """response_format via a forced tool; reasoning_effort via extended thinking."""

    def test_json_schema_forces_json_tool(self) -> None:
        """json_schema adds the json_response tool with the schema and forces it."""
        schema = {"type": "object", "properties": {"name": {"type": "string"}}}
        fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
        sent = _sent({"messages": HI, "response_format": fmt})
        assert sent["tools"][0]["name"] == "json_response"
        assert sent["tools"][0]["input_schema"] == schema
        assert sent["tool_choice"] == {"type": "tool", "name": "json_response"}

    def test_json_object_accepts_any_object(self) -> None:
        """json_object forces the json_response tool with an open object schema."""
        sent = _sent({"messages": HI, "response_format": {"type": "json_object"}})
        assert sent["tools"][0]["input_schema"] == {"type": "object"}

    def test_text_format_adds_nothing(self) -> None:
        """response_format text leaves tools out."""
        assert "tools" not in _sent({"messages": HI, "response_format": {"type": "text"}})

    def test_reasoning_effort_enables_thinking(self) -> None:
        """reasoning_effort with a configured budget enables thinking below max_tokens."""
        sent = _sent({"messages": HI, "reasoning_effort": "high"}, _target(thinking_budget=2048))
        assert sent["thinking"] == {"budget_tokens": 2048, "type": "enabled"}
        assert sent["max_tokens"] == 4096

    def test_budget_above_max_tokens_raises_cap(self) -> None:
        """A small max_tokens is raised by the budget so thinking leaves room for the answer."""
        body = {"messages": HI, "reasoning_effort": "low", "max_tokens": 500}
        assert _sent(body, _target(thinking_budget=1024))["max_tokens"] == 1524

    def test_no_budget_no_thinking(self) -> None:
        """Without a configured budget reasoning_effort is ignored."""
        assert "thinking" not in _sent({"messages": HI, "reasoning_effort": "high"})

    def test_json_mode_turns_thinking_off(self) -> None:
        """Forced tool use cannot combine with thinking, so JSON mode wins."""
        body = {
            "messages": HI,
            "reasoning_effort": "high",
            "response_format": {"type": "json_object"},
        }
        assert "thinking" not in _sent(body, _target(thinking_budget=2048))


class TestContentEdges:
    """Less common content shapes."""

    def test_empty_user_message_is_skipped(self) -> None:
        """An empty user message adds no turn (Anthropic rejects empty text blocks)."""
        messages = [{"role": "user", "content": ""}, *HI]
        assert _sent({"messages": messages})["messages"] == [
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
        ]

    def test_system_image_is_rejected(self) -> None:
        """A system message with an image part is a 400 naming the part."""
        part = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
        error = _rejected({"messages": [{"role": "system", "content": [part]}, *HI]})
        assert error.param == "messages[0].content[0]"

    def test_assistant_parts(self) -> None:
        """Assistant text and refusal parts become text blocks; image parts are dropped."""
        parts = [
            {"type": "text", "text": "a"},
            {"type": "refusal", "refusal": "no"},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        ]
        sent = _sent({"messages": [*HI, {"role": "assistant", "content": parts}]})
        assert sent["messages"][1]["content"] == [
            {"type": "text", "text": "a"},
            {"type": "text", "text": "no"},
        ]

    def test_user_refusal_part(self) -> None:
        """A refusal part echoed in a user turn is kept as text."""
        parts = [{"type": "refusal", "refusal": "no"}]
        sent = _sent({"messages": [{"role": "user", "content": parts}]})
        assert sent["messages"][0]["content"] == [{"type": "text", "text": "no"}]


def test_tool_loop_turns_thinking_off() -> None:
    """A continuation after the assistant used tools is sent without thinking."""
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        *HI,
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    body = {"messages": messages, "reasoning_effort": "high"}
    assert "thinking" not in _sent(body, _target(thinking_budget=2048))
