"""order-consumer on the real broker and database, with order- and payment-service played by
small aiohttp servers: who reports a charge to order-service.

payment-service reports a charge itself and says so (`reported`); the consumer reports only
when that did not happen, so a lost report is still repaired and a taken one is not sent
twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiormq
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from eventstore import NO_STREAM, PostgresEventStore
from eventstore.store import GLOBAL_LOG_SQL
from eventstore.wire import encode_row
from microshop.workers import CONSUMERS
from services.order import domain
from services.order import events as _order_events  # noqa: F401  (registers the types)
from services.order_consumer.app import create_app
from tests.conftest import StackEnv, stand_in
from tests.tokens import TEST_KEYS

KEY = "consumer-test-key"


@dataclasses.dataclass
class Upstreams:
    """order- and payment-service: the order is pending; payments charge, `reported` as set."""

    reported: bool = True
    url: str = ""
    payments: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    reports: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    failures: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # what GET /internal/payments/{id} lists (None: 404, no attempt at all)
    history: list[dict[str, Any]] | None = None

    async def order(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"id": request.match_info["id"], "status": "PENDING_PAYMENT", "payment_round": 1}
        )

    async def pay(self, request: web.Request) -> web.Response:
        assert request.headers["X-Internal-Api-Key"] == KEY
        body = await request.json()
        self.payments.append(body)
        return web.json_response(
            {
                "status": "charged",
                "order_id": body["order_id"],
                "round": body["round"],
                "attempt": body["attempt"],
                "payment_id": str(uuid.uuid4()),
                "reason": None,
                "reported": self.reported,
            }
        )

    async def succeeded(self, request: web.Request) -> web.Response:
        self.reports.append(await request.json())
        return web.json_response({"status": "PAID", "recorded": True})

    async def failed(self, request: web.Request) -> web.Response:
        self.failures.append(await request.json())
        return web.json_response({"status": "PAYMENT_FAILED", "recorded": True})

    async def listing(self, request: web.Request) -> web.Response:
        if self.history is None:
            return web.json_response(
                {"error": {"code": "not_found", "message": "none", "details": {}}}, status=404
            )
        return web.json_response({"order_id": request.match_info["id"], "attempts": self.history})


@pytest.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    fake = Upstreams()
    app = web.Application()
    app.router.add_get("/internal/orders/{id}", fake.order)
    app.router.add_post("/internal/orders/{id}/payment-succeeded", fake.succeeded)
    app.router.add_post("/internal/orders/{id}/payment-failed", fake.failed)
    app.router.add_post("/internal/payments", fake.pay)
    app.router.add_get("/internal/payments/{id}", fake.listing)
    async with stand_in(app) as fake.url:
        yield fake


@pytest.fixture
async def consumer_app(
    test_env: StackEnv, upstreams: Upstreams, uid: str
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    config = test_env.config(
        namespace=f"oc-{uid}",
        internal_api_key=KEY,
        order_url=upstreams.url,
        payment_url=upstreams.url,
        log_shipping=False,
    )
    client = TestClient(TestServer(create_app(config, token_keys=TEST_KEYS)))
    await client.start_server()
    consumer = client.app[CONSUMERS]["order-payments"]
    await asyncio.wait_for(consumer.ready.wait(), 30)
    yield client
    await client.close()
    async with aiormq.connect(test_env.amqp_url) as connection:
        channel = await connection.channel()
        await channel.queue_delete(consumer.queue)
        await channel.queue_delete(consumer.parking)


async def place_and_publish(
    store: PostgresEventStore, env: StackEnv, uid: str, *, attempt: int = 1
) -> str:
    order_id = str(uuid.uuid4())
    lines = [domain.OrderLine("p1", "Mug", Decimal("9.50"), 1, Decimal("9.50"))]
    start = await store.head()
    await store.append(
        f"order-{order_id}", domain.place(order_id, "u1", lines, "EUR", 1), NO_STREAM
    )
    rows = await store.pool.fetch(GLOBAL_LOG_SQL, start[0], start[1], 10_000)
    [row] = [r for r in rows if r["stream_id"] == f"order-{order_id}"]
    key, body, props = encode_row(row)
    if attempt > 1:  # a redelivery through the consumer's retry queues
        props.headers = {**(props.headers or {}), "x-attempt": attempt}
    async with aiormq.connect(env.amqp_url) as connection:
        channel = await connection.channel()
        await channel.basic_publish(
            body, exchange=f"oc-{uid}.events", routing_key=key, properties=props
        )
    return order_id


async def handled(client: TestClient[web.Request, web.Application], count: int) -> None:
    consumer = client.app[CONSUMERS]["order-payments"]
    async with asyncio.timeout(30):
        while consumer.stats.handled < count:
            await asyncio.sleep(0.02)


async def test_a_charge_payment_service_reported_is_not_reported_again(
    consumer_app: TestClient[web.Request, web.Application],
    upstreams: Upstreams,
    store: PostgresEventStore,
    test_env: StackEnv,
    uid: str,
) -> None:
    order_id = await place_and_publish(store, test_env, uid)
    await handled(consumer_app, 1)
    assert [p["order_id"] for p in upstreams.payments] == [order_id]
    assert upstreams.reports == []


async def test_a_charge_payment_service_could_not_report_is_reported_by_the_consumer(
    consumer_app: TestClient[web.Request, web.Application],
    upstreams: Upstreams,
    store: PostgresEventStore,
    test_env: StackEnv,
    uid: str,
) -> None:
    upstreams.reported = False
    await place_and_publish(store, test_env, uid)
    await handled(consumer_app, 1)
    [report] = upstreams.reports
    assert (report["round"], report["attempt"]) == (1, 1)
    assert uuid.UUID(report["payment_id"])


async def test_past_the_budget_a_charge_whose_reports_were_lost_is_reported_as_paid(
    consumer_app: TestClient[web.Request, web.Application],
    upstreams: Upstreams,
    store: PostgresEventStore,
    test_env: StackEnv,
    uid: str,
) -> None:
    """The last attempt charged, but neither payment-service nor the consumer could tell
    order-service: the delivery after the budget must report the charge, not a failure."""
    payment_id = str(uuid.uuid4())
    upstreams.history = [
        {"round": 1, "attempt": 1, "status": "declined", "payment_id": None},
        {"round": 1, "attempt": 3, "status": "charged", "payment_id": payment_id},
    ]
    budget = test_env.config().order_consumer_retry_attempts
    await place_and_publish(store, test_env, uid, attempt=budget + 1)
    await handled(consumer_app, 1)
    assert upstreams.payments == []  # no new attempt
    assert upstreams.failures == []
    assert [(r["round"], r["attempt"], r["payment_id"]) for r in upstreams.reports] == [
        (1, 3, payment_id)
    ]


async def test_past_the_budget_without_a_charge_the_round_fails(
    consumer_app: TestClient[web.Request, web.Application],
    upstreams: Upstreams,
    store: PostgresEventStore,
    test_env: StackEnv,
    uid: str,
) -> None:
    upstreams.history = [{"round": 1, "attempt": 3, "status": "declined", "payment_id": None}]
    budget = test_env.config().order_consumer_retry_attempts
    await place_and_publish(store, test_env, uid, attempt=budget + 1)
    await handled(consumer_app, 1)
    assert upstreams.reports == []
    assert [(f["round"], f["attempts"]) for f in upstreams.failures] == [(1, budget)]
