"""`SpendWriter`: batching, and no spend lost or counted twice through outages, spills and crashes.

Logic runs on the in-memory store; outages use the local Postgres (a schema of each test's own)
behind a `TcpProxy` that the test cuts (Postgres looks down) and resumes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from llmux.governance.keys import hash_key
from llmux.governance.spend import SpendWriter
from llmux.store import SpendFilter, Store, open_store
from llmux.store.records import Key, SpendRow
from tests.governance._outage import Outage, eventually, postgres_outage

COST = 0.25
"""Exact in binary floating point, so spend sums compare exactly."""
TOKEN = hash_key("sk-spend-writer-test")


def row(n: int) -> SpendRow:
    """Spend row number `n` of the key `TOKEN`."""
    now = datetime.now(UTC)
    return SpendRow(
        request_id=f"req-{n}",
        token=TOKEN,
        model_group="gpt-test",
        provider="openai",
        input_tokens=10,
        output_tokens=5,
        cost=COST,
        started_at=now,
        ended_at=now,
    )


async def record(writer: SpendWriter, numbers: Iterable[int]) -> None:
    """Record rows `numbers` as a busy gateway would, yielding to the loop now and then."""
    for n in numbers:
        writer.record(row(n))
        if n % 50 == 0:
            await asyncio.sleep(0)


async def landed(store: Store) -> int:
    """How many spend rows the store holds."""
    return (await store.spend_totals(SpendFilter())).requests


async def holds(store: Store, count: int) -> bool:
    """Whether the store holds exactly `count` spend rows."""
    return await landed(store) == count


@pytest.fixture
async def outage() -> AsyncIterator[Outage]:
    """Postgres directly and through a proxy the test can cut, with the key `TOKEN` in it."""
    async with postgres_outage() as ready:
        await ready.direct.create(Key(token=TOKEN))
        yield ready


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The in-memory store, or a SQLite file."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/llmux.db"
    opened = await open_store(url)
    yield opened
    await opened.close()


async def test_rows_recorded_before_start_go_out_in_full_batches(store: Store) -> None:
    """Queued rows are written in batches of `batch_size`, the remainder last."""
    batches: list[int] = []
    writer = SpendWriter(
        store, batch_size=500, flush_interval=3600, on_flush=lambda n, _: batches.append(n)
    )
    await record(writer, range(1200))
    await writer.start()
    await writer.close()
    assert batches == [500, 500, 200]
    assert await landed(store) == 1200


async def test_a_full_batch_is_written_without_waiting_for_the_interval(store: Store) -> None:
    """Reaching `batch_size` wakes the writer even when the flush interval is an hour."""
    writer = SpendWriter(store, batch_size=10, flush_interval=3600)
    await writer.start()
    await asyncio.sleep(0)  # the writer finds nothing to write and waits for an hour
    for n in range(10):
        writer.record(row(n))
    await eventually(lambda: holds(store, 10))
    assert writer.queue_depth == 0
    await writer.close()


async def test_close_writes_a_partial_batch(store: Store) -> None:
    """Rows short of a batch are written by `close`, not left behind."""
    writer = SpendWriter(store, batch_size=500, flush_interval=3600)
    await writer.start()
    await record(writer, range(3))
    await writer.close()
    assert await landed(store) == 3


async def test_spill_file_left_by_a_crash_is_replayed_at_start(
    store: Store, tmp_path: Path
) -> None:
    """`start` writes what an earlier process spilled, skips a torn last line, empties the file."""
    spill = tmp_path / "spend.jsonl"
    lines = b"".join(msgspec.json.encode(row(n)) + b"\n" for n in range(3))
    spill.write_bytes(lines + msgspec.json.encode(row(3))[:40])
    writer = SpendWriter(store, spill_path=spill)
    await writer.start()
    await writer.close()
    assert await landed(store) == 3
    assert spill.stat().st_size == 0


async def test_rows_recorded_through_an_outage_land_exactly_once(
    outage: Outage, tmp_path: Path
) -> None:
    """2000 rows, Postgres down for part of it: every row lands once, and the key's spend too."""
    errors: list[Exception] = []
    writer = SpendWriter(
        outage.flaky,
        batch_size=100,
        flush_interval=0.02,
        max_buffer=300,
        spill_path=tmp_path / "spend.jsonl",
        on_error=errors.append,
        retry_min=0.01,
        retry_max=0.2,
    )
    await writer.start()
    await record(writer, range(600))
    await outage.proxy.cut()
    await record(writer, range(600, 1500))
    await eventually(lambda: bool(errors) and writer.spilled > 0)
    await outage.proxy.resume()
    await record(writer, range(1500, 2000))
    await writer.close()
    assert await landed(outage.direct) == 2000
    key = await outage.direct.get_key(TOKEN)
    assert key is not None and key.spend == 2000 * COST
    assert writer.spilled == 0 and (tmp_path / "spend.jsonl").stat().st_size == 0


async def test_rows_past_max_buffer_spill_and_a_new_writer_replays_them(
    outage: Outage, tmp_path: Path
) -> None:
    """Store down: overflow goes to the spill file, `close` spills the rest; a restart lands all."""
    spill = tmp_path / "spend.jsonl"
    await outage.proxy.cut()
    first = SpendWriter(
        outage.flaky,
        batch_size=10,
        max_buffer=5,
        spill_path=spill,
        drain_timeout=0.2,
        flush_interval=0.01,
        retry_min=0.01,
        retry_max=0.05,
    )
    await first.start()
    await record(first, range(50))
    await eventually(lambda: first.spilled == 45)
    await first.close()
    assert first.spilled == 50 and first.queue_depth == 0
    assert await landed(outage.direct) == 0
    await outage.proxy.resume()
    second = SpendWriter(outage.flaky, batch_size=10, spill_path=spill)
    await second.start()
    await second.close()
    assert await landed(outage.direct) == 50
    assert spill.stat().st_size == 0


async def test_without_a_spill_file_rows_past_max_buffer_are_dropped_and_counted(
    outage: Outage,
) -> None:
    """No spill path: memory stays bounded by `max_buffer`; what did not fit is counted."""
    await outage.proxy.cut()
    writer = SpendWriter(
        outage.flaky,
        batch_size=10,
        max_buffer=5,
        flush_interval=0.01,
        retry_min=0.01,
        retry_max=0.05,
    )
    await writer.start()
    await record(writer, range(12))
    await eventually(lambda: writer.dropped == 7)
    await outage.proxy.resume()
    await writer.close()
    assert await landed(outage.direct) == 5
