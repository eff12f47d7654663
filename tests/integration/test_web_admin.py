"""The operator pages on the real event store and RabbitMQ: the event log and correlation
chains, projection rebuilds, and parked messages with their replay.

Each test works in streams, tables and a broker namespace of its own.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiormq
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from eventstore import (
    ANY,
    HandlerContext,
    Metadata,
    PostgresEventStore,
    Reject,
    checkpoints,
    projections,
)
from eventstore.pg import Pool
from eventstore.projection import Projection, ProjectionRunner, register_projection
from microshop.config import Config
from microshop.services import load as load_service
from microshop.topology import CONSUMER_QUEUES, load_projections
from microshop.workers import CONSUMERS as RUNNING_CONSUMERS
from services.gateway.app import create_app
from tests.conftest import StackEnv
from tests.pages import csrf_of, text_of
from tests.samples import NOTES_DDL, Noted, notes_projection
from tests.tokens import TEST_KEYS, admin_token
from web.admin.resources import OPERATOR, consumers_for
from web.session import SESSION_COOKIE

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


def admin_config(test_env: StackEnv, uid: str) -> Config:
    return test_env.config(namespace=f"{test_env.namespace}-{uid}")


async def admin_client(aiohttp_client: MakeClient, config: Config) -> Client:
    client = await aiohttp_client(create_app(config, token_keys=TEST_KEYS))
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: admin_token()})
    return client


@pytest.fixture
async def admin(aiohttp_client: MakeClient, test_env: StackEnv, uid: str) -> Client:
    return await admin_client(aiohttp_client, admin_config(test_env, uid))


async def page(client: Client, path: str, status: int = 200) -> str:
    resp = await client.get(path)
    body = await resp.text()
    assert resp.status == status, body
    return body


# -- the event log -----------------------------------------------------------------------


async def test_event_detail_shows_data_metadata_and_the_correlation_chain(
    admin: Client, store: PostgresEventStore, uid: str
) -> None:
    category, corr = f"pg{uid}", f"corr-{uid}"

    def meta(service: str, cause: Any = None, correlation: str = corr) -> Metadata:
        causation = str(cause.event_ids[0]) if cause is not None else None
        return Metadata(correlation_id=correlation, service=service, causation_id=causation)

    placed = await store.append(f"{category}-a", [Noted("placed <&>")], ANY, metadata=meta("order"))
    charged = await store.append(
        f"{category}-b", [Noted("charged", n=2)], ANY, metadata=meta("payment", placed)
    )
    paid = await store.append(
        f"{category}-a", [Noted("paid")], ANY, metadata=meta("order", charged)
    )
    other = await store.append(
        f"{category}-c",
        [Noted("elsewhere")],
        ANY,
        metadata=meta("order", correlation=f"other-{uid}"),
    )

    body = await page(admin, f"/admin/events/{charged.event_ids[0]}")
    text = text_of(body)
    assert f"{category}-b version 1" in text
    assert '"text": "charged"' in text and '"n": 2' in text  # the data as stored
    assert "payment" in text  # metadata
    assert f'href="/admin/logs?correlation_id={corr}"' in body  # events → logs
    chain = body[body.index("Correlation chain") :]
    ids = [str(placed.event_ids[0]), str(charged.event_ids[0]), str(paid.event_ids[0])]
    positions = [chain.index(f'<a href="/admin/events/{i}"><strong>') for i in ids]
    assert positions == sorted(positions)  # in log order
    assert str(other.event_ids[0]) not in chain
    assert all(f'class="depth-{d}' in chain for d in (0, 1, 2))
    assert chain.count("caused by") == 2
    # the causation link of the event shown
    assert f'<a href="/admin/events/{placed.event_ids[0]}">TestNoted in {category}-a@1' in body

    by_correlation = await page(admin, f"/admin/events?correlation_id={corr}")
    assert by_correlation.count("<strong>TestNoted</strong>") == 3
    escaped = await page(admin, f"/admin/events/{placed.event_ids[0]}")
    assert "placed &lt;&amp;&gt;" in escaped and "placed <&>" not in escaped


async def test_the_global_log_newest_first_with_a_category_filter_and_paging(
    admin: Client, store: PostgresEventStore, uid: str
) -> None:
    category = f"pg{uid}"
    for i in range(55):
        await store.append(f"{category}-{i % 3}", [Noted(f"n{i}")], ANY)
    first = await page(admin, f"/admin/events?category={category}")
    log = first[first.index("Global log") : first.index("Recently changed streams")]
    rows = re.findall(r'<a href="/admin/events/stream/(pg[0-9a-f]+-\d)"', log)
    assert len(rows) == 50 and {r.partition("-")[0] for r in rows} == {category}
    texts = re.findall(r"&#34;text&#34;: &#34;(n\d+)&#34;", first)
    assert texts[:3] == ["n54", "n53", "n52"]  # newest first
    older = re.search(r'href="(/admin/events\?category=[^"]+&amp;before=\d+)"', first)
    assert older is not None
    second = await page(admin, older.group(1).replace("&amp;", "&"))
    assert re.findall(r"&#34;text&#34;: &#34;(n\d+)&#34;", second) == ["n4", "n3", "n2", "n1", "n0"]
    stream = await page(admin, f"/admin/events/stream/{category}-0")
    assert re.findall(r"&#34;text&#34;: &#34;(n\d+)&#34;", stream)[:3] == ["n0", "n3", "n6"]
    await page(admin, f"/admin/events/stream/{category}-nothing", status=404)
    await page(admin, f"/admin/events/{uuid.uuid4()}", status=404)
    await page(admin, "/admin/events?before=-3", status=400)
    await page(admin, "/admin/events/stream/a%00b", status=400)  # Postgres text holds no NUL
    await page(admin, "/admin/events?category=a%00", status=400)
    # the gateway keeps the `streams` read model the page lists streams from
    async with asyncio.timeout(30):
        while True:
            listed = await page(admin, f"/admin/events?category={category}")
            streams = listed[listed.index("Recently changed streams") :]
            if len(set(re.findall(rf'stream/({category}-\d)"', streams))) == 3:
                break
            await asyncio.sleep(0.1)
    lookup = await admin.get(
        "/admin/events/stream", params={"id": f"{category}-1"}, allow_redirects=False
    )
    assert lookup.headers["Location"] == f"/admin/events/stream/{category}-1"


# -- projections -------------------------------------------------------------------------


@pytest.fixture
async def notes(pool: Pool, uid: str) -> AsyncIterator[Projection]:
    projection = register_projection(notes_projection(uid))
    await pool.execute(NOTES_DDL.format(table=projection.table))
    yield projection
    projections.pop(projection.name, None)
    await pool.execute(f"DROP TABLE IF EXISTS {projection.table}, {projection.table}__rebuild")


async def test_projections_page_shows_lag_and_rebuilds_without_changing_rows(
    aiohttp_client: MakeClient,
    test_env: StackEnv,
    uid: str,
    store: PostgresEventStore,
    pool: Pool,
    notes: Projection,
) -> None:
    for i in range(20):
        await store.append(f"note{uid}-{i % 4}", [Noted(f"t{i}", n=i)], ANY)
    admin = await admin_client(aiohttp_client, admin_config(test_env, uid))
    body = await page(admin, "/admin/projections")
    listed = re.findall(r'<tr id="([^"]+)">', body)
    assert listed == [*load_projections(), "relay"]
    row = body[body.index(f'<tr id="{notes.name}">') :]
    row = row[: row.index("</tr>")]
    assert re.search(r"<td class=\"warn\">(\d+)</td>", row), row  # behind: never ran
    assert "What holds the log back" in body

    await ProjectionRunner(store, notes).catch_up()
    before = [dict(r) for r in await pool.fetch(f"SELECT * FROM {notes.table} ORDER BY 1")]
    assert len(before) == 4
    caught_up = await page(admin, "/admin/projections")
    row = caught_up[caught_up.index(f'<tr id="{notes.name}">') :]
    assert '<td class="">0</td>' in row[: row.index("</tr>")]

    token = csrf_of(caught_up)
    rebuild_url = f"/admin/projections/{notes.name}/rebuild"
    async with pool.acquire() as conn, conn.transaction():
        await checkpoints.lock(conn, notes.name)  # the rebuild cannot swap in until we let go
        resp = await admin.post(rebuild_url, data={"csrf_token": token}, allow_redirects=False)
        assert resp.status == 303
        assert resp.headers["Location"] == f"/admin/projections#{notes.name}"
        again = await admin.post(rebuild_url, data={"csrf_token": token})
        assert again.status == 409  # one rebuild of a projection at a time
        assert "Already rebuilding" in text_of(await again.text())
        running = await page(admin, "/admin/projections")
        assert '<meta http-equiv="refresh"' in running
        assert f'<progress id="progress-{notes.name}"' in running
    job = admin.app[OPERATOR].rebuilds.jobs[notes.name]
    async with asyncio.timeout(60):
        while job.state == "running":
            await asyncio.sleep(0.05)
    assert job.state == "done", job.error
    done = await page(admin, "/admin/projections")
    assert f"Rebuilt: 4 rows from {job.result.events if job.result else '?'} events" in done
    after = [dict(r) for r in await pool.fetch(f"SELECT * FROM {notes.table} ORDER BY 1")]
    assert after == before

    missing = await admin.post(
        "/admin/projections/no-such/rebuild", data={"csrf_token": csrf_of(done)}
    )
    assert missing.status == 404


# -- dead letters ------------------------------------------------------------------------


def test_services_take_their_consumer_queues_from_the_registry() -> None:
    """No queue named ad hoc: what the services run is what the dead-letters page lists
    (the next test starts each service and compares)."""
    root = Path(__file__).resolve().parents[2] / "services"
    literal = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if re.search(r'consumer_context\(\s*[f]?["\']', path.read_text())
    ]
    assert literal == []


@pytest.mark.parametrize("service", sorted({s.service for s in CONSUMER_QUEUES.values()}))
async def test_services_declare_the_registered_queues(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str, service: str
) -> None:
    factory = load_service(service)
    config = admin_config(test_env, uid)
    app = factory(config, token_keys=TEST_KEYS)  # type: ignore[call-arg]
    client = await aiohttp_client(app)
    running = client.app[RUNNING_CONSUMERS]
    assert {n: c.bindings for n, c in running.items()} == {
        n: s.bindings for n, s in CONSUMER_QUEUES.items() if s.service == service
    }


async def _queue_length(amqp_url: str, queue: str) -> int:
    async with aiormq.connect(amqp_url) as connection:
        channel = await connection.channel()
        declared = await channel.queue_declare(queue, passive=True)
        return int(declared.message_count or 0)


async def test_dead_letters_lists_parked_messages_and_replays_them(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str, store: PostgresEventStore
) -> None:
    config = admin_config(test_env, uid)
    namespace = config.namespace
    admin = await admin_client(aiohttp_client, config)
    empty = await page(admin, "/admin/dead-letters")
    assert "its consumer has never run" in empty  # looking declares nothing

    async def refuse(ctx: HandlerContext) -> None:
        raise Reject("never")

    consumer = consumers_for(config, store)["order-payments"]
    consumer.handler = refuse
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(15):
            await consumer.ready.wait()
        async with aiormq.connect(config.amqp_url) as connection:
            channel = await connection.channel()
            await channel.basic_publish(
                b'{"poison": "<not an event>"}',
                exchange=f"{namespace}.events",
                routing_key="order.OrderPlaced",
                properties=aiormq.spec.Basic.Properties(message_id=f"poison-{uid}"),
            )
        async with asyncio.timeout(15):
            while consumer.stats.parked < 1:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    body = await page(admin, "/admin/dead-letters")
    section = text_of(body[body.index('id="order-payments"') :])
    assert "1 parked message" in section
    assert f"poison-{uid}" in section and "order.OrderPlaced" in section
    assert "undecodable" in section and '{"poison": "<not an event>"}' in section
    assert await _queue_length(config.amqp_url, f"{namespace}.order-payments.parking") == 1

    resp = await admin.post(
        "/admin/dead-letters/order-payments/replay",
        data={"csrf_token": csrf_of(body)},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"].startswith(
        "/admin/dead-letters?replayed=1&queue=order-payments"
    )
    assert await _queue_length(config.amqp_url, f"{namespace}.order-payments.parking") == 0
    assert await _queue_length(config.amqp_url, f"{namespace}.order-payments") == 1
    after = await page(admin, resp.headers["Location"])
    assert "Moved 1 message" in text_of(after) and "Nothing is parked" in text_of(after)


async def test_dead_letters_replays_or_discards_one_message_and_keeps_the_others(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str, store: PostgresEventStore
) -> None:
    config = admin_config(test_env, uid)
    admin = await admin_client(aiohttp_client, config)
    consumer = consumers_for(config, store)["order-payments"]
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(15):
            await consumer.ready.wait()
        async with aiormq.connect(config.amqp_url) as connection:
            channel = await connection.channel()
            for n in range(3):
                await channel.basic_publish(
                    b"not an event",
                    exchange=f"{config.namespace}.events",
                    routing_key="order.OrderPlaced",
                    properties=aiormq.spec.Basic.Properties(message_id=f"poison-{uid}-{n}"),
                )
        async with asyncio.timeout(15):
            while consumer.stats.parked < 3:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    before = [m.event_id for m in await consumer.parked()]

    body = await page(admin, "/admin/dead-letters")
    section = body[body.index('id="order-payments"') :]
    for event_id in before:
        assert f'name="event_id" value="{event_id}"' in section
    assert section.count('action="/admin/dead-letters/order-payments/discard"') == 3
    token = csrf_of(body)

    refused = await admin.post(
        "/admin/dead-letters/order-payments/discard",
        data={"event_id": before[0]},
        allow_redirects=False,
    )
    assert refused.status == 403  # no CSRF token: nothing happens
    assert [m.event_id for m in await consumer.parked()] == before

    replayed = await admin.post(
        "/admin/dead-letters/order-payments/replay",
        data={"csrf_token": token, "event_id": before[1]},
        allow_redirects=False,
    )
    assert replayed.status == 303
    assert replayed.headers["Location"].startswith(
        "/admin/dead-letters?replayed=1&queue=order-payments"
    )
    assert [m.event_id for m in await consumer.parked()] == [before[0], before[2]]
    assert await _queue_length(config.amqp_url, consumer.queue) == 1

    discarded = await admin.post(
        "/admin/dead-letters/order-payments/discard",
        data={"csrf_token": token, "event_id": before[2]},
        allow_redirects=False,
    )
    assert discarded.status == 303
    assert [m.event_id for m in await consumer.parked()] == [before[0]]
    after = text_of(await page(admin, discarded.headers["Location"]))
    assert f"Discarded event {before[2]}" in after and "1 parked message" in after

    gone = await admin.post(
        "/admin/dead-letters/order-payments/discard",
        data={"csrf_token": token, "event_id": before[2]},
    )
    assert gone.status == 404
    assert "holds no message of event" in text_of(await gone.text())
    assert [m.event_id for m in await consumer.parked()] == [before[0]]


async def test_dead_letters_page_says_when_rabbitmq_is_down(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    config = test_env.config(
        namespace=f"{test_env.namespace}-{uid}", amqp_url="amqp://guest:guest@127.0.0.1:1/"
    )
    admin = await admin_client(aiohttp_client, config)
    body = await page(admin, "/admin/dead-letters", status=503)
    assert "RabbitMQ is unavailable" in body
    token = csrf_of(body)
    resp = await admin.post("/admin/dead-letters/order-payments/replay", data={"csrf_token": token})
    assert resp.status == 503
