"""Front-door validation: each bad body is a 400 that names the offending parameter."""

from __future__ import annotations

import pytest

from llmux.errors import InvalidRequest
from llmux.intake import parse_call
from llmux.types import Endpoint

_USER = b'[{"role":"user","content":"hi"}]'


def _reject(endpoint: Endpoint, body: bytes) -> InvalidRequest:
    """The InvalidRequest that parsing `body` for `endpoint` raises (always a 400)."""
    with pytest.raises(InvalidRequest) as caught:
        parse_call(endpoint, body, "req-1")
    assert caught.value.http_status == 400
    assert caught.value.error_type == "invalid_request_error"
    return caught.value


def _problem(endpoint: Endpoint, body: bytes) -> tuple[str, str | None]:
    error = _reject(endpoint, body)
    return error.message, error.param


class TestAnyEndpoint:
    """Rules shared by every endpoint: a JSON object with a string `model`."""

    @pytest.mark.parametrize("endpoint", list(Endpoint))
    def test_empty_body(self, endpoint: Endpoint) -> None:
        """An empty or blank body is refused on every endpoint."""
        assert _problem(endpoint, b"  \n") == (
            "The request body is empty; expected a JSON object.",
            None,
        )

    def test_malformed_json(self) -> None:
        """Broken JSON says it is not valid JSON and where."""
        message, param = _problem(Endpoint.CHAT, b'{"model": "m",')
        assert message.startswith("The request body is not valid JSON: ")
        assert param is None

    def test_not_an_object(self) -> None:
        """A JSON array is not a request body."""
        assert _problem(Endpoint.CHAT, b'[{"model":"m"}]') == (
            "The request body must be a JSON object.",
            None,
        )

    @pytest.mark.parametrize("endpoint", list(Endpoint))
    def test_missing_model(self, endpoint: Endpoint) -> None:
        """Every endpoint requires `model`."""
        assert _problem(endpoint, b'{"messages":[],"input":"x","prompt":"x"}') == (
            "Missing required parameter: 'model'.",
            "model",
        )

    def test_model_not_a_string(self) -> None:
        """`model: 5` is refused naming `model`."""
        assert _problem(Endpoint.CHAT, b'{"model":5,"messages":' + _USER + b"}") == (
            "'model' must be a string.",
            "model",
        )

    def test_model_blank(self) -> None:
        """A blank model name is refused naming `model`."""
        assert _problem(Endpoint.EMBEDDINGS, b'{"model":"  ","input":"x"}') == (
            "'model' must not be empty.",
            "model",
        )

    def test_stream_not_a_boolean(self) -> None:
        """`stream: "yes"` is refused naming `stream`."""
        body = b'{"model":"m","messages":' + _USER + b',"stream":"yes"}'
        assert _problem(Endpoint.CHAT, body) == ("'stream' must be a boolean.", "stream")


class TestChat:
    """POST /v1/chat/completions needs a non-empty list of messages with roles."""

    def test_missing_messages(self) -> None:
        """No `messages` names `messages`."""
        assert _problem(Endpoint.CHAT, b'{"model":"m"}') == (
            "Missing required parameter: 'messages'.",
            "messages",
        )

    def test_null_messages(self) -> None:
        """`messages: null` counts as missing."""
        assert _problem(Endpoint.CHAT, b'{"model":"m","messages":null}') == (
            "Missing required parameter: 'messages'.",
            "messages",
        )

    def test_empty_messages(self) -> None:
        """An empty list names `messages`."""
        assert _problem(Endpoint.CHAT, b'{"model":"m","messages":[]}') == (
            "'messages' must contain at least one message.",
            "messages",
        )

    def test_messages_not_a_list(self) -> None:
        """A string instead of a list names `messages`."""
        assert _problem(Endpoint.CHAT, b'{"model":"m","messages":"hi"}') == (
            "Invalid 'messages': Expected `array`, got `str` at messages",
            "messages",
        )

    def test_message_without_role(self) -> None:
        """A message with no role names `messages[0].role`."""
        assert _problem(Endpoint.CHAT, b'{"model":"m","messages":[{"content":"x"}]}') == (
            "Invalid 'messages': missing required field `role` at messages[0].role",
            "messages[0].role",
        )

    def test_role_not_a_string(self) -> None:
        """A numeric role in the second message names `messages[1].role`."""
        body = b'{"model":"m","messages":[{"role":"user"},{"role":5}]}'
        assert _problem(Endpoint.CHAT, body) == (
            "Invalid 'messages': Expected `str`, got `int` at messages[1].role",
            "messages[1].role",
        )

    def test_invalid_stream_options(self) -> None:
        """A non-boolean include_usage names `stream_options`."""
        body = (
            b'{"model":"m","messages":' + _USER + b',"stream":true,'
            b'"stream_options":{"include_usage":"x"}}'
        )
        assert _problem(Endpoint.CHAT, body) == (
            "'stream_options' is invalid: Expected `bool | null`, got `str`"
            " at stream_options.include_usage",
            "stream_options",
        )

    def test_stream_options_not_an_object(self) -> None:
        """A list as stream_options names `stream_options`."""
        body = b'{"model":"m","messages":' + _USER + b',"stream":true,"stream_options":[1]}'
        assert _problem(Endpoint.CHAT, body) == (
            "'stream_options' is invalid: Expected `object | null`, got `array` at stream_options",
            "stream_options",
        )


class TestOtherEndpoints:
    """Completions need `prompt`, embeddings a non-empty `input`, responses an input."""

    def test_completions_missing_prompt(self) -> None:
        """Legacy completions name `prompt`."""
        assert _problem(Endpoint.COMPLETIONS, b'{"model":"m"}') == (
            "Missing required parameter: 'prompt'.",
            "prompt",
        )

    def test_completions_null_prompt(self) -> None:
        """`prompt: null` counts as missing."""
        assert _problem(Endpoint.COMPLETIONS, b'{"model":"m","prompt":null}') == (
            "Missing required parameter: 'prompt'.",
            "prompt",
        )

    def test_embeddings_missing_input(self) -> None:
        """Embeddings name `input`."""
        assert _problem(Endpoint.EMBEDDINGS, b'{"model":"m"}') == (
            "Missing required parameter: 'input'.",
            "input",
        )

    @pytest.mark.parametrize("empty", [b'""', b"[]"])
    def test_embeddings_empty_input(self, empty: bytes) -> None:
        """An empty string or list as input names `input`."""
        assert _problem(Endpoint.EMBEDDINGS, b'{"model":"m","input":' + empty + b"}") == (
            "'input' must not be empty.",
            "input",
        )

    def test_embeddings_cannot_stream(self) -> None:
        """`stream: true` on embeddings names `stream`."""
        body = b'{"model":"m","input":"x","stream":true}'
        assert _problem(Endpoint.EMBEDDINGS, body) == ("Embeddings cannot be streamed.", "stream")

    def test_responses_missing_input(self) -> None:
        """Responses without input, prompt or previous_response_id name `input`."""
        assert _problem(Endpoint.RESPONSES, b'{"model":"m"}') == (
            "Missing required parameter: 'input'.",
            "input",
        )


class TestAccepted:
    """Valid bodies become a Call carrying the fields dispatch reads, and the raw rest."""

    def test_chat_call(self) -> None:
        """A streaming chat with include_usage is parsed with its flags and raw fields kept."""
        body = (
            b'{"model":"gpt-4o","messages":' + _USER + b',"stream":true,'
            b'"stream_options":{"include_usage":true},"x_extra":{"k" : 1}}'
        )
        call = parse_call(Endpoint.CHAT, body, "req-9")
        assert (call.endpoint, call.model, call.request_id) == (Endpoint.CHAT, "gpt-4o", "req-9")
        assert (call.stream, call.include_usage) == (True, True)
        assert bytes(call.body["x_extra"]) == b'{"k" : 1}'

    def test_stream_null_means_not_streaming(self) -> None:
        """`stream: null` is the default, false."""
        call = parse_call(
            Endpoint.CHAT, b'{"model":"m","messages":' + _USER + b',"stream":null}', "r"
        )
        assert (call.stream, call.include_usage) == (False, False)

    def test_include_usage_ignored_without_stream(self) -> None:
        """stream_options on a non-streaming call neither validates nor sets include_usage."""
        body = b'{"model":"m","messages":' + _USER + b',"stream_options":{"include_usage":"x"}}'
        assert parse_call(Endpoint.CHAT, body, "r").include_usage is False

    def test_responses_with_previous_response_id(self) -> None:
        """A Responses call may continue a previous response instead of sending input."""
        call = parse_call(Endpoint.RESPONSES, b'{"model":"m","previous_response_id":"resp_1"}', "r")
        assert call.model == "m"
