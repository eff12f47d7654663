"""The relay: committed events -> RabbitMQ, at least once, in commit-safe order.

One relay is active per event store (the holder of a session advisory lock on the process's
session connection; others wait as standbys, trying the lock every `lock_interval`). It
reads the global log after its checkpoint, publishes each event to the topic exchange with
publisher confirms, and advances the checkpoint only after the broker has confirmed the
whole batch. Any failure (broker, database, lost leadership) drops the
connections and starts again from the checkpoint, so nothing is lost; a retried batch may
be delivered twice, which consumers absorb by `event_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiormq.abc import AbstractChannel

from . import checkpoints
from .amqp import BROKER_ERRORS, connect_amqp, refused
from .events import START, Position
from .store import PostgresEventStore
from .wakeup import LogWatcher
from .wire import encode_row

__all__ = ["Relay", "RelayStats", "connect_amqp"]

log = logging.getLogger(__name__)

_TRANSIENT: tuple[type[BaseException], ...] = (
    *BROKER_ERRORS,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


class PublishRefused(Exception):
    """The broker did not confirm a message (nack): the batch is published again."""


@dataclasses.dataclass(slots=True)
class RelayStats:
    """What the relay has done, read by the service's `/metrics`."""

    published: int = 0
    batches: int = 0
    restarts: int = 0
    leader: bool = False
    connected: bool = False  # a channel to the broker is open (the leader, publishing)
    position: Position = START
    last_published_at: float = 0.0


class Relay:
    """Publishes the global log of `store` to the topic exchange `exchange`."""

    def __init__(
        self,
        store: PostgresEventStore,
        amqp_url: str,
        exchange: str,
        *,
        name: str = "relay",
        batch_size: int = 1000,
        poll_interval: float = 0.5,
        retry_delay: float = 0.5,
        lock_interval: float = 1.0,
    ) -> None:
        if store.session is None:
            raise ValueError("the relay needs the store's dsn for its leader lock")
        self.store = store
        self.amqp_url = amqp_url
        self.exchange = exchange
        self.name = name
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.lock_interval = lock_interval
        self.stats = RelayStats()

    async def run(self) -> None:
        """Relay forever, surviving broker, database and leadership loss (cancel to stop)."""
        while True:
            try:
                async with self._leadership() as lost:
                    await self._relay_until(lost)
            except Exception as exc:  # whatever broke, start over from the checkpoint
                self.stats.restarts += 1
                expected = isinstance(exc, (*_TRANSIENT, PublishRefused))
                log.log(
                    logging.WARNING if expected else logging.ERROR,
                    "relay interrupted (%s: %s); resuming from the checkpoint",
                    type(exc).__name__,
                    exc,
                    exc_info=not expected,
                )
            await asyncio.sleep(self.retry_delay)

    async def run_once(self) -> int:
        """Publish everything up to the fence, then return how many events went out."""
        published = self.stats.published
        async with self._leadership(wait=False) as lost, self._channel() as channel:
            await self._drain(channel, lost, await checkpoints.load(self.store.pool, self.name))
        return self.stats.published - published

    # -- internals -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _leadership(self, *, wait: bool = True) -> AsyncIterator[asyncio.Event]:
        """Hold the leader lock for the block (waiting for it, as a standby, when `wait`);
        yields the event set when the lock's session is lost."""
        session = self.store.session
        assert session is not None  # the store has a dsn (checked in __init__)
        while (held := await session.try_lock(f"relay:{self.name}")) is None:
            if not wait:
                raise RuntimeError(f"another {self.name} holds the leader lock")
            await asyncio.sleep(self.lock_interval)
        self.stats.leader = True
        log.info("%s: leader, publishing to %s", self.name, self.exchange)
        try:
            yield held.lost
        finally:
            self.stats.leader = False
            await held.release()

    @contextlib.asynccontextmanager
    async def _channel(self) -> AsyncIterator[AbstractChannel]:
        connection = await connect_amqp(self.amqp_url, f"{self.exchange}:{self.name}")
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            self.stats.connected = True
            yield channel
        finally:
            self.stats.connected = False
            with contextlib.suppress(Exception):
                await connection.close()

    async def _relay_until(self, lost: asyncio.Event) -> None:
        watcher = self.store.watcher(poll_interval=self.poll_interval)
        try:
            async with watcher, self._channel() as channel:
                # the leader alone moves the checkpoint: read it once per leadership
                position = await checkpoints.load(self.store.pool, self.name)
                while True:
                    seen = watcher.generation
                    position, held_back = await self._drain(channel, lost, position)
                    await self._idle(watcher, seen, held_back, channel, lost)
        finally:
            self.store.forget(watcher)

    @staticmethod
    async def _idle(
        watcher: LogWatcher,
        seen: int,
        fenced: bool,
        channel: AbstractChannel,
        lost: asyncio.Event,
    ) -> None:
        """Until the log may have grown; raise at once if the broker or the lock goes away."""
        woken = asyncio.ensure_future(watcher.settle(seen, behind_fence=fenced))
        gone = asyncio.ensure_future(lost.wait())
        # every read of `channel.closing` registers a new observer on the channel, kept
        # until that observer is done: cancel it, or each wake-up leaks one for good
        closing = channel.closing
        try:
            await asyncio.wait({woken, gone, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            gone.cancel()
            closing.cancel()
        if channel.is_closed:
            raise ConnectionError("the broker closed the relay's channel")
        if lost.is_set():
            raise ConnectionError("lost the leader lock's connection")

    async def _drain(
        self, channel: AbstractChannel, lost: asyncio.Event, position: Position
    ) -> tuple[Position, bool]:
        """Publish everything after `position` up to the fence; the position reached, and
        whether committed events wait behind the fence (`LogPage.held_back`)."""
        held_back = False
        pages = self.store.iter_pages(position, batch_size=self.batch_size)
        async with contextlib.aclosing(pages):
            async for page in pages:
                held_back, rows = page.held_back, page.rows
                if not rows:
                    break
                if lost.is_set():
                    raise ConnectionError("lost the leader lock's connection")
                await self._publish(channel, rows)
                position = Position(rows[-1][1], rows[-1][0])
                # at least once anyway: a crash that forgets this only republishes a little
                await checkpoints.save(
                    self.store.pool, self.name, position, synchronous_commit=False
                )
                self.stats.published += len(rows)
                self.stats.batches += 1
                self.stats.position = position
                self.stats.last_published_at = time.time()
        return position, held_back

    async def _publish(self, channel: AbstractChannel, rows: list[Any]) -> None:
        exchange = self.exchange
        lost = await refused(
            channel.basic_publish(body, exchange=exchange, routing_key=key, properties=props)
            for key, body, props in map(encode_row, rows)
        )
        if lost:
            raise PublishRefused(f"{lost} of {len(rows)} messages not confirmed")
