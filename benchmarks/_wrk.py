"""Load generation with wrk: write the Lua script, run it for a fixed time, read its result.

The script's ``done()`` hook prints one ``BENCH_RESULT {json}`` line with the request and error
counts and the exact latency mean and percentiles (microseconds), which ``run_load`` parses.
Also a one-request probe that checks a target answers properly before it is loaded.

Imports only the standard library and ``benchmarks._procs``.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks._procs import pinned

API_KEY = "sk-bench"
CHAT_PATH = "/v1/chat/completions"
RESULT_TAG = "BENCH_RESULT "

LUA_TEMPLATE = """\
wrk.method = "POST"
wrk.body = [==[BODY]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer API_KEY"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT_TAG{"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,'
    .. '"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,'
    .. '"mean_us":%.3f,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured; latencies in milliseconds."""

    requests: int
    errors: int
    duration_s: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.duration_s if self.duration_s else 0.0


def chat_body(stream: bool, model: str = "bench-model") -> bytes:
    """The chat request every scenario sends (``model`` picks the provider in llmux)."""
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def write_script(path: Path, body: bytes) -> Path:
    """Write the wrk Lua script that POSTs ``body`` and reports through ``done()``."""
    text = LUA_TEMPLATE.replace("BODY", body.decode()).replace("API_KEY", API_KEY)
    path.write_text(text.replace("RESULT_TAG", RESULT_TAG))
    return path


def parse_result(stdout: str) -> LoadResult:
    """Read the ``BENCH_RESULT`` line out of wrk's output."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_TAG):
            raw = json.loads(line[len(RESULT_TAG) :])
            errors = sum(int(raw[key]) for key in ("connect", "read", "write", "status", "timeout"))
            return LoadResult(
                requests=int(raw["requests"]),
                errors=errors,
                duration_s=raw["duration_us"] / 1e6,
                mean_ms=raw["mean_us"] / 1e3,
                p50_ms=raw["p50_us"] / 1e3,
                p90_ms=raw["p90_us"] / 1e3,
                p99_ms=raw["p99_us"] / 1e3,
                max_ms=raw["max_us"] / 1e3,
            )
    raise RuntimeError(f"no {RESULT_TAG.strip()} line in wrk output:\n{stdout[-2000:]}")


@dataclass(frozen=True)
class Load:
    """How wrk drives a target: open connections, wrk threads, and the cores wrk may use."""

    connections: int
    threads: int
    cpus: str | None


def run_load(base_url: str, script: Path, load: Load, duration_s: int) -> LoadResult:
    """Run wrk against ``base_url`` + the chat path for ``duration_s`` seconds."""
    argv = [
        "wrk",
        f"-t{load.threads}",
        f"-c{max(load.connections, load.threads)}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base_url + CHAT_PATH,
    ]
    done = subprocess.run(
        pinned(argv, load.cpus),
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return parse_result(done.stdout)


def probe(base_url: str, body: bytes, stream: bool, timeout_s: float = 10.0) -> None:
    """Send one request and check for a 200 and a complete answer; raise otherwise."""
    request = urllib.request.Request(
        base_url + CHAT_PATH,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            payload = response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{base_url} answered {exc.code}: {exc.read()[:500]!r}") from exc
    complete = payload.rstrip().endswith(b"data: [DONE]") if stream else b'"choices"' in payload
    if not complete:
        raise RuntimeError(f"bad answer from {base_url}: {payload[:500]!r}")
