"""Fallbacks: which model group to try next when a whole group failed. Pure, no I/O.

Three maps of the same shape (`group -> [group2, group3]`, with `"*"` as the default for groups
that have no entry) cover three kinds of failure: `fallbacks` for a group whose attempts ran
out on retryable errors (or whose deployments are all cooling down), `context_window_fallbacks`
for a request too long for the group (`context_length_exceeded`), and
`content_policy_fallbacks` for a refusal by the provider's content filter. A `FallbackWalk`
visits the groups depth first (a fallback group's own fallbacks come before its siblings),
never a group twice, and at most `max_hops` groups per request.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["FallbackPolicy", "FallbackWalk", "Reason"]

DEFAULT_KEY = "*"
MAX_HOPS = 3


class Reason(enum.Enum):
    """Why a group failed, which picks the fallback map."""

    EXHAUSTED = "exhausted"
    CONTEXT_WINDOW = "context_window"
    CONTENT_POLICY = "content_policy"


@dataclass(frozen=True, slots=True)
class FallbackPolicy:
    """The fallback maps of `routing`, plus the switch and the hop bound."""

    enabled: bool = True
    general: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    context_window: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    content_policy: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_hops: int = MAX_HOPS

    def targets(self, group: str, reason: Reason) -> tuple[str, ...]:
        """The configured fallbacks of `group` for `reason`, in order (the `"*"` entry if none)."""
        table = self._table(reason)
        found = table.get(group)
        return found if found is not None else table.get(DEFAULT_KEY, ())

    def restricted_to(self, groups: Iterable[str]) -> FallbackPolicy:
        """The same policy with targets that are not served groups dropped (disabled providers)."""
        known = frozenset(groups)

        def keep(table: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
            return {key: tuple(g for g in value if g in known) for key, value in table.items()}

        return FallbackPolicy(
            self.enabled,
            keep(self.general),
            keep(self.context_window),
            keep(self.content_policy),
            self.max_hops,
        )

    def _table(self, reason: Reason) -> Mapping[str, tuple[str, ...]]:
        if reason is Reason.CONTEXT_WINDOW:
            return self.context_window
        if reason is Reason.CONTENT_POLICY:
            return self.content_policy
        return self.general


class FallbackWalk:
    """One request's way through the fallback groups; `next()` after each failed group."""

    __slots__ = ("_hops", "_pending", "_policy", "_visited")

    def __init__(self, policy: FallbackPolicy, origin: str) -> None:
        self._policy = policy
        self._visited = {origin}
        self._pending: list[list[str]] = []
        self._hops = 0

    def next(self, failed: str, reason: Reason) -> str | None:
        """The group to try after `failed` failed for `reason`, or None when there is none."""
        if not self._policy.enabled or self._hops >= self._policy.max_hops:
            return None
        targets = [g for g in self._policy.targets(failed, reason) if g not in self._visited]
        if targets:
            self._pending.append(list(reversed(targets)))
        while self._pending:
            level = self._pending[-1]
            if not level:
                self._pending.pop()
                continue
            group = level.pop()
            if group in self._visited:
                continue
            self._visited.add(group)
            self._hops += 1
            return group
        return None
