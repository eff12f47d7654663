"""Services built on the kernel: the relay service, consumers and projection runners."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiormq
from aiohttp import web
from aiohttp.test_utils import TestClient
from pamqp.commands import Basic

from eventstore import ANY, HandlerContext, RetryPolicy
from eventstore.pg import Pool
from microshop.app import make_app
from microshop.appkeys import STORE
from microshop.workers import CONSUMERS, RUNNERS, consumer_context, projection_context
from services.relay.app import create_app as create_relay
from tests.conftest import StackEnv
from tests.samples import NOTES_DDL, Noted, notes_projection

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


async def until_ready(client: Client) -> None:
    async with asyncio.timeout(15):
        while (await client.get("/ready")).status != 200:
            await asyncio.sleep(0.05)


async def test_relay_service_publishes_and_reports_lag(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    config = test_env.config(namespace=f"{test_env.namespace}-{uid}")
    queue = f"{config.namespace}.probe"
    async with aiormq.connect(test_env.amqp_url) as connection:
        channel = await connection.channel()
        await channel.exchange_declare(config.events_exchange, exchange_type="topic", durable=True)
        await channel.queue_declare(queue, auto_delete=False)
        await channel.queue_bind(queue, config.events_exchange, routing_key=f"svc{uid}.*")

        client = await aiohttp_client(create_relay(config))
        await until_ready(client)
        appended = await client.app[STORE].append(f"svc{uid}-1", [Noted("hello")], ANY)

        async with asyncio.timeout(15):
            while True:
                got = await channel.basic_get(queue, no_ack=True)
                if not isinstance(got.delivery, Basic.GetEmpty):
                    break
                await asyncio.sleep(0.05)
        assert got.header.properties.message_id == str(appended.event_ids[0])
        await channel.queue_delete(queue)

    metrics = await (await client.get("/metrics")).text()
    assert "relay_published_events_total" in metrics
    assert "relay_lag_events" in metrics
    assert 'relay_leader{service="relay"} 1' in metrics


async def test_consumer_and_projection_contexts(
    aiohttp_client: MakeClient, test_env: StackEnv, pool: Pool, uid: str
) -> None:
    config = test_env.config(namespace=f"{test_env.namespace}-{uid}")
    projection = notes_projection(uid)
    await pool.execute(NOTES_DDL.format(table=projection.table))
    handled: list[str] = []

    async def handler(ctx: HandlerContext) -> None:
        handled.append(ctx.event.data.text)

    app = make_app(
        config,
        "worker-test",
        contexts=[
            consumer_context(
                f"notes-{uid}",
                [f"note{uid}.*"],
                handler,
                retry=RetryPolicy(attempts=2, initial=0.05),
            ),
            projection_context(projection),
        ],
    )
    client = await aiohttp_client(app)
    await until_ready(client)

    result = await app[STORE].append(f"note{uid}-1", [Noted("a", 5)], ANY)
    await app[RUNNERS][projection.name].wait_for(result.position, timeout=5)
    row = await pool.fetchrow(f"SELECT * FROM {projection.table}")
    assert row is not None and row["total"] == 5

    # the consumer gets the event once the relay publishes it
    relay = await aiohttp_client(create_relay(config))
    await until_ready(relay)
    async with asyncio.timeout(15):
        while not handled:
            await asyncio.sleep(0.05)
    assert handled == ["a"]
    assert app[CONSUMERS][f"notes-{uid}"].stats.handled == 1

    metrics = await (await client.get("/metrics")).text()
    assert f'consumer_handled_total{{consumer="notes-{uid}",service="worker-test"}} 1' in metrics
    assert f'projection_lag_events{{projection="notes_{uid}",service="worker-test"}} ' in metrics
