"""The Prometheus catalogue: the Grafana dashboard against the metrics, and values after traffic.

The dashboard tests parse every PromQL expression in `deploy/grafana/llmux-dashboard.json` and
check each metric name it reads against what `Metrics` defines or exposes. The traffic tests run
one scripted mix through a real gateway (`retry_count: 1`, a master key, `smart` falling back to
`gpt-4o-mini`): a JSON chat, a stream, an upstream 500 retried to success, a `smart` call whose
two attempts get 503 and that the fallback group answers, and a wrong key. Then they read
`/metrics` with prometheus_client's parser. Process metrics in multi-worker mode are read from a
second, real Python process sharing a metrics directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families

from llmux.metrics import Metrics
from tests.helpers.edge import eventually_async, metric_samples, rejected, sdk_client
from tests.helpers.gateway import running_gateway, upstream_config
from tests.helpers.upstream import FakeUpstream, Reply

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana" / "llmux-dashboard.json"
ROWS = ["Traffic", "Upstreams", "Streaming", "Tokens and cost", "Governance", "Storage", "Process"]
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
ROUTE = "/v1/chat/completions"
MASTER_KEY = "sk-master-catalogue"
DEPLOYMENT = "upstream/gpt-4o-mini"
FAILURE = b'{"error": {"message": "boom", "type": "server_error", "param": null, "code": null}}'
# Fixtures: chat.json reports 19 input / 10 output tokens, chat_stream.sse 19 / 6.
JSON_CALLS = 3

Samples = list[tuple[str, dict[str, str], float]]

# PromQL pieces that are not metric names: strings, label matchers, ranges, grouping clauses,
# function calls, keywords and numbers.
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    for pattern in (_STRINGS, _MATCHERS, _RANGES, _GROUPING):
        expr = pattern.sub(" ", expr)
    return {name for name in _IDENTIFIER.findall(expr) if name.lower() not in _KEYWORDS}


def dashboard() -> dict[str, Any]:
    """The shipped dashboard, parsed."""
    parsed: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return parsed


def panels() -> Iterator[dict[str, Any]]:
    """Every panel of the dashboard, rows and nested panels included."""
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of every panel."""
    return [target["expr"] for panel in panels() for target in panel.get("targets", [])]


def series_names(family_name: str, family_type: str) -> set[str]:
    """The sample names a metric family of this type can expose."""
    if family_type == "counter":
        return {f"{family_name}_total"}
    if family_type == "histogram":
        return {f"{family_name}{suffix}" for suffix in ("_bucket", "_sum", "_count")}
    return {family_name}


def defined_names(metrics: Metrics) -> set[str]:
    """Every sample name `metrics` defines, with or without samples, plus what it exposes."""
    names = {
        name
        for family in metrics.registry.collect()
        for name in series_names(family.name, family.type)
    }
    exposed = text_string_to_metric_families(metrics.exposition().decode())
    return names | {sample.name for family in exposed for sample in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every sample called `name` whose labels include `labels`."""
    return sum(
        value
        for sample, sample_labels, value in samples
        if sample == name and labels.items() <= sample_labels.items()
    )


def test_promql_name_parser_skips_functions_labels_and_groupings() -> None:
    """The name parser keeps metric names and drops functions, labels, ranges and `by` lists."""
    expr = (
        'histogram_quantile(0.95, sum by (model_group, le) (rate(a_bucket{job=~"$job"}'
        "[$__rate_interval]))) / clamp_min(sum(rate(b_total[5m])), 1e-9) * 3600"
    )
    assert metric_names_in(expr) == {"a_bucket", "b_total"}


def test_dashboard_reads_only_metrics_llmux_defines() -> None:
    """Every metric name in every dashboard query is one `Metrics` defines or exposes."""
    known = defined_names(Metrics())
    used = {name for expr in dashboard_exprs() for name in metric_names_in(expr)}
    assert used, "the dashboard has no queries"
    assert used - known == set()


def test_dashboard_queries_every_llmux_metric() -> None:
    """No llmux metric is left off the dashboard."""
    used = {name for expr in dashboard_exprs() for name in metric_names_in(expr)}
    families = [f for f in Metrics().registry.collect() if f.name.startswith("llmux_")]
    unshown = {f.name for f in families if not series_names(f.name, f.type) & used}
    assert unshown == set()


def test_dashboard_imports_with_a_prometheus_datasource_input() -> None:
    """Schema 38 or later, one `DS_PROMETHEUS` input, and every query uses that datasource."""
    board = dashboard()
    assert board["schemaVersion"] >= 38
    assert [(i["name"], i["pluginId"]) for i in board["__inputs"]] == [
        ("DS_PROMETHEUS", "prometheus")
    ]
    sources = {
        target["datasource"]["uid"] for panel in panels() for target in panel.get("targets", [])
    }
    assert sources == {"${DS_PROMETHEUS}"}


def test_dashboard_has_its_rows_in_order() -> None:
    """Rows: traffic, upstreams, streaming, tokens and cost, governance, storage, process."""
    assert [panel["title"] for panel in panels() if panel["type"] == "row"] == ROWS


@pytest.fixture
async def metered(upstream: FakeUpstream) -> AsyncIterator[Samples]:
    """The /metrics samples after the scripted traffic (see the module docstring)."""
    extra = f"  fallbacks: {{smart: [gpt-4o-mini]}}\nauth:\n  master_key: {MASTER_KEY}\n"
    config = upstream_config(upstream.url, retry_count=1, extra=extra)
    async with running_gateway(config) as gateway:
        async with sdk_client(gateway, api_key=MASTER_KEY) as client:
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=HELLO, stream=True
            )
            async for _ in stream:
                pass
            upstream.enqueue(Reply(500, FAILURE))
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            upstream.enqueue(Reply(503, FAILURE), Reply(503, FAILURE))
            await client.chat.completions.create(model="smart", messages=HELLO)
        async with sdk_client(gateway, api_key="sk-wrong-key") as stranger:
            await rejected(stranger.chat.completions.create(model="gpt-4o-mini", messages=HELLO))
        yield await metric_samples(gateway)


async def test_successful_calls_are_counted_as_2xx(metered: Samples) -> None:
    """The JSON chat, the stream, the retried call and the fallback call are four 2xx."""
    assert total(metered, "llmux_requests_total", route=ROUTE, status_class="2xx") == 4


async def test_wrong_key_counts_an_auth_failure(metered: Samples) -> None:
    """The wrong key is one `invalid` auth failure and one 4xx on the chat route."""
    assert total(metered, "llmux_auth_failures_total", reason="invalid") == 1
    assert total(metered, "llmux_requests_total", route=ROUTE, status_class="4xx") == 1


async def test_stream_observes_time_to_first_token(metered: Samples) -> None:
    """The one stream is one time-to-first-token observation for its model group."""
    name = "llmux_time_to_first_token_seconds_count"
    assert total(metered, name, model_group="gpt-4o-mini") == 1


async def test_stream_observes_time_per_output_token(metered: Samples) -> None:
    """The one stream (6 output tokens) is one time-per-output-token observation."""
    name = "llmux_time_per_output_token_seconds_count"
    assert total(metered, name, model_group="gpt-4o-mini") == 1
    assert total(metered, name) == 1


async def test_tokens_are_counted_by_type(metered: Samples) -> None:
    """Input and output tokens add up the usage of three JSON calls and the stream."""
    assert total(metered, "llmux_tokens_total", type="input") == (JSON_CALLS + 1) * 19
    assert total(metered, "llmux_tokens_total", type="output") == JSON_CALLS * 10 + 6


async def test_retry_after_500_is_counted(metered: Samples) -> None:
    """The 500 retried to success is one retry of `gpt-4o-mini`; `smart`'s second try is one."""
    assert total(metered, "llmux_upstream_retries_total", model_group="gpt-4o-mini") == 1
    assert total(metered, "llmux_upstream_retries_total", model_group="smart") == 1


async def test_fallback_is_counted(metered: Samples) -> None:
    """`smart` out of attempts moved once to `gpt-4o-mini`."""
    name = "llmux_fallbacks_total"
    assert total(metered, name, from_group="smart", to_group="gpt-4o-mini") == 1


async def test_failed_attempts_are_timed_as_errors(metered: Samples) -> None:
    """The 500 and the two 503 are three error attempts; the gpt-4o-mini successes are four."""
    name = "llmux_upstream_duration_seconds_count"
    assert total(metered, name, outcome="error") == 3
    assert total(metered, name, deployment=DEPLOYMENT, outcome="success") == 4


async def test_gateway_samples_event_loop_lag(upstream: FakeUpstream) -> None:
    """A running gateway's loop monitor feeds the event-loop lag histogram and gauge."""
    async with running_gateway(upstream_config(upstream.url)) as gateway:

        async def sampled() -> bool:
            samples = await metric_samples(gateway)
            return total(samples, "llmux_event_loop_lag_seconds_count") >= 1

        assert await eventually_async(sampled, within=5.0)
        samples = await metric_samples(gateway)
    assert [name for name, _, _ in samples].count("llmux_event_loop_lag_last_seconds") == 1


async def test_gateway_exposes_process_metrics(upstream: FakeUpstream) -> None:
    """A single-process gateway exposes its CPU, memory and Python version."""
    async with running_gateway(upstream_config(upstream.url)) as gateway:
        samples = await metric_samples(gateway)
    assert total(samples, "process_resident_memory_bytes") > 0
    assert total(samples, "process_cpu_seconds_total") > 0
    assert total(samples, "python_info") == 1


def test_stream_of_one_token_has_no_per_token_pace() -> None:
    """A one-token stream is not observed; a longer one is observed per token after the first."""
    metrics = Metrics()
    metrics.know(["m"], [])
    metrics.observe_time_per_output_token("m", 0.5, 1)
    metrics.observe_time_per_output_token("m", 0.5, 11)
    samples = [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
    ]
    assert total(samples, "llmux_time_per_output_token_seconds_count", model_group="m") == 1
    assert total(samples, "llmux_time_per_output_token_seconds_sum") == pytest.approx(0.05)


_WORKER = """
import sys
from llmux.metrics import Metrics
metrics = Metrics()
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def worker_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, str]]:
    """A real worker process holding live metric files in a shared directory: (pid, dir)."""
    directory = str(tmp_path)
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=environment,
        cwd=Path(__file__).parent.parent,
        text=True,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", directory)
        yield worker.pid, directory
    finally:
        worker.communicate(timeout=10)


def test_multi_worker_process_metrics_are_labelled_by_pid(
    worker_directory: tuple[int, str],
) -> None:
    """With shared metric files, each live worker's process metrics come with its `pid`."""
    pid, _ = worker_directory
    exposed = text_string_to_metric_families(Metrics().exposition().decode())
    rss = {
        sample.labels.get("pid"): sample.value
        for family in exposed
        for sample in family.samples
        if sample.name == "process_resident_memory_bytes"
    }
    assert str(pid) in rss
    assert rss[str(pid)] > 0
