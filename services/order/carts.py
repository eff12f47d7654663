"""The caller's cart as cart-service has it: what an order is placed from.

Asked with the caller's own token (cart-service answers for the token's user only), over
the kernel's `ServiceClient`: trouble upstream is a 502/503/504 for the caller, a cart
that does not fit the contract below is cart-service's bug (502), never ours (500).
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, Protocol

from marshmallow import EXCLUDE, Schema, fields, post_load

from microshop.client import ServiceClient, ServiceFailed
from microshop.errors import Unauthorized

from .domain import OrderLine

__all__ = ["CartService", "CartSnapshot", "Carts"]


@dataclasses.dataclass(frozen=True, slots=True)
class CartSnapshot:
    """The caller's cart at the catalog's current prices: the `lines` an order takes, and
    those whose product is no longer sold (`unavailable`, which an order refuses)."""

    lines: tuple[OrderLine, ...]
    currency: str | None
    version: int
    unavailable: tuple[OrderLine, ...] = ()


class Carts(Protocol):
    """Where an order's lines come from (a fake in tests, cart-service in the app)."""

    async def current(self) -> CartSnapshot: ...


class _LineSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    product_id = fields.String(required=True)
    name = fields.String(required=True)
    unit_price = fields.Decimal(required=True)
    quantity = fields.Integer(required=True, strict=True)
    line_total = fields.Decimal(required=True)
    available = fields.Boolean(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> tuple[OrderLine, bool]:
        line = OrderLine(
            data["product_id"],
            data["name"],
            Decimal(data["unit_price"]),
            data["quantity"],
            Decimal(data["line_total"]),
        )
        return line, data["available"]


class CartSchema(Schema):
    """The part of `GET /api/cart` an order needs (cart-service's public contract): every
    line at the catalog's current price, and whether its product is still sold."""

    class Meta:
        unknown = EXCLUDE

    items = fields.List(fields.Nested(_LineSchema), required=True)
    currency = fields.String(required=True, allow_none=True)
    version = fields.Integer(required=True, strict=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> CartSnapshot:
        lines = [line for line, available in data["items"] if available]
        unavailable = [line for line, available in data["items"] if not available]
        return CartSnapshot(tuple(lines), data["currency"], data["version"], tuple(unavailable))


_CART = CartSchema()


class CartService:
    """The caller's cart from cart-service, asked with the caller's `authorization`."""

    def __init__(self, client: ServiceClient, authorization: str) -> None:
        self._client = client
        self._authorization = authorization

    async def current(self) -> CartSnapshot:
        reply = await self._client.get("/api/cart", headers={"Authorization": self._authorization})
        if reply.status == 401:  # the token expired since this service checked it
            raise Unauthorized("cart-service refused the token")
        if reply.status != 200:
            raise ServiceFailed("cart", f"cart-service answered {reply.status} for the cart")
        snapshot: CartSnapshot = self._client.load(reply, _CART)
        if (snapshot.lines or snapshot.unavailable) and snapshot.currency is None:
            raise ServiceFailed("cart", "cart-service sent lines without a currency")
        return snapshot
