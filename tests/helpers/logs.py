"""Reading what the gateway logged: its JSON lines on stdout (captured by pytest's capsys)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["events", "log_lines"]


def log_lines(out: str) -> list[dict[str, Any]]:
    """Every JSON line written to stdout."""
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def events(out: str, name: str) -> list[dict[str, Any]]:
    """The JSON lines of one event name."""
    return [line for line in log_lines(out) if line.get("event") == name]
