"""The incremental SSE parser and the frames llmux writes (llmux/sse.py)."""

from __future__ import annotations

from pathlib import Path

from llmux.sse import DONE_FRAME, SSEEvent, SSEParser, data_frame, named_frame

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "openai"


def _feed_all(chunks: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events + parser.flush()


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class TestParser:
    """SSEParser splits a byte stream into events however the bytes are chunked."""

    def test_single_event(self) -> None:
        """One `data:` line and a blank line make one event."""
        assert SSEParser().feed(b"data: {}\n\n") == [SSEEvent(None, b"{}")]

    def test_incomplete_event_waits_for_blank_line(self) -> None:
        """Nothing is returned until the event's terminating blank line arrives."""
        parser = SSEParser()
        assert parser.feed(b"data: {}\n") == []
        assert parser.pending
        assert parser.feed(b"\n") == [SSEEvent(None, b"{}")]
        assert not parser.pending

    def test_event_split_across_feeds(self) -> None:
        """An event cut in the middle of its payload is joined across feeds."""
        assert _feed_all([b'data: {"a"', b":1}\n", b"\ndata: 2\n\n"]) == [
            SSEEvent(None, b'{"a":1}'),
            SSEEvent(None, b"2"),
        ]

    def test_byte_by_byte_equals_whole(self) -> None:
        """Feeding one byte at a time gives the same events as feeding everything at once."""
        data = (FIXTURES / "responses_stream.sse").read_bytes()
        assert _feed_all(_split(data, 1)) == _feed_all([data])

    def test_crlf_line_endings(self) -> None:
        """CRLF separates lines and events like LF does."""
        assert SSEParser().feed(b"event: x\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n") == [
            SSEEvent("x", b"1"),
            SSEEvent(None, b"2"),
        ]

    def test_bare_cr_line_endings(self) -> None:
        """A lone CR is a line ending too."""
        assert SSEParser().feed(b"data: 1\r\rdata: 2\r\r") == [
            SSEEvent(None, b"1"),
            SSEEvent(None, b"2"),
        ]

    def test_crlf_split_across_chunks(self) -> None:
        """A CRLF whose CR ends one chunk and whose LF starts the next is one line ending."""
        assert _feed_all([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [SSEEvent(None, b"a\nb")]

    def test_blank_line_crlf_split_across_chunks(self) -> None:
        """An event ending in CRLF CR | LF is dispatched once, with no empty extra event."""
        parser = SSEParser()
        first = parser.feed(b"data: a\r\n\r")
        second = parser.feed(b"\ndata: b\r\n\r\n")
        assert first + second == [SSEEvent(None, b"a"), SSEEvent(None, b"b")]

    def test_crlf_stream_in_odd_chunks_equals_whole(self) -> None:
        """A CRLF stream cut every 3 bytes parses like the whole stream."""
        data = (FIXTURES / "chat_stream.sse").read_bytes().replace(b"\n", b"\r\n")
        assert _feed_all(_split(data, 3)) == _feed_all([data])

    def test_comments_are_ignored(self) -> None:
        """`:` lines (keep-alives) produce no event and do not break the next one."""
        assert _feed_all([b": keep-alive\n\n", b": ping\ndata: 1\n\n"]) == [SSEEvent(None, b"1")]

    def test_multi_line_data_is_joined_with_newlines(self) -> None:
        """Several `data:` lines in one event join with LF."""
        assert SSEParser().feed(b"data: a\ndata: b\ndata:c\n\n") == [SSEEvent(None, b"a\nb\nc")]

    def test_only_one_leading_space_is_stripped(self) -> None:
        """The value keeps every space after the first one."""
        assert SSEParser().feed(b"data:   x\n\n") == [SSEEvent(None, b"  x")]

    def test_event_names(self) -> None:
        """`event:` names the event it belongs to."""
        assert SSEParser().feed(b"event: response.created\ndata: {}\n\n") == [
            SSEEvent("response.created", b"{}")
        ]

    def test_event_without_data_is_skipped(self) -> None:
        """A block with a name but no data dispatches nothing."""
        assert SSEParser().feed(b"event: ping\n\nid: 7\nretry: 10\n\n") == []

    def test_unknown_fields_are_ignored(self) -> None:
        """`id:` and `retry:` lines do not change the data."""
        assert SSEParser().feed(b"id: 1\nretry: 5\ndata: x\n\n") == [SSEEvent(None, b"x")]

    def test_flush_returns_truncated_tail(self) -> None:
        """An event cut off before its blank line comes out of flush()."""
        parser = SSEParser()
        assert parser.feed(b"data: 1\n\ndata: 2") == [SSEEvent(None, b"1")]
        assert parser.flush() == [SSEEvent(None, b"2")]
        assert not parser.pending

    def test_flush_of_tail_ending_in_cr(self) -> None:
        """A held-back trailing CR still ends the last line at flush()."""
        parser = SSEParser()
        assert parser.feed(b"event: e\rdata: 3\r") == []
        assert parser.flush() == [SSEEvent("e", b"3")]

    def test_flush_of_nothing(self) -> None:
        """flush() on an empty or comment-only tail returns no event."""
        parser = SSEParser()
        parser.feed(b": comment")
        assert parser.flush() == []
        assert parser.flush() == []


class TestFrames:
    """The frames llmux writes are well-formed SSE that the parser reads back."""

    def test_data_frame(self) -> None:
        """data_frame() is `data: payload` and a blank line."""
        assert data_frame(b'{"a":1}') == b'data: {"a":1}\n\n'

    def test_named_frame(self) -> None:
        """named_frame() carries the event name and the payload."""
        frame = named_frame("response.completed", b"{}")
        assert frame == b"event: response.completed\ndata: {}\n\n"
        assert SSEParser().feed(frame) == [SSEEvent("response.completed", b"{}")]

    def test_done_frame(self) -> None:
        """The terminator is the OpenAI `[DONE]` sentinel."""
        assert SSEParser().feed(DONE_FRAME) == [SSEEvent(None, b"[DONE]")]
