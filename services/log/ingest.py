"""Consume shipped log batches from `{ns}.logs` and store them in Postgres in batches.

Messages are acknowledged only after their lines are committed, so a log-service or
database outage loses nothing: unacknowledged batches wait in the durable queue (a batch
stored just before a lost acknowledgement may be stored twice). Postgres trouble is retried
with backoff while the prefetch limit holds the rest back in the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging

import asyncpg
from aiormq.abc import AbstractChannel, DeliveredMessage

from eventstore.amqp import BROKER_ERRORS, QUORUM, Queues, connect_amqp
from eventstore.pg import Pool
from microshop.logs import declare_log_topology

from .lines import parse_batch
from .store import insert_rows

__all__ = ["IngestStats", "Ingestor"]

log = logging.getLogger(__name__)

_DATABASE_TROUBLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclasses.dataclass(slots=True)
class IngestStats:
    stored: int = 0
    rejected: int = 0
    batches: int = 0
    database_retries: int = 0


class Ingestor:
    """Moves lines from the `{ns}.logs` queue into the `logs` table."""

    def __init__(
        self,
        pool: Pool,
        *,
        amqp_url: str,
        namespace: str,
        prefetch: int = 64,
        linger: float = 0.05,
        queue_type: str = QUORUM,
    ) -> None:
        self.pool = pool
        self.amqp_url = amqp_url
        self.namespace = namespace
        self.prefetch = prefetch
        self.linger = linger
        self.stats = IngestStats()
        self.ready = asyncio.Event()
        self.queues = Queues(queue_type)

    async def run(self) -> None:
        """Consume until cancelled, reconnecting to the broker after any trouble."""
        backoff = 0.5
        while True:
            try:
                await self._consume()
            except BROKER_ERRORS as exc:
                self.ready.clear()
                log.warning(
                    "log intake interrupted (%s: %s); reconnecting in %.1fs",
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:  # pragma: no cover - _consume only returns by raising
                backoff = 0.5

    async def _consume(self) -> None:
        connection = await connect_amqp(self.amqp_url, f"{self.namespace}.logs:log-service")
        try:
            channel = await connection.channel()
            _, queue = await declare_log_topology(channel, self.namespace, self.queues)
            await channel.basic_qos(prefetch_count=self.prefetch)
            pending: list[DeliveredMessage] = []
            arrived = asyncio.Event()

            async def on_message(message: DeliveredMessage) -> None:
                pending.append(message)
                arrived.set()

            await channel.basic_consume(queue, on_message, no_ack=False)
            self.ready.set()
            storing = asyncio.create_task(self._store_arrivals(channel, pending, arrived))
            closing = channel.closing  # an observer registered on the channel: cancel it
            try:
                await asyncio.wait({storing, closing}, return_when="FIRST_COMPLETED")
                if storing.done():
                    storing.result()
                raise ConnectionError("the log queue's channel closed")
            finally:
                closing.cancel()
                storing.cancel()
                with contextlib.suppress(asyncio.CancelledError, *BROKER_ERRORS):
                    await storing
        finally:
            self.ready.clear()
            with contextlib.suppress(Exception):
                await connection.close()

    async def _store_arrivals(
        self, channel: AbstractChannel, pending: list[DeliveredMessage], arrived: asyncio.Event
    ) -> None:
        while True:
            await arrived.wait()
            await asyncio.sleep(self.linger)  # let a batch gather; prefetch bounds it
            arrived.clear()
            batch = pending[:]
            pending.clear()
            await self._store(batch)
            last = batch[-1].delivery_tag
            assert last is not None
            await channel.basic_ack(last, multiple=True)

    async def _store(self, messages: list[DeliveredMessage]) -> None:
        received = dt.datetime.now(dt.UTC)
        rows, rejected = [], 0
        for message in messages:
            parsed = parse_batch(
                message.body, sender=message.header.properties.app_id, received=received
            )
            rows.extend(parsed.rows)
            rejected += parsed.rejected
        backoff = 0.2
        while True:
            try:
                stored, refused = await insert_rows(self.pool, rows)
                break
            except _DATABASE_TROUBLE as exc:
                self.stats.database_retries += 1
                log.warning(
                    "cannot store %d log lines (%s: %s); retrying in %.1fs",
                    len(rows),
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        self.stats.stored += stored
        self.stats.rejected += rejected + refused
        self.stats.batches += 1
