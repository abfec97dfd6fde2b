"""The Gemini codec's request side: OpenAI chat/embeddings requests -> Gemini bodies and URLs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmux.errors import InvalidRequest
from llmux.intake import parse_call
from llmux.providers.base import Target
from llmux.providers.gemini import GeminiProvider
from llmux.providers.gemini.request import clean_schema
from llmux.types import Endpoint, PreparedRequest

CODEC = GeminiProvider()
TARGET = Target(
    provider="gem",
    base_url="https://generativelanguage.googleapis.com",
    api_key="AIza-upstream-secret",
    upstream_model="gemini-2.0-flash",
    headers={},
)
HI = [{"role": "user", "content": "Hi"}]


def _prepare(body: dict[str, Any], target: Target = TARGET) -> PreparedRequest:
    endpoint = Endpoint.EMBEDDINGS if "input" in body else Endpoint.CHAT
    call = parse_call(endpoint, json.dumps({"model": "gem", **body}).encode(), "req-1")
    return CODEC.encode_request(call, target)


def _sent(body: dict[str, Any], target: Target = TARGET) -> Any:
    prepared = _prepare(body, target)
    assert prepared.body is not None
    return json.loads(prepared.body)


def _config(body: dict[str, Any], target: Target = TARGET) -> Any:
    return _sent({"messages": HI, **body}, target)["generationConfig"]


def _refused(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        _prepare(body)
    return info.value


class TestUrlAndHeaders:
    """Where the request goes and how it authenticates."""

    def test_chat_url(self) -> None:
        """A non-streaming chat calls models/{upstream_model}:generateContent under v1beta."""
        prepared = _prepare({"messages": HI})
        assert prepared.url == (
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash"
            ":generateContent"
        )
        assert not prepared.stream

    def test_stream_url(self) -> None:
        """A streaming chat calls :streamGenerateContent with alt=sse and accepts SSE."""
        prepared = _prepare({"messages": HI, "stream": True})
        assert prepared.url.endswith("/models/gemini-2.0-flash:streamGenerateContent?alt=sse")
        assert prepared.stream
        assert prepared.headers["Accept"] == "text/event-stream"

    def test_embeddings_url(self) -> None:
        """Embeddings call :batchEmbedContents."""
        prepared = _prepare({"input": "hello"})
        assert prepared.url.endswith("/v1beta/models/gemini-2.0-flash:batchEmbedContents")

    def test_api_key_header(self) -> None:
        """The key goes in x-goog-api-key, never in the URL or an Authorization header."""
        prepared = _prepare({"messages": HI})
        assert prepared.headers["x-goog-api-key"] == "AIza-upstream-secret"
        assert "Authorization" not in prepared.headers
        assert "AIza" not in prepared.url

    def test_models_prefix_is_not_doubled(self) -> None:
        """An upstream model configured as `models/x` is not sent as `models/models/x`."""
        target = Target("gem", "https://g.example", None, "models/gemini-pro", {})
        assert _prepare({"messages": HI}, target).url.endswith(
            "/v1beta/models/gemini-pro:generateContent"
        )


class TestMessages:
    """Roles, system instructions, parts and turn merging."""

    def test_user_text(self) -> None:
        """A user string becomes one user content with a text part; nothing else is sent."""
        assert _sent({"messages": HI}) == {
            "contents": [{"role": "user", "parts": [{"text": "Hi"}]}]
        }

    def test_system_and_developer_become_system_instruction(self) -> None:
        """System and developer messages become systemInstruction text parts, in order."""
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            *HI,
        ]
        sent = _sent({"messages": messages})
        assert sent["systemInstruction"] == {
            "parts": [{"text": "Be brief."}, {"text": "Use French."}]
        }
        assert sent["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]

    def test_assistant_becomes_model(self) -> None:
        """Assistant messages take Gemini's `model` role."""
        messages = [
            *HI,
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Bye"},
        ]
        roles = [content["role"] for content in _sent({"messages": messages})["contents"]]
        assert roles == ["user", "model", "user"]

    def test_consecutive_same_role_merged(self) -> None:
        """Two user messages in a row become one user turn with two parts."""
        messages = [*HI, {"role": "user", "content": "There"}]
        assert _sent({"messages": messages})["contents"] == [
            {"role": "user", "parts": [{"text": "Hi"}, {"text": "There"}]}
        ]

    def test_data_url_image_becomes_inline_data(self) -> None:
        """A base64 data URL becomes inlineData with its MIME type and data."""
        part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        messages = [{"role": "user", "content": [{"type": "text", "text": "What?"}, part]}]
        parts = _sent({"messages": messages})["contents"][0]["parts"]
        assert parts == [
            {"text": "What?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        ]

    def test_http_image_becomes_file_data(self) -> None:
        """An http(s) image URL becomes fileData with a MIME type guessed from its path."""
        part = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png?x=1"}}
        parts = _sent({"messages": [{"role": "user", "content": [part]}]})["contents"][0]["parts"]
        assert parts == [
            {"fileData": {"fileUri": "https://example.com/cat.png?x=1", "mimeType": "image/png"}}
        ]

    def test_http_image_without_extension_defaults_to_jpeg(self) -> None:
        """An image URL with no recognisable extension is sent as image/jpeg."""
        part = {"type": "image_url", "image_url": {"url": "https://example.com/img/42"}}
        parts = _sent({"messages": [{"role": "user", "content": [part]}]})["contents"][0]["parts"]
        assert parts[0]["fileData"]["mimeType"] == "image/jpeg"

    def test_bad_data_url_is_400(self) -> None:
        """A data URL that is not base64 is refused, naming the field."""
        part = {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}
        error = _refused({"messages": [{"role": "user", "content": [part]}]})
        assert error.param == "messages[0].content[0].image_url.url"

    def test_other_image_scheme_is_400(self) -> None:
        """An ftp image URL is refused, naming the field."""
        part = {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}
        error = _refused({"messages": [{"role": "user", "content": [part]}]})
        assert error.param == "messages[0].content[0].image_url.url"

    def test_no_user_turn_is_400(self) -> None:
        """Only a system message leaves no contents: a 400 naming `messages`."""
        assert _refused({"messages": [{"role": "system", "content": "x"}]}).param == "messages"

    def test_unknown_role_is_400(self) -> None:
        """A role Gemini cannot take is refused, naming the message's role."""
        error = _refused({"messages": [{"role": "function", "content": "x", "name": "f"}]})
        assert error.param == "messages[0].role"


TOOL_TURNS = [
    {"role": "user", "content": "Weather in Paris and Tokyo?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0_abc",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
            },
            {
                "id": "call_1_def",
                "type": "function",
                "function": {"name": "get_time", "arguments": ""},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_0_abc", "content": '{"temp_c": 18}'},
    {"role": "tool", "tool_call_id": "call_1_def", "content": "noon"},
]


class TestToolRoundTrip:
    """Assistant tool calls and tool results."""

    def test_tool_calls_become_function_call_parts(self) -> None:
        """Each assistant tool call becomes a functionCall part with its parsed arguments."""
        contents = _sent({"messages": TOOL_TURNS})["contents"]
        assert contents[1] == {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        }

    def test_tool_results_become_function_responses_in_one_turn(self) -> None:
        """Tool messages become functionResponse parts of one user turn, names recovered by id."""
        contents = _sent({"messages": TOOL_TURNS})["contents"]
        assert contents[2] == {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
            ],
        }

    def test_thought_signature_is_sent_back(self) -> None:
        """A tool call's extra_content.google.thought_signature returns as thoughtSignature."""
        turns = json.loads(json.dumps(TOOL_TURNS[:2]))
        turns[1]["tool_calls"][0]["extra_content"] = {"google": {"thought_signature": "c2ln"}}
        part = _sent({"messages": turns})["contents"][1]["parts"][0]
        assert part["thoughtSignature"] == "c2ln"

    def test_unknown_tool_call_id_is_400(self) -> None:
        """A tool result for no earlier tool call is refused, naming its tool_call_id."""
        messages = [*HI, {"role": "tool", "tool_call_id": "call_x", "content": "1"}]
        assert _refused({"messages": messages}).param == "messages[1].tool_call_id"

    def test_non_object_arguments_are_400(self) -> None:
        """Tool call arguments that are not a JSON object are refused, naming the field."""
        turns = json.loads(json.dumps(TOOL_TURNS[:2]))
        turns[1]["tool_calls"][0]["function"]["arguments"] = "[1]"
        error = _refused({"messages": turns})
        assert error.param == "messages[1].tool_calls[0].function.arguments"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": ["string", "null"], "enum": ["c", "f", None]},
                "additionalProperties": {"type": "boolean"},
            },
            "required": ["location"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


class TestTools:
    """Function declarations and tool_choice."""

    def test_function_declarations(self) -> None:
        """Function tools become one tools entry with cleaned parameter schemas."""
        sent = _sent({"messages": HI, "tools": [WEATHER]})
        assert sent["tools"] == [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Get the weather",
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "location": {"type": "string"},
                                "unit": {
                                    "type": "string",
                                    "nullable": True,
                                    "enum": ["c", "f", None],
                                },
                                "additionalProperties": {"type": "boolean"},
                            },
                            "required": ["location"],
                        },
                    }
                ]
            }
        ]

    def test_clean_schema_recurses_into_items_and_any_of(self) -> None:
        """Rejected keys are stripped at every depth, but property names are kept."""
        schema = {
            "type": "array",
            "items": {"anyOf": [{"type": "object", "additionalProperties": True}]},
            "$id": "x",
        }
        assert clean_schema(schema) == {"type": "array", "items": {"anyOf": [{"type": "object"}]}}

    @pytest.mark.parametrize(
        ("choice", "config"),
        [
            ("auto", {"mode": "AUTO"}),
            ("none", {"mode": "NONE"}),
            ("required", {"mode": "ANY"}),
            (
                {"type": "function", "function": {"name": "get_weather"}},
                {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
            ),
        ],
    )
    def test_tool_choice(self, choice: Any, config: dict[str, Any]) -> None:
        """tool_choice maps to functionCallingConfig mode (and allowed names)."""
        sent = _sent({"messages": HI, "tools": [WEATHER], "tool_choice": choice})
        assert sent["toolConfig"] == {"functionCallingConfig": config}

    def test_unknown_tool_choice_is_400(self) -> None:
        """An unknown tool_choice string is refused, naming tool_choice."""
        assert _refused({"messages": HI, "tool_choice": "sometimes"}).param == "tool_choice"

    def test_non_function_tool_is_400(self) -> None:
        """A tool of another type is refused, naming its type."""
        tool = {**WEATHER, "type": "custom"}
        assert _refused({"messages": HI, "tools": [tool]}).param == "tools[0].type"


class TestGenerationConfig:
    """Sampling, limits, JSON modes and thinking."""

    def test_sampling_and_stops(self) -> None:
        """temperature, top_p, stop, n, seed and penalties map to generationConfig."""
        config = _config(
            {
                "temperature": 0.2,
                "top_p": 0.9,
                "stop": "END",
                "n": 1,
                "seed": 7,
                "presence_penalty": 0.5,
                "frequency_penalty": 0.25,
            }
        )
        assert config == {
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["END"],
            "candidateCount": 1,
            "seed": 7,
            "presencePenalty": 0.5,
            "frequencyPenalty": 0.25,
        }

    def test_max_completion_tokens_preferred(self) -> None:
        """max_completion_tokens becomes maxOutputTokens, over the legacy max_tokens."""
        assert _config({"max_completion_tokens": 50, "max_tokens": 9}) == {"maxOutputTokens": 50}

    def test_legacy_max_tokens(self) -> None:
        """max_tokens alone becomes maxOutputTokens."""
        assert _config({"max_tokens": 9}) == {"maxOutputTokens": 9}

    def test_deployment_default_output_cap(self) -> None:
        """Without a client limit the deployment's max_output_tokens is sent."""
        target = Target(
            "gem", "https://g.example", None, "gemini-2.0-flash", {}, max_output_tokens=64
        )
        assert _config({}, target) == {"maxOutputTokens": 64}

    def test_n_above_one_is_400(self) -> None:
        """n > 1 is refused, naming n (one choice is returned)."""
        assert _refused({"messages": HI, "n": 2}).param == "n"

    def test_json_object(self) -> None:
        """json_object asks for application/json."""
        config = _config({"response_format": {"type": "json_object"}})
        assert config == {"responseMimeType": "application/json"}

    def test_json_schema(self) -> None:
        """json_schema also sends the schema verbatim as responseJsonSchema."""
        schema = {
            "type": "object",
            "properties": {"a": {"type": "integer"}},
            "additionalProperties": False,
        }
        response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        config = _config({"response_format": response_format})
        assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}

    def test_text_format_sends_nothing(self) -> None:
        """response_format text adds no generationConfig."""
        assert "generationConfig" not in _sent(
            {"messages": HI, "response_format": {"type": "text"}}
        )

    def test_thinking_with_budget(self) -> None:
        """reasoning_effort with a configured budget sends thinkingConfig with thoughts included."""
        target = Target(
            "gem", "https://g.example", None, "gemini-2.5-flash", {}, thinking_budget=2048
        )
        config = _config({"reasoning_effort": "high"}, target)
        assert config == {"thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True}}

    def test_thinking_without_budget_is_not_sent(self) -> None:
        """reasoning_effort without a configured budget sends no thinkingConfig."""
        assert "generationConfig" not in _sent({"messages": HI, "reasoning_effort": "high"})


class TestEmbeddingsRequest:
    """OpenAI embeddings -> batchEmbedContents."""

    def test_string_list(self) -> None:
        """Each input string becomes one request naming models/<upstream_model>."""
        sent = _sent({"input": ["a", "b"], "dimensions": 256})
        assert sent == {
            "requests": [
                {
                    "model": "models/gemini-2.0-flash",
                    "content": {"parts": [{"text": t}]},
                    "outputDimensionality": 256,
                }
                for t in ("a", "b")
            ]
        }

    def test_single_string(self) -> None:
        """A single string is one request without outputDimensionality."""
        sent = _sent({"input": "a"})
        assert sent == {
            "requests": [
                {"model": "models/gemini-2.0-flash", "content": {"parts": [{"text": "a"}]}}
            ]
        }

    def test_token_arrays_are_400(self) -> None:
        """Token-id input is refused, naming input."""
        assert _refused({"input": [1, 2, 3]}).param == "input"
