"""Audit events for hard-budget refusals, written off the request path.

The first refusal by a budget line in its period appends one `budget_exceeded` entry to the
audit log: actor `gateway`, the refusing level's entity as the object (a key by its hash), and
the limit, the spend, what requests in flight held and the refused request's estimate as
`after`. Later refusals by the same line in the same period add nothing, so a client hammering
an exhausted budget cannot flood the log. Deduplication is per process (N replicas write at
most N entries per line and period). A store that is down loses no answer: the refusal is
served at once, and the event is retried at the line's next refusal.
"""

from __future__ import annotations

import asyncio
from typing import Final

from llmux.errors import BudgetExceeded
from llmux.log import get_logger
from llmux.store.base import Store
from llmux.store.records import AuditEntry

__all__ = ["BudgetEvents"]

_REMEMBERED: Final = 10_000
"""Budget lines whose refusal was recorded, kept to skip repeats; the oldest are forgotten."""

_Line = tuple[object, ...]


class BudgetEvents:
    """Records each budget line's first refusal per period in the audit log."""

    def __init__(self, store: Store, *, remembered: int = _REMEMBERED) -> None:
        self._store = store
        self._remembered = remembered
        self._recorded: dict[_Line, None] = {}  # insertion order: the oldest goes first
        self._writes: set[asyncio.Task[None]] = set()

    def report(self, refusal: BudgetExceeded, request_id: str | None) -> None:
        """Record `refusal` unless its line was already recorded in this period."""
        event = refusal.event
        if event is None:
            return
        line = (event["level"], event["subject"], event["model"], event["period"])
        if line in self._recorded:
            return
        self._recorded[line] = None
        if len(self._recorded) > self._remembered:
            del self._recorded[next(iter(self._recorded))]
        entry = AuditEntry(
            actor="gateway",
            action="budget_exceeded",
            object_type=str(event["level"]).removesuffix("_model"),
            object_id=str(event["subject"]),
            after=dict(event),
            request_id=request_id,
        )
        write = asyncio.create_task(self._write(line, entry), name="llmux-budget-event")
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)

    async def _write(self, line: _Line, entry: AuditEntry) -> None:
        try:
            await self._store.add_audit(entry)
        except Exception as error:  # the event must never fail the refused request
            self._recorded.pop(line, None)
            get_logger().warning(
                "budget_event_unrecorded", level=entry.object_type, error=str(error)
            )

    async def close(self) -> None:
        """Wait for the writes in flight."""
        if self._writes:
            await asyncio.gather(*self._writes)
