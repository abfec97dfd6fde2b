"""Outage tests' tools: a TCP proxy in front of a real server, and a Postgres store behind one.

`TcpProxy` forwards to a real server until told to cut or hold.

`cut()` closes the listening socket and aborts every open connection (the server looks down:
connections are refused); `resume()` listens again on the same port. `hold(containing)` keeps
forwarding requests but holds the server's replies from the first one that contains those
bytes until `release()`; `reply_held` is set then, so a test knows the server has answered a
request its client has not seen yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

from llmux.store import Store, open_store
from llmux.store.postgres import PostgresStore

__all__ = ["PG_URL", "Outage", "TcpProxy", "eventually", "postgres_outage"]

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

_CHUNK = 65536


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port`; see the module docstring."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._replies = asyncio.Event()
        self._replies.set()
        self._marker = b""
        self.reply_held = asyncio.Event()
        self.port = 0

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same port after a cut)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and abort every open one."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def resume(self) -> None:
        """Accept connections again."""
        await self.start()

    def hold(self, containing: bytes = b"") -> None:
        """Hold the server's replies from the first containing `containing` until `release()`."""
        self._marker = containing
        self.reply_held.clear()
        self._replies.clear()

    def release(self) -> None:
        """Deliver held replies and forward normally again."""
        self._replies.set()

    async def close(self) -> None:
        """Stop for good."""
        self.release()
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            self._forget(task, writer)
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, gated=False),
                self._pump(up_reader, writer, gated=True),
            )
        finally:
            for end in (writer, up_writer):
                end.transport.abort()
                self._writers.discard(end)
            self._forget(task, writer)

    def _forget(self, task: asyncio.Task[None], writer: asyncio.StreamWriter) -> None:
        self._tasks.discard(task)
        self._writers.discard(writer)

    def _holds(self, data: bytes) -> bool:
        return self.reply_held.is_set() or self._marker in data

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, gated: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                if gated and not self._replies.is_set() and self._holds(data):
                    self.reply_held.set()
                    await self._replies.wait()
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


@dataclass(frozen=True, slots=True)
class Outage:
    """One Postgres schema seen twice: `direct` (the truth) and `flaky` (through `proxy`)."""

    direct: Store
    flaky: Store
    proxy: TcpProxy


@contextlib.asynccontextmanager
async def postgres_outage() -> AsyncIterator[Outage]:
    """A fresh schema on the local Postgres, reachable directly and through a `TcpProxy`."""
    schema = f"llmux_test_{uuid.uuid4().hex[:12]}"
    direct = await open_store(f"{PG_URL}?schema={schema}")
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    flaky = await PostgresStore.open(
        f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres",
        schema=schema,
        connect_timeout=1.0,
        acquire_timeout=1.0,
        command_timeout=5.0,
    )
    try:
        yield Outage(direct, flaky, proxy)
    finally:
        await proxy.close()
        await flaky.close()
        await direct.close()
        conn = await asyncpg.connect(PG_URL)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], *, within: float = 10.0
) -> None:
    """Poll `predicate` until it holds; fail after `within` seconds (a hang guard, not a bound)."""
    async with asyncio.timeout(within):
        while True:
            outcome = predicate()
            if outcome if isinstance(outcome, bool) else await outcome:
                return
            await asyncio.sleep(0.005)
