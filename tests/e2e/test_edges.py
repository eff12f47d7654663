"""The hardened edges through the gateway: what a client can forge is never recorded, and an
order charges what the catalog asks now."""

from __future__ import annotations

import json
import secrets
from typing import Any

import asyncpg

from tests.conftest import StackEnv
from tests.e2e.client import Shop


async def stored(test_env: StackEnv, stream: str) -> list[dict[str, Any]]:
    """`stream`'s events as stored (type, event id and metadata), oldest first."""
    conn = await asyncpg.connect(test_env.database_url)
    try:
        rows = await conn.fetch(
            "SELECT event_type, event_id, metadata::text AS metadata FROM events"
            " WHERE stream_id = $1 ORDER BY stream_version",
            stream,
        )
    finally:
        await conn.close()
    return [
        {"type": r["event_type"], "event_id": str(r["event_id"]), **json.loads(r["metadata"])}
        for r in rows
    ]


async def test_forged_tracing_headers_never_make_an_event_look_caused_by_anothers(
    shop: Shop, test_env: StackEnv
) -> None:
    victim = await shop.customer()
    victims = await shop.order(victim, 1)
    [theirs] = [
        e for e in await stored(test_env, f"order-{victims['id']}") if e["type"] == "OrderPlaced"
    ]

    me = await shop.customer()
    subject = (await (await shop.http.get("/api/auth/me", headers=me)).json())["id"]
    correlation = f"mine-{secrets.token_hex(4)}"
    forged = {
        "X-Causation-ID": theirs["event_id"],
        "X-Correlation-ID": correlation,
        "X-Internal-Api-Key": "forged",
    }
    await shop.payments(success_rate=1.0, latency_ms=3000)  # time to cancel it
    line = {"product_id": shop.product_id, "quantity": 1}
    added = await shop.http.post("/api/cart/items", json=line, headers={**me, **forged})
    assert added.status == 200, await added.text()
    resp = await shop.http.post("/api/orders", headers={**me, **forged})
    assert resp.status == 201, await resp.text()
    assert resp.headers["X-Correlation-ID"] == correlation  # echoed (and logged)
    order = await resp.json()
    cancelled = await shop.http.post(f"/api/orders/{order['id']}/cancel", headers={**me, **forged})
    assert cancelled.status == 200, await cancelled.text()

    mine = await stored(test_env, f"order-{order['id']}")
    requested = [e for e in mine if e["type"] in ("OrderPlaced", "OrderCancelled")]
    assert [e["type"] for e in requested] == ["OrderPlaced", "OrderCancelled"]
    cart = [e for e in await stored(test_env, f"cart-{subject}") if e["type"] == "CartItemAdded"]
    assert cart
    for event in [*requested, *cart]:
        assert event.get("causation_id") is None, event  # a client names no cause
        assert event["correlation_id"] == correlation  # a label the client chose, nothing more
        assert event["actor"] == subject


async def new_product(shop: Shop, admin: dict[str, str], price: str) -> dict[str, Any]:
    body = {"sku": f"PR-{secrets.token_hex(4)}", "name": f"Priced {price}", "price": price}
    resp = await shop.http.post("/api/products", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    product: dict[str, Any] = await resp.json()
    return product


async def test_the_audits_stale_price_case_is_refused_and_a_new_price_is_charged(
    shop: Shop, admin: dict[str, str]
) -> None:
    """Added at 1.00 x 5; re-priced to 500.00 the cart shows and the order charges 500.00;
    once discontinued, an order is refused naming it, and the cart is left as it was."""
    me = await shop.customer()
    cheap, other = await new_product(shop, admin, "1.00"), await new_product(shop, admin, "3.00")
    for product, quantity in ((cheap, 5), (other, 1)):
        line = {"product_id": product["id"], "quantity": quantity}
        assert (await shop.http.post("/api/cart/items", json=line, headers=me)).status == 200
    patched = await shop.http.patch(
        f"/api/products/{cheap['id']}", json={"price": "500.00"}, headers=admin
    )
    assert patched.status == 200, await patched.text()
    cart = await (await shop.http.get("/api/cart", headers=me)).json()
    assert [(i["unit_price"], i["line_total"], i["available"]) for i in cart["items"]] == [
        ("500.00", "2500.00", True),
        ("3.00", "3.00", True),
    ]
    assert cart["total"] == "2503.00"

    deleted = await shop.http.delete(f"/api/products/{cheap['id']}", headers=admin)
    assert deleted.status == 204
    cart = await (await shop.http.get("/api/cart", headers=me)).json()
    assert [i["available"] for i in cart["items"]] == [False, True]
    assert cart["total"] == "3.00"
    refused = await shop.http.post("/api/orders", headers=me)
    body = await refused.json()
    assert refused.status == 409, body
    assert body["error"]["code"] == "product_unavailable"
    assert body["error"]["details"]["products"] == [
        {"product_id": cheap["id"], "name": cheap["name"]}
    ]
    assert await (await shop.http.get("/api/cart", headers=me)).json() == cart  # untouched

    removed = await shop.http.delete(f"/api/cart/items/{cheap['id']}", headers=me)
    assert removed.status == 200
    placed = await shop.http.post("/api/orders", headers=me)
    order = await placed.json()
    assert placed.status == 201, order
    assert (order["total"], [i["unit_price"] for i in order["items"]]) == ("3.00", ["3.00"])


async def test_a_repriced_product_is_ordered_at_its_new_price_through_the_gateway(
    shop: Shop, admin: dict[str, str]
) -> None:
    me = await shop.customer()
    mug = await new_product(shop, admin, "1.00")
    line = {"product_id": mug["id"], "quantity": 5}
    assert (await shop.http.post("/api/cart/items", json=line, headers=me)).status == 200
    patched = await shop.http.patch(
        f"/api/products/{mug['id']}", json={"price": "500.00"}, headers=admin
    )
    assert patched.status == 200
    resp = await shop.http.post("/api/orders", headers=me)
    order = await resp.json()
    assert resp.status == 201, order
    assert order["total"] == "2500.00"
    assert order["items"][0]["unit_price"] == "500.00"
