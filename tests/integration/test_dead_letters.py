"""`microshop dead-letters` and the parking queue operations under it, on the real RabbitMQ:
one event replayed or discarded leaves every other parked message parked, in its order.

Each test works in a broker namespace of its own, on the system's `order-payments` queue,
once with quorum queues and once with classic ones: a quorum queue puts a requeued message
at its back, a classic one where it was.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import aiormq
import pytest

from eventstore import Consumer, HandlerContext, PostgresEventStore, Reject, RetryPolicy
from eventstore.amqp import QUEUE_TYPES
from eventstore.consumer import NotParked
from microshop.config import Config
from microshop.topology import consumers_for
from tests.conftest import StackEnv
from tests.integration.test_cli import microshop
from tests.queues import append, placed, publish, queue_length, running, until

QUEUE = "order-payments"


class Payments:
    """The `order-payments` consumer of a namespace of its own: it refuses (parks at once)
    every event but those in `healthy`, and records what it handled."""

    def __init__(self, env: StackEnv, uid: str, store: PostgresEventStore, queue_type: str) -> None:
        self.uid = uid
        self.store = store
        self.config: Config = env.config(
            namespace=f"{env.namespace}-{uid}", amqp_queue_type=queue_type
        )
        self.env = env
        self.consumer: Consumer = consumers_for(self.config, store)[QUEUE]
        self.consumer.handler = self.handle
        self.consumer.retry = RetryPolicy(attempts=2, initial=0.05)
        self.healthy: set[str] = set()
        self.flaky: set[str] = set()
        self.handled: list[str] = []

    async def handle(self, ctx: HandlerContext) -> None:
        event_id = str(ctx.event.event_id)
        if event_id in self.flaky and event_id not in self.healthy:
            raise ConnectionError("payment-service is down")
        if event_id not in self.healthy:
            raise Reject("order unknown")
        self.handled.append(event_id)

    async def park(self, count: int) -> list[str]:
        """`count` OrderPlaced events parked; their event ids in publishing order."""
        rows = []
        for _ in range(count):
            order = str(uuid.uuid4())  # order streams hold real order ids
            rows += await append(self.store, f"order-{order}", placed(order))
        await publish(self.config.amqp_url, self.config.namespace, rows)
        await until(lambda: self.consumer.stats.parked == count)
        return [str(r["event_id"]) for r in rows]

    async def parked(self) -> list[str]:
        return [str(m.event_id) for m in await self.consumer.parked()]

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """`microshop ARGS` in this namespace, as a process (the loop keeps consuming)."""
        result = await asyncio.to_thread(
            microshop,
            self.env,
            *args,
            MICROSHOP_NAMESPACE=self.config.namespace,
            AMQP_QUEUE_TYPE=self.config.amqp_queue_type,
        )
        return result.returncode, result.stdout, result.stderr


@pytest.fixture(params=QUEUE_TYPES)
async def payments(
    request: pytest.FixtureRequest, test_env: StackEnv, uid: str, store: PostgresEventStore
) -> AsyncIterator[Payments]:
    payments = Payments(test_env, uid, store, request.param)
    async with running(payments.consumer):
        yield payments


async def test_replaying_one_event_leaves_the_others_parked_in_their_order(
    payments: Payments,
) -> None:
    await payments.park(4)
    before = await payments.parked()
    chosen = before[1]
    payments.healthy.add(chosen)

    code, out, err = await payments.cli(
        "dead-letters", "replay", "--queue", QUEUE, "--event-id", chosen
    )

    assert code == 0, err
    assert f"replayed 1 message of event {chosen}" in out
    await until(lambda: payments.handled == [chosen])
    assert await payments.parked() == [e for e in before if e != chosen]
    assert payments.consumer.stats.handled == 1
    assert await queue_length(payments.config.amqp_url, payments.consumer.queue) == 0


async def test_discarding_one_event_removes_just_that_one(payments: Payments) -> None:
    await payments.park(3)
    before = await payments.parked()

    code, out, err = await payments.cli(
        "dead-letters", "discard", "-q", payments.consumer.queue, "--event-id", before[0]
    )

    assert code == 0, err
    assert f"discarded {before[0]}" in out and "OrderPlaced" in out and "order unknown" in out
    assert await payments.parked() == before[1:]
    assert payments.handled == []  # discarded, not replayed
    assert await queue_length(payments.config.amqp_url, payments.consumer.queue) == 0


async def test_an_unknown_event_id_or_queue_is_one_error_line(payments: Payments) -> None:
    before = await payments.park(2)
    parked = await payments.parked()

    for action in ("replay", "discard"):
        code, _, err = await payments.cli(
            "dead-letters", action, "--queue", QUEUE, "--event-id", "no-such-event"
        )
        assert code == 1
        assert err.splitlines() == [
            f"Error: {payments.consumer.parking} holds no parked message of event no-such-event"
        ]
    code, _, err = await payments.cli("dead-letters", "list", "--queue", "nope")
    assert code == 1
    assert err.splitlines() == [
        "Error: unknown queue 'nope'; known queues: cart-checkout, order-payments"
    ]
    assert await payments.parked() == parked and sorted(parked) == sorted(before)


async def test_list_shows_each_parked_message(payments: Payments) -> None:
    [refused] = await payments.park(1)  # refused: parked at once
    order = str(uuid.uuid4())
    stream = f"order-{order}"
    rows = await append(payments.store, stream, placed(order))
    flaky = str(rows[0]["event_id"])
    payments.flaky.add(flaky)  # fails: parked after its two attempts
    await publish(payments.config.amqp_url, payments.config.namespace, rows)
    await until(lambda: payments.consumer.stats.parked == 2)

    code, out, err = await payments.cli("dead-letters", "list", "--queue", QUEUE, "--json")

    assert code == 0, err
    listed = {m["event_id"]: m for m in map(json.loads, out.splitlines())}
    assert list(listed) == await payments.parked() == [refused, flaky]
    entry = listed[flaky]
    assert entry["queue"] == QUEUE and entry["parking"] == payments.consumer.parking
    assert entry["event_type"] == "OrderPlaced" and entry["stream_id"] == stream
    assert entry["attempts"] == 2 and "payment-service is down" in entry["error"]
    assert entry["routing_key"] == "order.OrderPlaced"  # not the queue it came back through
    assert entry["parked_at"] is not None and json.loads(entry["body"])["event_id"] == flaky
    assert listed[refused]["attempts"] == 1 and "order unknown" in listed[refused]["error"]

    code, out, err = await payments.cli("dead-letters", "list")
    assert code == 0, err
    assert f"{QUEUE}: 2 parked in {payments.consumer.parking}" in out
    assert "cart-checkout: " in out and "does not exist (never ran)" in out
    line = next(line for line in out.splitlines() if flaky in line)
    assert line.startswith(f"{QUEUE}  {flaky}  OrderPlaced in {stream}, 2 attempt(s), parked ")


async def test_every_parked_copy_of_an_event_is_taken(payments: Payments) -> None:
    """The relay delivers at least once: the same event can be parked twice."""
    order = str(uuid.uuid4())
    rows = await append(payments.store, f"order-{order}", placed(order))
    twice = str(rows[0]["event_id"])
    [other] = await payments.park(1)
    await publish(payments.config.amqp_url, payments.config.namespace, rows + rows)
    await until(lambda: payments.consumer.stats.parked == 3)
    assert sorted(await payments.parked()) == sorted([twice, twice, other])

    gone = await payments.consumer.discard_parked(twice)

    assert [m.event_id for m in gone] == [twice, twice]
    assert await payments.parked() == [other]
    with pytest.raises(NotParked):
        await payments.consumer.replay_parked(event_id=twice)
    assert await payments.parked() == [other]


async def test_a_replay_that_dies_midway_leaves_every_message_parked(
    payments: Payments, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker, not this process, holds the messages until the chosen one is moved:
    dying before that (here: the move to the queue fails) leaves all of them parked."""
    await payments.park(3)
    before = await payments.parked()

    async def dies(*args: object) -> None:
        raise ConnectionError("the process died")

    monkeypatch.setattr(payments.consumer, "_republish", dies)
    with pytest.raises(ConnectionError, match="died"):
        await payments.consumer.replay_parked(event_id=before[2])
    monkeypatch.undo()

    parking = payments.consumer.parking  # the broker requeues them as the connection ends
    async with asyncio.timeout(10):
        while await queue_length(payments.config.amqp_url, parking) < len(before):
            await asyncio.sleep(0.02)
    assert await payments.parked() == before
    assert await queue_length(payments.config.amqp_url, payments.consumer.queue) == 0
    assert payments.handled == []


async def test_a_message_parked_while_the_others_are_held_is_listed_in_its_place(
    payments: Payments,
) -> None:
    """Whoever holds the parked messages (a listing elsewhere, a replay of one event)
    requeues them after one parked meanwhile: a quorum queue puts them behind it."""
    await payments.park(3)
    before = await payments.parked()
    order = str(uuid.uuid4())
    rows = await append(payments.store, f"order-{order}", placed(order))
    async with aiormq.connect(payments.config.amqp_url) as connection:
        channel = await connection.channel()
        held = [await channel.basic_get(payments.consumer.parking) for _ in before]
        await publish(payments.config.amqp_url, payments.config.namespace, rows)
        await until(lambda: payments.consumer.stats.parked == 4)
        last = held[-1].delivery_tag
        assert last is not None
        await channel.basic_nack(last, multiple=True, requeue=True)

    listed = await payments.parked()

    assert listed == [*before, str(rows[0]["event_id"])]
    await payments.consumer.discard_parked(before[1])
    assert await payments.parked() == [before[0], before[2], str(rows[0]["event_id"])]
