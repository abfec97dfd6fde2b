"""Messages front door answers: a provider's chat completion -> an Anthropic Message."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anthropic.types
import pytest

from llmux.errors import UpstreamProtocolError
from llmux.frontdoor.messages import MessagesOverChat
from llmux.providers.base import Call, Provider, Target
from llmux.providers.gemini import GeminiProvider
from llmux.providers.openai import OpenAIProvider
from llmux.types import Endpoint
from llmux.wire.openai import decode_body

FIXTURES = Path(__file__).parent.parent / "fixtures"
CALL = Call(
    Endpoint.MESSAGES,
    "claude-sonnet-4-5",
    decode_body(b'{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[]}'),
    False,
    False,
    "req1",
)


def _message(inner: Provider, body: bytes) -> dict[str, Any]:
    """Decode through the front door and check the result against the SDK's Message type."""
    out, _ = MessagesOverChat(inner).decode_response(CALL, body)
    message: dict[str, Any] = json.loads(out)
    anthropic.types.Message.model_validate(message)
    return message


def _openai(message: dict[str, Any], finish: str = "stop", **usage: Any) -> dict[str, Any]:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, **usage},
    }
    return _message(OpenAIProvider(), json.dumps(body).encode())


class TestOpenAI:
    """Chat completions from the OpenAI codec."""

    def test_text_message(self) -> None:
        """A recorded completion becomes a text message with the client's model and usage."""
        message = _message(OpenAIProvider(), (FIXTURES / "openai" / "chat.json").read_bytes())
        assert message == {
            "id": "msg_req1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "Hello! How can I assist you today?"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 19,
                "output_tokens": 10,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }

    def test_tool_calls_become_tool_use_blocks(self) -> None:
        """Tool calls become tool_use blocks with parsed input and stop_reason tool_use."""
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
        }
        message = _openai(
            {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
        )
        assert message["content"] == [
            {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {"location": "Paris"},
            },
        ]
        assert message["stop_reason"] == "tool_use"

    @pytest.mark.parametrize("arguments", ["", "{not json", "[1, 2]"])
    def test_unusable_arguments_become_empty_input(self, arguments: str) -> None:
        """Empty, invalid or non-object arguments give input {} instead of failing."""
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
        message = _openai({"role": "assistant", "tool_calls": [call]}, "tool_calls")
        assert message["content"][0]["input"] == {}

    @pytest.mark.parametrize(
        ("finish", "reason"),
        [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")],
    )
    def test_finish_reasons_map(self, finish: str, reason: str) -> None:
        """stop/length/content_filter -> end_turn/max_tokens/refusal."""
        message = _openai({"role": "assistant", "content": "x"}, finish)
        assert message["stop_reason"] == reason

    def test_refusal_is_text_with_stop_reason_refusal(self) -> None:
        """An OpenAI refusal becomes the text of a refusal answer."""
        message = _openai({"role": "assistant", "content": None, "refusal": "I can't."})
        assert message["content"] == [{"type": "text", "text": "I can't."}]
        assert message["stop_reason"] == "refusal"

    def test_cached_tokens_are_not_input_tokens(self) -> None:
        """Cache reads are reported apart, as Anthropic counts them."""
        message = _openai(
            {"role": "assistant", "content": "x"}, prompt_tokens_details={"cached_tokens": 8}
        )
        assert message["usage"]["input_tokens"] == 2
        assert message["usage"]["cache_read_input_tokens"] == 8

    def test_reasoning_content_becomes_thinking(self) -> None:
        """reasoning_content comes first, as a thinking block with an empty signature."""
        message = _openai({"role": "assistant", "content": "4", "reasoning_content": "2+2"})
        assert message["content"] == [
            {"type": "thinking", "thinking": "2+2", "signature": ""},
            {"type": "text", "text": "4"},
        ]

    def test_garbage_is_a_protocol_error(self) -> None:
        """A body that is not a completion is a 502, not a crash."""
        with pytest.raises(UpstreamProtocolError):
            MessagesOverChat(OpenAIProvider()).decode_response(CALL, b'{"choices":[]}')


class TestGemini:
    """Answers from the Gemini codec."""

    def test_function_calls_become_tool_use(self) -> None:
        """Gemini's STOP with function calls is a tool_use turn with both calls."""
        body = (FIXTURES / "gemini" / "generate_tools.json").read_bytes()
        message = _message(GeminiProvider(), body)
        tools = [block for block in message["content"] if block["type"] == "tool_use"]
        assert [t["input"] for t in tools] == [{"location": "Paris"}, {"location": "Tokyo"}]
        assert message["stop_reason"] == "tool_use"

    def test_thoughts_and_cache_reads(self) -> None:
        """Thought parts become thinking; cached prompt tokens are cache reads."""
        body = (FIXTURES / "gemini" / "generate_thinking.json").read_bytes()
        message = _message(GeminiProvider(), body)
        assert [block["type"] for block in message["content"]] == ["thinking", "text"]
        assert message["usage"]["cache_read_input_tokens"] == 1024
        assert message["usage"]["input_tokens"] == 1250 - 1024


class TestThoughtSignatures:
    """Gemini thought signatures survive a round trip through an Anthropic client."""

    SIGNATURE = (
        "CiQBVKhc7mGJ3ZcX9Q0uKs0H2tq1d7VkYV1dOpm5QWhcQf1xqg4KZQFUqFzuY3TqQ7lVYGyHqv2Lgq3tYw=="
    )

    def _tool_uses(self) -> list[dict[str, Any]]:
        body = (FIXTURES / "gemini" / "generate_tools.json").read_bytes()
        blocks = _message(GeminiProvider(), body)["content"]
        return [block for block in blocks if block["type"] == "tool_use"]

    def test_ids_stay_in_anthropics_alphabet(self) -> None:
        """The signature rides in the tool_use id, which keeps to [a-zA-Z0-9_-]."""
        for block in self._tool_uses():
            assert re.fullmatch(r"[a-zA-Z0-9_-]+", block["id"])

    def test_signature_goes_back_to_gemini(self) -> None:
        """Echoing the tool_use blocks back sends Gemini its thoughtSignature again."""
        uses = self._tool_uses()
        results = [
            {"type": "tool_result", "tool_use_id": use["id"], "content": "sunny"} for use in uses
        ]
        body = {
            "model": "m",
            "max_tokens": 64,
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": uses},
                {"role": "user", "content": results},
            ],
        }
        call = Call(
            Endpoint.MESSAGES, "m", decode_body(json.dumps(body).encode()), False, False, "r"
        )
        target = Target("gemini", "https://g.test", "k", "gemini-3-pro", {})
        prepared = MessagesOverChat(GeminiProvider()).encode_request(call, target)
        model_turn = json.loads(prepared.body or b"")["contents"][1]
        assert model_turn["parts"][0]["thoughtSignature"] == self.SIGNATURE
        assert "thoughtSignature" not in model_turn["parts"][1]

    def test_non_base64_signature_leaves_the_id_alone(self) -> None:
        """A signature that cannot ride in an id is left out rather than corrupting the id."""
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "f", "arguments": "{}"},
            "extra_content": {"google": {"thought_signature": "not base64!"}},
        }
        message = _openai({"role": "assistant", "tool_calls": [call]}, "tool_calls")
        assert message["content"][0]["id"] == "call_1"
