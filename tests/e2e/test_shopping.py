"""Shopping through the gateway on the real services: catalog, carts, who may do what."""

from __future__ import annotations

import asyncio
import secrets
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from tests.e2e.client import assert_error, signup
from tests.tokens import bearer


async def new_product(
    http: aiohttp.ClientSession, admin: dict[str, str], price: str = "19.99", **extra: Any
) -> dict[str, Any]:
    body = {
        "sku": f"E2E-{secrets.token_hex(4)}",
        "name": f"Test item {secrets.token_hex(2)}",
        "description": "made for the end-to-end tests",
        "price": price,
        **extra,
    }
    resp = await http.post("/api/products", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    product: dict[str, Any] = await resp.json()
    return product


async def test_catalog_through_the_gateway(
    http: aiohttp.ClientSession, admin: dict[str, str]
) -> None:
    word = f"zeppelin{secrets.token_hex(3)}"
    product = await new_product(http, admin, description=f"a {word} shaped lamp")
    fetched = await (await http.get(f"/api/products/{product['id']}")).json()
    assert fetched == product
    found = await (await http.get("/api/products", params={"q": word.upper()})).json()
    assert [p["id"] for p in found["items"]] == [product["id"]] and found["total"] == 1

    patched = await http.patch(
        f"/api/products/{product['id']}", json={"price": "21.50"}, headers=admin
    )
    assert (await patched.json())["price"] == "21.50"
    image = await http.get(product["image_url"])
    assert image.status == 200 and image.headers["Content-Type"].startswith("image/svg+xml")

    assert (await http.delete(f"/api/products/{product['id']}", headers=admin)).status == 204
    gone = await (await http.get(f"/api/products/{product['id']}")).json()
    assert gone["active"] is False
    assert (await (await http.get("/api/products", params={"q": word})).json())["total"] == 0


async def test_users_cannot_change_the_catalog(
    http: aiohttp.ClientSession, admin: dict[str, str]
) -> None:
    product = await new_product(http, admin)
    _, token = await signup(http)
    user = bearer(token)
    body = {"sku": "NOPE-1", "name": "x", "price": "1.00"}
    await assert_error(await http.post("/api/products", json=body), 401)
    await assert_error(await http.post("/api/products", json=body, headers=user), 403)
    await assert_error(
        await http.patch(f"/api/products/{product['id']}", json={"name": "x"}, headers=user), 403
    )
    await assert_error(await http.delete(f"/api/products/{product['id']}", headers=user), 403)


async def test_cart_flow(http: aiohttp.ClientSession, admin: dict[str, str]) -> None:
    tea, mug = await new_product(http, admin, "4.50"), await new_product(http, admin, "12.00")
    _, token = await signup(http)
    me = bearer(token)

    cart = await (
        await http.post(
            "/api/cart/items", json={"product_id": tea["id"], "quantity": 2}, headers=me
        )
    ).json()
    assert cart["items"][0]["line_total"] == "9.00"
    await http.post("/api/cart/items", json={"product_id": mug["id"], "quantity": 1}, headers=me)
    cart = await (await http.get("/api/cart", headers=me)).json()
    assert Decimal(cart["total"]) == Decimal("21.00")

    cart = await (
        await http.put(f"/api/cart/items/{tea['id']}", json={"quantity": 5}, headers=me)
    ).json()
    assert {i["product_id"]: i["quantity"] for i in cart["items"]}[tea["id"]] == 5
    cart = await (await http.delete(f"/api/cart/items/{mug['id']}", headers=me)).json()
    assert [i["product_id"] for i in cart["items"]] == [tea["id"]]
    assert (await http.delete("/api/cart", headers=me)).status == 204
    assert (await (await http.get("/api/cart", headers=me)).json())["items"] == []


async def test_carts_belong_to_the_token(
    http: aiohttp.ClientSession, admin: dict[str, str]
) -> None:
    product = await new_product(http, admin)
    _, alice_token = await signup(http)
    _, bob_token = await signup(http)
    alice, bob = bearer(alice_token), bearer(bob_token)
    await http.post(
        "/api/cart/items", json={"product_id": product["id"], "quantity": 3}, headers=alice
    )

    assert (await (await http.get("/api/cart", headers=bob)).json())["items"] == []
    await assert_error(
        await http.delete(f"/api/cart/items/{product['id']}", headers=bob), 404
    )  # bob has no such line; alice's cart is untouched
    alice_cart = await (await http.get("/api/cart", headers=alice)).json()
    assert alice_cart["items"][0]["quantity"] == 3
    for method, path in [
        ("GET", "/api/cart"),
        ("POST", "/api/cart/items"),
        ("DELETE", "/api/cart"),
    ]:
        await assert_error(await http.request(method, path), 401)


async def test_concurrent_adds_to_one_cart_lose_nothing(
    http: aiohttp.ClientSession, admin: dict[str, str]
) -> None:
    products = [await new_product(http, admin, "1.00") for _ in range(5)]
    _, token = await signup(http)
    me = bearer(token)

    async def add(product: dict[str, Any]) -> int:
        resp = await http.post(
            "/api/cart/items", json={"product_id": product["id"], "quantity": 1}, headers=me
        )
        return resp.status

    statuses = await asyncio.gather(*(add(products[i % 5]) for i in range(40)))
    assert set(statuses) == {200}
    cart = await (await http.get("/api/cart", headers=me)).json()
    assert sorted(i["quantity"] for i in cart["items"]) == [8] * 5
    assert Decimal(cart["total"]) == Decimal("40.00")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"quantity": 1}, 422),
        ({"product_id": "x", "quantity": 0}, 422),
        ({"product_id": "x", "quantity": 100}, 422),
        ({"product_id": "x", "quantity": "1"}, 422),
        ({"product_id": "x", "quantity": 10**30}, 422),
        ({"product_id": "x", "quantity": 1.5}, 422),
    ],
)
async def test_bad_cart_input_is_rejected(
    http: aiohttp.ClientSession, body: dict[str, Any], status: int
) -> None:
    _, token = await signup(http)
    await assert_error(await http.post("/api/cart/items", json=body, headers=bearer(token)), status)


async def test_unknown_or_discontinued_products_cannot_be_added(
    http: aiohttp.ClientSession, admin: dict[str, str]
) -> None:
    product = await new_product(http, admin)
    await http.delete(f"/api/products/{product['id']}", headers=admin)
    _, token = await signup(http)
    for product_id in (product["id"], "00000000-0000-4000-8000-000000000000"):
        resp = await http.post(
            "/api/cart/items", json={"product_id": product_id, "quantity": 1}, headers=bearer(token)
        )
        await assert_error(resp, 422, "unknown_product")


async def test_error_codes_of_the_public_api(
    http: aiohttp.ClientSession, admin: dict[str, str]
) -> None:
    product = await new_product(http, admin)
    await assert_error(await http.get("/api/products/00000000-0000-4000-8000-000000000000"), 404)
    await assert_error(await http.get("/api/products/not-a-uuid"), 404)
    taken = {"sku": product["sku"], "name": "again", "price": "1.00"}
    await assert_error(
        await http.post("/api/products", json=taken, headers=admin), 409, "sku_taken"
    )
    for price in (19.99, "-1.00", "1.001", "1e3", "100000000"):
        bad = {"sku": f"P-{secrets.token_hex(3)}", "name": "x", "price": price}
        await assert_error(await http.post("/api/products", json=bad, headers=admin), 422)
    await assert_error(await http.get("/api/products", params={"limit": "1000"}), 422)
    email = f"dup-{secrets.token_hex(3)}@example.com"
    await http.post("/api/auth/register", json={"email": email, "password": "12345678"})
    await assert_error(
        await http.post("/api/auth/register", json={"email": email, "password": "12345678"}),
        409,
        "email_taken",
    )
    await assert_error(
        await http.post("/api/auth/login", json={"email": email, "password": "wrong-one"}), 401
    )
    _, token = await signup(http)
    await assert_error(
        await http.put(
            f"/api/cart/items/{product['id']}", json={"quantity": 2}, headers=bearer(token)
        ),
        404,
    )
