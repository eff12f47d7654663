"""`microshop events republish`: stored events published again to one consumer's queue
alone, on the real Postgres and RabbitMQ.

`cart-checkout` and `order-payments` are both bound to `order.OrderPlaced`: a republish to
one of them must never reach the other. Each test works in a broker namespace of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiormq
import pytest
from pamqp.commands import Basic

from eventstore import Consumer, HandlerContext, PostgresEventStore
from eventstore.wire import encode_row
from microshop.config import Config
from microshop.topology import consumers_for
from tests.conftest import StackEnv
from tests.integration.test_cli import microshop
from tests.queues import append, placed, queue_length, retry_requested, running, succeeded, until


class Queues:
    """The system's consumers in a namespace of their own, their queues declared."""

    def __init__(self, env: StackEnv, uid: str, store: PostgresEventStore) -> None:
        self.env, self.uid, self.store = env, uid, store
        self.config: Config = env.config(namespace=f"{env.namespace}-{uid}")
        self.consumers: dict[str, Consumer] = consumers_for(self.config, store)
        self.handled: dict[str, list[str]] = {name: [] for name in self.consumers}
        for name, consumer in self.consumers.items():
            consumer.handler = self._recording(name)

    def _recording(self, name: str) -> Any:
        async def handle(ctx: HandlerContext) -> None:
            self.handled[name].append(str(ctx.event.event_id))

        return handle

    async def declare(self) -> None:
        async with aiormq.connect(self.config.amqp_url) as connection:
            channel = await connection.channel()
            for consumer in self.consumers.values():
                await consumer.declare(channel)

    async def length(self, name: str) -> int:
        return await queue_length(self.config.amqp_url, self.consumers[name].queue)

    async def republish(self, *args: str) -> tuple[int, str, str]:
        result = await asyncio.to_thread(
            microshop,
            self.env,
            "events",
            "republish",
            *args,
            MICROSHOP_NAMESPACE=self.config.namespace,
        )
        return result.returncode, result.stdout, result.stderr


@pytest.fixture
async def queues(test_env: StackEnv, uid: str, store: PostgresEventStore) -> Queues:
    queues = Queues(test_env, uid, store)
    await queues.declare()
    return queues


async def _take_all(amqp_url: str, queue: str) -> list[Any]:
    """Every message of `queue`, left in it."""
    async with aiormq.connect(amqp_url) as connection:
        channel = await connection.channel()
        taken = []
        last = 0
        while True:
            got = await channel.basic_get(queue, no_ack=False)
            if not isinstance(got.delivery, Basic.GetOk):
                break
            taken.append(got)
            last = int(got.delivery.delivery_tag or 0)
        if last:
            await channel.basic_nack(last, multiple=True, requeue=True)
        return taken


async def test_a_stream_goes_to_one_consumer_only_and_is_handled_once(queues: Queues) -> None:
    order, other = str(uuid.uuid4()), str(uuid.uuid4())  # order streams hold real order ids
    stream = f"order-{order}"
    rows = await append(
        queues.store, stream, placed(order), retry_requested(order), succeeded(order)
    )
    await append(queues.store, f"order-{other}", placed(other))  # another stream
    bound = [r for r in rows if r["event_type"] in ("OrderPlaced", "PaymentRetryRequested")]

    code, out, err = await queues.republish("--consumer", "order-payments", "--stream", stream)

    assert code == 0, err
    payments = queues.consumers["order-payments"]
    assert f"sent 2 events to {payments.queue}; skipped 1" in out
    assert await queues.length("cart-checkout") == 0
    messages = await _take_all(queues.config.amqp_url, payments.queue)
    assert len(messages) == 2
    for message, row in zip(messages, bound, strict=True):  # as the relay encodes them
        key, body, props = encode_row(row)
        got = message.header.properties
        assert message.body == body
        assert got.message_id == props.message_id == str(row["event_id"])
        assert got.message_type == row["event_type"]
        assert got.correlation_id == props.correlation_id
        assert got.headers["x-stream-id"] == stream
        assert got.headers["x-original-routing-key"] == key

    async with running(payments):
        await until(lambda: payments.stats.handled == 2)
        assert queues.handled["order-payments"] == [str(r["event_id"]) for r in bound]
        code, out, err = await queues.republish("--consumer", "order-payments", "--stream", stream)
        assert code == 0, err
        await until(lambda: payments.stats.duplicates == 2)  # the inbox drops them
    assert payments.stats.handled == 2 and len(queues.handled["order-payments"]) == 2
    assert queues.handled["cart-checkout"] == []
    assert await queues.length("cart-checkout") == 0


async def test_a_position_range_sends_what_the_consumer_is_bound_to(queues: Queues) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    first = await append(queues.store, f"order-{a}", placed(a), succeeded(a))
    last = await append(queues.store, f"order-{b}", placed(b), retry_requested(b))
    rows = first + last
    low, high = rows[0]["global_position"], rows[-1]["global_position"]

    code, out, err = await queues.republish(
        "--consumer", "cart-checkout", "--from-position", str(low), "--to-position", str(high)
    )

    assert code == 0, err
    checkout = queues.consumers["cart-checkout"]
    assert f"sent 2 events to {checkout.queue}; skipped 2" in out
    assert await queues.length("order-payments") == 0
    messages = await _take_all(queues.config.amqp_url, checkout.queue)
    placed_ids = [str(r["event_id"]) for r in rows if r["event_type"] == "OrderPlaced"]
    assert [m.header.properties.message_id for m in messages] == placed_ids

    code, out, err = await queues.republish(
        "--consumer", "cart-checkout", "--from-position", str(high), "--to-position", str(high)
    )
    assert code == 0, err
    assert f"sent 0 events to {checkout.queue}; skipped 1" in out
    assert await queues.length("cart-checkout") == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--consumer", "order-payments"],
        ["--consumer", "order-payments", "--stream", "order-x", "--from-position", "1"],
        ["--consumer", "order-payments", "--from-position", "1"],
        ["--consumer", "order-payments", "--to-position", "5"],
        ["--consumer", "order-payments", "--from-position", "5", "--to-position", "1"],
    ],
)
def test_a_bad_mix_of_options_is_a_usage_error(test_env: StackEnv, args: list[str]) -> None:
    result = microshop(test_env, "events", "republish", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Error:" in result.stderr


async def test_an_unknown_or_undeclared_queue_is_one_error_line(
    test_env: StackEnv, uid: str, store: PostgresEventStore
) -> None:
    order = str(uuid.uuid4())
    stream = f"order-{order}"
    await append(store, stream, placed(order))
    unknown = microshop(test_env, "events", "republish", "--consumer", "nope", "--stream", stream)
    assert unknown.returncode == 1
    assert unknown.stderr.splitlines() == [
        "Error: unknown consumer queue 'nope'; known queues: cart-checkout, order-payments"
    ]

    fresh = f"{test_env.namespace}-{uid}"  # no consumer ever ran in this namespace
    never = microshop(
        test_env,
        *("events", "republish", "--consumer", "cart-checkout", "--stream", stream),
        MICROSHOP_NAMESPACE=fresh,
    )
    assert never.returncode == 1
    assert never.stderr.splitlines() == [
        f"Error: queue {fresh}.cart-checkout does not exist: its consumer has never run"
    ]

    missing = microshop(
        test_env, "events", "republish", "--consumer", "cart-checkout", "--stream", "order-none"
    )
    assert missing.returncode == 1 and "has no events" in missing.stderr
