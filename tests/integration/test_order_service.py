"""order-service on the real database: visibility, the status machine over HTTP, the
internal payment-outcome API, and the rebuildable `orders` read model.

Orders are placed here by appending `OrderPlaced` directly (placing through the cart is
covered end to end in tests/e2e).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from eventstore import NO_STREAM, PostgresEventStore, rebuild
from eventstore.pg import Pool
from microshop.appkeys import POOL
from microshop.workers import RUNNERS
from services.order import domain
from services.order.app import create_app
from services.order.projections import ORDERS
from tests.conftest import StackEnv
from tests.samples import fence_held
from tests.tokens import TEST_KEYS, admin_token, bearer, mint

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
KEY = {"X-Internal-Api-Key": "order-test-key"}


@pytest.fixture
async def client(aiohttp_client: MakeClient, test_env: StackEnv) -> Client:
    config = test_env.config(internal_api_key=KEY["X-Internal-Api-Key"])
    return await aiohttp_client(create_app(config, token_keys=TEST_KEYS))


async def placed(store: PostgresEventStore, client: Client, user_id: str) -> str:
    order_id = str(uuid.uuid4())
    lines = [domain.OrderLine("p1", "Mug", Decimal("12.90"), 2, Decimal("25.80"))]
    events = domain.place(order_id, user_id, lines, "EUR", 1)
    result = await store.append(f"order-{order_id}", events, NO_STREAM)
    await client.app[RUNNERS][ORDERS.name].wait_for(result.position)
    return order_id


async def get_order(client: Client, order_id: str, token: str) -> Any:
    resp = await client.get(f"/api/orders/{order_id}", headers=bearer(token))
    return resp.status, await resp.json()


async def test_owner_and_admin_see_an_order_others_get_404(
    client: Client, store: PostgresEventStore
) -> None:
    owner = str(uuid.uuid4())
    order_id = await placed(store, client, owner)
    status, body = await get_order(client, order_id, mint(owner))
    assert status == 200
    assert body["status"] == "PENDING_PAYMENT"
    assert body["total"] == "25.80" and body["payment_attempts"] == 0
    assert body["items"][0] == {
        "product_id": "p1",
        "name": "Mug",
        "unit_price": "12.90",
        "quantity": 2,
        "line_total": "25.80",
    }
    assert (await get_order(client, order_id, admin_token()))[0] == 200
    assert (await get_order(client, order_id, mint()))[0] == 404
    assert (await get_order(client, "not-a-uuid", mint(owner)))[0] == 404
    stranger = mint()
    for path in ("cancel", "retry-payment"):
        resp = await client.post(f"/api/orders/{order_id}/{path}", headers=bearer(stranger))
        assert resp.status == 404
    assert (await client.get(f"/api/orders/{order_id}")).status == 401


async def test_own_orders_newest_first(client: Client, store: PostgresEventStore) -> None:
    owner = str(uuid.uuid4())
    first = await placed(store, client, owner)
    second = await placed(store, client, owner)
    await placed(store, client, str(uuid.uuid4()))  # someone else's
    body = await (await client.get("/api/orders", headers=bearer(mint(owner)))).json()
    assert [o["id"] for o in body["items"]] == [second, first]


async def test_payment_success_is_recorded_once(client: Client, store: PostgresEventStore) -> None:
    owner = str(uuid.uuid4())
    order_id = await placed(store, client, owner)
    report = {"round": 1, "attempt": 2, "payment_id": str(uuid.uuid4())}
    url = f"/internal/orders/{order_id}/payment-succeeded"
    answers = await asyncio.gather(*(client.post(url, json=report, headers=KEY) for _ in range(5)))
    bodies = [await a.json() for a in answers]
    assert [b["recorded"] for b in bodies].count(True) == 1
    assert {b["status"] for b in bodies} == {"PAID"}
    _, order = await get_order(client, order_id, mint(owner))
    assert (order["status"], order["payment_attempts"]) == ("PAID", 2)
    succeeded = [
        e
        for e in await store.read_stream(f"order-{order_id}")
        if e.event_type == "PaymentSucceeded"
    ]
    assert len(succeeded) == 1
    resp = await client.post(f"/api/orders/{order_id}/cancel", headers=bearer(mint(owner)))
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "illegal_transition"


async def test_a_long_poll_answers_when_the_status_changes(
    client: Client, store: PostgresEventStore
) -> None:
    owner = str(uuid.uuid4())
    order_id = await placed(store, client, owner)
    waiting = asyncio.create_task(
        client.get(f"/api/orders/{order_id}", params={"wait": "20"}, headers=bearer(mint(owner)))
    )
    await asyncio.sleep(0.2)
    assert not waiting.done()  # held: the order is still PENDING_PAYMENT
    stranger = await client.get(
        f"/api/orders/{order_id}", params={"wait": "20"}, headers=bearer(mint())
    )
    assert stranger.status == 404  # someone else's order: no waiting, no hint it exists
    report = {"round": 1, "attempt": 1, "payment_id": str(uuid.uuid4())}
    url = f"/internal/orders/{order_id}/payment-succeeded"
    assert (await client.post(url, json=report, headers=KEY)).status == 200
    resp = await waiting
    assert resp.status == 200
    assert (await resp.json())["status"] == "PAID"

    # not the awaited status: answered at once; nothing changes: answered after the wait
    body = await (
        await client.get(
            f"/api/orders/{order_id}", params={"wait": "20"}, headers=bearer(mint(owner))
        )
    ).json()
    assert body["status"] == "PAID"
    other = await placed(store, client, owner)
    resp = await client.get(
        f"/api/orders/{other}", params={"wait": "0.3"}, headers=bearer(mint(owner))
    )
    assert (resp.status, (await resp.json())["status"]) == (200, "PENDING_PAYMENT")


@pytest.mark.parametrize(
    "params",
    [{"wait": "-1"}, {"wait": "26"}, {"wait": "soon"}, {"wait": "1", "while_status": "NOPE"}],
)
async def test_bad_long_poll_parameters_are_422(
    client: Client, store: PostgresEventStore, params: dict[str, str]
) -> None:
    owner = str(uuid.uuid4())
    order_id = await placed(store, client, owner)
    resp = await client.get(f"/api/orders/{order_id}", params=params, headers=bearer(mint(owner)))
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "validation_error"


async def test_failure_retry_and_two_concurrent_retry_clicks(
    client: Client, store: PostgresEventStore
) -> None:
    owner = str(uuid.uuid4())
    order_id = await placed(store, client, owner)
    me = bearer(mint(owner))
    retry = f"/api/orders/{order_id}/retry-payment"
    assert (await client.post(retry, headers=me)).status == 409  # not failed yet
    failed = await client.post(
        f"/internal/orders/{order_id}/payment-failed", json={"round": 1, "attempts": 3}, headers=KEY
    )
    assert (await failed.json())["status"] == "PAYMENT_FAILED"

    clicks = await asyncio.gather(client.post(retry, headers=me), client.post(retry, headers=me))
    assert sorted(c.status for c in clicks) == [202, 409]
    accepted = next(c for c in clicks if c.status == 202)
    assert (await accepted.json())["status"] == "PENDING_PAYMENT"
    retries = [
        e
        for e in await store.read_stream(f"order-{order_id}")
        if e.event_type == "PaymentRetryRequested"
    ]
    assert len(retries) == 1 and retries[0].data.round == 2

    stale = await client.post(
        f"/internal/orders/{order_id}/payment-failed", json={"round": 1, "attempts": 3}, headers=KEY
    )
    assert (await stale.json()) == {
        "order_id": order_id,
        "status": "PENDING_PAYMENT",
        "recorded": False,
    }


async def test_cancel_and_a_payment_arriving_after_it(
    client: Client, store: PostgresEventStore
) -> None:
    owner = str(uuid.uuid4())
    order_id = await placed(store, client, owner)
    resp = await client.post(f"/api/orders/{order_id}/cancel", headers=bearer(mint(owner)))
    assert resp.status == 200 and (await resp.json())["status"] == "CANCELLED"
    late = await client.post(
        f"/internal/orders/{order_id}/payment-succeeded",
        json={"round": 1, "attempt": 1, "payment_id": str(uuid.uuid4())},
        headers=KEY,
    )
    assert late.status == 409
    assert (await late.json())["error"]["code"] == "order_cancelled"
    again = await client.post(f"/api/orders/{order_id}/cancel", headers=bearer(mint(owner)))
    assert again.status == 409


async def test_timeline_lists_the_events_with_their_correlation(
    client: Client, store: PostgresEventStore
) -> None:
    owner = str(uuid.uuid4())
    order_id = await placed(store, client, owner)
    await client.post(
        f"/api/orders/{order_id}/cancel",
        headers={**bearer(mint(owner)), "X-Correlation-ID": "corr-cancel"},
    )
    body = await (
        await client.get(f"/api/orders/{order_id}/events", headers=bearer(mint(owner)))
    ).json()
    assert [(i["type"], i["stream_version"]) for i in body["items"]] == [
        ("OrderPlaced", 1),
        ("OrderCancelled", 2),
    ]
    assert body["items"][1]["correlation_id"] == "corr-cancel"
    assert body["items"][0]["data"]["total"] == "25.80"


async def test_only_a_peer_names_the_cause_of_what_it_records(
    client: Client, store: PostgresEventStore
) -> None:
    owner = str(uuid.uuid4())
    forged = {"X-Causation-ID": str(uuid.uuid4())}
    first, second = await placed(store, client, owner), await placed(store, client, owner)
    resp = await client.post(
        f"/api/orders/{first}/cancel", headers={**bearer(mint(owner)), **forged}
    )
    assert resp.status == 200
    cancelled = (await store.read_stream(f"order-{first}"))[-1]
    assert (cancelled.event_type, cancelled.metadata.causation_id) == ("OrderCancelled", None)
    report = {"round": 1, "attempt": 1, "payment_id": str(uuid.uuid4())}
    url = f"/internal/orders/{second}/payment-succeeded"
    assert (await client.post(url, json=report, headers={**KEY, **forged})).status == 200
    paid = (await store.read_stream(f"order-{second}"))[-1]
    assert (paid.event_type, paid.metadata.causation_id) == (
        "PaymentSucceeded",
        forged["X-Causation-ID"],
    )


async def test_internal_api_needs_the_key(
    client: Client, aiohttp_client: MakeClient, test_env: StackEnv
) -> None:
    url = f"/internal/orders/{uuid.uuid4()}/payment-failed"
    assert (await client.post(url, json={"round": 1, "attempts": 1})).status == 401
    wrong = await client.post(
        url, json={"round": 1, "attempts": 1}, headers={"X-Internal-Api-Key": "nope"}
    )
    assert wrong.status == 401
    assert (await client.post(url, json={"round": 1, "attempts": 1}, headers=KEY)).status == 404
    bad = await client.post(url, json={"round": "1", "attempts": 0}, headers=KEY)
    assert bad.status == 422
    closed = await aiohttp_client(
        create_app(test_env.config(internal_api_key=""), token_keys=TEST_KEYS)
    )
    assert (await closed.get("/internal/debug/routes", headers=KEY)).status == 403
    routes = await (await client.get("/internal/debug/routes", headers=KEY)).json()
    assert {"method": "POST", "path": "/api/orders", "handler": "create_order"} in routes["routes"]


async def test_orders_projection_rebuild_reproduces_the_rows(
    client: Client, store: PostgresEventStore, pool: Pool
) -> None:
    owner = str(uuid.uuid4())
    paid, failed, cancelled = [await placed(store, client, owner) for _ in range(3)]
    await client.post(
        f"/internal/orders/{paid}/payment-succeeded",
        json={"round": 1, "attempt": 1, "payment_id": str(uuid.uuid4())},
        headers=KEY,
    )
    await client.post(
        f"/internal/orders/{failed}/payment-failed", json={"round": 1, "attempts": 3}, headers=KEY
    )
    await client.post(f"/api/orders/{cancelled}/cancel", headers=bearer(mint(owner)))
    before = [dict(r) for r in await pool.fetch("SELECT * FROM orders ORDER BY id")]

    await rebuild(store, ORDERS)

    after = [dict(r) for r in await pool.fetch("SELECT * FROM orders ORDER BY id")]
    assert after == before
    collations = await pool.fetch(  # the swapped-in table compares keys as the old one did
        """SELECT a.attname, c.collname FROM pg_attribute a
           JOIN pg_collation c ON c.oid = a.attcollation
           WHERE a.attrelid = 'orders'::regclass AND a.attname IN ('user_id', 'status')"""
    )
    assert {r["attname"]: r["collname"] for r in collations} == {"user_id": "C", "status": "C"}
    statuses = {str(r["id"]): r["status"] for r in after}
    assert [statuses[i] for i in (paid, failed, cancelled)] == [
        "PAID",
        "PAYMENT_FAILED",
        "CANCELLED",
    ]


async def test_a_lagging_read_model_never_turns_a_committed_change_into_an_error(
    aiohttp_client: MakeClient, test_env: StackEnv, store: PostgresEventStore
) -> None:
    """Read-your-writes waits READ_YOUR_WRITES_TIMEOUT_SECONDS; past it the change is
    answered as the log has it (it used to be a 500 although the change was committed)."""
    config = test_env.config(
        internal_api_key=KEY["X-Internal-Api-Key"], read_your_writes_timeout_seconds=0.2
    )
    client = await aiohttp_client(create_app(config, token_keys=TEST_KEYS))
    owner = str(uuid.uuid4())
    order_id = await placed(store, client, owner)
    async with fence_held(test_env.database_url):
        resp = await client.post(f"/api/orders/{order_id}/cancel", headers=bearer(mint(owner)))
        assert resp.status == 200
        body = await resp.json()
        assert (body["id"], body["status"], body["total"]) == (order_id, "CANCELLED", "25.80")
        read_model = await client.app[POOL].fetchval(
            "SELECT status FROM orders WHERE id = $1", uuid.UUID(order_id)
        )
        assert read_model == "PENDING_PAYMENT"  # the read model had not caught up
        report = {"round": 1, "attempt": 1, "payment_id": str(uuid.uuid4())}
        late = await client.post(
            f"/internal/orders/{order_id}/payment-succeeded", json=report, headers=KEY
        )
        assert late.status == 409  # the cancellation is what the write side decides on
    async with asyncio.timeout(10):  # the fence is gone: the read model catches up
        while (await get_order(client, order_id, mint(owner)))[1]["status"] != "CANCELLED":
            await asyncio.sleep(0.05)
