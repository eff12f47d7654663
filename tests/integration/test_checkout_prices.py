"""An order charges the catalog's current price and refuses products no longer sold: the
real product-, cart- and order-services on the real database (without the gateway; the
same story through it is in tests/e2e/test_edges.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from services.cart.app import create_app as create_cart
from services.order.app import create_app as create_order
from services.product.app import create_app as create_product
from tests.conftest import StackEnv
from tests.tokens import TEST_KEYS, admin_token, bearer, mint

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


class Shop:
    """product-, cart- and order-service, each calling the next over HTTP."""

    def __init__(self, product: Client, cart: Client, order: Client) -> None:
        self.product, self.cart, self.order = product, cart, order
        self.admin = bearer(admin_token())

    async def new_product(self, price: str) -> dict[str, Any]:
        body = {"sku": f"SKU-{uuid.uuid4().hex[:10]}", "name": f"Thing at {price}", "price": price}
        resp = await self.product.post("/api/products", json=body, headers=self.admin)
        assert resp.status == 201, await resp.text()
        product: dict[str, Any] = await resp.json()
        return product

    async def admin_does(self, method: str, product_id: str, body: Any = None) -> None:
        path = f"/api/products/{product_id}"
        resp = await self.product.request(method, path, json=body, headers=self.admin)
        assert resp.status in (200, 204), await resp.text()

    async def cart_of(self, me: dict[str, str]) -> Any:
        resp = await self.cart.get("/api/cart", headers=me)
        assert resp.status == 200, await resp.text()
        return await resp.json()


def url_of(client: Client) -> str:
    return str(client.server.make_url("")).rstrip("/")


async def ready(client: Client) -> Client:
    async with asyncio.timeout(15):
        while (await client.get("/ready")).status != 200:
            await asyncio.sleep(0.05)
    return client


@pytest.fixture
async def shop(aiohttp_client: MakeClient, test_env: StackEnv, uid: str) -> Shop:
    config = test_env.config(namespace=f"{test_env.namespace}-{uid}")
    product = await aiohttp_client(create_product(config, token_keys=TEST_KEYS))
    cart = await aiohttp_client(
        create_cart(dataclasses.replace(config, product_url=url_of(product)), token_keys=TEST_KEYS)
    )
    order = await aiohttp_client(
        create_order(dataclasses.replace(config, cart_url=url_of(cart)), token_keys=TEST_KEYS)
    )
    return Shop(product, await ready(cart), await ready(order))


async def test_the_audits_case_a_repriced_then_discontinued_product_is_refused(
    shop: Shop,
) -> None:
    """5 added at 1.00, re-priced to 500.00, discontinued: never ordered at 1.00."""
    me = bearer(mint(f"user-{uuid.uuid4()}"))
    cheap = await shop.new_product("1.00")
    added = await shop.cart.post(
        "/api/cart/items", json={"product_id": cheap["id"], "quantity": 5}, headers=me
    )
    assert added.status == 200
    await shop.admin_does("PATCH", cheap["id"], {"price": "500.00"})
    await shop.admin_does("DELETE", cheap["id"])
    before = await shop.cart_of(me)

    resp = await shop.order.post("/api/orders", headers=me)
    body = await resp.json()
    assert resp.status == 409, body
    assert body["error"]["code"] == "product_unavailable"
    assert body["error"]["details"] == {
        "products": [{"product_id": cheap["id"], "name": cheap["name"]}]
    }
    assert await shop.cart_of(me) == before  # untouched: nothing was ordered
    assert (await (await shop.order.get("/api/orders", headers=me)).json())["items"] == []


async def test_a_repriced_product_is_ordered_at_its_new_price(shop: Shop) -> None:
    me = bearer(mint(f"user-{uuid.uuid4()}"))
    mug, tee = await shop.new_product("1.00"), await shop.new_product("2.00")
    for product, quantity in ((mug, 5), (tee, 1)):
        line = {"product_id": product["id"], "quantity": quantity}
        assert (await shop.cart.post("/api/cart/items", json=line, headers=me)).status == 200
    await shop.admin_does("PATCH", mug["id"], {"price": "500.00"})

    shown = await shop.cart_of(me)  # the cart shows what the order will charge
    assert [i["unit_price"] for i in shown["items"]] == ["500.00", "2.00"]
    assert shown["total"] == "2502.00"
    resp = await shop.order.post("/api/orders", headers=me)
    order = await resp.json()
    assert resp.status == 201, order
    assert order["total"] == shown["total"] == "2502.00"
    assert [(i["product_id"], i["unit_price"], i["line_total"]) for i in order["items"]] == [
        (mug["id"], "500.00", "2500.00"),
        (tee["id"], "2.00", "2.00"),
    ]
    # the answer is the read model's row (as its runner wrote it, or read back)
    read = await (await shop.order.get(f"/api/orders/{order['id']}", headers=me)).json()
    fixed = ("id", "items", "total", "currency", "created_at")  # payment may move the rest
    assert {k: read[k] for k in fixed} == {k: order[k] for k in fixed}
