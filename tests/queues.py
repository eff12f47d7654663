"""Helpers for tests of the system's consumer queues: order events in the log, published
as the relay publishes them, and a consumer of `microshop.topology` run for a while."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiormq

import services.order.events  # noqa: F401  (registers the order events the consumers read)
from eventstore import ANY, Consumer, PostgresEventStore
from eventstore.store import COLUMNS
from eventstore.wire import encode_row
from services.order.domain import OrderPlaced, PaymentRetryRequested, PaymentSucceeded

__all__ = [
    "append",
    "placed",
    "publish",
    "queue_length",
    "retry_requested",
    "running",
    "succeeded",
    "until",
]


# the events as order-service writes them: every id a UUID (the orders read model, which
# other tests rebuild from the same log, stores them as such)


def placed(order_id: str) -> OrderPlaced:
    return OrderPlaced(order_id, "user-1", (), Decimal("12.50"), "EUR")


def retry_requested(order_id: str) -> PaymentRetryRequested:
    return PaymentRetryRequested(order_id, 2, Decimal("12.50"), "EUR")


def succeeded(order_id: str) -> PaymentSucceeded:
    return PaymentSucceeded(order_id, 2, 1, str(uuid.uuid5(uuid.NAMESPACE_URL, order_id)))


async def append(store: PostgresEventStore, stream: str, *events: object) -> list[Any]:
    """Append `events` to `stream`, one transaction each; the stream's rows of the log
    (`COLUMNS`, what the relay encodes)."""
    for event in events:
        await store.append(stream, [event], ANY)
    return list(
        await store.pool.fetch(
            f"SELECT {COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version", stream
        )
    )


async def publish(amqp_url: str, namespace: str, rows: list[Any]) -> None:
    """Publish `rows` to `{namespace}.events` as the relay does."""
    async with aiormq.connect(amqp_url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        for row in rows:
            key, body, props = encode_row(row)
            await channel.basic_publish(
                body, exchange=f"{namespace}.events", routing_key=key, properties=props
            )


async def queue_length(amqp_url: str, queue: str) -> int:
    async with aiormq.connect(amqp_url) as connection:
        channel = await connection.channel()
        declared = await channel.queue_declare(queue, passive=True)
        return int(declared.message_count or 0)


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(consumer: Consumer) -> AsyncIterator[Consumer]:
    """`consumer` consuming while the block runs."""
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(15):
            await consumer.ready.wait()
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
