"""A RabbitMQ cluster of several nodes, as `AMQP_URL` lists them: every client connects to
the first node that answers, from a random one, and to another when its node goes away.

The nodes are local ports relaying to the one real broker (`tests.broker.Node`), so a
node can go away in the middle of a test; the nodes that are down from the start are
closed ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import aiormq
import pytest
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.commands import Basic

from eventstore import ANY, Consumer, HandlerContext, PostgresEventStore, Relay
from eventstore.amqp import Queues, connect_amqp
from eventstore.checkpoints import save
from eventstore.pg import Pool
from tests.broker import closed_node_url, declared_queues, nodes
from tests.conftest import StackEnv
from tests.integration.test_cli import microshop
from tests.integration.test_relay import bound_queue
from tests.queues import append, placed, publish, running, until
from tests.samples import Noted


async def test_connections_spread_over_the_nodes_and_skip_those_down(test_env: StackEnv) -> None:
    async with nodes(test_env.amqp_url, 2) as (first, second):
        down = closed_node_url(test_env.amqp_url)
        url = ",".join([down, first.url, down, second.url])
        connections = [await connect_amqp(url, f"spread-{n}") for n in range(20)]
        try:
            assert all(c.is_opened for c in connections)
            assert first.accepted + second.accepted == 20
            assert first.accepted and second.accepted, "every connection went to one node"
        finally:
            for connection in connections:
                await connection.close()


async def test_when_no_node_answers_the_error_names_each_without_a_password(
    test_env: StackEnv,
) -> None:
    url = ",".join(closed_node_url("amqp://guest:s3cret@127.0.0.1/vh") for _ in range(2))
    with pytest.raises(ConnectionError) as refused:
        await connect_amqp(url, "nowhere")

    message = str(refused.value)
    assert message.startswith("no RabbitMQ node answered (amqp://guest:***@127.0.0.1:")
    assert message.count("guest:***@") == 2 and "s3cret" not in message


async def test_a_refusal_about_another_argument_is_not_taken_for_the_type(
    test_env: StackEnv, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Only a queue of the other type is kept as it is: a queue whose other arguments
    differ is an error (here: a length cap changed in the code)."""
    name = f"{test_env.namespace}-{uid}.capped"
    async with aiormq.connect(test_env.amqp_url) as connection:
        channel = await connection.channel()
        await channel.queue_declare(name, durable=True, arguments={"x-max-length": 5})
        queues = Queues("quorum")
        with caplog.at_level(logging.WARNING, logger="eventstore.amqp"):
            with pytest.raises(ChannelPreconditionFailed, match="x-"):
                await queues.declare(channel, name, {"x-max-length": 10})
            assert await queues.declare(channel, name, {"x-max-length": 5}) == "classic"
            assert await queues.declare(channel, name, {"x-max-length": 5}) == "classic"
        await channel.queue_delete(name)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"queue {name} exists as a classic queue and stays one"
    ]


async def test_a_consumer_moves_to_another_node_when_its_node_goes_away(
    test_env: StackEnv, uid: str, store: PostgresEventStore
) -> None:
    handled: list[str] = []

    async def handler(ctx: HandlerContext) -> None:
        handled.append(str(ctx.event.event_id))

    namespace = f"{test_env.namespace}-{uid}"
    async with nodes(test_env.amqp_url, 2) as pair:
        down = closed_node_url(test_env.amqp_url)
        consumer = Consumer(
            store,
            amqp_url=",".join([down, down, *(node.url for node in pair)]),
            namespace=namespace,
            name="payments",
            bindings=["order.OrderPlaced"],
            handler=handler,
            reconnect_delay=0.1,
        )
        async with running(consumer):
            first = await _place(store, test_env, namespace)
            await until(lambda: handled == [first])
            [serving] = [node for node in pair if node.connections]
            await serving.down()
            await until(lambda: not consumer.ready.is_set())
            await until(consumer.ready.is_set)
            [other] = [node for node in pair if node is not serving]
            assert other.connections == 1
            second = await _place(store, test_env, namespace)
            await until(lambda: handled == [first, second])

    assert {q.type for q in declared_queues(test_env.vhost, f"{namespace}.").values()} == {"quorum"}


async def _place(store: PostgresEventStore, env: StackEnv, namespace: str) -> str:
    order = str(uuid.uuid4())
    rows = await append(store, f"order-{order}", placed(order))
    await publish(env.amqp_url, namespace, rows)
    return str(rows[0]["event_id"])


async def test_the_cli_reaches_the_broker_through_a_node_list(test_env: StackEnv) -> None:
    url = ",".join([closed_node_url(test_env.amqp_url), test_env.amqp_url])
    result = await asyncio.to_thread(microshop, test_env, "dead-letters", "list", AMQP_URL=url)
    assert result.returncode == 0, result.stderr
    assert "order-payments: " in result.stdout

    down = closed_node_url("amqp://guest:s3cret@127.0.0.1/")
    result = await asyncio.to_thread(
        microshop, test_env, "dead-letters", "list", AMQP_URL=f"{down},{down}"
    )
    assert result.returncode == 1 and "s3cret" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: cannot reach RabbitMQ at AMQP_URL=amqp://guest:***@127.0.0.1:")


@pytest.mark.slow
async def test_the_relay_moves_to_another_node_when_its_node_goes_away(
    store: PostgresEventStore, pool: Pool, test_env: StackEnv, uid: str
) -> None:
    name, exchange = f"relay-{uid}", f"{test_env.namespace}-{uid}.events"
    await save(pool, name, await store.head())
    sent: set[str] = set()
    received: set[str] = set()

    async def send(count: int) -> None:
        for i in range(count):
            event_id = uuid.uuid4()
            await store.append(f"relay{uid}-{i % 3}", [Noted(str(i))], ANY, event_ids=[event_id])
            sent.add(str(event_id))

    async with bound_queue(test_env, exchange) as queue, nodes(test_env.amqp_url, 2) as pair:
        down = closed_node_url(test_env.amqp_url)
        relay = Relay(
            store,
            ",".join([down, down, *(node.url for node in pair)]),
            exchange,
            name=name,
            poll_interval=0.05,
            retry_delay=0.1,
        )
        task = asyncio.create_task(relay.run())
        try:
            await send(30)
            await _receive(test_env, queue, received, sent)
            [serving] = [node for node in pair if node.connections]
            restarts = relay.stats.restarts
            await serving.down()
            await send(30)
            await _receive(test_env, queue, received, sent)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert relay.stats.restarts > restarts  # it lost its node, and went on elsewhere
    assert sent <= received and len(sent) == 60


async def _receive(env: StackEnv, queue: str, received: set[str], wanted: set[str]) -> None:
    """Take messages from `queue` into `received` until it holds every one of `wanted`
    (generous: the relay waits for the log's fence, which others may hold)."""
    async with aiormq.connect(env.amqp_url) as connection, asyncio.timeout(60):
        channel = await connection.channel()
        while not wanted <= received:
            got = await channel.basic_get(queue, no_ack=True)
            if isinstance(got.delivery, Basic.GetEmpty):
                await asyncio.sleep(0.05)
            else:
                received.add(str(got.header.properties.message_id))


async def test_a_queue_migrated_meanwhile_gets_the_type_asked_for(
    test_env: StackEnv, uid: str
) -> None:
    """A process that found a classic queue declares it as quorum once it was deleted (the
    migration), instead of remembering the old type."""
    name = f"{test_env.namespace}-{uid}.migrated"
    queues = Queues("quorum")
    async with aiormq.connect(test_env.amqp_url) as connection:
        channel = await connection.channel()
        await channel.queue_declare(name, durable=True)
        assert await queues.declare(channel, name) == "classic"
        await channel.queue_delete(name)
        assert await queues.declare(channel, name) == "quorum"
        assert queues.kept == {}
        await channel.queue_delete(name)
