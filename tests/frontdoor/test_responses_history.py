"""previous_response_id support: stored history spliced into follow-ups, and input item ids."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from llmux.errors import InvalidRequest
from llmux.frontdoor.responses import expand_history, input_items
from llmux.intake import parse_call
from llmux.types import Endpoint, RawBody
from tests.frontdoor.responses_support import (
    ANTHROPIC,
    GEMINI,
    OPENAI,
    TARGET,
    chat_body,
    fixture,
    responses_call,
    run_stream,
    upstream_body,
)


def _raw(value: Any) -> msgspec.Raw:
    return msgspec.Raw(json.dumps(value).encode())


def _body(**fields: Any) -> RawBody:
    return {name: _raw(value) for name, value in fields.items()}


def _decoded(raws: list[msgspec.Raw]) -> list[dict[str, Any]]:
    return [json.loads(bytes(raw)) for raw in raws]


def _first_turn() -> tuple[list[msgspec.Raw], list[msgspec.Raw]]:
    """The stored input and output of a first turn that ended in two tool calls."""
    call = responses_call(input="Weather in SF and Paris?")
    body, _ = ANTHROPIC.decode_response(call, fixture("anthropic/chat_tools.json"))
    output = [_raw(item) for item in json.loads(body)["output"]]
    return input_items(call.body), output


class TestExpandHistory:
    """The stored conversation goes before the follow-up's own input."""

    def test_history_then_own_input(self) -> None:
        """previous input + previous output + this input, in that order."""
        previous_input, previous_output = (
            [_raw({"role": "user", "content": "A"})],
            [_raw({"type": "message", "role": "assistant", "content": "B"})],
        )
        body = _body(model="m", input="C", previous_response_id="resp_1")
        expanded = expand_history(body, previous_input, previous_output)
        assert json.loads(bytes(expanded["input"])) == [
            {"role": "user", "content": "A"},
            {"type": "message", "role": "assistant", "content": "B"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "C"}]},
        ]

    def test_previous_response_id_is_removed(self) -> None:
        """The expanded body no longer names the previous response."""
        body = _body(model="m", input="C", previous_response_id="resp_1")
        assert "previous_response_id" not in expand_history(body, [], [])

    def test_only_this_requests_instructions_count(self) -> None:
        """The follow-up's instructions are kept; earlier ones were never input items."""
        body = _body(model="m", input="C", instructions="New rules")
        expanded = expand_history(body, [_raw({"role": "user", "content": "A"})], [])
        assert json.loads(bytes(expanded["instructions"])) == "New rules"

    def test_missing_input_is_history_alone(self) -> None:
        """A follow-up with only previous_response_id replays the stored conversation."""
        history = [_raw({"role": "user", "content": "A"})]
        expanded = expand_history(_body(model="m", previous_response_id="resp_1"), history, [])
        assert json.loads(bytes(expanded["input"])) == [{"role": "user", "content": "A"}]

    def test_tool_loop_follow_up_translates(self) -> None:
        """Stored tool calls + the client's outputs become a valid chat tool loop."""
        previous_input, previous_output = _first_turn()
        outputs = [
            {
                "type": "function_call_output",
                "call_id": "toolu_01A09q90qw90lq917835lq9",
                "output": "18C",
            },
            {
                "type": "function_call_output",
                "call_id": "toolu_01B8fd7e6c5b4a3928170abc",
                "output": "21C",
            },
        ]
        body = _body(model="client-model", input=outputs, previous_response_id="resp_req1")
        expanded = expand_history(body, previous_input, previous_output)
        call = parse_call(Endpoint.RESPONSES, msgspec.json.encode(expanded), "req2", 1)
        messages = chat_body(call)["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
        assert messages[1]["content"] == "I'll check the weather in both cities."
        assert [c["id"] for c in messages[1]["tool_calls"]] == [
            "toolu_01A09q90qw90lq917835lq9",
            "toolu_01B8fd7e6c5b4a3928170abc",
        ]
        assert messages[3] == {
            "role": "tool",
            "tool_call_id": "toolu_01B8fd7e6c5b4a3928170abc",
            "content": "21C",
        }

    def test_stored_reasoning_rides_with_its_turn(self) -> None:
        """A stored reasoning item becomes the next assistant turn's reasoning_content."""
        call = responses_call(input="27 * 453?")
        body, _ = ANTHROPIC.decode_response(call, fixture("anthropic/chat_thinking.json"))
        output = [_raw(item) for item in json.loads(body)["output"]]
        expanded = expand_history(_body(model="m", input="Thanks"), input_items(call.body), output)
        follow_up = parse_call(Endpoint.RESPONSES, msgspec.json.encode(expanded), "req2", 1)
        assistant = chat_body(follow_up)["messages"][1]
        assert assistant["content"] == "27 * 453 = 12,231"
        assert assistant["reasoning_content"].startswith("The user asks")
        assert OPENAI.encode_request(follow_up, TARGET).body is not None


class TestInputItems:
    """This request's input as the item objects GET /input_items lists."""

    def test_string_input_is_one_user_message_item(self) -> None:
        """A string becomes one user message item with an input_text part and a msg_ id."""
        [item] = _decoded(input_items(_body(model="m", input="Hi")))
        assert item["id"].startswith("msg_")
        assert {name: item[name] for name in ("type", "role", "content")} == {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Hi"}],
        }

    def test_items_get_ids_by_type(self) -> None:
        """Items without an id get one with their type's prefix; a message gets its type."""
        items = [
            {"role": "user", "content": "Hi"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ]
        first, second = _decoded(input_items(_body(model="m", input=items)))
        assert (first["type"], first["id"][:4]) == ("message", "msg_")
        assert second["id"].startswith("fco_")

    def test_ids_are_unique(self) -> None:
        """Two identical items get different ids."""
        items = [{"role": "user", "content": "Hi"}] * 2
        first, second = _decoded(input_items(_body(model="m", input=items)))
        assert first["id"] != second["id"]

    def test_client_ids_are_kept(self) -> None:
        """An item that has an id and a type keeps its bytes."""
        raw = b'{"type":"message","id":"msg_mine","role":"user","content":"Hi"}'
        body: RawBody = {"model": _raw("m"), "input": msgspec.Raw(b"[" + raw + b"]")}
        assert input_items(body) == [msgspec.Raw(raw)]

    def test_no_input_means_no_items(self) -> None:
        """A follow-up without input of its own lists nothing."""
        assert input_items(_body(model="m", previous_response_id="resp_1")) == []

    @pytest.mark.parametrize(
        ("value", "param"), [(42, "input"), ([1], "input[0]"), ([{"type": 1}], "input[0].type")]
    )
    def test_malformed_input_is_a_400(self, value: Any, param: str) -> None:
        """Input that is not a string or a list of objects is an InvalidRequest naming it."""
        with pytest.raises(InvalidRequest) as caught:
            input_items(_body(model="m", input=value))
        assert caught.value.param == param


class TestThoughtSignatures:
    """Gemini's thought signatures survive the round trip through function_call item ids."""

    def test_signature_rides_in_the_item_id(self) -> None:
        """A Gemini call's thought signature is carried by its function_call item id."""
        body, _ = GEMINI.decode_response(responses_call(), fixture("gemini/generate_tools.json"))
        first, second = json.loads(body)["output"]
        assert first["id"].startswith("fc_req1_0.ts.CiQBVKhc7mGJ")
        assert second["id"] == "fc_req1_1"

    def test_streamed_signature_matches(self) -> None:
        """The streamed item id carries the same signature as the non-streamed one."""
        events, decoder = run_stream(
            GEMINI, responses_call(stream=True), fixture("gemini/stream_tools.sse")
        )
        assert decoder.final_response is not None
        first = json.loads(decoder.final_response)["output"][0]
        assert first["id"].startswith("fc_req1_0.ts.CiQBVKhc7mGJ")

    def test_signature_goes_back_to_gemini(self) -> None:
        """Sending the output back as input returns the signature with its functionCall."""
        call = responses_call()
        body, _ = GEMINI.decode_response(call, fixture("gemini/generate_tools.json"))
        output = json.loads(body)["output"]
        outputs = [
            {"type": "function_call_output", "call_id": item["call_id"], "output": "{}"}
            for item in output
        ]
        follow_up = responses_call(input=[{"role": "user", "content": "Hi"}, *output, *outputs])
        parts = upstream_body(GEMINI, follow_up)["contents"][1]["parts"]
        assert parts[0]["thoughtSignature"].startswith("CiQBVKhc7mGJ")
        assert "thoughtSignature" not in parts[1]
