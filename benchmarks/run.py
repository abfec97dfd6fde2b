"""The load harness: llmux beside a bare aiohttp proxy and the upstream itself, in one run.

It starts the fake upstream, the bare proxy and ``llmux serve`` as child processes (the target
pinned to one core, the upstream and wrk to the others), then runs each scenario against every
target in turn and prints markdown tables: throughput, latency and latency added over calling the
upstream directly, CPU per request and peak RSS of each target's process tree, and the ratios the
project tracks. Run it from the repository root: ``python -m benchmarks.run --help``.

Imports only the standard library and the ``benchmarks`` helpers; llmux runs as a subprocess.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # run as a script (python benchmarks/run.py): find the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _governance, _procs, _report, _wrk

REPO = Path(__file__).resolve().parent.parent
HERE = REPO / "benchmarks"
TARGETS = ("direct", "bare", "llmux")
GOVERNED_TARGETS = tuple(_governance.GOVERNED)
"""llmux with governance on (standalone, distributed): opt in with --targets."""
HOST = "127.0.0.1"

LLMUX_CONFIG = """\
server:
  host: 127.0.0.1
  port: __LLMUX_PORT__
  admin_port: 0
providers:
  - name: bench
    type: openai-compatible
    base_url: __UPSTREAM_BASE_URL__
    api_key: sk-upstream
    models: [bench-model]
  - name: bench-anthropic
    type: anthropic
    base_url: __UPSTREAM_ROOT_URL__
    api_key: sk-bench
    models: [bench-claude]
store:
  url: __STORE_URL__
logging:
  level: info
  format: json
"""


@dataclass(frozen=True)
class Scenario:
    """One load shape and the upstream timing it runs against."""

    name: str
    description: str
    stream: bool
    connections: int
    duration_s: int
    latency_ms: float
    goals: _report.Goals
    chunks: int = 20
    chunk_delay_ms: float = 5.0
    model: str = "bench-model"
    targets: tuple[str, ...] = TARGETS
    """The targets that can serve this scenario; the others are skipped for it."""
    api: str = "chat"
    """The client dialect: ``chat``, ``responses`` or ``messages`` (see ``APIS``)."""


@dataclass(frozen=True)
class Api:
    """One client dialect: its path, its headers, and how a complete answer is recognised."""

    path: str
    done: bytes
    """Found in the last SSE event of a complete streamed answer (in the body for JSON)."""
    headers: tuple[tuple[str, str], ...] = ()
    """Headers the dialect's SDK sends besides the key and the content type."""


APIS = {
    "chat": Api(_wrk.CHAT_PATH, b"data: [DONE]"),
    "responses": Api("/v1/responses", b'"type":"response.completed"'),
    "messages": Api(
        "/v1/messages", b'"type":"message_stop"', headers=(("anthropic-version", "2023-06-01"),)
    ),
}
"""The client dialects a scenario can speak; ``chat`` uses ``_wrk``'s own body and probe."""


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "reference",
            "non-streaming chat, 50 ms upstream, 100 connections (~10k requests in 5 s)",
            stream=False,
            connections=100,
            duration_s=5,
            latency_ms=50.0,
            goals=_report.Goals(rps_ratio=True, added_p99=True),
        ),
        Scenario(
            "streaming",
            "stream=true, 50 ms to first chunk then 20 chunks 5 ms apart, 50 connections",
            stream=True,
            connections=50,
            duration_s=8,
            latency_ms=50.0,
            goals=_report.Goals(added_p99=True),
        ),
        Scenario(
            "anthropic-streaming",
            "streaming chat through llmux's Anthropic codec (model bench-claude, upstream "
            "POST /v1/messages), 50 ms to first event then 20 text_delta events 5 ms apart, "
            "50 connections; llmux only",
            stream=True,
            connections=50,
            duration_s=8,
            latency_ms=50.0,
            goals=_report.Goals(cpu_ratio=False, cpu_vs="streaming"),
            model="bench-claude",
            targets=("llmux",),
        ),
        Scenario(
            "responses-over-anthropic",
            "client streams POST /v1/responses (model bench-claude); llmux translates to the "
            "upstream's Anthropic POST /v1/messages stream, 50 ms to first event then 20 "
            "text_delta events 5 ms apart, 50 connections; llmux only",
            stream=True,
            connections=50,
            duration_s=8,
            latency_ms=50.0,
            goals=_report.Goals(cpu_ratio=False, cpu_vs="streaming"),
            model="bench-claude",
            targets=("llmux",),
            api="responses",
        ),
        Scenario(
            "messages-over-openai",
            "client streams POST /v1/messages (Anthropic dialect, model bench-model); llmux "
            "translates to the upstream's OpenAI chat stream, 50 ms to first chunk then 20 "
            "chunks 5 ms apart, 50 connections; llmux only",
            stream=True,
            connections=50,
            duration_s=8,
            latency_ms=50.0,
            goals=_report.Goals(cpu_ratio=False, cpu_vs="streaming"),
            targets=("llmux",),
            api="messages",
        ),
        Scenario(
            "saturation",
            "non-streaming chat, 0 ms upstream, 50 connections: the target's CPU is the limit",
            stream=False,
            connections=50,
            duration_s=5,
            latency_ms=0.0,
            goals=_report.Goals(),
        ),
    )
}


@dataclass(frozen=True)
class Cpus:
    """Core split: ``target`` for the proxy under test, ``load`` for wrk and the upstream."""

    target: str | None
    load: str | None
    threads: int


@dataclass(frozen=True)
class Target:
    """A running target: where to send load and whose process tree to measure."""

    name: str
    base_url: str
    root_pid: int


def parse_cpu_list(text: str) -> set[int]:
    """``"1"``, ``"1,3"`` or ``"2-3"`` as a set of core numbers."""
    cores: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cores.update(range(int(first), int(last or first) + 1))
    return cores


def split_cpus(pin: str | None) -> Cpus:
    """Give ``pin`` to the target and the remaining usable cores to the load."""
    usable = os.sched_getaffinity(0)
    if pin is None:
        return Cpus(None, None, threads=min(len(usable), 2))
    target = parse_cpu_list(pin)
    load = sorted(usable - target)
    if not target <= usable or not load:
        raise SystemExit(f"--pin-cpu {pin}: needs usable cores {sorted(usable)} and one left over")
    return Cpus(pin, ",".join(map(str, load)), threads=len(load))


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def write_llmux_config(args: argparse.Namespace, upstream_port: int, path: Path) -> int:
    """Write the llmux config (generated, or ``--llmux-config`` filled in); return its port."""
    text = args.llmux_config.read_text() if args.llmux_config else LLMUX_CONFIG
    port = args.llmux_port or free_port()
    if "__LLMUX_PORT__" not in text and not args.llmux_port:
        raise SystemExit("--llmux-config: use __LLMUX_PORT__ as server.port or pass --llmux-port")
    root = f"http://{HOST}:{upstream_port}"
    # The standalone default (sqlite://llmux.db) would grow a database in the checkout across
    # runs; a fresh one in the run's temp directory keeps runs alike and the tree clean.
    text = text.replace("__STORE_URL__", f"sqlite:///{path.parent / 'llmux.db'}")
    text = text.replace("__LLMUX_PORT__", str(port)).replace("__UPSTREAM_ROOT_URL__", root)
    path.write_text(text.replace("__UPSTREAM_BASE_URL__", f"{root}/v1"))
    return port


@dataclass
class Context:
    """Per-run state: options, core split, temp directory, cleanup stack and started pids."""

    args: argparse.Namespace
    cpus: Cpus
    log_dir: Path
    stack: contextlib.ExitStack
    pids: list[int] = field(default_factory=list)


def start(
    name: str, argv: list[str], ready_path: str, port: int, cpus: str | None, ctx: Context
) -> _procs.Child:
    """Start one child, register it for stopping, and wait until ``ready_path`` answers 200."""
    child = _procs.spawn(name, argv, ctx.log_dir, cpus, cwd=REPO)
    ctx.stack.callback(_procs.stop, child)
    ctx.pids.append(child.pid)
    _procs.wait_ready(child, f"http://{HOST}:{port}{ready_path}", timeout_s=30.0)
    log(f"{name} ready on :{port} (pid {child.pid}, cpus {cpus or 'any'})")
    return child


def start_targets(ctx: Context) -> tuple[str, list[Target]]:
    """Start the upstream and the wanted proxies; return the upstream URL and the targets."""
    py, targets_wanted = ctx.args.python, ctx.args.targets
    up_port = ctx.args.upstream_port or free_port()
    up_argv = [py, str(HERE / "fake_upstream.py"), "--host", HOST, "--port", str(up_port)]
    upstream = start("upstream", up_argv, "/health", up_port, ctx.cpus.load, ctx)
    up_url = f"http://{HOST}:{up_port}"
    targets = []
    if "direct" in targets_wanted:
        targets.append(Target("direct", up_url, upstream.pid))
    if "bare" in targets_wanted:
        port = free_port()
        argv = [py, str(HERE / "bare_proxy.py"), "--port", str(port), "--upstream", up_url]
        bare = start("bare", argv, "/health", port, ctx.cpus.target, ctx)
        targets.append(Target("bare", f"http://{HOST}:{port}", bare.pid))
    if "llmux" in targets_wanted:
        config = ctx.log_dir / "llmux.yaml"
        port = write_llmux_config(ctx.args, up_port, config)
        targets.append(start_llmux("llmux", config, port, ctx))
    for name in GOVERNED_TARGETS:
        if name in targets_wanted:
            targets.append(start_governed(_governance.GOVERNED[name], up_port, ctx))
    return up_url, targets


def start_llmux(name: str, config: Path, port: int, ctx: Context) -> Target:
    """Start one llmux on ``config`` and wait until it is ready."""
    argv = [ctx.args.python, "-m", "llmux", "serve", "--config", str(config)]
    if ctx.args.workers:
        argv += ["--workers", str(ctx.args.workers)]
    llmux = start(name, argv, "/health/ready", port, ctx.cpus.target, ctx)
    return Target(name, f"http://{HOST}:{port}", llmux.pid)


def start_governed(governed: _governance.Governed, up_port: int, ctx: Context) -> Target:
    """Start llmux with governance on, its store seeded with the key the load sends."""
    config = ctx.log_dir / f"{governed.name}.yaml"
    port = write_llmux_config(ctx.args, up_port, config)
    store_url, prefix = _governance.store_for(governed, str(ctx.log_dir / f"{governed.name}.db"))
    generated_store = f"sqlite:///{ctx.log_dir / 'llmux.db'}"
    base = config.read_text().replace(generated_store, "__STORE_URL__")
    config.write_text(_governance.governed_config(base, governed, store_url, prefix))
    _governance.seed_key(store_url)
    ctx.stack.callback(_governance.drop_store, store_url)
    return start_llmux(governed.name, config, port, ctx)


def configure_upstream(up_url: str, scenario: Scenario, jitter_ms: float) -> None:
    """Set the fake upstream's timing for ``scenario``."""
    body = {
        "latency_ms": scenario.latency_ms,
        "jitter_ms": jitter_ms,
        "chunks": scenario.chunks,
        "chunk_delay_ms": scenario.chunk_delay_ms,
    }
    request = urllib.request.Request(
        up_url + "/_bench/config", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def own_cpu_seconds(ctx: Context) -> float:
    """CPU used by this harness, its reaped children (wrk) and every child process tree."""
    times = os.times()
    ours = times.user + times.system + times.children_user + times.children_system
    return ours + sum(_procs.cpu_seconds(_procs.process_tree(pid)) for pid in ctx.pids)


def measure(
    target: Target, scenario: Scenario, body: bytes, script: Path, ctx: Context
) -> _report.Row:
    """Probe, warm up, then load ``target`` while reading its tree's CPU and peak RSS.

    It also measures the CPU that processes outside this run used meanwhile (``other_pct``)
    and the hypervisor's steal, both as a share of all cores, to flag a noisy measurement.
    """
    probe(target.base_url, scenario, body)
    load = _wrk.Load(scenario.connections, ctx.cpus.threads, ctx.cpus.load)
    if ctx.args.warmup:
        _wrk.run_load(target.base_url, script, load, ctx.args.warmup)
        time.sleep(0.5)  # let the warm-up's cut-off requests finish before counting
    tree = _procs.process_tree(target.root_pid)
    _procs.reset_peak_rss(tree)
    cpu_before, own_before = _procs.cpu_seconds(tree), own_cpu_seconds(ctx)
    busy_before, steal_before = _procs.machine_seconds()
    result = _wrk.run_load(target.base_url, script, load, ctx.args.duration or scenario.duration_s)
    busy_after, steal_after = _procs.machine_seconds()
    own = own_cpu_seconds(ctx) - own_before
    tree = _procs.process_tree(target.root_pid)
    cpu = _procs.cpu_seconds(tree) - cpu_before
    capacity = max(result.duration_s, 1e-9) * len(os.sched_getaffinity(0)) / 100
    return _report.Row(
        scenario=scenario.name,
        target=target.name,
        requests=result.requests,
        errors=result.errors,
        rps=result.rps,
        mean_ms=result.mean_ms,
        p50_ms=result.p50_ms,
        p90_ms=result.p90_ms,
        p99_ms=result.p99_ms,
        max_ms=result.max_ms,
        cpu_ms_per_req=cpu * 1000 / max(result.requests, 1),
        peak_rss_mib=_procs.peak_rss_mib(tree),
        other_pct=max(busy_after - busy_before - own, 0.0) / capacity,
        steal_pct=(steal_after - steal_before) / capacity,
    )


def request_body(scenario: Scenario) -> bytes:
    """The request every connection of ``scenario`` sends, in the scenario's dialect."""
    if scenario.api == "chat":
        return _wrk.chat_body(scenario.stream, scenario.model)
    prompt = "Say hello"
    body: dict[str, object] = {"model": scenario.model}
    if scenario.api == "responses":
        body["input"] = prompt
    else:
        body |= {"max_tokens": 256, "messages": [{"role": "user", "content": prompt}]}
    if scenario.stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def write_script(path: Path, scenario: Scenario, body: bytes) -> Path:
    """``_wrk``'s Lua script, pointed at the dialect's path with the dialect's headers.

    wrk runs the script after it has set ``wrk.path`` from the URL, so these lines override it.
    """
    _wrk.write_script(path, body)
    api = APIS[scenario.api]
    lines = [f'wrk.path = "{api.path}"']
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in api.headers]
    with path.open("a") as script:
        script.write("\n".join(lines) + "\n")
    return path


def probe(base_url: str, scenario: Scenario, body: bytes, timeout_s: float = 10.0) -> None:
    """Send one request and check for a 200 and a complete answer; raise otherwise."""
    if scenario.api == "chat":
        _wrk.probe(base_url, body, scenario.stream, timeout_s)
        return
    api = APIS[scenario.api]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {_wrk.API_KEY}"}
    request = urllib.request.Request(
        base_url + api.path, data=body, method="POST", headers=headers | dict(api.headers)
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            payload = response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{base_url} answered {exc.code}: {exc.read()[:500]!r}") from exc
    last = payload.replace(b"\r\n", b"\n").rstrip().rsplit(b"\n\n", 1)[-1]
    if api.done not in (last if scenario.stream else payload):
        raise RuntimeError(f"bad answer from {base_url}: {payload[-500:]!r}")


def run_scenario(
    scenario: Scenario, up_url: str, targets: Sequence[Target], ctx: Context
) -> list[_report.Row]:
    """Set the upstream's timing, then measure every target that can serve the scenario."""
    targets = [t for t in targets if _base_target(t.name) in scenario.targets]
    if not targets:
        log(f"{scenario.name}: skipped, it runs only on {','.join(scenario.targets)}")
        return []
    configure_upstream(up_url, scenario, ctx.args.jitter_ms)
    body = request_body(scenario)
    script = write_script(ctx.log_dir / f"{scenario.name}.lua", scenario, body)
    rows = []
    for target in targets:
        log(f"{scenario.name}: loading {target.name} ...")
        row = measure(target, scenario, body, script, ctx)
        log(
            f"  {row.requests} requests ({row.errors} errors), {row.rps:.0f} rps, "
            f"p99 {row.p99_ms:.2f} ms, {row.cpu_ms_per_req:.3f} CPU ms/req, "
            f"other load {row.other_pct:.1f}%, steal {row.steal_pct:.1f}%"
        )
        rows.append(row)
    return rows


def _base_target(name: str) -> str:
    """Governed llmux targets serve whatever llmux serves."""
    return "llmux" if name in GOVERNED_TARGETS else name


def log(message: str) -> None:
    """Progress goes to stderr so stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


def machine(args: argparse.Namespace, cpus: Cpus) -> dict[str, object]:
    """What the numbers were measured on."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": model,
        "usable_cores": len(os.sched_getaffinity(0)),
        "target_cpus": cpus.target,
        "load_cpus": cpus.load,
        "llmux_workers": args.workers,
        "repeat": args.repeat,
        "duration_override_s": args.duration,
        "warmup_s": args.warmup,
        "jitter_ms": args.jitter_ms,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def render(
    rows: Sequence[_report.Row],
    ratios: Sequence[_report.Ratio],
    meta: dict[str, object],
    scenarios: Sequence[Scenario],
) -> str:
    """The markdown report."""
    pinning = (
        f"target pinned to cpu {meta['target_cpus']}, wrk + upstream on cpu {meta['load_cpus']}"
        if meta["target_cpus"]
        else "no CPU pinning"
    )
    parts = [
        f"## llmux benchmark, {meta['date']}",
        "",
        f"{meta['cpu']}, {meta['usable_cores']} cores, Python {meta['python']}; {pinning}; "
        f"median of {meta['repeat']} run(s).",
        "",
        *[f"- `{s.name}`: {s.description}" for s in scenarios],
        "",
        _report.rows_table(rows),
    ]
    if ratios:
        parts += ["", "### Tracked ratios", "", _report.ratios_table(ratios)]
    noisy = _report.noise_warnings(rows)
    if noisy:
        parts += ["", "### Noise warnings", "", *noisy]
    return "\n".join(parts)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0] if __doc__ else None
    )
    add = parser.add_argument
    add("--scenario", action="append", choices=list(SCENARIOS), help="repeatable; default all")
    add(
        "--targets",
        default=",".join(TARGETS),
        help="comma list from direct,bare,llmux,llmux-gov (governance on, SQLite),"
        " llmux-dist (governance on, Postgres + Redis)",
    )
    add("--pin-cpu", default="1", help="cores for the target, e.g. 1 or 2-3 (default 1)")
    add("--no-pin", action="store_true", help="do not pin anything to cores")
    add("--duration", type=int, help="seconds of measured load per target (overrides scenarios)")
    add("--warmup", type=int, default=1, help="seconds of unmeasured load before each (0: none)")
    add("--jitter-ms", type=float, default=0.0, help="add 0..J ms (uniform) to upstream latency")
    add("--repeat", type=int, default=1, help="run everything N times, report medians")
    add("--workers", type=int, help="passed to llmux serve --workers")
    add("--json", type=Path, help="also write the results as JSON here")
    add(
        "--llmux-config",
        type=Path,
        help="config template (__LLMUX_PORT__, __UPSTREAM_BASE_URL__, __UPSTREAM_ROOT_URL__)",
    )
    add("--llmux-port", type=int, help="llmux port when --llmux-config fixes it")
    add("--upstream-port", type=int, help="fake upstream port (default: a free one)")
    add("--python", default=sys.executable, help="interpreter for the children")
    add("--keep-logs", action="store_true", help="keep the temp dir with the children's logs")
    add("--fail-on-miss", action="store_true", help="exit 1 when a tracked target is missed")
    args = parser.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    known = (*TARGETS, *GOVERNED_TARGETS)
    unknown = set(args.targets) - set(known)
    if unknown or not args.targets:
        parser.error(f"--targets: unknown {sorted(unknown)}; choose from {','.join(known)}")
    args.scenario = args.scenario or list(SCENARIOS)
    return args


def check_tools(args: argparse.Namespace) -> None:
    """Fail early, with a hint, when wrk or taskset is missing."""
    needed = ["wrk"] + ([] if args.no_pin else ["taskset"])
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: apt-get install -y wrk util-linux")


def terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so the children are stopped."""
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def temp_dir(keep: bool) -> Iterator[Path]:
    """A temp directory for logs and configs, removed after a clean run unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix="llmux-bench-"))
    try:
        yield path
    except BaseException:
        log(f"children's logs kept in {path}")
        raise
    if keep:
        log(f"children's logs kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


def benchmark(args: argparse.Namespace, cpus: Cpus) -> list[_report.Row]:
    """Start everything, run the scenarios, stop everything."""
    rows: list[_report.Row] = []
    with temp_dir(args.keep_logs) as log_dir, contextlib.ExitStack() as stack:
        ctx = Context(args, cpus, log_dir, stack)
        up_url, targets = start_targets(ctx)
        for round_ in range(args.repeat):
            order = targets[round_ % len(targets) :] + targets[: round_ % len(targets)]
            for name in args.scenario:
                rows += run_scenario(SCENARIOS[name], up_url, order, ctx)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    check_tools(args)
    signal.signal(signal.SIGTERM, terminate)
    cpus = split_cpus(None if args.no_pin else args.pin_cpu)
    try:
        runs = benchmark(args, cpus)
    except KeyboardInterrupt:
        log("interrupted; children stopped")
        return 130
    rows = _report.with_added_latency(_report.median_rows(runs))
    scenarios = [SCENARIOS[name] for name in args.scenario]
    ratios = _report.ratios(rows, {s.name: s.goals for s in scenarios})
    meta = machine(args, cpus)
    print(render(rows, ratios, meta, scenarios))
    if args.json:
        report = {
            "meta": meta,
            "rows": [asdict(r) for r in rows],
            "runs": [asdict(r) for r in runs],
            "ratios": [asdict(r) for r in ratios],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    missed = any(r.ok is False for r in ratios)
    return 1 if missed and args.fail_on_miss else 0


if __name__ == "__main__":
    sys.exit(main())
