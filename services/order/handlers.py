"""The write side of orders: place one from the caller's cart, and move it through its states.

Every change loads the order's stream, lets the domain decide, and appends with the
version it loaded; a lost race is decided again on fresh state, so two concurrent
"retry" clicks start one retry and the other sees the new status (409).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from eventstore import NO_STREAM, ConcurrencyError, EventStore, Metadata, Position
from microshop.appkeys import CONFIG, HTTP, POOL, STORE
from microshop.errors import (
    ApiError,
    BadGateway,
    Conflict,
    GatewayTimeout,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)

from . import domain
from .events import stream_id

__all__ = ["Placed", "change_order", "load_order", "place_order"]

ATTEMPTS = 5


async def load_order(store: EventStore, order_id: str) -> tuple[domain.Order | None, int]:
    recorded = await store.read_stream(stream_id(order_id))
    order = domain.fold(e.data for e in recorded)
    return order, recorded[-1].stream_version if recorded else 0


async def change_order(
    store: EventStore,
    order_id: str,
    decide: Callable[[domain.Order], Sequence[object]],
    metadata: Metadata,
) -> tuple[domain.Order, Position | None]:
    """Apply `decide` to the current order; (order after, position of the append or None)."""
    for _ in range(ATTEMPTS):
        order, version = await load_order(store, order_id)
        if order is None:
            raise NotFound("no such order")
        events = decide(order)
        if not events:
            return order, None
        try:
            result = await store.append(stream_id(order_id), events, version, metadata=metadata)
        except ConcurrencyError:
            continue
        changed = order
        for event in events:
            changed = domain.apply(changed, event) or changed
        return changed, result.position
    raise Conflict("the order keeps changing; try again", code="concurrency_conflict")


# -- placing ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CartSnapshot:
    lines: list[domain.OrderLine]
    currency: str | None
    version: int


@dataclasses.dataclass(frozen=True, slots=True)
class Placed:
    order_id: str
    position: Position | None
    replayed: bool


async def fetch_cart(app: web.Application, headers: dict[str, str]) -> CartSnapshot:
    """The caller's cart from cart-service, asked with the caller's own token."""
    url = f"{app[CONFIG].url_of('cart')}/api/cart"
    try:
        async with app[HTTP].get(url, headers=headers) as resp:
            if resp.status == 401:
                raise ApiError("cart-service refused the token", code="unauthorized")
            if resp.status != 200:
                raise BadGateway(f"cart-service answered {resp.status}", code="cart_service_error")
            body = await resp.json()
    except TimeoutError:
        raise GatewayTimeout(
            "cart-service did not answer in time", code="cart_service_timeout"
        ) from None
    except aiohttp.ClientConnectorError:
        raise ServiceUnavailable(
            "cart-service is not reachable", code="cart_service_unavailable"
        ) from None
    except (aiohttp.ClientError, ValueError):
        raise BadGateway("cart-service failed", code="cart_service_error") from None
    try:
        lines = [
            domain.OrderLine(str(i["product_id"]), str(i["name"]), Decimal(i["unit_price"]),
                             int(i["quantity"]), Decimal(i["line_total"]))
            for i in body["items"]
        ]  # fmt: skip
        return CartSnapshot(lines, body.get("currency"), int(body["version"]))
    except (KeyError, TypeError, ValueError, ArithmeticError):
        raise BadGateway(
            "cart-service sent a cart it should not", code="cart_service_error"
        ) from None


async def _placed_by(conn_or_pool: Any, user_id: str, *, key: str | None = None,
                     cart_version: int | None = None) -> str | None:  # fmt: skip
    if key is not None:
        found = await conn_or_pool.fetchval(
            "SELECT order_id FROM order_placements WHERE user_id = $1 AND idempotency_key = $2",
            user_id, key,
        )  # fmt: skip
    else:
        found = await conn_or_pool.fetchval(
            "SELECT order_id FROM order_placements WHERE user_id = $1 AND cart_version = $2",
            user_id, cart_version,
        )  # fmt: skip
    return None if found is None else str(found)


async def place_order(
    app: web.Application,
    user_id: str,
    cart_headers: dict[str, str],
    idempotency_key: str | None,
    metadata: Metadata,
) -> Placed:
    """An order from the caller's current cart (422 `cart_empty` when there is none).

    The same Idempotency-Key from the same user gives the same order; the same cart
    state is never ordered twice (409 `cart_already_ordered`).
    """
    pool, store = app[POOL], app[STORE]
    if idempotency_key is not None:
        existing = await _placed_by(pool, user_id, key=idempotency_key)
        if existing is not None:
            return Placed(existing, None, replayed=True)
    cart = await fetch_cart(app, cart_headers)
    if not cart.lines or cart.currency is None:
        raise ValidationFailed("the cart is empty", code="cart_empty")
    order_id = str(uuid.uuid4())
    events = domain.place(order_id, user_id, cart.lines, cart.currency, cart.version)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO order_placements (order_id, user_id, idempotency_key, cart_version)"
                " VALUES ($1, $2, $3, $4)",
                uuid.UUID(order_id), user_id, idempotency_key, cart.version,
            )  # fmt: skip
            result = await store.append(stream_id(order_id), events, NO_STREAM,
                                        metadata=metadata, conn=conn)  # fmt: skip
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "order_placements_key":
            existing = await _placed_by(pool, user_id, key=idempotency_key)
            if existing is not None:  # a concurrent request with the same key won
                return Placed(existing, None, replayed=True)
        existing = await _placed_by(pool, user_id, cart_version=cart.version)
        raise Conflict("this cart has been ordered already", code="cart_already_ordered",
                       details={"order_id": existing}) from None  # fmt: skip
    return Placed(order_id, result.position, replayed=False)
