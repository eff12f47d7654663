"""Wake-ups for global-log readers: LISTEN/NOTIFY across processes, direct pokes inside one.

A NOTIFY inside the appending transaction would serialize every committing writer on
Postgres' notification-queue lock, so autocommit appends only *poke* a `Notifier`, which
sends one coalesced `pg_notify` per interval from a pool connection after the commit.
Readers never depend on a notification arriving: they also poll.

A notification names the stream categories appended to (`order,cart`), so a reader that
follows some categories only (a projection of products) is not woken by the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import asyncpg

from .pg import Pool

__all__ = ["CHANNEL", "LogWatcher", "Notifier"]

log = logging.getLogger(__name__)

CHANNEL = "microshop_events"


class LogWatcher:
    """Tells a reader that the global log may have grown.

    `generation` increases on every wake-up; a reader notes it before reading and passes it
    to `wait`, so a notification that lands between its read and its wait is never lost.
    """

    def __init__(
        self,
        dsn: str | None,
        *,
        poll_interval: float = 0.5,
        categories: frozenset[str] | None = None,
    ) -> None:
        self._dsn = dsn
        self.poll_interval = poll_interval
        self.categories = categories  # None: every append wakes it
        self.generation = 0
        self._changed = asyncio.Event()
        self._fence_wait = 0.0
        self._task: asyncio.Task[None] | None = None

    def poke(self, categories: Iterable[str] | None = None) -> None:
        """The log may have grown (in `categories`; None: anywhere)."""
        if (
            categories is not None
            and self.categories is not None
            and self.categories.isdisjoint(categories)
        ):
            return
        self.generation += 1
        self._changed.set()

    async def wait(self, since: int, timeout: float | None = None) -> bool:
        """Until a wake-up after `since` or `timeout` (default: the poll interval)."""
        if self.generation != since:
            return True
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_interval if timeout is None else timeout):
                await self._changed.wait()
        return self.generation != since

    async def settle(self, since: int, *, behind_fence: bool) -> bool:
        """Wait after a read that got everything up to the fence.

        `behind_fence`: committed events wait behind a transaction still open. Its commit
        may send no wake-up (any transaction that writes holds the fence, not only
        appends), so then look again soon, a little later each time; otherwise wait for a
        wake-up as usual.
        """
        if not behind_fence:
            self._fence_wait = 0.0
            return await self.wait(since)
        self._fence_wait = min(max(self._fence_wait * 2, 0.001), self.poll_interval)
        return await self.wait(since, timeout=self._fence_wait)

    async def start(self) -> None:
        if self._dsn is not None and self._task is None:
            self._task = asyncio.create_task(self._listen(), name="log-watcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> LogWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self.poke(payload.split(",") if isinstance(payload, str) and payload else None)

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                delay = 0.1
                self.poke()  # anything appended while we were not listening
                await lost.wait()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.debug("log watcher: %s; polling until it reconnects", exc)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=1)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class Notifier:
    """Coalesces appends into at most one `pg_notify` per `interval`, sent after commit.

    With a `dsn` it sends on a connection of its own, so it never competes with writers
    for a pool connection; without one it borrows from the pool.
    """

    def __init__(self, pool: Pool, *, dsn: str | None = None, interval: float = 0.002) -> None:
        self._pool = pool
        self._dsn = dsn
        self._interval = interval
        self._pending = False
        self._categories: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self.local: list[LogWatcher] = []

    def poke(self, category: str) -> None:
        """An append to `category` committed: wake local readers now, the others soon."""
        for watcher in self.local:
            watcher.poke((category,))
        self._categories.add(category)
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="notifier")

    async def _notify(self, payload: str) -> None:
        if self._dsn is None:
            await self._pool.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
            return
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn)
        await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    async def _run(self) -> None:
        while self._pending:
            self._pending = False
            payload = ",".join(sorted(self._categories))
            self._categories.clear()
            try:
                await self._notify(payload)
            except Exception as exc:  # best effort: readers poll anyway
                log.debug("notify failed (%r); readers fall back to polling", exc)
                if self._conn is not None:
                    self._conn.terminate()
                    self._conn = None
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None
