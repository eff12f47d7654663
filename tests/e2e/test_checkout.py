"""Checkout end to end: order → relay → order-consumer → payment → order, on the real stack.

The stack runs with ORDER_CONSUMER_RETRY_ATTEMPTS=3, backoff 0.2 s doubling; tests change
the payment simulation through payment-service's internal settings.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import signal
from datetime import datetime

import aiohttp
import asyncpg
import pytest

from tests.conftest import StackEnv
from tests.e2e.client import Shop, assert_error
from tests.e2e.conftest import Stack


async def test_happy_path_to_paid(shop: Shop) -> None:
    me = await shop.customer()
    order = await shop.order(me, 2, {"X-Correlation-ID": f"co-{secrets.token_hex(4)}"})
    assert order["status"] == "PENDING_PAYMENT"
    assert order["total"] == "25.00"
    seen = await (await shop.http.get(f"/api/orders/{order['id']}", headers=me)).json()
    assert seen["id"] == order["id"]  # read-your-writes

    paid = await shop.until_final(me, order["id"])
    assert (paid["status"], paid["payment_attempts"]) == ("PAID", 1)
    types = [e["type"] for e in await shop.timeline(me, order["id"])]
    assert types[0] == "OrderPlaced" and types[-1] == "PaymentSucceeded"
    assert {"PaymentAttempted", "PaymentCharged"} <= set(types)
    async with asyncio.timeout(15):  # the cart empties itself on OrderPlaced
        while (await (await shop.http.get("/api/cart", headers=me)).json())["items"]:
            await asyncio.sleep(0.05)
    listed = await (await shop.http.get("/api/orders", headers=me)).json()
    assert [o["id"] for o in listed["items"]] == [order["id"]]


async def test_correlation_id_follows_the_order_through_every_service(shop: Shop) -> None:
    me = await shop.customer()
    correlation = f"trace-{secrets.token_hex(6)}"
    order = await shop.order(me, 2, {"X-Correlation-ID": correlation})
    await shop.until_final(me, order["id"])
    timeline = await shop.timeline(me, order["id"])
    assert {e["correlation_id"] for e in timeline} == {correlation}
    assert {e["stream"].split("-")[0] for e in timeline} == {"order", "payment"}


async def test_idempotency_key_and_empty_cart(shop: Shop) -> None:
    me = await shop.customer()
    key = {"Idempotency-Key": secrets.token_hex(8)}
    first = await shop.order(me, 2, key)
    again = await shop.http.post("/api/orders", headers={**me, **key})
    assert again.status == 201
    assert (await again.json())["id"] == first["id"]
    await shop.until_final(me, first["id"])
    async with asyncio.timeout(15):
        while (await (await shop.http.get("/api/cart", headers=me)).json())["items"]:
            await asyncio.sleep(0.05)
    await assert_error(await shop.http.post("/api/orders", headers=me), 422, "cart_empty")


async def test_failed_payments_back_off_then_a_retry_pays(shop: Shop, test_env: StackEnv) -> None:
    await shop.payments(success_rate=0.0)
    me = await shop.customer()
    order = await shop.order(me)
    failed = await shop.until_final(me, order["id"])
    assert (failed["status"], failed["payment_attempts"]) == ("PAYMENT_FAILED", 3)
    attempts = [
        datetime.fromisoformat(e["recorded_at"])
        for e in await shop.timeline(me, order["id"])
        if e["type"] == "PaymentAttempted"
    ]
    assert len(attempts) == 3  # exactly ORDER_CONSUMER_RETRY_ATTEMPTS
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # initial, then times the multiplier

    await shop.payments(success_rate=1.0)
    retry = f"/api/orders/{order['id']}/retry-payment"
    clicks = await asyncio.gather(
        shop.http.post(retry, headers=me), shop.http.post(retry, headers=me)
    )
    assert sorted(c.status for c in clicks) == [202, 409]
    paid = await shop.until_final(me, order["id"])
    assert (paid["status"], paid["payment_attempts"]) == ("PAID", 4)
    types = [e["type"] for e in await shop.timeline(me, order["id"])]
    assert types.count("PaymentRetryRequested") == 1
    assert types.count("PaymentCharged") == 1 and types.count("PaymentSucceeded") == 1
    await assert_error(await shop.http.post(retry, headers=me), 409)


async def test_cancel_and_illegal_transitions(shop: Shop) -> None:
    await shop.payments(success_rate=0.0)
    me = await shop.customer()
    order = await shop.order(me)
    cancel = await shop.http.post(f"/api/orders/{order['id']}/cancel", headers=me)
    assert cancel.status == 200
    assert (await cancel.json())["status"] == "CANCELLED"
    await assert_error(await shop.http.post(f"/api/orders/{order['id']}/cancel", headers=me), 409)
    await assert_error(
        await shop.http.post(f"/api/orders/{order['id']}/retry-payment", headers=me), 409
    )
    other = await shop.customer()
    await assert_error(await shop.http.get(f"/api/orders/{order['id']}", headers=other), 404)
    await assert_error(await shop.http.get(f"/api/orders/{order['id']}/events", headers=other), 404)
    await assert_error(
        await shop.http.post(f"/api/orders/{order['id']}/cancel", headers=other), 404
    )


async def charges(env: StackEnv, order_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Per order: (PaymentCharged events, PaymentSucceeded events) in the store."""
    conn = await asyncpg.connect(env.database_url)
    try:
        rows = await conn.fetch(
            """SELECT substring(stream_id from position('-' in stream_id) + 1) AS order_id,
                      count(*) FILTER (WHERE event_type = 'PaymentCharged') AS charged,
                      count(*) FILTER (WHERE event_type = 'PaymentSucceeded') AS succeeded
               FROM events WHERE stream_id = ANY($1::text[]) GROUP BY 1""",
            [f"{kind}-{o}" for o in order_ids for kind in ("order", "payment")],
        )
    finally:
        await conn.close()
    return {r["order_id"]: (r["charged"], r["succeeded"]) for r in rows}


async def consumer_back(stack: Stack) -> None:
    """Until the supervisor has restarted order-consumer and it is ready again."""
    url = f"{stack.service_url('order-consumer')}/ready"
    async with asyncio.timeout(60), aiohttp.ClientSession() as session:
        while len(stack.pids("order-consumer")) < 2:
            await asyncio.sleep(0.1)
        while True:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_a_killed_consumer_restarts_and_every_order_is_charged_once(
    shop: Shop, stack: Stack, test_env: StackEnv
) -> None:
    # slow payments, so that attempts are in flight when the consumer dies
    await shop.payments(success_rate=0.6, latency_ms=400)
    customers = [await shop.customer() for _ in range(12)]
    orders = await asyncio.gather(*(shop.order(me) for me in customers))
    await asyncio.sleep(0.6)  # let payments get under way
    still_pending = [
        o
        for me, o in zip(customers, orders, strict=True)
        if (await (await shop.http.get(f"/api/orders/{o['id']}", headers=me)).json())["status"]
        == "PENDING_PAYMENT"
    ]
    os.kill(stack.pids("order-consumer")[-1], signal.SIGKILL)
    assert still_pending, "every order was final before the consumer was killed"

    finals = await asyncio.gather(
        *(
            shop.until_final(me, o["id"], timeout=60)
            for me, o in zip(customers, orders, strict=True)
        )
    )
    await consumer_back(stack)
    counted = await charges(test_env, [o["id"] for o in orders])
    for final in finals:
        charged, succeeded = counted.get(final["id"], (0, 0))
        if final["status"] == "PAID":
            assert (charged, succeeded) == (1, 1), final
        else:
            assert final["status"] == "PAYMENT_FAILED"
            assert (charged, succeeded) == (0, 0), final
