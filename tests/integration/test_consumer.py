"""The consumer building block on the real RabbitMQ and Postgres, on quorum queues and on
classic ones (every test runs on both)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiormq
import pytest

from eventstore import (
    ANY,
    Consumer,
    HandlerContext,
    PostgresEventStore,
    Reject,
    RetryLater,
    RetryPolicy,
)
from eventstore.amqp import QUEUE_TYPES, queue_arguments
from eventstore.pg import Pool
from eventstore.store import COLUMNS
from eventstore.wire import encode_row
from tests.broker import declared_queues
from tests.conftest import StackEnv, rabbitmqctl
from tests.samples import Noted


class Harness:
    """A consumer in its own namespace, of one queue type, plus a way to publish events to it."""

    def __init__(self, store: PostgresEventStore, env: StackEnv, uid: str, queue_type: str) -> None:
        self.store, self.env, self.uid = store, env, uid
        self.queue_type = queue_type
        self.namespace = f"{env.namespace}-{uid}"
        self.calls: list[tuple[str, int, float]] = []

    def consumer(self, handler: Callable[[HandlerContext], Any], **kwargs: Any) -> Consumer:
        async def recording(ctx: HandlerContext) -> None:
            data = ctx.event.data  # a type no code here registers comes as a dict
            text = data["text"] if isinstance(data, dict) else data.text
            self.calls.append((text, ctx.attempt, time.monotonic()))
            await handler(ctx)

        return Consumer(
            self.store,
            amqp_url=self.env.amqp_url,
            namespace=self.namespace,
            name=f"worker-{self.uid}",
            bindings=[f"note{self.uid}.*"],
            handler=recording,
            **{"queue_type": self.queue_type, **kwargs},
        )

    async def append(self, *texts: str) -> list[Any]:
        """Append one event per text; their rows of the log (not read behind the fence,
        which a transaction anywhere on the server may hold back)."""
        for text in texts:
            await self.store.append(f"note{self.uid}-{text}", [Noted(text)], ANY)
        return list(
            await self.store.pool.fetch(
                f"SELECT {COLUMNS} FROM events WHERE stream_id = ANY($1) ORDER BY global_position",
                [f"note{self.uid}-{text}" for text in texts],
            )
        )

    async def publish(self, rows: list[Any], *, body: bytes | None = None) -> None:
        async with aiormq.connect(self.env.amqp_url) as connection:
            channel = await connection.channel()
            for row in rows:
                key, encoded, props = encode_row(row)
                await channel.basic_publish(
                    body if body is not None else encoded,
                    exchange=f"{self.namespace}.events",
                    routing_key=key,
                    properties=props,
                )

    async def cleanup(self, consumer: Consumer) -> None:
        async with aiormq.connect(self.env.amqp_url) as connection:
            channel = await connection.channel()
            for queue in (consumer.queue, consumer.parking):
                await channel.queue_delete(queue)


@contextlib.asynccontextmanager
async def consuming(harness: Harness, consumer: Consumer) -> AsyncIterator[Consumer]:
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(10):
            await consumer.ready.wait()
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await harness.cleanup(consumer)


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture(params=QUEUE_TYPES)
def queue_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def harness(store: PostgresEventStore, test_env: StackEnv, uid: str, queue_type: str) -> Harness:
    return Harness(store, test_env, uid, queue_type)


async def test_each_event_is_handled_once_even_when_delivered_twice(
    harness: Harness, pool: Pool, uid: str
) -> None:
    await pool.execute(f"CREATE TABLE effects_{uid} (text text)")

    async def handler(ctx: HandlerContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(f"INSERT INTO effects_{uid} VALUES ($1)", ctx.event.data.text)

    consumer = harness.consumer(handler)
    async with consuming(harness, consumer):
        rows = await harness.append("a", "b", "c")
        await harness.publish(rows)
        await harness.publish(rows)  # the relay may deliver again after a crash
        await until(lambda: consumer.stats.handled + consumer.stats.duplicates == 6)

    effects = await pool.fetch(f"SELECT text FROM effects_{uid} ORDER BY text")
    assert [r["text"] for r in effects] == ["a", "b", "c"]
    assert consumer.stats.handled == 3
    assert consumer.stats.duplicates == 3
    inbox = await pool.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", consumer.name)
    assert inbox == 3


async def test_a_delivery_another_one_recorded_meanwhile_counts_as_a_duplicate(
    harness: Harness, pool: Pool
) -> None:
    """Both deliveries passed the inbox check before either was recorded: the one whose
    record finds the other's is a duplicate, not a second handling."""

    async def handler(ctx: HandlerContext) -> None:  # as a concurrent delivery would
        await pool.execute(
            "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)",
            ctx.consumer.name,
            ctx.event.event_id,
        )

    consumer = harness.consumer(handler)
    async with consuming(harness, consumer):
        await harness.publish(await harness.append("raced"))
        await until(lambda: consumer.stats.handled + consumer.stats.duplicates == 1)
    assert (consumer.stats.handled, consumer.stats.duplicates) == (0, 1)


async def test_the_inbox_is_looked_at_first_only_for_a_message_that_was_sent_again(
    harness: Harness, pool: Pool
) -> None:
    """A first delivery of what the relay published goes to the handler at once (its
    record then finds a duplicate); the same event sent again (here: `redeliver`, as a
    retry or a replay is) is looked up in the inbox first and never reaches the handler."""
    handled: list[str] = []

    async def handler(ctx: HandlerContext) -> None:
        handled.append(ctx.event.data.text)

    consumer = harness.consumer(handler)
    rows = await harness.append("first", "again")
    for row in rows:  # handled before, as a duplicate the relay published would have been
        await pool.execute(
            "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)", consumer.name, row[4]
        )
    async with consuming(harness, consumer):
        await harness.publish(rows[:1])
        await until(lambda: consumer.stats.duplicates == 1)
        await consumer.redeliver(_batches(rows[1:]))
        await until(lambda: consumer.stats.duplicates == 2)
    assert handled == ["first"]
    assert consumer.stats.handled == 0


async def _batches(*batches: list[Any]) -> AsyncIterator[list[Any]]:
    for batch in batches:
        yield batch


async def test_failures_are_retried_later_without_blocking_the_queue(harness: Harness) -> None:
    async def handler(ctx: HandlerContext) -> None:
        if ctx.event.data.text == "flaky" and ctx.attempt < 3:
            raise RetryLater("payment provider timed out")

    consumer = harness.consumer(handler, retry=RetryPolicy(attempts=4, initial=0.3, multiplier=2))
    async with consuming(harness, consumer):
        await harness.publish(await harness.append("flaky"))
        await harness.publish(await harness.append("steady"))
        await until(lambda: consumer.stats.handled == 2)

    flaky = [(attempt, at) for text, attempt, at in harness.calls if text == "flaky"]
    steady = [at for text, _, at in harness.calls if text == "steady"]
    assert [attempt for attempt, _ in flaky] == [1, 2, 3]
    first_gap, second_gap = flaky[1][1] - flaky[0][1], flaky[2][1] - flaky[1][1]
    assert first_gap >= 0.3
    assert second_gap >= 0.6  # the backoff grows by the multiplier
    assert steady[0] < flaky[1][1], "the retry held up the message behind it"
    assert consumer.stats.retried == 2


async def test_a_spent_budget_parks_the_message_and_replay_brings_it_back(
    harness: Harness,
) -> None:
    healthy = False

    async def handler(ctx: HandlerContext) -> None:
        if not healthy:
            raise ConnectionError("payment-service is down")

    consumer = harness.consumer(handler, retry=RetryPolicy(attempts=2, initial=0.05))
    async with consuming(harness, consumer):
        [row] = await harness.append("doomed")
        await harness.publish([row])
        await until(lambda: consumer.stats.parked == 1)
        assert [c[1] for c in harness.calls] == [1, 2]

        parked = await consumer.parked()
        assert len(parked) == 1
        assert parked[0].event_id == str(row["event_id"])
        assert parked[0].attempts == 2
        assert "payment-service is down" in parked[0].error
        assert len(await consumer.parked()) == 1  # listing leaves them parked

        healthy = True
        assert await consumer.replay_parked() == 1
        await until(lambda: consumer.stats.handled == 1)
        assert await consumer.parked() == []


async def test_poison_and_rejected_messages_are_parked_at_once(harness: Harness) -> None:
    async def handler(ctx: HandlerContext) -> None:
        raise Reject("order does not exist")

    consumer = harness.consumer(handler)
    async with consuming(harness, consumer):
        rows = await harness.append("rejected", "poison")
        await harness.publish(rows[:1])
        await harness.publish(rows[1:], body=b'{"not": "an event"')
        await until(lambda: consumer.stats.parked == 2)
        parked = {p.event_id: p for p in await consumer.parked()}

    assert [c[0] for c in harness.calls] == ["rejected"]  # poison never reaches the handler
    assert "rejected: order does not exist" in parked[str(rows[0]["event_id"])].error
    assert "undecodable" in parked[str(rows[1]["event_id"])].error


async def test_a_version_the_consumer_does_not_accept_is_parked_with_the_reason(
    harness: Harness,
) -> None:
    """A consumer reading another service's events gets their data as plain dicts: without
    its declared versions a v2 would be read as v1. Parked at once instead, never retried."""

    async def handler(ctx: HandlerContext) -> None:
        pass

    accepts = {"TestNoted": {1}, "Shipped": {1}}
    consumer = harness.consumer(handler, accepts=accepts)
    async with consuming(harness, consumer):
        rows = await harness.append("fine", "newer", "other")
        newer = (*rows[1][:5], "Shipped", 2, *rows[1][7:])  # a v2 no code here registers
        other = (*rows[2][:5], "Returned", 1, *rows[2][7:])
        await harness.publish([rows[0], newer, other])
        await until(lambda: consumer.stats.parked == 2 and consumer.stats.handled == 1)
        parked = {p.event_id: p.error for p in await consumer.parked()}

    assert [c[0] for c in harness.calls] == ["fine"]
    assert "Shipped v2 is not a version" in parked[str(rows[1]["event_id"])]
    assert "accepts (v1)" in parked[str(rows[1]["event_id"])]
    assert "does not consume Returned" in parked[str(rows[2]["event_id"])]
    assert consumer.stats.retried == 0


async def test_a_parked_version_is_handled_once_the_consumer_accepts_it(
    harness: Harness,
) -> None:
    """The producer deployed first: the consumer parks the version it does not know yet;
    its next deployment accepts it, and a replay of the parking queue hands it over."""

    async def handler(ctx: HandlerContext) -> None:
        pass

    consumer = harness.consumer(handler, accepts={"Shipped": {1}})
    async with consuming(harness, consumer):
        [row] = await harness.append("early")
        await harness.publish([(*row[:5], "Shipped", 2, *row[7:])])
        await until(lambda: consumer.stats.parked == 1)
        assert harness.calls == []

        consumer.accepts = {"Shipped": frozenset({1, 2})}  # what the next deployment declares
        assert await consumer.replay_parked() == 1
        await until(lambda: consumer.stats.handled == 1)
        assert [c[0] for c in harness.calls] == ["early"] and await consumer.parked() == []


async def test_a_split_event_is_parked_and_a_dropped_one_acked_unhandled(
    harness: Harness,
) -> None:
    """A message is one event: one an upcaster splits cannot be handled as a message."""

    async def handler(ctx: HandlerContext) -> None:
        pass

    registry = harness.store.registry
    registry.upcaster(f"Pair{harness.uid}", 1)(lambda d: [("TestNoted", 1, d)] * 2)
    registry.upcaster(f"Gone{harness.uid}", 1)(lambda d: [])
    consumer = harness.consumer(handler)
    async with consuming(harness, consumer):
        rows = await harness.append("pair", "gone", "kept")
        await harness.publish(
            [
                (*rows[0][:5], f"Pair{harness.uid}", 1, *rows[0][7:]),
                (*rows[1][:5], f"Gone{harness.uid}", 1, *rows[1][7:]),
                rows[2],
            ]
        )
        stats = consumer.stats
        await until(lambda: stats.parked == 1 and stats.handled == 1 and stats.dropped == 1)
        [parked] = await consumer.parked()

    assert [c[0] for c in harness.calls] == ["kept"]
    assert parked.event_id == str(rows[0]["event_id"]) and "upcasts to 2 events" in parked.error


async def test_a_failed_handler_leaves_no_effects_and_no_inbox_entry(
    harness: Harness, pool: Pool, uid: str
) -> None:
    await pool.execute(f"CREATE TABLE effects_{uid} (text text)")
    fail = True

    async def handler(ctx: HandlerContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(f"INSERT INTO effects_{uid} VALUES ($1)", ctx.event.data.text)
            if fail:
                raise RetryLater("crashed after writing")

    consumer = harness.consumer(handler, retry=RetryPolicy(attempts=3, initial=0.2))
    async with consuming(harness, consumer):
        await harness.publish(await harness.append("once"))
        await until(lambda: consumer.stats.retried == 1)
        assert await pool.fetchval(f"SELECT count(*) FROM effects_{uid}") == 0
        fail = False
        await until(lambda: consumer.stats.handled == 1)
    assert await pool.fetchval(f"SELECT count(*) FROM effects_{uid}") == 1


async def test_every_queue_has_the_configured_type(harness: Harness) -> None:
    """The consumer's queue, its parking queue and its delay queues; a quorum delay queue
    dead-letters back at least once."""

    async def handler(ctx: HandlerContext) -> None:
        if ctx.attempt == 1:
            raise RetryLater("once")

    consumer = harness.consumer(handler, retry=RetryPolicy(attempts=2, initial=0.05))
    async with consuming(harness, consumer):
        await harness.publish(await harness.append("typed"))
        await until(lambda: consumer.stats.handled == 1)
        queues = declared_queues(harness.env.vhost, consumer.queue)

    delay = f"{consumer.queue}.retry.50"
    assert sorted(queues) == sorted([consumer.queue, consumer.parking, delay])
    assert {q.type for q in queues.values()} == {harness.queue_type}
    assert queues[delay].arguments["x-message-ttl"] == 50
    assert queues[delay].arguments["x-dead-letter-routing-key"] == consumer.queue
    if harness.queue_type == "quorum":
        assert queues[delay].arguments["x-dead-letter-strategy"] == "at-least-once"
        assert queues[delay].arguments["x-overflow"] == "reject-publish"


async def test_no_message_is_lost_through_the_delay_queues(harness: Harness) -> None:
    """Every event fails twice, waits out two delay queues and comes back each time."""
    count = 150

    async def handler(ctx: HandlerContext) -> None:
        if ctx.attempt < 3:
            raise RetryLater(f"attempt {ctx.attempt}")

    consumer = harness.consumer(
        handler, retry=RetryPolicy(attempts=3, initial=0.05, multiplier=2), prefetch=64
    )
    async with consuming(harness, consumer):
        rows = await harness.append(*(f"n{i}" for i in range(count)))
        await harness.publish(rows)
        await until(lambda: consumer.stats.handled == count, timeout=60)

    assert consumer.stats.retried == 2 * count and consumer.stats.parked == 0
    attempts: dict[str, list[int]] = {}
    for text, attempt, _ in harness.calls:
        attempts.setdefault(text, []).append(attempt)
    assert attempts == {f"n{i}": [1, 2, 3] for i in range(count)}


async def test_queues_of_the_other_type_are_kept_with_one_warning_each(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A deployment whose queues were declared with the other type (classic ones, before
    quorum became the default) keeps them: RabbitMQ refuses to redeclare a queue with
    another type, which used to make the consumer reconnect forever."""
    other = "classic" if harness.queue_type == "quorum" else "quorum"
    consumer = harness.consumer(lambda ctx: asyncio.sleep(0))
    delay = f"{consumer.queue}.retry.50"
    async with aiormq.connect(harness.env.amqp_url) as connection:
        channel = await connection.channel()
        for name, arguments in [
            (consumer.queue, {}),
            (consumer.parking, {}),
            (
                delay,
                {
                    "x-message-ttl": 50,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": consumer.queue,
                },
            ),
        ]:
            await channel.queue_declare(
                name, durable=True, arguments=queue_arguments(other, arguments)
            )

    async def handler(ctx: HandlerContext) -> None:
        if ctx.attempt == 1 and ctx.event.data.text == "retried":
            raise RetryLater("once")

    consumer = harness.consumer(handler, retry=RetryPolicy(attempts=2, initial=0.05))
    with caplog.at_level(logging.WARNING, logger="eventstore.amqp"):
        async with consuming(harness, consumer):
            await harness.publish(await harness.append("retried", "steady"))
            await until(lambda: consumer.stats.handled == 2)
            consumer.ready.clear()  # the broker drops the connection: it declares again
            await asyncio.to_thread(
                rabbitmqctl, "close_all_connections", "--vhost", harness.env.vhost, "again"
            )
            await until(consumer.ready.is_set)
            await harness.publish(await harness.append("after"))
            await until(lambda: consumer.stats.handled == 3)
            queues = declared_queues(harness.env.vhost, consumer.queue)

    assert {name: q.type for name, q in queues.items()} == dict.fromkeys(
        [consumer.queue, consumer.parking, delay], other
    )
    warnings = [r.getMessage() for r in caplog.records if r.name == "eventstore.amqp"]
    assert len(warnings) == 3, warnings  # one per queue, not one per connection
    for name in (consumer.queue, consumer.parking, delay):
        [warning] = [w for w in warnings if w.startswith(f"queue {name} ")]
        assert f"exists as a {other} queue and stays one" in warning
        assert "To migrate it" in warning
    assert consumer.stats.retried == 1 and consumer.stats.parked == 0
