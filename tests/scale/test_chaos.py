"""Shopping through two gateways while a replica of every service and the leaders die.

Customers check out as careful clients do: they set their cart to one mug (reading it
back after any failure, since adding is not idempotent), place the order with one
Idempotency-Key, send that same key again after any failure until an answer comes, and
follow the order until it is final. Meanwhile one replica of each service is SIGKILLed —
for the relay and each projection, the one that leads. Afterwards every checkout has
exactly one order, no order exists that no checkout asked for, each is charged once, and
every read model equals a fold of the log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable
from typing import Any

import aiohttp
import asyncpg
import pytest

from microshop.config import SERVICE_PORTS
from microshop.topology import load_projections
from tests.conftest import StackEnv
from tests.e2e.client import Shop
from tests.e2e.conftest import Stack
from tests.e2e.test_checkout import charges

from .conftest import REPLICAS, metric, replica_url, until

pytestmark = pytest.mark.slow

CUSTOMERS = 8
AFTER_KILLS = 2  # checkouts each customer completes once every victim is dead
TRANSIENT = {429, 502, 503, 504}
LEADING = {"relay": "relay_leader", "order": "projection_leader", "cart": "projection_leader"}
PROJECTION_OF = {"order": "orders", "cart": "carts"}


class Shopper:
    """One customer's client: any of the gateways, retried like a real client."""

    def __init__(self, gateways: list[str], headers: dict[str, str]) -> None:
        self.gateways, self.headers = gateways, headers
        self.session = aiohttp.ClientSession()
        self.retries = 0

    async def call(self, method: str, path: str, ok: set[int], **options: Any) -> tuple[int, Any]:
        """The first answer in `ok` (or a 4xx outside it) to `method path`, trying the
        gateways in turn across connection errors and 5xx, for up to a minute."""
        deadline = time.monotonic() + 60
        delay = 0.05
        headers = {**self.headers, **options.pop("headers", {})}
        while True:
            gateway = random.choice(self.gateways)
            try:
                async with self.session.request(
                    method, gateway + path, headers=headers, **options
                ) as resp:
                    body = await resp.json() if resp.content_type == "application/json" else None
                    if resp.status in ok or resp.status not in TRANSIENT:
                        return resp.status, body
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.retries += 1
            assert time.monotonic() < deadline, f"{method} {path}: no answer for a minute"
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def one_mug_in_the_cart(self, product_id: str) -> None:
        """The cart holds one mug and nothing else, whatever got lost on the way."""
        while True:
            status, cart = await self.call("GET", "/api/cart", {200})
            assert status == 200, cart
            lines = {line["product_id"]: line["quantity"] for line in cart["items"]}
            if lines == {product_id: 1}:
                return
            if product_id in lines:
                path = f"/api/cart/items/{product_id}"
                await self.call("PUT", path, {200}, json={"quantity": 1})
            elif not lines:
                line = {"product_id": product_id, "quantity": 1}
                await self.call("POST", "/api/cart/items", {200}, json=line)
            else:
                raise AssertionError(f"unexpected lines {lines}")

    async def checkout(self, product_id: str) -> tuple[str, str]:
        """(Idempotency-Key, order id) of one checkout, followed until final."""
        async with asyncio.timeout(60):  # the previous order's checkout empties the cart
            while (await self.call("GET", "/api/cart", {200}))[1]["items"]:
                await asyncio.sleep(0.05)
        await self.one_mug_in_the_cart(product_id)
        key = f"chaos-{uuid.uuid4()}"
        status, order = await self.call(
            "POST", "/api/orders", {200, 201}, headers={"Idempotency-Key": key}
        )
        assert status in (200, 201), order
        while order["status"] == "PENDING_PAYMENT":
            _, order = await self.call("GET", f"/api/orders/{order['id']}?wait=5", {200})
        return key, order["id"]

    async def close(self) -> None:
        await self.session.close()


@dataclasses.dataclass
class Kills:
    """What was killed, and how long each leader's standby took to lead."""

    killed: list[str] = dataclasses.field(default_factory=list)
    takeovers: dict[str, float] = dataclasses.field(default_factory=dict)


async def kill_one_of_each(stack: Stack, kills: Kills) -> None:
    """SIGKILL one replica of every service: the leading one where there is a leader."""
    waiting: list[Awaitable[None]] = []
    for service in SERVICE_PORTS:
        victim = 1
        gauge = LEADING.get(service)
        labels = {"projection": PROJECTION_OF[service]} if service in PROJECTION_OF else {}
        if gauge is not None:
            values = [await metric(stack, service, i, gauge, **labels) for i in range(REPLICAS)]
            victim = values.index(1)
        os.kill(stack.pids(f"{service}.{victim}")[-1], signal.SIGKILL)
        kills.killed.append(f"{service}.{victim}")
        if gauge is not None:
            waiting.append(_takeover(stack, service, (victim + 1) % REPLICAS, gauge, labels, kills))
        await asyncio.sleep(0.2)
    await asyncio.gather(*waiting)


async def _takeover(
    stack: Stack,
    service: str,
    standby: int,
    gauge: str,
    labels: dict[str, str],
    kills: Kills,
) -> None:
    killed = time.monotonic()

    async def leads() -> bool:
        try:
            return await metric(stack, service, standby, gauge, **labels) == 1
        except aiohttp.ClientError:
            return False

    await until(leads, timeout=30, interval=0.05)
    name = f"{service} ({labels['projection']})" if labels else service
    kills.takeovers[name] = time.monotonic() - killed


async def every_replica_ready(stack: Stack) -> None:
    async def ready() -> bool:
        async with aiohttp.ClientSession() as session:
            for service in SERVICE_PORTS:
                for i in range(REPLICAS):
                    try:
                        url = f"{replica_url(stack, service, i)}/ready"
                        async with session.get(url) as resp:
                            if resp.status != 200:
                                return False
                    except aiohttp.ClientError:
                        return False
        return True

    await until(ready, timeout=90, interval=0.5)


def verify(stack: Stack, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microshop", "projections", "verify", name],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_no_order_is_lost_doubled_or_charged_twice_while_replicas_die(
    shop: Shop,
    replicated: Stack,
    test_env: StackEnv,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gateways = [replica_url(replicated, "gateway", i) for i in range(REPLICAS)]
    shoppers = [Shopper(gateways, await shop.customer()) for _ in range(CUSTOMERS)]
    kills = Kills()

    killed = asyncio.Event()

    async def shop_for(shopper: Shopper) -> list[tuple[str, str]]:
        """Checkouts before, while and after the kills (AFTER_KILLS once all are dead)."""
        done, after = [], 0
        while after < AFTER_KILLS:
            done.append(await shopper.checkout(shop.product_id))
            after += killed.is_set()
        return done

    started = time.monotonic()
    shopping = asyncio.gather(*(shop_for(s) for s in shoppers))
    try:
        await asyncio.sleep(0.5)  # orders under way
        await kill_one_of_each(replicated, kills)
        killed.set()
        done: list[list[tuple[str, str]]] = await shopping
    finally:
        shopping.cancel()
        for shopper in shoppers:
            await shopper.close()
    seconds = time.monotonic() - started
    await every_replica_ready(replicated)

    checkouts = dict(pair for pairs in done for pair in pairs)  # key -> order id
    assert len(checkouts) == sum(map(len, done)) >= CUSTOMERS * AFTER_KILLS
    conn = await asyncpg.connect(test_env.database_url)
    try:
        placed = await conn.fetch(
            "SELECT idempotency_key, order_id::text FROM order_placements"
            " WHERE idempotency_key LIKE 'chaos-%'"
        )
        users = [
            o["user_id"]
            for o in await conn.fetch(
                "SELECT user_id FROM orders WHERE id = ANY($1::uuid[])", list(checkouts.values())
            )
        ]
        ordered = await conn.fetchval(
            "SELECT count(*) FROM orders WHERE user_id = ANY($1::text[])", users
        )
        statuses = await conn.fetch(
            "SELECT status, count(*) FROM orders WHERE id = ANY($1::uuid[]) GROUP BY 1",
            list(checkouts.values()),
        )
    finally:
        await conn.close()
    # one order per checkout, and no order that no checkout asked for
    assert {r["idempotency_key"]: r["order_id"] for r in placed} == checkouts
    assert ordered == len(checkouts)
    assert {r["status"]: r["count"] for r in statuses} == {"PAID": len(checkouts)}
    counted = await charges(test_env, list(checkouts.values()))
    assert set(counted.values()) == {(1, 1)}, counted  # charged once, paid once
    for name in load_projections():
        checked = verify(replicated, name)
        assert checked.returncode == 0, f"{name}: {checked.stdout}{checked.stderr}"
    retries = sum(s.retries for s in shoppers)
    assert retries > 0, "no request failed: the kills came too late to test anything"
    with capsys.disabled():
        print(
            f"\n[chaos] {len(checkouts)} checkouts by {CUSTOMERS} customers in {seconds:.1f} s,"
            f" {retries} client retries; killed {', '.join(kills.killed)}"
        )
        for name, took in sorted(kills.takeovers.items()):
            print(f"[chaos] {name}: the standby led {took:.2f} s after the leader's SIGKILL")
