"""Deployments of one group `m` built from config, one provider per deployment."""

from __future__ import annotations

from llmux.config import parse_config
from llmux.routing import Deployment, RoutingTable, build_table


def table(*fields: str, routing: str = "") -> RoutingTable:
    """A table whose group `m` has one deployment per item of `fields` (extra `key: v, ...`).

    Deployment `i` is `p{i}/m`. `routing` holds `routing:` keys (one per line, unindented).
    """
    lines = ["providers:"]
    for index, extra in enumerate(fields):
        entry = f"{{name: m, {extra}}}" if extra else "m"
        lines.append(f"  - name: p{index}\n    type: mock\n    models: [{entry}]")
    if routing:
        lines.append("routing:")
        lines.extend(f"  {line}" for line in routing.splitlines())
    loaded = parse_config("\n".join(lines) + "\n", "routing.yaml", {})
    return build_table(loaded.config, ("mock",))


def group(*fields: str) -> tuple[Deployment, ...]:
    """The deployments of group `m` (see `table`)."""
    return table(*fields).lookup("m")
