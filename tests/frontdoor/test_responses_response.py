"""Non-streamed answers of every provider, as Response objects: spec- and SDK-valid."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses import Response

from llmux.errors import UpstreamProtocolError
from llmux.frontdoor.responses import ResponsesOverChat, response_id
from llmux.providers.base import Call
from llmux.types import Usage
from tests.frontdoor.responses_support import (
    ANTHROPIC,
    CREATED,
    GEMINI,
    OPENAI,
    fixture,
    responses_call,
)
from tests.helpers.spec import schema_error


def _decode(
    codec: ResponsesOverChat, name: str, call: Call | None = None
) -> tuple[dict[str, Any], Usage | None]:
    body, usage = codec.decode_response(call or responses_call(), fixture(name))
    decoded: dict[str, Any] = json.loads(body)
    return decoded, usage


CASES = [
    (OPENAI, "openai/chat.json"),
    (ANTHROPIC, "anthropic/chat.json"),
    (ANTHROPIC, "anthropic/chat_tools.json"),
    (ANTHROPIC, "anthropic/chat_thinking.json"),
    (ANTHROPIC, "anthropic/chat_cached.json"),
    (GEMINI, "gemini/generate.json"),
    (GEMINI, "gemini/generate_tools.json"),
    (GEMINI, "gemini/generate_thinking.json"),
    (GEMINI, "gemini/generate_max_tokens.json"),
    (GEMINI, "gemini/generate_blocked.json"),
]


@pytest.mark.parametrize(("codec", "name"), CASES)
def test_response_is_spec_valid(codec: ResponsesOverChat, name: str) -> None:
    """Every fixture becomes a Response that the OpenAPI `Response` schema accepts."""
    body, _ = _decode(codec, name)
    assert schema_error("Response", body) is None


@pytest.mark.parametrize(("codec", "name"), CASES)
def test_response_is_sdk_valid(codec: ResponsesOverChat, name: str) -> None:
    """The OpenAI SDK's Response model accepts it, and `output_text` reads the answer."""
    body, _ = _decode(codec, name)
    parsed = Response.model_validate(body)
    assert parsed.output_text == "".join(
        part["text"]
        for item in body["output"]
        if item["type"] == "message"
        for part in item["content"]
    )


def test_envelope() -> None:
    """id from the request id, client's model name, created_at from the call, status completed."""
    body, _ = _decode(ANTHROPIC, "anthropic/chat.json")
    assert body["id"] == response_id(responses_call()) == "resp_req1"
    assert (body["object"], body["model"], body["created_at"]) == (
        "response",
        "client-model",
        CREATED,
    )
    assert (body["status"], body["incomplete_details"], body["error"]) == ("completed", None, None)


def test_text_message_item() -> None:
    """The answer is one completed assistant message with an output_text part."""
    body, _ = _decode(ANTHROPIC, "anthropic/chat.json")
    assert body["output"] == [
        {
            "id": "msg_req1_0",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "text": "Hello! How can I help you today?",
                    "annotations": [],
                    "logprobs": [],
                }
            ],
        }
    ]


def test_function_call_items() -> None:
    """Tool calls follow the message as function_call items with call_id, name and arguments."""
    body, _ = _decode(ANTHROPIC, "anthropic/chat_tools.json")
    calls = [item for item in body["output"] if item["type"] == "function_call"]
    assert [item["id"] for item in body["output"]] == ["msg_req1_0", "fc_req1_1", "fc_req1_2"]
    assert calls[1] == {
        "id": "fc_req1_2",
        "type": "function_call",
        "status": "completed",
        "call_id": "toolu_01B8fd7e6c5b4a3928170abc",
        "name": "get_weather",
        "arguments": '{"location": "Paris, France"}',
    }


def test_calls_only_answer_has_no_message() -> None:
    """An answer made only of tool calls has no empty message item."""
    body, _ = _decode(GEMINI, "gemini/generate_tools.json")
    assert {item["type"] for item in body["output"]} == {"function_call"}


def test_reasoning_item() -> None:
    """Thinking comes first as a reasoning item with one summary_text part."""
    body, _ = _decode(ANTHROPIC, "anthropic/chat_thinking.json")
    assert body["output"][0] == {
        "id": "rs_req1_0",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "The user asks 27 * 453. 27 * 453 = 12231."}],
    }


def test_usage_details() -> None:
    """Usage carries cached, cache-write and reasoning tokens in the Responses naming."""
    body, usage = _decode(ANTHROPIC, "anthropic/chat_cached.json")
    assert usage is not None
    assert body["usage"] == {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 1800, "cache_write_tokens": 188},
        "output_tokens": 14,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + 14,
    }


def test_reasoning_tokens() -> None:
    """Thinking tokens are reported as reasoning tokens."""
    body, _ = _decode(ANTHROPIC, "anthropic/chat_thinking.json")
    assert body["usage"]["output_tokens_details"] == {"reasoning_tokens": 52}


def test_max_tokens_is_incomplete() -> None:
    """finish_reason length -> status incomplete for max_output_tokens; the message too."""
    body, _ = _decode(GEMINI, "gemini/generate_max_tokens.json")
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"


def test_content_filter_is_incomplete() -> None:
    """A blocked prompt -> status incomplete for content_filter, with an empty message."""
    body, _ = _decode(GEMINI, "gemini/generate_blocked.json")
    assert body["incomplete_details"] == {"reason": "content_filter"}
    assert body["output"][0]["content"][0]["text"] == ""


def test_defaults_are_echoed() -> None:
    """Parameters the client left out show their documented defaults."""
    body, _ = _decode(OPENAI, "openai/chat.json")
    expected: dict[str, Any] = {
        "instructions": None,
        "max_output_tokens": None,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "metadata": {},
    }
    assert {name: body[name] for name in expected} == expected
    assert "user" not in body


def test_request_parameters_are_echoed() -> None:
    """The client's own parameters come back as sent; tools in their normalised form."""
    fields: dict[str, Any] = {
        "instructions": "Be brief",
        "max_output_tokens": 99,
        "temperature": 0.5,
        "top_p": 0.8,
        "metadata": {"team": "a"},
        "store": False,
        "user": "u1",
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "json_object"}},
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
    }
    body, _ = _decode(OPENAI, "openai/chat.json", responses_call(**fields))
    assert {name: body[name] for name in fields if name != "tools"} == {
        name: value for name, value in fields.items() if name != "tools"
    }
    assert body["tools"] == [
        {
            "type": "function",
            "name": "f",
            "description": None,
            "parameters": {"type": "object"},
            "strict": None,
        }
    ]
    assert schema_error("Response", body) is None


def test_json_schema_answer_is_the_message_text() -> None:
    """With text.format json_schema, Anthropic's JSON answer is the output_text, parseable."""
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    text = {"format": {"type": "json_schema", "name": "person", "schema": schema}}
    call = responses_call(text=text)
    body, _ = _decode(ANTHROPIC, "anthropic/chat_json.json", call)
    answer = Response.model_validate(body).output_text
    assert isinstance(json.loads(answer), dict)
    assert body["text"] == text


def test_refusal_part() -> None:
    """A chat refusal becomes a refusal part of the message."""
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    completion = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    body, _ = OPENAI.decode_response(responses_call(), json.dumps(completion).encode())
    content = json.loads(body)["output"][0]["content"]
    assert content == [{"type": "refusal", "refusal": "I can't help with that."}]
    assert schema_error("Response", json.loads(body)) is None


@pytest.mark.parametrize("completion", [b'{"choices": []}', b'{"choices": 1}', b"[]"])
def test_unreadable_completion_is_a_protocol_error(completion: bytes) -> None:
    """A chat answer without a readable choice is an UpstreamProtocolError (502)."""
    with pytest.raises(UpstreamProtocolError):
        OPENAI.decode_response(responses_call(), completion)
