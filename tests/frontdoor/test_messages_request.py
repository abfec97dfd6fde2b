"""Messages front door requests: an Anthropic Messages body -> the inner codec's chat request."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmux.errors import InvalidRequest
from llmux.frontdoor.messages import MessagesOverChat
from llmux.providers.base import Call, Target
from llmux.providers.gemini import GeminiProvider
from llmux.providers.openai import OpenAIProvider
from llmux.types import Endpoint
from llmux.wire.openai import decode_body

OVER_OPENAI = MessagesOverChat(OpenAIProvider())
TARGET = Target("openai", "https://api.openai.test/v1", "sk-up", "gpt-4o", {})
PNG = "iVBORw0KGgo="


def _call(stream: bool = False, **fields: Any) -> Call:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi"}],
        **fields,
    }
    if stream:
        body["stream"] = True
    data = json.dumps(body, separators=(",", ":")).encode()
    return Call(Endpoint.MESSAGES, "claude-sonnet-4-5", decode_body(data), stream, False, "req1")


def _chat(**fields: Any) -> dict[str, Any]:
    prepared = OVER_OPENAI.encode_request(_call(**fields), TARGET)
    assert prepared.body is not None
    body: dict[str, Any] = json.loads(prepared.body)
    return body


def _bad(**fields: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        OVER_OPENAI.encode_request(_call(**fields), TARGET)
    return info.value


class TestConversation:
    """System prompt, turns and content blocks."""

    def test_plain_request_becomes_chat(self) -> None:
        """Model, messages and max_tokens map to the chat request sent to the deployment."""
        prepared = OVER_OPENAI.encode_request(_call(), TARGET)
        assert prepared.url == "https://api.openai.test/v1/chat/completions"
        assert json.loads(prepared.body or b"") == {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_completion_tokens": 1024,
        }

    def test_system_blocks_join_into_one_system_message(self) -> None:
        """A list of system text blocks becomes one leading system message."""
        system = [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}]
        assert _chat(system=system)["messages"][0] == {
            "role": "system",
            "content": "Be brief.\n\nBe kind.",
        }

    def test_images_become_image_url_parts(self) -> None:
        """base64 sources become data: URLs and url sources stay URLs."""
        content = [
            {"type": "text", "text": "Compare"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
        ]
        parts = _chat(messages=[{"role": "user", "content": content}])["messages"][0]["content"]
        assert parts == [
            {"type": "text", "text": "Compare"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
        ]

    def test_thinking_blocks_in_history_are_dropped(self) -> None:
        """Assistant thinking blocks are not sent to providers that cannot verify them."""
        assistant = [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Hello"},
        ]
        messages = [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": "Again"},
        ]
        assert _chat(messages=messages)["messages"][1] == {"role": "assistant", "content": "Hello"}


class TestToolRoundTrip:
    """tool_use in assistant turns and tool_result in user turns."""

    MESSAGES = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"location": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "is_error": True,
                    "content": [{"type": "text", "text": "clock broken"}],
                },
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]

    def test_tool_use_becomes_tool_calls(self) -> None:
        """The assistant's tool_use blocks become tool_calls with JSON-string arguments."""
        assistant = _chat(messages=self.MESSAGES)["messages"][1]
        assert assistant == {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        }

    def test_tool_results_become_tool_messages_before_the_user_text(self) -> None:
        """Each tool_result is a tool message (errors marked), then the turn's other text."""
        assert _chat(messages=self.MESSAGES)["messages"][2:] == [
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: clock broken"},
            {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
        ]

    def test_images_in_tool_results_move_to_the_user_message(self) -> None:
        """Chat tool messages are text only, so a result's image follows in a user message."""
        image = {"type": "image", "source": {"type": "url", "url": "https://x.test/s.png"}}
        result = {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": [{"type": "text", "text": "screenshot"}, image],
        }
        messages = self.MESSAGES[:2] + [{"role": "user", "content": [result]}]
        assert _chat(messages=messages)["messages"][2:] == [
            {"role": "tool", "tool_call_id": "toolu_1", "content": "screenshot"},
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://x.test/s.png"}}],
            },
        ]


class TestOptions:
    """Tools, tool_choice, sampling, thinking and streaming options."""

    TOOLS = [
        {
            "name": "get_weather",
            "description": "Weather now.",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
        }
    ]

    def test_tools_become_function_tools(self) -> None:
        """name, description and input_schema map to a function tool."""
        assert _chat(tools=self.TOOLS)["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather now.",
                    "parameters": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}},
                    },
                },
            },
        ]

    @pytest.mark.parametrize(
        ("choice", "expected"),
        [
            ({"type": "auto"}, "auto"),
            ({"type": "any"}, "required"),
            ({"type": "none"}, "none"),
            (
                {"type": "tool", "name": "get_weather"},
                {"type": "function", "function": {"name": "get_weather"}},
            ),
        ],
    )
    def test_tool_choice_maps(self, choice: dict[str, Any], expected: Any) -> None:
        """auto/any/none/tool become auto/required/none/a named function."""
        assert _chat(tools=self.TOOLS, tool_choice=choice)["tool_choice"] == expected

    def test_disable_parallel_tool_use_turns_parallel_calls_off(self) -> None:
        """disable_parallel_tool_use -> parallel_tool_calls false."""
        choice = {"type": "auto", "disable_parallel_tool_use": True}
        assert _chat(tools=self.TOOLS, tool_choice=choice)["parallel_tool_calls"] is False

    def test_sampling_stop_and_user_map(self) -> None:
        """stop_sequences, temperature, top_p and metadata.user_id map; top_k is dropped."""
        chat = _chat(
            stop_sequences=["END"], temperature=0.2, top_p=0.9, top_k=5, metadata={"user_id": "u-1"}
        )
        assert (chat["stop"], chat["temperature"], chat["top_p"], chat["user"]) == (
            ["END"],
            0.2,
            0.9,
            "u-1",
        )
        assert "top_k" not in chat

    @pytest.mark.parametrize(
        ("budget", "effort"), [(1024, "low"), (8000, "medium"), (32000, "high")]
    )
    def test_thinking_budget_picks_reasoning_effort(self, budget: int, effort: str) -> None:
        """The thinking budget maps to the nearest reasoning_effort."""
        chat = _chat(thinking={"type": "enabled", "budget_tokens": budget})
        assert chat["reasoning_effort"] == effort

    def test_stream_asks_for_usage(self) -> None:
        """A streamed request streams upstream with usage included."""
        prepared = OVER_OPENAI.encode_request(_call(stream=True), TARGET)
        body = json.loads(prepared.body or b"")
        assert prepared.stream and body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}

    def test_gemini_inner_codec_gets_the_translation(self) -> None:
        """Any chat codec serves Messages: Gemini receives system, user text and the cap."""
        target = Target("gemini", "https://g.test", "k", "gemini-2.5-flash", {})
        prepared = MessagesOverChat(GeminiProvider()).encode_request(
            _call(system="Be brief."), target
        )
        body = json.loads(prepared.body or b"")
        assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
        assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
        assert body["generationConfig"]["maxOutputTokens"] == 1024


class TestBadInput:
    """Malformed or unsupported requests are 400s that name the parameter."""

    def test_unsupported_block_names_it(self) -> None:
        """A document block is refused, naming where it is."""
        doc = {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "x"},
        }
        error = _bad(messages=[{"role": "user", "content": [doc]}])
        assert error.status == 400 and error.param == "messages[0].content[0].type"

    def test_missing_max_tokens(self) -> None:
        """max_tokens is required, as on Anthropic's API."""
        prepared = _call()
        body = dict(prepared.body)
        del body["max_tokens"]
        with pytest.raises(InvalidRequest) as info:
            OVER_OPENAI.encode_request(
                Call(Endpoint.MESSAGES, "m", body, False, False, "r"), TARGET
            )
        assert info.value.param == "max_tokens"

    def test_wrong_type_names_the_field(self) -> None:
        """A wrongly typed field is named by its path."""
        assert _bad(temperature="hot").param == "temperature"

    def test_bad_role(self) -> None:
        """Only user and assistant turns exist in the Messages API."""
        assert _bad(messages=[{"role": "system", "content": "x"}]).param == "messages[0].role"

    def test_server_tool_refused(self) -> None:
        """Server tools cannot run on other providers."""
        error = _bad(tools=[{"type": "web_search_20250305", "name": "web_search"}])
        assert error.param == "tools[0].type"

    def test_file_image_source_refused(self) -> None:
        """Image sources other than base64 and url are refused."""
        image = {"type": "image", "source": {"type": "file", "file_id": "f1"}}
        error = _bad(messages=[{"role": "user", "content": [image]}])
        assert error.param == "messages[0].content[0].source"

    def test_named_tool_choice_needs_a_name(self) -> None:
        """tool_choice type tool without a name is refused."""
        assert _bad(tools=TestOptions.TOOLS, tool_choice={"type": "tool"}).param == (
            "tool_choice.name"
        )
