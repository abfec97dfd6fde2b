"""Responses requests translated to chat: what each inner codec is asked to send upstream."""

from __future__ import annotations

from typing import Any

import pytest

from llmux.errors import InvalidRequest
from tests.frontdoor.responses_support import (
    ANTHROPIC,
    GEMINI,
    OPENAI,
    TARGET,
    chat_body,
    responses_call,
    upstream_body,
)

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}


def _user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


class TestMessages:
    """Input strings, message items and instructions become chat messages."""

    def test_string_input_is_one_user_message(self) -> None:
        """A string `input` is the only message, sent to the deployment's upstream model."""
        body = chat_body(responses_call(input="Hello"))
        assert body["model"] == "upstream-model"
        assert body["messages"] == [{"role": "user", "content": "Hello"}]

    def test_instructions_come_first_as_system(self) -> None:
        """`instructions` lead the conversation as a system message."""
        body = chat_body(responses_call(instructions="Be brief", input="Hi"))
        assert body["messages"][0] == {"role": "system", "content": "Be brief"}

    def test_developer_and_system_items_become_system(self) -> None:
        """Both system-side roles map to chat `system` with their text joined."""
        items = [
            {"type": "message", "role": "developer", "content": "Rule one"},
            {"role": "system", "content": [{"type": "input_text", "text": "Rule two"}]},
            {"role": "user", "content": "Hi"},
        ]
        body = chat_body(responses_call(input=items))
        assert [m["role"] for m in body["messages"]] == ["system", "system", "user"]
        assert body["messages"][1]["content"] == "Rule two"

    def test_user_text_and_image_parts(self) -> None:
        """input_text and input_image (URL, with detail) become chat text and image_url parts."""
        image = {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"}
        body = chat_body(
            responses_call(input=[_user({"type": "input_text", "text": "What?"}, image)])
        )
        assert body["messages"][0]["content"] == [
            {"type": "text", "text": "What?"},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}},
        ]

    def test_assistant_output_text_joins_into_content(self) -> None:
        """An earlier assistant message's output_text parts become its chat content."""
        items = [
            {"role": "user", "content": "Hi"},
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Hello", "annotations": []}],
            },
            {"role": "user", "content": "Again"},
        ]
        body = chat_body(responses_call(input=items))
        assert body["messages"][1] == {"role": "assistant", "content": "Hello"}

    def test_images_reach_anthropic(self) -> None:
        """A data: URL image travels through to the Anthropic codec as a base64 block."""
        image = {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
        body = upstream_body(ANTHROPIC, responses_call(input=[_user(image)]))
        block = body["messages"][0]["content"][0]
        assert block["type"] == "image"
        assert block["source"]["media_type"] == "image/png"


class TestTools:
    """Flat Responses tools, tool_choice and the function-call round trip."""

    def test_function_tools_are_nested_for_chat(self) -> None:
        """A flat function tool becomes chat's `{type, function: {...}}` with every field."""
        body = chat_body(responses_call(tools=[WEATHER_TOOL]))
        assert body["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": WEATHER_TOOL["parameters"],
                    "strict": True,
                },
            }
        ]

    def test_named_tool_choice_and_parallel_flag(self) -> None:
        """`{type: function, name}` becomes chat's nested choice; parallel_tool_calls passes."""
        call = responses_call(
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "name": "get_weather"},
            parallel_tool_calls=False,
        )
        body = chat_body(call)
        assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assert body["parallel_tool_calls"] is False

    def test_tool_settings_without_tools_are_not_sent(self) -> None:
        """tool_choice and parallel_tool_calls are left out without tools (chat rejects them)."""
        body = chat_body(responses_call(tool_choice="auto", parallel_tool_calls=True))
        assert "tool_choice" not in body
        assert "parallel_tool_calls" not in body

    def test_function_call_round_trip_for_chat(self) -> None:
        """function_call + function_call_output items become tool_calls and a tool message."""
        items = [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_9",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
                "status": "completed",
            },
            {"type": "function_call_output", "call_id": "call_9", "output": '{"temp":21}'},
        ]
        body = chat_body(responses_call(input=items, tools=[WEATHER_TOOL]))
        assert body["messages"][1:] == [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_9", "content": '{"temp":21}'},
        ]

    def test_function_call_round_trip_for_anthropic(self) -> None:
        """The same items reach Anthropic as a tool_use block and a tool_result block."""
        items = [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": "toolu_1",
                "name": "get_weather",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "toolu_1", "output": "sunny"},
        ]
        messages = upstream_body(ANTHROPIC, responses_call(input=items, tools=[WEATHER_TOOL]))[
            "messages"
        ]
        assert messages[1]["content"][0]["type"] == "tool_use"
        assert messages[1]["content"][0]["id"] == "toolu_1"
        assert messages[2]["content"][0]["type"] == "tool_result"
        assert messages[2]["content"][0]["tool_use_id"] == "toolu_1"

    def test_function_call_round_trip_for_gemini(self) -> None:
        """The same items reach Gemini as functionCall and functionResponse parts."""
        items = [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": '{"temp":21}'},
        ]
        contents = upstream_body(GEMINI, responses_call(input=items, tools=[WEATHER_TOOL]))[
            "contents"
        ]
        assert contents[1]["parts"][0]["functionCall"]["name"] == "get_weather"
        assert contents[2]["parts"][0]["functionResponse"]["response"] == {"temp": 21}

    def test_assistant_text_and_calls_share_one_turn(self) -> None:
        """Reasoning, an assistant message and its calls, in a row, are one chat message."""
        items = [
            {"role": "user", "content": "Hi"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "T"}]},
            {"role": "assistant", "content": "Let me look."},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": "{}"},
        ]
        turn = chat_body(responses_call(input=items, tools=[WEATHER_TOOL]))["messages"][1]
        assert turn["content"] == "Let me look."
        assert turn["reasoning_content"] == "T"
        assert [call["id"] for call in turn["tool_calls"]] == ["c1", "c2"]

    def test_lone_reasoning_is_dropped(self) -> None:
        """Reasoning with no answer or call to attach to has no chat form and is left out."""
        items = [
            {"role": "user", "content": "Hi"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "user", "content": "Again"},
        ]
        messages = chat_body(responses_call(input=items))["messages"]
        assert [m["role"] for m in messages] == ["user", "user"]

    def test_tool_output_parts_join(self) -> None:
        """A function_call_output given as input_text parts is sent as their joined text."""
        parts = [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]
        items = [
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": parts},
        ]
        messages = chat_body(responses_call(input=items, tools=[WEATHER_TOOL]))["messages"]
        assert messages[-1] == {"role": "tool", "tool_call_id": "c1", "content": "ab"}

    def test_assistant_refusal_is_kept(self) -> None:
        """An earlier assistant refusal stays a refusal part next to its text."""
        content = [
            {"type": "output_text", "text": "Well,"},
            {"type": "refusal", "refusal": "no."},
        ]
        items = [{"role": "assistant", "content": content}, {"role": "user", "content": "Why?"}]
        assistant = chat_body(responses_call(input=items))["messages"][0]
        assert assistant["content"] == [
            {"type": "text", "text": "Well,"},
            {"type": "refusal", "refusal": "no."},
        ]


class TestParameters:
    """Sampling, limits, output format and reasoning settings."""

    def test_sampling_and_limits(self) -> None:
        """max_output_tokens -> max_completion_tokens; temperature, top_p and user pass."""
        call = responses_call(max_output_tokens=50, temperature=0.2, top_p=0.9, user="u1")
        body = chat_body(call)
        assert (body["max_completion_tokens"], body["temperature"], body["top_p"]) == (50, 0.2, 0.9)
        assert body["user"] == "u1"

    def test_echo_only_fields_are_not_sent(self) -> None:
        """metadata, store and truncation stay in the gateway (chat metadata needs store)."""
        call = responses_call(metadata={"k": "v"}, store=False, truncation="disabled")
        body = chat_body(call)
        assert not {"metadata", "store", "truncation"} & body.keys()

    def test_json_schema_format(self) -> None:
        """text.format json_schema (flat) becomes response_format.json_schema (nested)."""
        schema = {"type": "object", "properties": {"a": {"type": "string"}}}
        text = {"format": {"type": "json_schema", "name": "A", "schema": schema, "strict": True}}
        body = chat_body(responses_call(text=text))
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "A", "schema": schema, "strict": True},
        }

    def test_json_object_format(self) -> None:
        """text.format json_object becomes response_format json_object."""
        body = chat_body(responses_call(text={"format": {"type": "json_object"}}))
        assert body["response_format"] == {"type": "json_object"}

    def test_text_format_sends_nothing(self) -> None:
        """The default text format needs no response_format."""
        body = chat_body(responses_call(text={"format": {"type": "text"}}))
        assert "response_format" not in body

    def test_reasoning_effort(self) -> None:
        """reasoning.effort becomes reasoning_effort."""
        body = chat_body(responses_call(reasoning={"effort": "high", "summary": "auto"}))
        assert body["reasoning_effort"] == "high"

    def test_stream_asks_for_usage(self) -> None:
        """A streamed call streams the chat request too, with the usage chunk requested."""
        call = responses_call(stream=True)
        body = chat_body(call)
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
        assert OPENAI.encode_request(call, TARGET).stream is True


class TestRefusals:
    """Untranslatable or malformed input is a 400 that names the field."""

    @pytest.mark.parametrize(
        ("fields", "param"),
        [
            ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
            ({"tools": [{"type": "function"}]}, "tools[0]"),
            ({"tool_choice": {"type": "file_search"}}, "tool_choice.type"),
            ({"tools": [WEATHER_TOOL], "tool_choice": "sometimes"}, "tool_choice"),
            (
                {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "name": "x"}},
                "tool_choice.name",
            ),
            ({"tool_choice": "required"}, "tool_choice"),
            (
                {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
                "input[0].content[0].file_id",
            ),
            (
                {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
                "input[0].content[0]",
            ),
            (
                {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
                "input[0].content[0].type",
            ),
            ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
            ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
            ({"input": [{"type": "function_call", "name": "f"}]}, "input[0]"),
            ({"input": None}, "input"),
            (
                {
                    "input": [
                        {
                            "role": "assistant",
                            "content": [{"type": "input_image", "image_url": "u"}],
                        }
                    ]
                },
                "input[0].content[0]",
            ),
            (
                {
                    "input": [
                        {"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}
                    ]
                },
                "input[0].content[0]",
            ),
            (
                {
                    "input": [
                        {
                            "type": "function_call_output",
                            "call_id": "c",
                            "output": [{"type": "input_file"}],
                        }
                    ]
                },
                "input[0].output[0]",
            ),
            ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
            ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
            ({"temperature": "hot"}, "temperature"),
            ({"background": True}, "background"),
            ({"top_logprobs": 3}, "top_logprobs"),
            ({"conversation": "conv_1"}, "conversation"),
            ({"frobnicate": 1}, "frobnicate"),
        ],
    )
    def test_bad_input_names_its_param(self, fields: dict[str, Any], param: str) -> None:
        """Each unsupported or malformed field is an InvalidRequest (400) with its `param`."""
        with pytest.raises(InvalidRequest) as caught:
            chat_body(responses_call(**fields))
        assert caught.value.http_status == 400
        assert caught.value.param == param

    def test_tolerated_fields_pass(self) -> None:
        """Fields the SDK sends that need no translation are accepted."""
        call = responses_call(
            include=["reasoning.encrypted_content"],
            store=True,
            service_tier="auto",
            prompt_cache_key="k",
            safety_identifier="s",
            conversation=None,
            background=False,
        )
        assert chat_body(call)["messages"] == [{"role": "user", "content": "Hi"}]
