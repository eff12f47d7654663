"""Two replicas of every service: any replica serves any request, each message has one
effect, one relay and one runner per projection lead, and a standby takes over."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import aiohttp
import pytest

from microshop.config import SERVICE_PORTS
from tests.conftest import StackEnv
from tests.e2e.client import Shop
from tests.e2e.conftest import Stack
from tests.e2e.test_checkout import charges

from .conftest import REPLICAS, metric, replica_url, until

pytestmark = pytest.mark.slow


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Show a measured figure in the test run's output."""
    with capsys.disabled():
        print(f"\n[replicas] {line}")


async def call(method: str, url: str, **options: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **options) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body


async def test_every_service_runs_twice_a_hundred_ports_apart(replicated: Stack) -> None:
    for service in SERVICE_PORTS:
        for i in range(REPLICAS):
            status, body = await call("GET", f"{replica_url(replicated, service, i)}/health")
            assert (status, body["service"]) == (200, service)
            assert replicated.pids(f"{service}.{i}"), f"no {service}.{i} in the log"


async def leaders(stack: Stack, service: str, name: str, **labels: str) -> list[int]:
    """The replicas of `service` whose gauge `name` (with `labels`) is 1."""
    values = [await metric(stack, service, i, name, **labels) for i in range(REPLICAS)]
    return [i for i, value in enumerate(values) if value == 1]


async def test_one_relay_and_one_runner_per_projection_lead(replicated: Stack) -> None:
    assert len(await leaders(replicated, "relay", "relay_leader")) == 1
    for service, projection in (("product", "products"), ("cart", "carts"), ("order", "orders")):
        led = await leaders(replicated, service, "projection_leader", projection=projection)
        assert len(led) == 1, (projection, led)


async def test_a_write_on_one_replica_is_read_on_the_other(shop: Shop, replicated: Stack) -> None:
    me = await shop.customer()
    await shop.payments(success_rate=0.0)  # orders stay cancellable
    for n in range(1, 7):
        writer, reader = n % 2, (n + 1) % 2
        line = {"product_id": shop.product_id, "quantity": 1}
        status, _ = await call(
            "POST",
            f"{replica_url(replicated, 'cart', writer)}/api/cart/items",
            json=line,
            headers=me,
        )
        assert status == 200
        status, cart = await call(
            "GET", f"{replica_url(replicated, 'cart', reader)}/api/cart", headers=me
        )
        assert (status, cart["items"][0]["quantity"]) == (200, n), cart
    status, order = await call(
        "POST", f"{replica_url(replicated, 'order', 0)}/api/orders", headers=me
    )
    assert status == 201, order
    other = replica_url(replicated, "order", 1)
    status, seen = await call("GET", f"{other}/api/orders/{order['id']}", headers=me)
    assert (status, seen["total"]) == (200, order["total"])
    status, listed = await call("GET", f"{other}/api/orders", headers=me)
    assert order["id"] in [o["id"] for o in listed["items"]]
    status, cancelled = await call("POST", f"{other}/api/orders/{order['id']}/cancel", headers=me)
    assert (status, cancelled["status"]) == (200, "CANCELLED"), cancelled
    first = replica_url(replicated, "order", 0)
    status, seen = await call("GET", f"{first}/api/orders/{order['id']}", headers=me)
    assert seen["status"] == "CANCELLED"

    async def emptied() -> bool:  # by one of the cart replicas' consumers, soon
        _, cart = await call("GET", f"{replica_url(replicated, 'cart', 1)}/api/cart", headers=me)
        return bool(cart["items"] == [])

    await until(emptied)


async def test_long_polls_and_payment_settings_reach_every_replica(
    shop: Shop, replicated: Stack
) -> None:
    me = await shop.customer()
    await shop.payments(success_rate=0.0)  # said to payment replica 0
    order = await shop.order(me)
    assert (await shop.until_final(me, order["id"]))["status"] == "PAYMENT_FAILED"

    async with aiohttp.ClientSession() as session:  # said to replica 1: both must pay now
        resp = await session.put(
            f"{replica_url(replicated, 'payment', 1)}/internal/settings",
            json={"success_rate": 1.0, "latency_ms": 1500},  # slowly: the polls are waiting
            headers={"X-Internal-Api-Key": replicated.internal_api_key},
        )
        assert resp.status == 200

    async def long_poll(replica: int) -> tuple[str, float]:
        url = f"{replica_url(replicated, 'order', replica)}/api/orders/{order['id']}?wait=10"
        started = time.monotonic()
        _, body = await call("GET", url, headers=me)
        return body["status"], time.monotonic() - started

    resp = await shop.http.post(f"/api/orders/{order['id']}/retry-payment", headers=me)
    assert resp.status == 202, await resp.text()
    for status, waited in await asyncio.gather(*(long_poll(i) for i in range(REPLICAS))):
        # woken by the change on either replica, not answered when the 10 s wait ran out
        assert status == "PAID" and waited < 8, (status, waited)


async def test_consumers_compete_and_every_order_is_charged_once(
    shop: Shop, replicated: Stack, test_env: StackEnv
) -> None:
    customers = [await shop.customer() for _ in range(16)]
    orders = await asyncio.gather(*(shop.order(me) for me in customers))
    finals = await asyncio.gather(
        *(shop.until_final(me, o["id"]) for me, o in zip(customers, orders, strict=True))
    )
    assert {f["status"] for f in finals} == {"PAID"}
    counted = await charges(test_env, [o["id"] for o in orders])
    assert set(counted.values()) == {(1, 1)}, counted
    for service, consumer in (("order-consumer", "order-payments"), ("cart", "cart-checkout")):
        handled = [
            await metric(replicated, service, i, "consumer_handled_total", consumer=consumer)
            for i in range(REPLICAS)
        ]
        assert all(h > 0 for h in handled), (consumer, handled)  # both replicas took some


async def test_callers_spread_over_replicas_and_fail_over(shop: Shop, replicated: Stack) -> None:
    route = {"route": "/api/products/{id}", "method": "GET"}

    async def served() -> list[float]:
        return [
            await metric(replicated, "product", i, "http_requests_total", **route)
            for i in range(REPLICAS)
        ]

    before = await served()
    for _ in range(20):
        resp = await shop.http.get(f"/api/products/{shop.product_id}")
        assert resp.status == 200
    after = await served()
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)

    os.kill(replicated.pids("product.1")[-1], signal.SIGKILL)
    statuses = []
    for _ in range(30):  # until the supervisor has it back, the other replica answers
        resp = await shop.http.get(f"/api/products/{shop.product_id}")
        statuses.append(resp.status)
    assert set(statuses) == {200}, statuses

    async def back() -> bool:
        if len(replicated.pids("product.1")) < 2:
            return False
        try:
            status, _ = await call("GET", f"{replica_url(replicated, 'product', 1)}/ready")
        except aiohttp.ClientError:
            return False
        return status == 200

    await until(back, timeout=60)


async def take_over(
    capsys: pytest.CaptureFixture[str], stack: Stack, service: str, gauge: str, **labels: str
) -> float:
    """SIGKILL the replica of `service` leading (`gauge` 1): seconds until another leads."""
    [leading] = await leaders(stack, service, gauge, **labels)
    os.kill(stack.pids(f"{service}.{leading}")[-1], signal.SIGKILL)
    killed = time.monotonic()
    standby = (leading + 1) % REPLICAS

    async def standby_leads() -> bool:
        return await metric(stack, service, standby, gauge, **labels) == 1

    await until(standby_leads, timeout=30, interval=0.02)
    seconds = time.monotonic() - killed
    report(capsys, f"{service} {gauge}{labels or ''}: a standby led {seconds:.2f} s after SIGKILL")
    return seconds


async def test_a_standby_relay_takes_over_within_five_seconds(
    shop: Shop, replicated: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    seconds = await take_over(capsys, replicated, "relay", "relay_leader")
    me = await shop.customer()
    order = await shop.order(me)  # its events are relayed by the new leader
    assert (await shop.until_final(me, order["id"]))["status"] == "PAID"
    assert seconds < 5


async def test_a_standby_runner_takes_over_within_five_seconds(
    shop: Shop, replicated: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    seconds = await take_over(capsys, replicated, "order", "projection_leader", projection="orders")
    me = await shop.customer()
    order = await shop.order(me)  # through whichever order replica answers now
    assert (await shop.until_final(me, order["id"]))["status"] == "PAID"
    assert seconds < 5
