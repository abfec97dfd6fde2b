"""Codec micro-benchmarks: CPU µs per request encode, per response decode, per stream frame.

Compares the OpenAI passthrough codec with the Anthropic translating codec on the recorded test
fixtures, and reports the issue's target ratio: the CPU to translate a 20-chunk Anthropic stream
over the CPU to relay a 20-chunk OpenAI stream (target at most 1.5). Each upstream event is fed
as its own read, as a streaming upstream delivers them. Run: `python -m benchmarks.bench_codecs`.
Imports llmux and the standard library only; no network, no event loop.
"""

from __future__ import annotations

import argparse
import json
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from llmux.intake import parse_call
from llmux.providers.anthropic import AnthropicProvider
from llmux.providers.base import Call, Provider, Target
from llmux.providers.openai import OpenAIProvider
from llmux.types import Endpoint

FIXTURES: Final = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
RATIO_TARGET: Final = 1.5
CHUNKS: Final = 20
_WORDS: Final = ("Hello", " there", ",", " how", " can", " I", " help", " you", " today", "?")
_REQUEST: Final = {
    "model": "bench-model",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the weather like in Paris today?"},
    ],
    "max_tokens": 256,
    "temperature": 0.2,
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the current weather",
                "parameters": {
                    "type": "object",
                    "properties": {"location": {"type": "string"}},
                    "required": ["location"],
                },
            },
        }
    ],
}


@dataclass(frozen=True)
class Case:
    """One codec with its target, fixtures and a 20-chunk stream (one event per read)."""

    name: str
    codec: Provider
    target: Target
    response: bytes
    stream: list[bytes]


def _target(provider: str, base_url: str) -> Target:
    return Target(provider, base_url, "sk-bench", "upstream-model", {})


def _call(stream: bool) -> Call:
    body = json.dumps({**_REQUEST, "stream": stream}).encode()
    return parse_call(Endpoint.CHAT, body, "bench-request", 1700000000)


def _openai_stream() -> list[bytes]:
    """Role chunk, 20 content chunks, finish chunk, usage chunk and [DONE], in OpenAI's shape."""
    text = (FIXTURES / "openai" / "chat_stream.sse").read_text()
    first, content = (json.loads(b.removeprefix("data: ")) for b in text.split("\n\n")[:2])
    frames = [_data(first)]
    for i in range(CHUNKS):
        content["choices"][0]["delta"] = {"content": _WORDS[i % len(_WORDS)]}
        frames.append(_data(content))
    content["choices"][0].update(delta={}, finish_reason="stop")
    frames.append(_data(content))
    usage = {"prompt_tokens": 19, "completion_tokens": CHUNKS, "total_tokens": 19 + CHUNKS}
    frames.append(_data({**content, "choices": [], "usage": usage}))
    return [*frames, b"data: [DONE]\n\n"]


def _data(payload: object) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _anthropic_stream() -> list[bytes]:
    """The recorded text stream with its three text deltas replaced by 20."""
    text = (FIXTURES / "anthropic" / "chat_stream.sse").read_text()
    events = [block + "\n\n" for block in text.split("\n\n") if block.strip()]
    deltas = [e for e in events if "text_delta" in e]
    head = events[: events.index(deltas[0])]
    tail = events[events.index(deltas[-1]) + 1 :]
    body = [
        deltas[0].replace('"Hello!"', json.dumps(_WORDS[i % len(_WORDS)])) for i in range(CHUNKS)
    ]
    return [e.encode() for e in (*head, *body, *tail)]


def _cases() -> list[Case]:
    return [
        Case(
            "OpenAI passthrough",
            OpenAIProvider(),
            _target("openai", "https://api.openai.com/v1"),
            (FIXTURES / "openai" / "chat.json").read_bytes(),
            _openai_stream(),
        ),
        Case(
            "Anthropic",
            AnthropicProvider(),
            _target("anthropic", "https://api.anthropic.com"),
            (FIXTURES / "anthropic" / "chat.json").read_bytes(),
            _anthropic_stream(),
        ),
    ]


def _cpu_us(work: Callable[[], object], repeat: int) -> float:
    """Best-of-`repeat` CPU microseconds per call of `work`."""
    timer = timeit.Timer(work, timer=time.process_time)
    number, _ = timer.autorange()
    number = max(number, 200)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def _relay(case: Case, call: Call) -> Callable[[], object]:
    def run() -> int:
        decoder = case.codec.stream_decoder(call)
        sent = 0
        for chunk in case.stream:
            sent += len(decoder.feed(chunk))
        return sent + len(decoder.finish())

    return run


@dataclass(frozen=True)
class Result:
    """The figures of one codec, in CPU µs."""

    name: str
    encode: float
    decode: float
    stream: float
    frames: int

    @property
    def per_frame(self) -> float:
        """CPU per upstream stream event."""
        return self.stream / self.frames


def measure(case: Case, repeat: int) -> Result:
    """Time encode, decode and a whole 20-chunk stream for one codec."""
    plain, streaming = _call(False), _call(True)
    return Result(
        case.name,
        encode=_cpu_us(lambda: case.codec.encode_request(plain, case.target), repeat),
        decode=_cpu_us(lambda: case.codec.decode_response(plain, case.response), repeat),
        stream=_cpu_us(_relay(case, streaming), repeat),
        frames=len(case.stream),
    )


def report(results: list[Result]) -> str:
    """The markdown table and the tracked ratio."""
    lines = [
        "| codec | encode µs/request | decode µs/response | stream µs/frame"
        f" | {CHUNKS}-chunk stream µs (frames) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.encode:.2f} | {r.decode:.2f} | {r.per_frame:.2f}"
            f" | {r.stream:.1f} ({r.frames}) |"
        )
    openai, anthropic = results
    ratio = anthropic.stream / openai.stream
    verdict = "meets" if ratio <= RATIO_TARGET else "misses"
    lines += [
        "",
        f"Anthropic {CHUNKS}-chunk stream translation CPU / OpenAI {CHUNKS}-chunk passthrough"
        f" CPU: **{ratio:.2f}** ({verdict} the target of at most {RATIO_TARGET})",
    ]
    return "\n".join(lines)


def main() -> None:
    """Measure both codecs and print the markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="timing repeats (best is kept)")
    args = parser.parse_args()
    print(report([measure(case, args.repeat) for case in _cases()]))


if __name__ == "__main__":
    main()
