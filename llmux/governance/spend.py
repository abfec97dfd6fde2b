"""The spend ledger's writer: rows are recorded in O(1) and written in batches, off the hot path.

`SpendWriter.record` only appends to an in-memory queue; one background task writes the queue
to the store in batches (`Store.add_spend`), every `flush_interval` seconds or as soon as a
batch is full. Imports `llmux.store` and `llmux.log` only.

Guarantees, and how they hold:

* No row is lost. A failed batch (`StoreUnavailable` or any other error) stays at the head of
  the queue and is retried with capped exponential backoff. While the store is down the queue
  is bounded by `max_buffer`: newer rows past it are appended to the spill file (JSON lines,
  fsync'd per batch), which is replayed, then truncated, once the store answers again.
  `start()` replays whatever an earlier process left in it (crash recovery), and `close()`
  drains the queue for at most `drain_timeout` seconds, then spills what is left.
* No row is counted twice. A batch is removed from the queue (or the file's read offset moves
  past it) only after `add_spend` returned, so a batch that failed after it committed is sent
  again; `add_spend` skips rows whose `request_id` it already holds. Replays rely on the same.
* Without a spill path (development, in-memory store) rows past `max_buffer` are dropped and
  counted in `dropped`, with a warning: memory stays bounded.
* A line torn by a crash mid-append is skipped with a warning when replayed; every line an
  append finished writing was fsync'd.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Final, final

import msgspec

from llmux.log import get_logger
from llmux.store.base import Store
from llmux.store.records import SpendRow

__all__ = ["ErrorHook", "FlushHook", "SpendWriter"]

FlushHook = Callable[[int, float], None]
"""Called after each batch lands: (rows in the batch, seconds `add_spend` took)."""
ErrorHook = Callable[[Exception], None]
"""Called for each failed write or spill, before the writer backs off and retries."""

_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(SpendRow)


class _Backoff:
    """Doubling delays from `first` up to `cap`; `reset` after a success."""

    def __init__(self, first: float, cap: float) -> None:
        self._first = first
        self._cap = cap
        self._delay = first

    def next(self) -> float:
        delay = self._delay
        self._delay = min(self._cap, delay * 2)
        return delay

    def reset(self) -> None:
        self._delay = self._first


class _SpillFile:
    """The overflow file: append-only JSON lines, read from a committed offset, then truncated.

    Its methods block on disk I/O and run in a worker thread. A thread lock serialises them
    because a cancelled `to_thread` call keeps running: `close()` may spill while the
    background task's last append is still writing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending = 0
        self._offset = 0
        self._lock = threading.Lock()

    def open(self) -> None:
        """Count the rows an earlier process left; end a torn last line so appends stay whole."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lines, last = 0, b"\n"
            with self.path.open("a+b") as file:
                file.seek(0)
                for chunk in iter(lambda: file.read(1 << 20), b""):
                    lines += chunk.count(b"\n")
                    last = chunk[-1:]
                if last != b"\n":
                    file.write(b"\n")
                    _fsync(file)
                    lines += 1
            self.pending = lines
            self._offset = 0

    def append(self, rows: Sequence[SpendRow]) -> None:
        """Write `rows` at the end and fsync before returning."""
        lines = b"".join(_ENCODER.encode(row) + b"\n" for row in rows)
        with self._lock, self.path.open("ab") as file:
            file.write(lines)
            _fsync(file)
            self.pending += len(rows)

    def read(self, limit: int) -> tuple[list[SpendRow], int, int]:
        """Up to `limit` rows after the committed offset: (rows, lines read, offset after them)."""
        with self._lock, self.path.open("rb") as file:
            file.seek(self._offset)
            rows: list[SpendRow] = []
            lines = 0
            while lines < limit and (line := file.readline()):
                lines += 1
                row = _decode_line(line)
                if row is not None:
                    rows.append(row)
            return rows, lines, file.tell()

    def commit(self, lines: int, offset: int) -> None:
        """Mark everything before `offset` as written; truncate the file once it is all written."""
        with self._lock:
            self._offset = offset
            # Nothing left to read means nothing is pending, whatever the count said.
            self.pending = self.pending - lines if lines else 0
            if self.pending == 0:
                with self.path.open("wb") as file:
                    _fsync(file)
                self._offset = 0


def _fsync(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())


def _decode_line(line: bytes) -> SpendRow | None:
    if not line.strip():
        return None
    try:
        return _DECODER.decode(line)
    except msgspec.DecodeError:
        # Only a crash in the middle of an append can leave such a line; the rest are intact.
        get_logger().warning(
            "spend_spill_line_unreadable", line=line[:200].decode(errors="replace")
        )
        return None


@final
class SpendWriter:
    """Batches spend rows into the store in the background; see the module docstring.

    Args:
        store: where rows go, through the idempotent `add_spend`.
        batch_size: rows per `add_spend` call.
        flush_interval: seconds between flushes of a partial batch.
        max_buffer: rows held in memory while the store is down; the rest spill to disk.
        spill_path: the spill file (None: drop rows past `max_buffer`).
        clock: measures how long each batch took, for `on_flush`.
        on_flush: see `FlushHook`. on_error: see `ErrorHook`.
        drain_timeout: how long `close()` keeps trying the store before spilling the rest.
        retry_min, retry_max: the backoff between retries while the store fails.
    """

    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_buffer: int = 100_000,
        spill_path: Path | None = None,
        clock: Callable[[], float] = time.perf_counter,
        on_flush: FlushHook | None = None,
        on_error: ErrorHook | None = None,
        drain_timeout: float = 5.0,
        retry_min: float = 0.05,
        retry_max: float = 5.0,
    ) -> None:
        if batch_size < 1 or max_buffer < 1:
            raise ValueError("batch_size and max_buffer must be at least 1")
        self._store = store
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._spill = _SpillFile(spill_path) if spill_path is not None else None
        self._clock = clock
        self._on_flush = on_flush
        self._on_error = on_error
        self._drain_timeout = drain_timeout
        self._backoff = _Backoff(retry_min, retry_max)
        self._rows: deque[SpendRow] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        """Rows given up because `max_buffer` was full and there is no spill file."""

    @property
    def queue_depth(self) -> int:
        """Rows waiting in memory."""
        return len(self._rows)

    @property
    def spilled(self) -> int:
        """Rows waiting in the spill file."""
        return self._spill.pending if self._spill is not None else 0

    def record(self, row: SpendRow) -> None:
        """Queue one row for writing; O(1), never blocks, never raises."""
        self._rows.append(row)
        if len(self._rows) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        """Start the background writer; rows left in the spill file are replayed first."""
        if self._spill is not None:
            await asyncio.to_thread(self._spill.open)
        self._task = asyncio.create_task(self._run(), name="llmux-spend-writer")

    async def close(self) -> None:
        """Write everything queued, for at most `drain_timeout` s; spill what the store refused.

        Stop recording first: a row recorded once `close` has begun may be spilled rather than
        written, and one recorded after it returned is never written.
        """
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=self._drain_timeout)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self._spill_rows(len(self._rows))

    async def _run(self) -> None:
        while True:
            try:
                await self._replay_spilled()
                await self._flush_queue()
            except Exception as exc:  # any failure: keep the rows, back off, retry
                self._failed(exc)
                await self._spill_overflow()
                await asyncio.sleep(self._backoff.next())
                continue
            self._recovered()
            if self._stopping:
                return
            await self._idle()

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._flush_interval):
                await self._wake.wait()
        self._wake.clear()

    async def _flush_queue(self) -> None:
        while self._rows:
            await self._spill_overflow()
            batch = list(itertools.islice(self._rows, self._batch_size))
            await self._write(batch)
            # Only this task removes rows, from the left; `record` appends on the right.
            for _ in batch:
                self._rows.popleft()

    async def _replay_spilled(self) -> None:
        while self._spill is not None and self._spill.pending:
            rows, lines, offset = await asyncio.to_thread(self._spill.read, self._batch_size)
            if rows:
                await self._write(rows)
            await asyncio.to_thread(self._spill.commit, lines, offset)
            await self._spill_overflow()

    async def _write(self, rows: list[SpendRow]) -> None:
        started = self._clock()
        await self._store.add_spend(rows)
        if self._on_flush is not None:
            self._on_flush(len(rows), self._clock() - started)

    async def _spill_overflow(self) -> None:
        await self._spill_rows(len(self._rows) - self._max_buffer)

    async def _spill_rows(self, count: int) -> None:
        """Move the newest `count` queued rows to the spill file (or drop them if there is none)."""
        if count <= 0:
            return
        rows = [self._rows.pop() for _ in range(count)]
        rows.reverse()
        if self._spill is None:
            self.dropped += count
            get_logger().warning("spend_rows_dropped", rows=count, reason="no spill file")
            return
        try:
            await asyncio.to_thread(self._spill.append, rows)
        except OSError as exc:
            self._rows.extend(rows)  # keep them in memory rather than lose them
            self._report(exc)
            get_logger().error("spend_spill_failed", path=str(self._spill.path), error=str(exc))

    def _failed(self, exc: Exception) -> None:
        self._report(exc)
        if not self._failing:
            self._failing = True
            get_logger().warning(
                "spend_store_unavailable",
                error=str(exc) or type(exc).__name__,
                queued=len(self._rows),
                message="spend rows are buffered and retried",
            )

    def _recovered(self) -> None:
        self._backoff.reset()
        if self._failing:
            self._failing = False
            get_logger().info("spend_store_recovered", queued=len(self._rows))

    def _report(self, exc: Exception) -> None:
        if self._on_error is not None:
            self._on_error(exc)
