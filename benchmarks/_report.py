"""Results of a harness run: one row per (scenario, target), the tracked ratios, and their
markdown tables.

The ratios compare llmux with the bare proxy measured in the same run, and llmux's latency with
calling the upstream directly, against the project's targets. Imports only the standard library.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

CPU_RATIO_MAX = 1.3
CROSS_CPU_RATIO_MAX = 1.5
RPS_RATIO_MIN = 0.9
ADDED_P99_MAX_MS = 5.0
NOISY_PCT = 5.0


@dataclass(frozen=True)
class Row:
    """One target under one scenario. Latencies in ms; ``added_*`` are over ``direct``.

    ``other_pct`` and ``steal_pct`` are the CPU that processes outside the run and the
    hypervisor took meanwhile, in percent of all cores.
    """

    scenario: str
    target: str
    requests: int
    errors: int
    rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_ms_per_req: float
    peak_rss_mib: float
    other_pct: float = 0.0
    steal_pct: float = 0.0
    added_mean_ms: float | None = None
    added_p99_ms: float | None = None


@dataclass(frozen=True)
class Goals:
    """Which tracked targets apply to a scenario.

    ``cpu_vs`` names another scenario: llmux's CPU per request here, divided by llmux's in
    that one, must stay at or below ``CROSS_CPU_RATIO_MAX`` (reported when both ran).
    """

    cpu_ratio: bool = True
    rps_ratio: bool = False
    added_p99: bool = False
    cpu_vs: str | None = None


@dataclass(frozen=True)
class Ratio:
    """One tracked figure; ``ok`` is None where the scenario sets no target for it."""

    scenario: str
    name: str
    value: float
    target: str
    ok: bool | None


def median_rows(rows: Sequence[Row]) -> list[Row]:
    """One row per (scenario, target): the median of each figure over repeated runs."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.scenario, row.target), []).append(row)
    out = []
    for runs in groups.values():
        if len(runs) == 1:
            out.append(runs[0])
            continue
        numbers = {
            f.name: statistics.median(getattr(r, f.name) for r in runs)
            for f in dataclasses.fields(Row)
            if f.name not in ("scenario", "target", "added_mean_ms", "added_p99_ms")
        }
        numbers["requests"] = int(numbers["requests"])
        numbers["errors"] = int(numbers["errors"])
        out.append(Row(scenario=runs[0].scenario, target=runs[0].target, **numbers))
    return out


def with_added_latency(rows: Sequence[Row]) -> list[Row]:
    """Fill ``added_mean_ms``/``added_p99_ms`` from each scenario's ``direct`` row."""
    direct = {row.scenario: row for row in rows if row.target == "direct"}
    out = []
    for row in rows:
        base = direct.get(row.scenario)
        if base is not None and row is not base:
            row = dataclasses.replace(
                row, added_mean_ms=row.mean_ms - base.mean_ms, added_p99_ms=row.p99_ms - base.p99_ms
            )
        out.append(row)
    return out


def find(rows: Iterable[Row], scenario: str, target: str) -> Row | None:
    """The row for ``(scenario, target)``, if measured."""
    return next((r for r in rows if r.scenario == scenario and r.target == target), None)


def ratios(rows: Sequence[Row], goals: Mapping[str, Goals]) -> list[Ratio]:
    """The tracked ratios for every scenario that has the rows they need."""
    out: list[Ratio] = []
    for scenario, goal in goals.items():
        bare, llmux = find(rows, scenario, "bare"), find(rows, scenario, "llmux")
        if bare and llmux and bare.cpu_ms_per_req > 0:
            value = llmux.cpu_ms_per_req / bare.cpu_ms_per_req
            ok = value <= CPU_RATIO_MAX if goal.cpu_ratio else None
            out.append(Ratio(scenario, "llmux/bare CPU per request", value, "≤ 1.3", ok))
        if bare and llmux and bare.rps > 0:
            value = llmux.rps / bare.rps
            ok = value >= RPS_RATIO_MIN if goal.rps_ratio else None
            out.append(Ratio(scenario, "llmux/bare RPS", value, "≥ 0.9", ok))
        if llmux and llmux.added_p99_ms is not None:
            value = llmux.added_p99_ms
            ok = value < ADDED_P99_MAX_MS if goal.added_p99 else None
            out.append(Ratio(scenario, "llmux p99 added over direct (ms)", value, "< 5", ok))
        base = find(rows, goal.cpu_vs, "llmux") if goal.cpu_vs else None
        if base and llmux and base.cpu_ms_per_req > 0:
            value = llmux.cpu_ms_per_req / base.cpu_ms_per_req
            name = f"{scenario} llmux CPU / {base.scenario} llmux CPU"
            ok = value <= CROSS_CPU_RATIO_MAX
            out.append(Ratio(scenario, name, value, f"≤ {CROSS_CPU_RATIO_MAX:g}", ok))
    return out


def markdown(header: Sequence[str], lines: Iterable[Sequence[str]]) -> str:
    """A markdown table, numbers right-aligned."""
    rule = ["---" if i < 2 else "---:" for i in range(len(header))]
    rows = [header, rule, *lines]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def fmt(value: float | None, digits: int) -> str:
    """A number with ``digits`` decimals, signed deltas keep their sign; None is a dash."""
    return "—" if value is None else f"{value:.{digits}f}"


def rows_table(rows: Iterable[Row]) -> str:
    """The results table."""
    header = [
        "scenario",
        "target",
        "requests",
        "errors",
        "RPS",
        "mean ms",
        "p50 ms",
        "p99 ms",
        "+mean ms",
        "+p99 ms",
        "CPU ms/req",
        "peak RSS MiB",
    ]
    lines = [
        [
            row.scenario,
            row.target,
            str(row.requests),
            str(row.errors),
            fmt(row.rps, 0),
            fmt(row.mean_ms, 2),
            fmt(row.p50_ms, 2),
            fmt(row.p99_ms, 2),
            fmt(row.added_mean_ms, 2),
            fmt(row.added_p99_ms, 2),
            fmt(row.cpu_ms_per_req, 3),
            fmt(row.peak_rss_mib, 1),
        ]
        for row in rows
    ]
    return markdown(header, lines)


def ratios_table(items: Iterable[Ratio]) -> str:
    """The tracked-ratio table."""
    marks = {True: "pass", False: "FAIL", None: "(info)"}
    lines = [[r.scenario, r.name, fmt(r.value, 2), r.target, marks[r.ok]] for r in items]
    return markdown(["scenario", "figure", "value", "target", "verdict"], lines)


def noise_warnings(rows: Iterable[Row]) -> list[str]:
    """One line per row measured while something else used over 5 % of the machine."""
    return [
        f"- {r.scenario}/{r.target}: other processes used {r.other_pct:.0f} % and steal "
        f"{r.steal_pct:.0f} % of the cores meanwhile; rerun on a quiet machine"
        for r in rows
        if r.other_pct + r.steal_pct > NOISY_PCT
    ]
