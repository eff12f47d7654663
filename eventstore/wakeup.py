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

from .pg import Pool
from .session import Session

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
        session: Session | None,
        *,
        poll_interval: float = 0.5,
        categories: frozenset[str] | None = None,
    ) -> None:
        self._session = session
        self.poll_interval = poll_interval
        self.categories = categories  # None: every append wakes it
        self.generation = 0
        self._changed = asyncio.Event()
        self._fence_wait = 0.0

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
        if self._session is not None:
            await self._session.listen(CHANNEL, self._on_notify)

    async def close(self) -> None:
        if self._session is not None:
            self._session.unlisten(CHANNEL, self._on_notify)

    async def __aenter__(self) -> LogWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _on_notify(self, payload: str | None) -> None:
        # None: the session (re)connected, anything may have been appended meanwhile
        self.poke(payload.split(",") if payload else None)


class Notifier:
    """Coalesces appends into at most one `pg_notify` per `interval`, sent after commit.

    With a `session` it sends on the process's session connection, so it never competes
    with writers for a pool connection; without one it borrows from the pool.
    """

    def __init__(
        self, pool: Pool, *, session: Session | None = None, interval: float = 0.002
    ) -> None:
        self._pool = pool
        self._session = session
        self._interval = interval
        self._pending = False
        self._categories: set[str] = set()
        self._task: asyncio.Task[None] | None = None
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
        if self._session is None:
            await self._pool.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
        else:
            await self._session.notify(CHANNEL, payload)

    async def _run(self) -> None:
        while self._pending:
            self._pending = False
            payload = ",".join(sorted(self._categories))
            self._categories.clear()
            try:
                await self._notify(payload)
            except Exception as exc:  # best effort: readers poll anyway
                log.debug("notify failed (%r); readers fall back to polling", exc)
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
