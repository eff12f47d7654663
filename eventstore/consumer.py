"""The consumer building block: a durable queue of events with retries, parking and an inbox.

Topology of a consumer named `N` in namespace `ns`:

- `ns.N`: durable queue bound to the `ns.events` topic exchange by the consumer's keys;
  manual acks, bounded prefetch; messages are handled concurrently up to the prefetch.
- `ns.N.retry.<ms>`: one delay queue per backoff step; a failed message is republished
  there with `x-attempt` + 1, waits out the queue's TTL and is dead-lettered back to `ns.N`.
  Other messages keep flowing meanwhile.
- `ns.N.parking`: where a message goes after its attempt budget, or at once when it is
  poison (undecodable, or the handler raised `Reject`), or of a type or version the
  consumer does not accept. It can be listed and replayed, whole or one event at a time,
  and one event can be discarded.

A message is one event: an upcaster that splits the stored event into several makes the
message undecodable here (so integration events are upcast one to one), and one that
drops it leaves nothing to handle (the message is acked).

Every move (retry, park) is confirmed by the broker before the original is acked, so a
crash at any point redelivers rather than loses. Handlers whose effects are in this
database are idempotent through the inbox (`HandlerContext.transaction`): the `event_id` is
recorded in the same transaction as those effects. A handler whose effects are elsewhere
(HTTP calls) must be idempotent itself: its inbox record, written after it returns and
without waiting for the disk, only spares most redeliveries the work. The inbox is looked
at before the handler runs only for a message that may have been handled before: one the
broker delivered again, or one sent again (a retry, a replay from the parking queue, a
`redeliver`). A first delivery of what the relay published goes straight to the handler;
a duplicate of it (the relay publishes at least once) is caught where the record is
written, or by the handler's own idempotence.

Every queue is durable, of one type (`queue_type`): quorum (replicated; the default) or
classic. A quorum delay queue dead-letters at least once, so a message cannot be lost
between it and the consumer's queue. A queue that exists with the other type keeps it (see
`amqp.Queues`).

Taking one event out of the parking queue never risks the others: they are all fetched
with `basic.get` and held unacknowledged (never acked, never copied) until the chosen one
is republished with a confirm and acked; then the others are requeued at once. If the
process dies midway the broker requeues them itself when the connection drops. A classic
queue puts requeued messages back where they were; a quorum queue puts them at its back,
in the order they were held. Holding all of them keeps the queue's order either way, and
listings sort by the time each message was parked, so a message parked meanwhile (which
a quorum queue puts before those requeued) is still listed where it belongs. A quorum
queue counts these deliveries (`x-delivery-count`): RabbitMQ 3.x sets no delivery limit,
so they never drop a message (4.x has a default limit: see the README), and a message moved
to another queue starts afresh there.

`redeliver` publishes stored events again to this consumer's queue alone (through the
default exchange, so no other queue bound to the same events gets them); the inbox drops
those it handled already.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Mapping,
    Sequence,
)
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiormq.abc import AbstractChannel, DeliveredMessage
from aiormq.exceptions import ChannelNotFoundEntity
from pamqp.commands import Basic

from .amqp import BROKER_ERRORS, QUORUM, Queues, connect_amqp, refused, topic_matches
from .errors import UpcastError
from .events import Dropped, RecordedEvent
from .pg import RELAXED, Conn
from .store import PostgresEventStore
from .wire import decode_message, encode_row

__all__ = [
    "AlreadyHandled",
    "Consumer",
    "ConsumerStats",
    "HandlerContext",
    "NotParked",
    "ParkedMessage",
    "QueueNotDeclared",
    "Redelivered",
    "Reject",
    "RetryLater",
    "RetryPolicy",
]

log = logging.getLogger(__name__)

_TRANSIENT = BROKER_ERRORS

_RECORD = "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
_RECORD_ASYNC_COMMIT = f"""
{RELAXED}
INSERT INTO inbox (consumer, event_id) SELECT $1, $2 FROM relaxed ON CONFLICT DO NOTHING"""


_BROKER_HEADERS = frozenset(
    {
        "x-death",
        "x-delivery-count",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
    }
)
"""Headers the broker wrote on its way here, left behind when a message moves on."""


class RetryLater(Exception):
    """Transient failure: handle this message again after the backoff."""


class Reject(Exception):
    """The message can never succeed: park it now, without retries."""


_SENT_AGAIN = ("x-attempt", "x-original-routing-key", "x-death")
"""Headers of a message this code (or a dead-letter exchange) sent again."""


def _maybe_handled(message: DeliveredMessage) -> bool:
    """Whether the inbox may already hold `message`'s event: the broker delivered it
    before, or it was sent again (retry, replay, redeliver). Not a first delivery of what
    the relay published."""
    delivery = message.delivery
    if getattr(delivery, "redelivered", False):
        return True
    headers = message.header.properties.headers or {}
    return any(name in headers for name in _SENT_AGAIN)


class AlreadyHandled(Exception):
    """The inbox already holds this event id: its effects were committed before."""


class NotParked(LookupError):
    """The parking queue holds no message of this event id (or does not exist)."""

    def __init__(self, parking: str, event_id: str) -> None:
        super().__init__(f"{parking} holds no parked message of event {event_id}")
        self.parking = parking
        self.event_id = event_id


class QueueNotDeclared(LookupError):
    """The consumer's queue does not exist yet: its consumer has never run."""

    def __init__(self, queue: str) -> None:
        super().__init__(f"queue {queue} does not exist: its consumer has never run")
        self.queue = queue


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`attempts` deliveries in all; the wait before attempt k+1 is initial * multiplier**(k-1)."""

    attempts: int = 3
    initial: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 3600.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial < 0 or self.multiplier < 1:
            raise ValueError("attempts >= 1, initial >= 0 and multiplier >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.initial * self.multiplier ** (attempt - 1), self.max_delay))


@dataclasses.dataclass(slots=True)
class ConsumerStats:
    handled: int = 0
    duplicates: int = 0
    retried: int = 0
    parked: int = 0
    dropped: int = 0
    """Messages whose event an upcaster turned into nothing: acked, not handled."""
    last_handled_at: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class ParkedMessage:
    """A parked message as its headers describe it (None: a message that did not say)."""

    event_id: str | None
    routing_key: str | None
    error: str
    attempts: int
    body: bytes
    event_type: str | None = None
    stream_id: str | None = None
    parked_at: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Redelivered:
    """What `Consumer.redeliver` did: events sent to the queue, events no binding matched."""

    sent: int
    skipped: int


def _delivery_tag(message: DeliveredMessage) -> int:
    tag = getattr(message.delivery, "delivery_tag", None)
    if not isinstance(tag, int):
        raise TypeError(f"{message.delivery!r} has no delivery tag")
    return tag


def _original_routing_key(message: DeliveredMessage) -> str:
    """The routing key the relay gave the message: retries, replays and redeliveries come
    back through the default exchange, under the queue's name, and carry it in a header."""
    headers = message.header.properties.headers or {}
    given = headers.get("x-original-routing-key")
    if isinstance(given, bytes):
        given = given.decode()
    return str(given or getattr(message.delivery, "routing_key", "") or "")


def _parked_message(message: DeliveredMessage) -> ParkedMessage:
    props = message.header.properties
    headers = props.headers or {}
    parked_at = _parked_at(message)
    stream_id = headers.get("x-stream-id")
    return ParkedMessage(
        event_id=props.message_id,
        routing_key=_original_routing_key(message) or None,
        error=str(headers.get("x-error", "")),
        attempts=int(headers.get("x-attempt", 0)),  # type: ignore[arg-type]
        body=message.body,
        event_type=props.message_type,
        stream_id=str(stream_id) if stream_id else None,
        parked_at=datetime.fromtimestamp(parked_at / 1e6, UTC) if parked_at else None,
    )


def _is_empty(got: DeliveredMessage) -> bool:
    return got.delivery is None or isinstance(got.delivery, Basic.GetEmpty)


def _parked_at(message: DeliveredMessage) -> int:
    """When the message was parked, in microseconds (0: it does not say): the order
    listings follow."""
    headers = message.header.properties.headers or {}
    micros, seconds = headers.get("x-parked-at-us"), headers.get("x-parked-at")
    if isinstance(micros, int):
        return micros
    return seconds * 1_000_000 if isinstance(seconds, int) else 0


def _of_event(event_id: str) -> Callable[[list[DeliveredMessage]], list[DeliveredMessage]]:
    def chosen(held: list[DeliveredMessage]) -> list[DeliveredMessage]:
        return [m for m in held if m.header.properties.message_id == event_id]

    return chosen


class HandlerContext:
    """What a handler gets: the event, its attempt number and the inbox transaction."""

    def __init__(self, consumer: Consumer, event: RecordedEvent, attempt: int) -> None:
        self.consumer = consumer
        self.event = event
        self.attempt = attempt
        self.recorded = False

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A transaction that also records the event in the inbox.

        Raises `AlreadyHandled` (caught by the consumer, the transaction rolled back) when
        another delivery of the same event committed first. The inbox row is written last,
        after the handler's own writes: the transaction takes its id at its first write, and
        the global log orders events by it, so an append must be the first write to land
        after the events it read. Keep it short: an open transaction holds back every
        reader of the global log.
        """
        async with self.consumer.store.pool.acquire() as conn, conn.transaction():
            yield conn
            if not await self.consumer.record(conn, self.event):
                raise AlreadyHandled(str(self.event.event_id))
        self.recorded = True


Handler = Callable[[HandlerContext], Awaitable[None]]


class Consumer:
    """Runs `handler` for every event matching `bindings` (topic patterns like `order.*`)."""

    def __init__(
        self,
        store: PostgresEventStore,
        *,
        amqp_url: str,
        namespace: str,
        name: str,
        bindings: Sequence[str],
        handler: Handler,
        retry: RetryPolicy | None = None,
        prefetch: int = 32,
        reconnect_delay: float = 0.5,
        accepts: Mapping[str, Collection[int]] | None = None,
        queue_type: str = QUORUM,
    ) -> None:
        """`accepts` names the event types and schema versions the handler is written for
        (None: whatever arrives); any other is parked at once, with the reason, instead of
        being read as the wrong version or retried forever. `queue_type` (`quorum` or
        `classic`) is the type of the queues it declares; `amqp_url` may list several
        comma-separated nodes."""
        self.store = store
        self.amqp_url = amqp_url
        self.exchange = f"{namespace}.events"
        self.name = name
        self.queue = f"{namespace}.{name}"
        self.parking = f"{self.queue}.parking"
        self.bindings = tuple(bindings)
        self.handler = handler
        self.accepts = None if accepts is None else {t: frozenset(v) for t, v in accepts.items()}
        self.retry = retry or RetryPolicy()
        self.prefetch = prefetch
        self.reconnect_delay = reconnect_delay
        self.stats = ConsumerStats()
        self.ready = asyncio.Event()
        self.queues = Queues(queue_type)
        self._delay_queues: set[str] = set()
        self._declaring = asyncio.Lock()  # failures at once declare a delay queue once

    # -- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume forever, reconnecting after any trouble (cancel to stop)."""
        while True:
            try:
                async with self._connection() as channel:
                    await self._consume(channel)
            except Exception as exc:  # reconnect; unacked messages come back
                expected = isinstance(exc, _TRANSIENT)
                log.log(
                    logging.WARNING if expected else logging.ERROR,
                    "consumer %s: %s: %s; reconnecting",
                    self.name,
                    type(exc).__name__,
                    exc,
                    exc_info=not expected,
                )
            self.ready.clear()
            await asyncio.sleep(self.reconnect_delay)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AbstractChannel]:
        connection = await connect_amqp(self.amqp_url, self.queue)
        try:
            channel = await connection.channel(publisher_confirms=True)
            yield channel
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    async def declare(self, channel: AbstractChannel) -> None:
        """Declare the exchange, the queue with its bindings, and the parking queue."""
        await channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        await self.queues.declare(channel, self.queue)
        await self.queues.declare(channel, self.parking)
        for key in self.bindings:
            await channel.queue_bind(self.queue, self.exchange, routing_key=key)

    async def _consume(self, channel: AbstractChannel) -> None:
        await self.declare(channel)
        await channel.basic_qos(prefetch_count=self.prefetch)
        self._delay_queues.clear()
        closing = asyncio.get_running_loop().create_future()

        def closed(_: object) -> None:
            if not closing.done():
                closing.set_result(None)

        channel.closing.add_done_callback(closed)
        await channel.basic_consume(self.queue, lambda m: self._process(channel, m))
        self.ready.set()
        await closing
        raise ConnectionError("channel closed")

    # -- one message ---------------------------------------------------------------------

    async def _process(self, channel: AbstractChannel, message: DeliveredMessage) -> None:
        headers = message.header.properties.headers or {}
        attempt = int(headers.get("x-attempt", 1))  # type: ignore[arg-type]
        tag = _delivery_tag(message)
        try:
            try:
                event = decode_message(message.body, self.store.registry)
            except (msgspec.DecodeError, msgspec.ValidationError, UpcastError) as exc:
                await self._park(channel, message, f"undecodable: {exc}", attempt)
            else:
                refusal = self._not_accepted(event)
                if refusal is not None:
                    log.warning("consumer %s: parking %s: %s", self.name, event.event_id, refusal)
                    await self._park(channel, message, refusal, attempt)
                elif isinstance(event.data, Dropped):  # upcast into nothing: nothing to do
                    log.info("consumer %s: %s is dropped by an upcaster", self.name, event.event_id)
                    self.stats.dropped += 1
                else:
                    await self._handle(channel, message, event, attempt)
            await channel.basic_ack(tag)
        except _TRANSIENT as exc:  # the broker went away: the message will be redelivered
            log.info("consumer %s: %s before ack of %s", self.name, exc, tag)

    def _not_accepted(self, event: RecordedEvent) -> str | None:
        """Why this consumer does not take `event`'s type and version (None: it does)."""
        if self.accepts is None:
            return None
        versions = self.accepts.get(event.event_type)
        if versions is None:
            return f"not accepted: {self.name} does not consume {event.event_type}"
        if event.schema_version not in versions:
            known = ", ".join(f"v{v}" for v in sorted(versions))
            return (
                f"not accepted: {event.event_type} v{event.schema_version} is not a version "
                f"{self.name} accepts ({known}); deploy a consumer that reads it, then replay"
            )
        return None

    async def _handle(
        self,
        channel: AbstractChannel,
        message: DeliveredMessage,
        event: RecordedEvent,
        attempt: int,
    ) -> None:
        context = HandlerContext(self, event, attempt)
        try:
            if _maybe_handled(message) and await self.seen(event.event_id):
                raise AlreadyHandled(str(event.event_id))
            await self.handler(context)
            if not context.recorded:
                # The handler's effects are outside this database transaction, so the
                # record only spares a redelivery the work: no waiting for the disk.
                async with self.store.pool.acquire() as conn:
                    if not await self.record(conn, event, synchronous_commit=False):
                        # a concurrent delivery was handled, and recorded, first
                        raise AlreadyHandled(str(event.event_id))
        except AlreadyHandled:
            self.stats.duplicates += 1
            return
        except Reject as exc:
            await self._park(channel, message, f"rejected: {exc}", attempt)
            return
        except Exception as exc:  # the handler failed: retry later or park
            reason = f"{type(exc).__name__}: {exc}"
            if attempt >= self.retry.attempts:
                log.warning(
                    "consumer %s: parking %s after %d attempts: %s",
                    self.name,
                    event.event_id,
                    attempt,
                    reason,
                )
                await self._park(channel, message, reason, attempt)
            else:
                log.info(
                    "consumer %s: attempt %d of %s failed (%s); retrying",
                    self.name,
                    attempt,
                    event.event_id,
                    reason,
                )
                await self._retry_later(channel, message, attempt, reason)
            return
        self.stats.handled += 1
        self.stats.last_handled_at = time.time()

    async def seen(self, event_id: Any) -> bool:
        """Whether the inbox holds `event_id` for this consumer."""
        return bool(
            await self.store.pool.fetchval(
                "SELECT EXISTS (SELECT FROM inbox WHERE consumer = $1 AND event_id = $2)",
                self.name,
                event_id,
            )
        )

    async def record(
        self, conn: Conn, event: RecordedEvent, *, synchronous_commit: bool = True
    ) -> bool:
        """Record `event` in the inbox on `conn`; False when it was there already."""
        sql = _RECORD if synchronous_commit else _RECORD_ASYNC_COMMIT
        status = await conn.execute(sql, self.name, event.event_id)
        return bool(status == "INSERT 0 1")

    # -- moving messages -----------------------------------------------------------------

    async def _retry_later(
        self, channel: AbstractChannel, message: DeliveredMessage, attempt: int, reason: str
    ) -> None:
        delay_ms = max(1, round(self.retry.delay(attempt) * 1000))
        queue = f"{self.queue}.retry.{delay_ms}"
        async with self._declaring:
            if queue not in self._delay_queues:
                await self.queues.declare(
                    channel,
                    queue,
                    {
                        "x-message-ttl": delay_ms,
                        "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": self.queue,
                    },
                )
                self._delay_queues.add(queue)
        await self._republish(
            channel,
            message,
            queue,
            {
                "x-attempt": attempt + 1,
                "x-last-error": reason[:500],
                "x-original-routing-key": _original_routing_key(message),
            },
        )
        self.stats.retried += 1

    async def _park(
        self, channel: AbstractChannel, message: DeliveredMessage, reason: str, attempt: int
    ) -> None:
        now = time.time()  # in integers: a header's float is single precision
        await self._republish(
            channel,
            message,
            self.parking,
            {
                "x-attempt": attempt,
                "x-error": reason[:1000],
                "x-original-routing-key": _original_routing_key(message),
                "x-parked-at": int(now),
                "x-parked-at-us": int(now * 1_000_000),  # what listings sort by
            },
        )
        self.stats.parked += 1

    @staticmethod
    async def _republish(
        channel: AbstractChannel, message: DeliveredMessage, queue: str, headers: dict[str, Any]
    ) -> None:
        props = message.header.properties
        merged = {k: v for k, v in (props.headers or {}).items() if k not in _BROKER_HEADERS}
        merged.update(headers)
        confirm = await channel.basic_publish(
            message.body,
            exchange="",
            routing_key=queue,
            properties=Basic.Properties(
                content_type=props.content_type,
                delivery_mode=2,
                message_id=props.message_id,
                message_type=props.message_type,
                correlation_id=props.correlation_id,
                timestamp=props.timestamp,
                headers=merged,
            ),
        )
        if not isinstance(confirm, Basic.Ack):
            raise ConnectionError(f"broker did not confirm the move to {queue}")

    # -- the parking queue ---------------------------------------------------------------

    async def parked_count(self) -> int | None:
        """How many messages wait in the parking queue; None when it does not exist.

        Asked passively, so looking never declares the queues of a consumer that never ran.
        """
        connection = await connect_amqp(self.amqp_url, f"{self.queue}.admin")
        try:
            channel = await connection.channel()
            try:
                declared = await channel.queue_declare(self.parking, passive=True)
            except ChannelNotFoundEntity:
                return None
            return int(declared.message_count or 0)
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    async def parked(self, limit: int = 100) -> list[ParkedMessage]:
        """Up to `limit` parked messages, oldest first; they stay parked."""
        taken = await self._take_parked(lambda held: [], replay=False, listing=True)
        return taken[:limit]

    async def replay_parked(self, limit: int | None = None, *, event_id: str | None = None) -> int:
        """Move parked messages back to the consumer's queue with a fresh attempt budget:
        all of them (or the oldest `limit`), or only those of `event_id`, the others left
        parked in their order (`NotParked` when there is none). `QueueNotDeclared` when the
        consumer's queue is gone (the default exchange would drop what went there)."""
        if event_id is not None:
            chosen = await self._take_parked(_of_event(event_id), replay=True)
            if not chosen:
                raise NotParked(self.parking, event_id)
            return len(chosen)
        if limit is not None:
            return len(await self._take_parked(lambda held: held[:limit], replay=True))
        moved = 0
        async with self._connection() as channel:
            if not await self._parking_ready(channel, replay=True):
                return 0
            while True:  # one at a time: nothing is held but the message on its way
                got = await channel.basic_get(self.parking, no_ack=False)
                if _is_empty(got):
                    break
                await self._republish(channel, got, self.queue, {"x-attempt": 1})
                await channel.basic_ack(_delivery_tag(got))
                moved += 1
        return moved

    async def discard_parked(self, event_id: str) -> list[ParkedMessage]:
        """Remove the parked messages of `event_id` for good (usually one; a relay that
        delivered an event twice may have had both parked) and return them; the others
        stay parked in their order. `NotParked` when there is none."""
        gone = await self._take_parked(_of_event(event_id), replay=False)
        if not gone:
            raise NotParked(self.parking, event_id)
        return gone

    async def _parking_ready(self, channel: AbstractChannel, *, replay: bool) -> bool:
        """Whether the parking queue exists (asked passively: looking declares nothing);
        `QueueNotDeclared` when a replay would have no queue to go to."""
        try:
            await channel.queue_declare(self.parking, passive=True)
        except ChannelNotFoundEntity:
            return False
        if replay:
            try:
                await channel.queue_declare(self.queue, passive=True)
            except ChannelNotFoundEntity:
                raise QueueNotDeclared(self.queue) from None
        return True

    async def _take_parked(
        self,
        choose: Callable[[list[DeliveredMessage]], list[DeliveredMessage]],
        *,
        replay: bool,
        listing: bool = False,
    ) -> list[ParkedMessage]:
        """Hold every parked message, oldest first; move (`replay`) or drop those `choose`
        picks and requeue the others. The picked ones, or with `listing` all of them."""
        async with self._connection() as channel:
            if not await self._parking_ready(channel, replay=replay):
                return []
            held: list[DeliveredMessage] = []
            while True:
                got = await channel.basic_get(self.parking, no_ack=False)
                if _is_empty(got):
                    break
                held.append(got)
            held.sort(key=_parked_at)  # stable: messages parked at one time keep their order
            chosen = choose(held)
            for message in chosen:
                if replay:  # confirmed on the queue before it leaves the parking queue
                    await self._republish(channel, message, self.queue, {"x-attempt": 1})
                await channel.basic_ack(_delivery_tag(message))
            taken = {_delivery_tag(m) for m in chosen}
            kept = [_delivery_tag(m) for m in held if _delivery_tag(m) not in taken]
            if kept:  # every other one back at once (acked tags are not touched)
                await channel.basic_nack(max(kept), multiple=True, requeue=True)
        return [_parked_message(m) for m in (held if listing else chosen)]

    # -- publishing stored events again --------------------------------------------------

    async def redeliver(
        self,
        batches: AsyncIterable[Sequence[Any]],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> Redelivered:
        """Publish stored events again to this consumer's queue alone, encoded as the relay
        encodes them, with publisher confirms.

        `batches` are rows of the global log (`store.COLUMNS` order); those no binding of
        this consumer matches are skipped. Messages go through the default exchange (the
        relay's routing key in the `x-original-routing-key` header), so no other queue bound
        to the same events receives them. The inbox drops events the consumer has handled,
        which makes a redelivery safe to repeat. `QueueNotDeclared` when the queue does not
        exist; `progress(n)` after each batch of `n` rows.
        """
        sent = skipped = 0
        async with self._connection() as channel:
            try:
                await channel.queue_declare(self.queue, passive=True)
            except ChannelNotFoundEntity:
                raise QueueNotDeclared(self.queue) from None
            async for rows in batches:
                messages = []
                for row in rows:
                    key, body, props = encode_row(row)
                    if not any(topic_matches(binding, key) for binding in self.bindings):
                        skipped += 1
                        continue
                    props.headers = {**(props.headers or {}), "x-original-routing-key": key}
                    messages.append((body, props))
                lost = await refused(
                    channel.basic_publish(
                        body, exchange="", routing_key=self.queue, properties=props, mandatory=True
                    )
                    for body, props in messages
                )
                if lost:
                    raise ConnectionError(
                        f"broker did not confirm {lost} of {len(messages)} to {self.queue}"
                    )
                sent += len(messages)
                if progress is not None:
                    progress(len(rows))
        return Redelivered(sent, skipped)
