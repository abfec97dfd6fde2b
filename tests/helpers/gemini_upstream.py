"""A fake Gemini (Generative Language API) upstream replaying `tests/fixtures/gemini/*`.

Reuses `FakeUpstream`'s recording and scripted behaviours; only the default answers differ:
`:generateContent` -> generate.json, `:streamGenerateContent` -> stream.sse (CRLF-framed, as
Google sends it), `:batchEmbedContents` -> embeddings.json, anything else -> a Google 404.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.upstream import Behaviour, FakeUpstream, Reply, Stream

FIXTURES = Path(__file__).parent.parent / "fixtures" / "gemini"
_NOT_FOUND = b'{"error":{"code":404,"message":"Not found","status":"NOT_FOUND"}}'


def gemini_fixture(name: str) -> bytes:
    """The raw bytes of a recorded Gemini fixture."""
    return (FIXTURES / name).read_bytes()


def gemini_frames(name: str) -> list[bytes]:
    """The events of a recorded Gemini SSE fixture, each with its CRLF blank line."""
    data = gemini_fixture(name)
    return [event + b"\r\n\r\n" for event in data.split(b"\r\n\r\n") if event.strip()]


def gemini_stream(name: str) -> Stream:
    """Stream the events of an SSE fixture."""
    return Stream(gemini_frames(name))


def gemini_reply(name: str, status: int = 200) -> Reply:
    """Answer with a JSON fixture."""
    return Reply(status, gemini_fixture(name))


class FakeGemini(FakeUpstream):
    """A Gemini-shaped server with scripted behaviours and a record of what it received."""

    @property
    def url(self) -> str:
        """The server root, as a `gemini` provider's `base_url`."""
        return f"http://127.0.0.1:{self.port}"

    def _default(self, path: str, body: bytes) -> Behaviour:
        if path.endswith(":generateContent"):
            return gemini_reply("generate.json")
        if path.endswith(":streamGenerateContent"):
            return gemini_stream("stream.sse")
        if path.endswith(":batchEmbedContents"):
            return gemini_reply("embeddings.json")
        return Reply(404, _NOT_FOUND)
