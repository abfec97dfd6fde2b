"""The process's serving state, read by readiness probes: starting, ready or draining."""

from __future__ import annotations

from typing import Literal

__all__ = ["Lifecycle"]

State = Literal["starting", "ready", "draining"]


class Lifecycle:
    """Starting until the sites listen, ready while serving, draining after SIGTERM."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: State = "starting"

    @property
    def ready(self) -> bool:
        """Whether new traffic should be sent here."""
        return self.state == "ready"
