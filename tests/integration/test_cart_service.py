"""cart-service on the real Postgres and RabbitMQ, with the real product-service writing
the catalog's events."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiormq
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from eventstore import Metadata, PostgresEventStore, Reject, rebuild, replay
from eventstore.pg import Pool
from eventstore.store import GLOBAL_LOG_SQL
from eventstore.verifying import verify
from eventstore.wire import encode_row
from microshop.config import Config
from microshop.topology import load_projections
from microshop.workers import CONSUMERS, RUNNERS
from services.cart.app import create_app
from services.cart.catalog import CATALOG, current_entries
from services.cart.domain import CartCheckedOut
from services.cart.handlers import checkout_event_id, placed_order
from services.cart.projections import CARTS
from services.cart.schemas import PlacedOrder
from services.product.app import create_app as create_product_app
from tests.conftest import StackEnv
from tests.tokens import TEST_KEYS, admin_token, bearer, mint

Client = TestClient[web.Request, web.Application]


# -- fixtures and helpers ----------------------------------------------------------------


async def until_ready(client: Client) -> None:
    async with asyncio.timeout(15):
        while (await client.get("/ready")).status != 200:
            await asyncio.sleep(0.05)


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


class Catalog:
    """The real product-service, driven through its admin API."""

    def __init__(self, client: Client, uid: str) -> None:
        self.client, self.uid = client, uid
        self.url = str(client.server.make_url("")).rstrip("/")
        self.count = 0
        self.admin = bearer(admin_token())

    async def product(self, price: str = "19.99", currency: str = "EUR") -> dict[str, Any]:
        self.count += 1
        body = {
            "sku": f"SKU-{self.uid}-{self.count}",
            "name": f"Product {self.count}",
            "description": "for a cart test",
            "price": price,
            "currency": currency,
        }
        resp = await self.client.post("/api/products", json=body, headers=self.admin)
        assert resp.status == 201, await resp.text()
        product: dict[str, Any] = await resp.json()
        return product

    async def reprice(self, product_id: str, price: str, **changes: str) -> None:
        resp = await self.client.patch(
            f"/api/products/{product_id}", json={"price": price, **changes}, headers=self.admin
        )
        assert resp.status == 200, await resp.text()

    async def discontinue(self, product_id: str) -> None:
        resp = await self.client.delete(f"/api/products/{product_id}", headers=self.admin)
        assert resp.status == 204, await resp.text()


@pytest.fixture
def config(test_env: StackEnv, uid: str) -> Config:
    return test_env.config(namespace=f"{test_env.namespace}-{uid}")


@pytest.fixture
async def catalog(aiohttp_client: AiohttpClient, config: Config, uid: str) -> Catalog:
    client = await aiohttp_client(create_product_app(config, token_keys=TEST_KEYS))
    return Catalog(client, uid)


CartFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
def cart_app(aiohttp_client: AiohttpClient, config: Config) -> CartFactory:
    async def start(product_url: str, **overrides: Any) -> Client:
        settings = dataclasses.replace(config, product_url=product_url, **overrides)
        client = await aiohttp_client(create_app(settings, token_keys=TEST_KEYS))
        await until_ready(client)
        return client

    return start


@pytest.fixture
async def cart(cart_app: CartFactory, catalog: Catalog) -> Client:
    return await cart_app(catalog.url)


@pytest.fixture
def user() -> dict[str, str]:
    return bearer(mint(f"user-{uuid.uuid4()}"))


def line(product: dict[str, Any], quantity: int) -> dict[str, Any]:
    price = Decimal(product["price"])
    return {
        "product_id": product["id"],
        "sku": product.get("sku"),
        "name": product["name"],
        "unit_price": str(price),
        "quantity": quantity,
        "line_total": str(price * quantity),
        "available": True,
    }


async def add(client: Client, headers: dict[str, str], product_id: str, quantity: int) -> Any:
    resp = await client.post(
        "/api/cart/items", json={"product_id": product_id, "quantity": quantity}, headers=headers
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def get_cart(client: Client, headers: dict[str, str]) -> Any:
    resp = await client.get("/api/cart", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def assert_error(body: Any, code: str) -> dict[str, Any]:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    details: dict[str, Any] = body["error"]["details"]
    assert isinstance(details, dict)
    return details


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- reading and adding ------------------------------------------------------------------


async def test_a_new_cart_is_empty(cart: Client, user: dict[str, str]) -> None:
    assert await get_cart(cart, user) == {
        "items": [],
        "total": "0.00",
        "currency": None,
        "version": 0,
    }


async def test_every_endpoint_needs_a_valid_token(cart: Client) -> None:
    calls = [
        ("GET", "/api/cart"),
        ("POST", "/api/cart/items"),
        ("PUT", "/api/cart/items/x"),
        ("DELETE", "/api/cart/items/x"),
        ("DELETE", "/api/cart"),
    ]
    for headers in ({}, bearer(mint(other_key=True)), bearer(mint(ttl=-60)), bearer("nonsense")):
        for method, path in calls:
            resp = await cart.request(method, path, json={"quantity": 1}, headers=headers)
            assert resp.status == 401, (method, path, headers)
            body = await resp.json()
            assert body["error"]["code"] in {"unauthorized", "invalid_token", "token_expired"}
            assert_error(body, body["error"]["code"])


async def test_adding_captures_the_catalog_price_and_adds_to_the_line(
    cart: Client, catalog: Catalog, user: dict[str, str]
) -> None:
    tee, mug = await catalog.product("19.99"), await catalog.product("5")

    body = await add(cart, user, tee["id"], 2)
    assert body == {"items": [line(tee, 2)], "total": "39.98", "currency": "EUR", "version": 1}
    assert await get_cart(cart, user) == body  # read-your-writes

    await add(cart, user, mug["id"], 1)
    body = await add(cart, user, tee["id"], 3)
    assert body["items"] == [
        line(tee, 5),
        {
            "product_id": mug["id"],
            "sku": mug["sku"],
            "name": mug["name"],
            "unit_price": "5.00",
            "quantity": 1,
            "line_total": "5.00",
            "available": True,
        },
    ]
    assert body["total"] == "104.95"
    assert body["version"] == 3
    assert await get_cart(cart, user) == body


TRACE = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"


async def test_events_carry_the_caller_and_the_correlation_id(
    cart: Client, catalog: Catalog, store: PostgresEventStore
) -> None:
    user_id = f"user-{uuid.uuid4()}"
    tee = await catalog.product()
    resp = await cart.post(
        "/api/cart/items",
        json={"product_id": tee["id"], "quantity": 1},
        headers={**bearer(mint(user_id)), "X-Correlation-ID": "corr-cart-1", "traceparent": TRACE},
    )
    assert resp.status == 200
    [event] = await store.read_stream(f"cart-{user_id}")
    assert event.event_type == "CartItemAdded"
    assert event.data.unit_price == Decimal("19.99")
    assert event.metadata == Metadata(
        correlation_id="corr-cart-1", actor=user_id, service="cart", traceparent=TRACE
    )


async def test_a_line_holds_at_most_99(
    cart: Client, catalog: Catalog, user: dict[str, str]
) -> None:
    tee = await catalog.product()
    await add(cart, user, tee["id"], 98)
    resp = await cart.post(
        "/api/cart/items", json={"product_id": tee["id"], "quantity": 2}, headers=user
    )
    assert resp.status == 422
    details = assert_error(await resp.json(), "quantity_out_of_range")
    assert details["quantity"] == 100
    assert (await add(cart, user, tee["id"], 1))["items"][0]["quantity"] == 99


async def test_one_currency_per_cart(cart: Client, catalog: Catalog, user: dict[str, str]) -> None:
    euro, dollar = await catalog.product(currency="EUR"), await catalog.product(currency="USD")
    await add(cart, user, euro["id"], 1)
    resp = await cart.post(
        "/api/cart/items", json={"product_id": dollar["id"], "quantity": 1}, headers=user
    )
    assert resp.status == 422
    assert_error(await resp.json(), "currency_mismatch")

    resp = await cart.delete("/api/cart", headers=user)
    assert resp.status == 204
    assert (await add(cart, user, dollar["id"], 1))["currency"] == "USD"


@pytest.mark.parametrize("quantity", [0, 100, -1, "2", 2.5, 2.0, True, None, 10**30, [1], {"n": 1}])
async def test_invalid_quantities_are_422_with_field_details(
    cart: Client, catalog: Catalog, user: dict[str, str], quantity: Any
) -> None:
    tee = await catalog.product()
    resp = await cart.post(
        "/api/cart/items", json={"product_id": tee["id"], "quantity": quantity}, headers=user
    )
    assert resp.status == 422
    assert set(assert_error(await resp.json(), "validation_error")) == {"quantity"}

    await add(cart, user, tee["id"], 1)
    if quantity != 0:  # 0 is valid for PUT: it removes the line
        resp = await cart.put(
            f"/api/cart/items/{tee['id']}", json={"quantity": quantity}, headers=user
        )
        assert resp.status == 422
        assert set(assert_error(await resp.json(), "validation_error")) == {"quantity"}
    assert (await get_cart(cart, user))["version"] == 1


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [
        (b"{not json", 400, None),
        (b"", 400, None),
        (b'{"product_id": "x", "quantity": 1', 400, None),
        (b"[1, 2]", 422, {"_schema"}),
        (b'{"quantity": 1}', 422, {"product_id"}),
        (b'{"product_id": "../../admin", "quantity": 1}', 422, {"product_id"}),
        (b'{"product_id": "p", "quantity": 1, "user_id": "someone-else"}', 422, {"user_id"}),
    ],
)
async def test_malformed_bodies(
    cart: Client, user: dict[str, str], body: bytes, status: int, fields: set[str] | None
) -> None:
    resp = await cart.post(
        "/api/cart/items", data=body, headers={**user, "Content-Type": "application/json"}
    )
    assert resp.status == status
    details = assert_error(
        await resp.json(), "bad_request" if status == 400 else "validation_error"
    )
    if fields is not None:
        assert set(details) == fields


async def test_unknown_and_discontinued_products_are_422(
    cart: Client, catalog: Catalog, user: dict[str, str]
) -> None:
    gone = await catalog.product()
    await catalog.discontinue(gone["id"])
    for product_id in (str(uuid.uuid4()), "not-a-product", gone["id"]):
        resp = await cart.post(
            "/api/cart/items", json={"product_id": product_id, "quantity": 1}, headers=user
        )
        assert resp.status == 422, product_id
        details = assert_error(await resp.json(), "unknown_product")
        assert "product_id" in details
    assert (await get_cart(cart, user))["version"] == 0


# -- no call to product-service ---------------------------------------------------------


async def test_adding_needs_no_product_service_and_takes_the_canonical_id(
    cart_app: CartFactory, catalog: Catalog, user: dict[str, str]
) -> None:
    """The cart takes products from its own catalog read model: with product-service
    unreachable a product is still added, at its current price, under the id's canonical
    spelling; what the catalog does not sell is still refused."""
    mug = await catalog.product("3.20")
    await catalog.reprice(mug["id"], "3.40")
    cart = await cart_app(f"http://127.0.0.1:{free_port()}")  # nobody listens there
    body = await add(cart, user, mug["id"].upper(), 2)
    assert body["items"] == [line({**mug, "price": "3.40"}, 2)]
    resp = await cart.post(
        "/api/cart/items", json={"product_id": str(uuid.uuid4()), "quantity": 1}, headers=user
    )
    assert resp.status == 422
    assert_error(await resp.json(), "unknown_product")


# -- changing and removing ---------------------------------------------------------------


async def test_put_sets_the_quantity_and_zero_removes(
    cart: Client, catalog: Catalog, user: dict[str, str]
) -> None:
    tee, mug = await catalog.product("10.00"), await catalog.product("2.50")
    await add(cart, user, tee["id"], 1)
    await add(cart, user, mug["id"], 1)

    resp = await cart.put(f"/api/cart/items/{tee['id']}", json={"quantity": 7}, headers=user)
    assert resp.status == 200
    body = await resp.json()
    assert body["items"] == [line(tee, 7), line(mug, 1)]
    assert body["total"] == "72.50" and body["version"] == 3
    assert await get_cart(cart, user) == body

    resp = await cart.put(f"/api/cart/items/{tee['id']}", json={"quantity": 0}, headers=user)
    assert resp.status == 200
    body = await resp.json()
    assert body["items"] == [line(mug, 1)] and body["version"] == 4
    assert await get_cart(cart, user) == body

    for product_id in (tee["id"], str(uuid.uuid4())):
        resp = await cart.put(f"/api/cart/items/{product_id}", json={"quantity": 2}, headers=user)
        assert resp.status == 404
        assert assert_error(await resp.json(), "item_not_in_cart") == {"product_id": product_id}


async def test_delete_removes_a_line_and_404s_when_it_is_not_there(
    cart: Client, catalog: Catalog, user: dict[str, str]
) -> None:
    tee, mug = await catalog.product(), await catalog.product()
    await add(cart, user, tee["id"], 2)
    await add(cart, user, mug["id"], 1)
    resp = await cart.delete(f"/api/cart/items/{tee['id']}", headers=user)
    assert resp.status == 200
    body = await resp.json()
    assert body["items"] == [line(mug, 1)] and body["version"] == 3
    assert await get_cart(cart, user) == body

    resp = await cart.delete(f"/api/cart/items/{tee['id']}", headers=user)
    assert resp.status == 404
    assert_error(await resp.json(), "item_not_in_cart")


async def test_clearing_is_204_and_an_empty_cart_records_nothing(
    cart: Client, catalog: Catalog, store: PostgresEventStore
) -> None:
    user_id = f"user-{uuid.uuid4()}"
    user = bearer(mint(user_id))
    resp = await cart.delete("/api/cart", headers=user)
    assert resp.status == 204
    assert await store.stream_version(f"cart-{user_id}") == 0

    await add(cart, user, (await catalog.product())["id"], 3)
    resp = await cart.delete("/api/cart", headers=user)
    assert resp.status == 204
    assert await resp.read() == b""
    assert await get_cart(cart, user) == {
        "items": [],
        "total": "0.00",
        "currency": None,
        "version": 2,
    }
    assert (await cart.delete("/api/cart", headers=user)).status == 204
    events = await store.read_stream(f"cart-{user_id}")
    assert [e.event_type for e in events] == ["CartItemAdded", "CartCleared"]


async def test_the_token_chooses_the_cart(
    cart: Client, catalog: Catalog, user: dict[str, str]
) -> None:
    tee = await catalog.product()
    mine = await add(cart, user, tee["id"], 2)
    other = bearer(mint(f"user-{uuid.uuid4()}"))

    assert (await get_cart(cart, other))["items"] == []
    for method in ("PUT", "DELETE"):
        resp = await cart.request(
            method, f"/api/cart/items/{tee['id']}", json={"quantity": 5}, headers=other
        )
        assert resp.status == 404, method
    assert (await cart.delete("/api/cart", headers=other)).status == 204
    await add(cart, other, tee["id"], 1)

    assert await get_cart(cart, user) == mine
    assert (await get_cart(cart, other))["items"] == [line(tee, 1)]


# -- concurrency -------------------------------------------------------------------------


async def test_concurrent_adds_lose_nothing(
    cart: Client, catalog: Catalog, store: PostgresEventStore
) -> None:
    user_id = f"user-{uuid.uuid4()}"
    user = bearer(mint(user_id))
    distinct = [await catalog.product("1.00") for _ in range(10)]
    same = await catalog.product("2.00")
    requests = [(p["id"], 1) for p in distinct] + [(same["id"], 2)] * 20

    async def post(product_id: str, quantity: int) -> int:
        resp = await cart.post(
            "/api/cart/items", headers=user, json={"product_id": product_id, "quantity": quantity}
        )
        return resp.status

    statuses = await asyncio.gather(*(post(p, q) for p, q in requests))
    assert statuses == [200] * 30

    body = await get_cart(cart, user)
    quantities = {item["product_id"]: item["quantity"] for item in body["items"]}
    assert quantities == {**{p["id"]: 1 for p in distinct}, same["id"]: 40}
    assert body["total"] == "90.00"
    assert body["version"] == 30
    assert await store.stream_version(f"cart-{user_id}") == 30


# -- checkout on OrderPlaced -------------------------------------------------------------


class Orders:
    """Publishes `OrderPlaced` as order-service and the relay would: a row in `events`, sent
    in the wire format to this test's `{namespace}.events` exchange."""

    def __init__(self, store: PostgresEventStore, amqp_url: str, config: Config) -> None:
        self.store, self.amqp_url, self.config = store, amqp_url, config

    async def place(self, data: dict[str, Any], *, order_id: str | None = None) -> Any:
        order_id = order_id or str(data.get("order_id"))
        event_id = uuid.uuid4()
        start = await self.store.head()
        await self.store.pool.execute(
            """INSERT INTO events (stream_id, stream_version, event_id, event_type, data, metadata)
               SELECT $1, coalesce(max(stream_version), 0) + 1, $2, 'OrderPlaced',
                      $3::text::jsonb, $4::text::jsonb
               FROM events WHERE stream_id = $1""",
            f"order-{order_id}",
            event_id,
            json.dumps(data),
            json.dumps({"correlation_id": f"corr-{order_id}", "service": "order"}),
        )

        found: list[Any] = []

        async def committed() -> bool:  # readable by the relay once past the fence
            rows = await self.store.pool.fetch(GLOBAL_LOG_SQL, start[0], start[1], 10_000)
            found.extend(r for r in rows if r["event_id"] == event_id)
            return bool(found)

        await until(committed)
        return found[0]

    @staticmethod
    def unstored(data: dict[str, Any]) -> tuple[Any, ...]:
        """A message as the relay would send it, but never stored: a malformed OrderPlaced
        must not sit in the shared test log, where every orders projection would trip."""
        order_id = str(data.get("order_id"))
        meta = json.dumps({"correlation_id": f"corr-{order_id}", "service": "order"})
        return (
            0,
            0,
            f"order-{order_id}",
            1,
            uuid.uuid4(),
            "OrderPlaced",
            1,
            json.dumps(data),
            meta,
            datetime.now(UTC),
        )

    async def publish(self, *rows: Any) -> None:
        async with aiormq.connect(self.amqp_url) as connection:
            channel = await connection.channel()
            for row in rows:
                key, body, properties = encode_row(row)
                await channel.basic_publish(
                    body,
                    exchange=self.config.events_exchange,
                    routing_key=key,
                    properties=properties,
                )


def order_placed(user_id: str, *items: tuple[dict[str, Any], int]) -> dict[str, Any]:
    """`OrderPlaced` data exactly as the contract in `services.cart.schemas` states it."""
    lines = [line(product, quantity) for product, quantity in items]
    return {
        "order_id": str(uuid.uuid4()),
        "user_id": user_id,
        "items": lines,
        "total": str(sum(Decimal(item["line_total"]) for item in lines)),
        "currency": "EUR",
    }


@pytest.fixture
def orders(store: PostgresEventStore, test_env: StackEnv, config: Config) -> Orders:
    return Orders(store, test_env.amqp_url, config)


async def test_order_placed_takes_the_ordered_quantities_out_exactly_once(
    cart: Client, catalog: Catalog, orders: Orders, store: PostgresEventStore, pool: Pool
) -> None:
    user_id = f"user-{uuid.uuid4()}"
    user = bearer(mint(user_id))
    tee, mug, cap = [await catalog.product("10.00") for _ in range(3)]
    await add(cart, user, tee["id"], 3)
    await add(cart, user, mug["id"], 1)
    placed = order_placed(user_id, (tee, 2), (mug, 1))
    row = await orders.place(placed)
    # after the order was placed, and before the cart hears of it:
    await add(cart, user, cap["id"], 1)
    await add(cart, user, tee["id"], 1)

    await orders.publish(row, row)  # delivered twice, handled concurrently
    consumer = cart.app[CONSUMERS]["cart-checkout"]

    async def both_seen() -> bool:
        return consumer.stats.handled + consumer.stats.duplicates == 2

    await until(both_seen)
    assert consumer.stats.handled == 1 and consumer.stats.parked == 0

    async def projected() -> bool:
        return bool((await get_cart(cart, user))["version"] == 5)

    await until(projected)
    body = await get_cart(cart, user)
    assert body["items"] == [line(tee, 2), line(cap, 1)]
    assert body["total"] == "30.00"
    events = await store.read_stream(f"cart-{user_id}")
    [checked_out] = [e for e in events if e.event_type == "CartCheckedOut"]
    assert checked_out.event_id == checkout_event_id(placed["order_id"])
    assert checked_out.data == CartCheckedOut(placed["order_id"], ((tee["id"], 2), (mug["id"], 1)))
    assert checked_out.metadata.causation_id == str(row["event_id"])
    assert checked_out.metadata.correlation_id == f"corr-{placed['order_id']}"
    assert body["version"] == len(events) == 5

    # the same order published again under a new event id (past the inbox): still once
    again = await orders.place(placed)
    await orders.publish(again)

    async def handled_again() -> bool:
        return consumer.stats.handled == 2

    await until(handled_again)
    assert await store.stream_version(f"cart-{user_id}") == 5
    assert await get_cart(cart, user) == body

    # the read model folded afresh from the whole log equals the incremental one
    await cart.app[RUNNERS][CARTS.name].wait_for(await store.head())
    assert await replayed_carts(store) == await stored_carts(pool)


async def test_a_checkout_racing_with_adds_loses_neither(
    cart: Client, catalog: Catalog, orders: Orders, store: PostgresEventStore
) -> None:
    user_id = f"user-{uuid.uuid4()}"
    user = bearer(mint(user_id))
    tee, cap = await catalog.product("10.00"), await catalog.product("1.00")
    await add(cart, user, tee["id"], 3)
    row = await orders.place(order_placed(user_id, (tee, 2)))
    consumer = cart.app[CONSUMERS]["cart-checkout"]

    async def post(product_id: str) -> int:
        resp = await cart.post(
            "/api/cart/items", headers=user, json={"product_id": product_id, "quantity": 1}
        )
        return resp.status

    adds = [post(tee["id"]) for _ in range(5)] + [post(cap["id"]) for _ in range(10)]
    _, *statuses = await asyncio.gather(orders.publish(row), *adds)
    assert statuses == [200] * 15

    async def settled() -> bool:
        return consumer.stats.handled == 1 and await store.stream_version(f"cart-{user_id}") == 17

    await until(settled)

    async def projected() -> bool:
        return bool((await get_cart(cart, user))["version"] == 17)

    await until(projected)
    quantities = {i["product_id"]: i["quantity"] for i in (await get_cart(cart, user))["items"]}
    assert quantities == {tee["id"]: 3 + 5 - 2, cap["id"]: 10}


def test_the_order_placed_contract() -> None:
    placed = order_placed("user-1", ({"id": "p-1", "name": "Tee", "price": "19.99"}, 2))
    order = placed_order({**placed, "created_at": "2026-01-01T00:00:00Z"})  # extra: ignored
    assert order == PlacedOrder(placed["order_id"], "user-1", (("p-1", 2),))

    @dataclasses.dataclass(frozen=True)
    class TypedOrderPlaced:  # how the data looks where order-service's class is registered
        order_id: uuid.UUID
        user_id: str
        items: list[dict[str, Any]]
        total: Decimal
        currency: str

    typed = TypedOrderPlaced(
        uuid.UUID(placed["order_id"]), "user-1", placed["items"], Decimal(placed["total"]), "EUR"
    )
    assert placed_order(typed) == order

    broken: list[dict[str, Any]] = [
        {k: v for k, v in placed.items() if k != "user_id"},
        {**placed, "order_id": "not-a-uuid"},
        {**placed, "items": []},
        {**placed, "items": [{"product_id": "p-1"}]},
        {**placed, "items": [{"product_id": "p-1", "quantity": 0}]},
        {**placed, "items": [{"product_id": "p-1", "quantity": 1.5}]},
        {**placed, "items": "p-1"},
    ]
    for data in broken:
        with pytest.raises(Reject, match="malformed OrderPlaced"):
            placed_order(data)
    with pytest.raises(Reject):
        placed_order(["not", "an", "object"])


async def stored_carts(pool: Pool) -> dict[str, Any]:
    """The `carts` table in JSON form (decimals and times as strings)."""
    rows = await pool.fetch("SELECT * FROM carts")
    return {row["user_id"]: msgspec.to_builtins(dict(row)) for row in rows}


async def replayed_carts(store: PostgresEventStore) -> dict[str, Any]:
    """The `carts` rows the projection folds from the whole log, in the same JSON form."""
    state: dict[str, Any] = {}
    async with contextlib.aclosing(replay(store, CARTS)) as each:
        async for _, key, row in each:
            state[key] = msgspec.to_builtins(row)
    return state


async def test_rebuild_equals_the_incremental_read_model(
    cart: Client, catalog: Catalog, store: PostgresEventStore, pool: Pool
) -> None:
    user = bearer(mint(f"user-{uuid.uuid4()}"))
    tee, mug = await catalog.product("3.10"), await catalog.product("7.00")
    await add(cart, user, tee["id"], 4)
    await add(cart, user, mug["id"], 1)
    await cart.put(f"/api/cart/items/{tee['id']}", json={"quantity": 2}, headers=user)
    body = await get_cart(cart, user)

    await cart.app[RUNNERS][CARTS.name].wait_for(await store.head())
    before = await stored_carts(pool)
    result = await rebuild(store, CARTS)
    assert result.rows == len(before)
    assert await stored_carts(pool) == before
    assert await get_cart(cart, user) == body


# -- prices: the catalog's current ones ---------------------------------------------------


async def test_the_cart_shows_the_current_price_and_which_products_are_no_longer_sold(
    cart: Client, catalog: Catalog, user: dict[str, str]
) -> None:
    """The audit's case: 5 added at 1.00, re-priced to 500.00, then discontinued."""
    cheap, kept = await catalog.product("1.00"), await catalog.product("2.00")
    await add(cart, user, cheap["id"], 5)
    await add(cart, user, kept["id"], 1)
    assert (await get_cart(cart, user))["total"] == "7.00"

    await catalog.reprice(cheap["id"], "500.00", name="Not so cheap")
    repriced = await get_cart(cart, user)  # at once: a read is exact, whatever the runner's lag
    assert repriced["items"][0] == {
        **line(cheap, 5),
        "name": "Not so cheap",
        "unit_price": "500.00",
        "line_total": "2500.00",
    }
    assert repriced["total"] == "2502.00"

    await catalog.discontinue(cheap["id"])
    gone = await get_cart(cart, user)
    assert [(i["product_id"], i["available"]) for i in gone["items"]] == [
        (cheap["id"], False),
        (kept["id"], True),
    ]
    assert gone["total"] == "2.00"  # what an order of the rest would charge
    assert gone["version"] == repriced["version"]  # the cart itself did not change
    removed = await cart.delete(f"/api/cart/items/{cheap['id']}", headers=user)
    assert (await removed.json())["items"] == [line(kept, 1)]


async def test_a_read_is_exact_whether_or_not_the_catalog_read_model_caught_up(
    catalog: Catalog, store: PostgresEventStore, pool: Pool
) -> None:
    """No cart-service runs here, so `cart_catalog` lags: rows behind their stream are
    folded from the log; a current row is used as it is."""
    mug = await catalog.product("4.00")
    await catalog.reprice(mug["id"], "4.50")
    missing = str(uuid.uuid4())
    [entry] = (await current_entries(store, [mug["id"], missing])).values()
    assert (entry.product_id, entry.price, entry.active) == (mug["id"], Decimal("4.50"), True)

    await rebuild(store, CATALOG)  # the read model catches up with the log
    row = await pool.fetchrow("SELECT * FROM cart_catalog WHERE product_id = $1", mug["id"])
    assert row is not None and (row["price"], row["version"]) == (Decimal("4.50"), 2)
    # a current row is read, not the log: mark it to see which one answers
    await pool.execute(
        "UPDATE cart_catalog SET name = 'from the row' WHERE product_id = $1", mug["id"]
    )
    assert (await current_entries(store, [mug["id"]]))[mug["id"]].name == "from the row"
    await pool.execute(
        "UPDATE cart_catalog SET name = $2 WHERE product_id = $1", mug["id"], mug["name"]
    )
    await catalog.discontinue(mug["id"])  # now the row is behind again: the log answers
    entry = (await current_entries(store, [mug["id"]]))[mug["id"]]
    assert (entry.name, entry.active) == (mug["name"], False)


async def test_the_catalog_read_model_rebuilds_and_verifies_like_the_others(
    cart: Client, catalog: Catalog, store: PostgresEventStore, pool: Pool
) -> None:
    assert "cart_catalog" in load_projections()  # `microshop projections ...` know it
    tee = await catalog.product("3.10")
    await catalog.reprice(tee["id"], "3.30")
    await cart.app[RUNNERS][CATALOG.name].wait_for(await store.head())
    before = await pool.fetch("SELECT * FROM cart_catalog ORDER BY product_id")
    assert any(r["product_id"] == tee["id"] and r["price"] == Decimal("3.30") for r in before)
    await rebuild(store, CATALOG)
    assert await pool.fetch("SELECT * FROM cart_catalog ORDER BY product_id") == before
    assert (await verify(store, CATALOG)).ok


async def test_an_order_of_an_unknown_cart_and_a_malformed_order(
    cart: Client, catalog: Catalog, orders: Orders, store: PostgresEventStore
) -> None:
    user_id = f"user-{uuid.uuid4()}"
    tee = await catalog.product()
    consumer = cart.app[CONSUMERS]["cart-checkout"]

    bad = order_placed(user_id, (tee, 2))
    bad["items"][0]["quantity"] = "2"
    await orders.publish(orders.unstored(bad))
    fine = order_placed(user_id, (tee, 2))
    await orders.publish(await orders.place(fine))

    async def settled() -> bool:
        return consumer.stats.parked == 1 and consumer.stats.handled == 1

    await until(settled)
    [parked] = await consumer.parked()
    # parked either by the cart's schema or, where order-service's class is registered in
    # the same process, already when the message is decoded
    assert "malformed OrderPlaced" in parked.error or "undecodable: OrderPlaced" in parked.error
    # the cart had nothing to give: the checkout is recorded, the cart stays empty
    events = await store.read_stream(f"cart-{user_id}")
    assert [e.event_id for e in events] == [checkout_event_id(fine["order_id"])]

    async def projected() -> bool:
        return bool((await get_cart(cart, bearer(mint(user_id))))["version"] == 1)

    await until(projected)
    assert await get_cart(cart, bearer(mint(user_id))) == {
        "items": [],
        "total": "0.00",
        "currency": None,
        "version": 1,
    }


async def test_lines_added_by_version_1_read_as_lines_without_a_sku(
    cart: Client, catalog: Catalog, store: PostgresEventStore, pool: Pool
) -> None:
    """`CartItemAdded` v2 records the product's SKU; v1 rows (stored as older code wrote
    them) are upcast on read: their lines show `sku: null` until the product is added again,
    and a rebuild gives the same rows for old and new data."""
    user_id = f"user-{uuid.uuid4()}"
    user = bearer(mint(user_id))
    tee, mug = await catalog.product("3.10"), await catalog.product("7.00")
    v1 = {
        "product_id": tee["id"],
        "name": tee["name"],
        "unit_price": "3.10",
        "currency": "EUR",
        "quantity": 2,
    }
    await pool.execute(
        """INSERT INTO events (stream_id, stream_version, event_id, event_type,
                               schema_version, data)
           VALUES ($1, 1, $2, 'CartItemAdded', 1, $3::text::jsonb)""",
        f"cart-{user_id}",
        uuid.uuid4(),
        msgspec.json.encode(v1).decode(),
    )
    await cart.app[RUNNERS][CARTS.name].wait_for(await store.head())
    old = await get_cart(cart, user)
    assert old["items"] == [line(tee, 2)] and old["version"] == 1  # shown as the catalog has it

    async def recorded_skus() -> list[str | None]:
        items = await pool.fetchval("SELECT items FROM carts WHERE user_id = $1", user_id)
        return [item["sku"] for item in items]

    assert await recorded_skus() == [None]  # the cart's own record: v1 did not keep it
    both = await add(cart, user, mug["id"], 1)  # a v2 event on top of the v1 one
    assert [(i["product_id"], i["sku"]) for i in both["items"]] == [
        (tee["id"], tee["sku"]),
        (mug["id"], mug["sku"]),
    ]
    assert await recorded_skus() == [None, mug["sku"]]
    again = await add(cart, user, tee["id"], 1)  # the SKU is recorded from now on
    assert again["items"][0] == line(tee, 3)
    assert await recorded_skus() == [tee["sku"], mug["sku"]]
    stored = [(e.event_type, e.schema_version) for e in await store.read_stream(f"cart-{user_id}")]
    assert stored == [("CartItemAdded", 1), ("CartItemAdded", 2), ("CartItemAdded", 2)]

    before = await stored_carts(pool)
    await rebuild(store, CARTS)
    assert await stored_carts(pool) == before
    assert await get_cart(cart, user) == again
