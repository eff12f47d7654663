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
