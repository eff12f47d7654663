"""The edges' shapes: HTTP bodies, product-service's answer and events, and `OrderPlaced`.

Each schema loads into a frozen dataclass; dicts do not travel past the edge.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, NamedTuple

from marshmallow import EXCLUDE, Schema, fields, post_load, validate

from microshop.openapi import CURRENCY_PATTERN, whole

from .domain import MAX_QUANTITY
from .domain.pricing import CatalogFact, Discontinued, Listed, PriceChanged, Revised

__all__ = [
    "CATALOG_FACTS",
    "AddItem",
    "AddItemSchema",
    "OrderPlacedSchema",
    "PlacedOrder",
    "Product",
    "SetQuantity",
    "SetQuantitySchema",
]

# One URL path segment of product-service (its ids are UUIDs; this only keeps paths sane).
PRODUCT_ID = validate.Regexp(
    whole(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}"),
    error="a product id is 1..100 letters, digits, '_', '.', ':' or '-'",
)
CURRENCY = validate.Regexp(CURRENCY_PATTERN, error="an ISO 4217 code such as EUR")


# -- HTTP bodies -------------------------------------------------------------------------


class AddItem(NamedTuple):
    """The body of `POST /api/cart/items`."""

    product_id: str
    quantity: int


class SetQuantity(NamedTuple):
    """The body of `PUT /api/cart/items/{product_id}`."""

    quantity: int


class AddItemSchema(Schema):
    """`POST /api/cart/items {product_id, quantity}`: quantity is a JSON integer 1..99."""

    product_id = fields.String(required=True, validate=PRODUCT_ID)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(1, MAX_QUANTITY))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> AddItem:
        return AddItem(**data)


class SetQuantitySchema(Schema):
    """`PUT /api/cart/items/{product_id} {quantity}`: 0 removes the line."""

    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(0, MAX_QUANTITY))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> SetQuantity:
        return SetQuantity(**data)


# -- a product a cart takes -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Product:
    """A product as the catalog sells it now (`products.Products.sold`)."""

    id: str
    name: str
    price: Decimal
    currency: str
    active: bool
    sku: str | None = None


# -- OrderPlaced (published by order-service) --------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class PlacedOrder:
    """What the cart needs of an `OrderPlaced`: whose cart, and what the order took."""

    order_id: str
    user_id: str
    lines: tuple[tuple[str, int], ...]


class _OrderLineSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    product_id = fields.String(required=True, validate=validate.Length(1, 200))
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    name = fields.String()
    unit_price = fields.Decimal()
    line_total = fields.Decimal()


class OrderPlacedSchema(Schema):
    """The `data` of an `OrderPlaced` event, as order-service publishes it.

    Contract (stream `order-{order_id}`, routing key `order.OrderPlaced`)::

        {"order_id": "<uuid>",
         "user_id": "<the token subject who placed it>",
         "items": [{"product_id": "...", "name": "...", "unit_price": "19.99",
                    "quantity": 2, "line_total": "39.98"}],
         "total": "39.98",
         "currency": "EUR"}

    The cart relies on `order_id`, `user_id` and each item's `product_id` and `quantity`
    (an integer >= 1; at least one item); money fields are decimal strings. Extra fields
    are ignored, so order-service may add some without breaking the cart.
    """

    class Meta:
        unknown = EXCLUDE

    order_id = fields.UUID(required=True)
    user_id = fields.String(required=True, validate=validate.Length(1, 200))
    items = fields.List(
        fields.Nested(_OrderLineSchema), required=True, validate=validate.Length(min=1)
    )
    total = fields.Decimal()
    currency = fields.String(validate=CURRENCY)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> PlacedOrder:
        lines = tuple((item["product_id"], item["quantity"]) for item in data["items"])
        return PlacedOrder(str(data["order_id"]), data["user_id"], lines)


# -- product-service's events (read from the log by the `cart_catalog` read model) ------


class _ProductEventSchema(Schema):
    """The part of a product event the cart reads; other fields are ignored, so
    product-service may add some (at a new version, which the cart accepts first)."""

    class Meta:
        unknown = EXCLUDE

    product_id = fields.String(required=True, validate=validate.Length(1, 100))


class _ProductCreatedSchema(_ProductEventSchema):
    sku = fields.String(required=True)
    name = fields.String(required=True)
    price = fields.Decimal(required=True, validate=validate.Range(min=0))
    currency = fields.String(required=True, validate=CURRENCY)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> CatalogFact:
        return Listed(**data)


class _ProductUpdatedSchema(_ProductEventSchema):
    name = fields.String(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> CatalogFact:
        return Revised(**data)


class _ProductPriceChangedSchema(_ProductEventSchema):
    new_price = fields.Decimal(required=True, validate=validate.Range(min=0))
    currency = fields.String(required=True, validate=CURRENCY)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> CatalogFact:
        return PriceChanged(data["product_id"], data["new_price"], data["currency"])


class _ProductDiscontinuedSchema(_ProductEventSchema):
    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> CatalogFact:
        return Discontinued(**data)


CATALOG_FACTS: dict[str, Schema] = {
    "ProductCreated": _ProductCreatedSchema(),
    "ProductUpdated": _ProductUpdatedSchema(),
    "ProductPriceChanged": _ProductPriceChangedSchema(),
    "ProductDiscontinued": _ProductDiscontinuedSchema(),
}
"""The schema of each product event the catalog read model folds, by event type. Contract
(product-service's `docs/events/Product*.v1.json`; streams `product-{uuid}`)::

    ProductCreated      {"product_id", "sku", "name", "price": "19.99", "currency", ...}
    ProductUpdated      {"product_id", "name", ...}
    ProductPriceChanged {"product_id", "new_price": "21.00", "currency", ...}
    ProductDiscontinued {"product_id"}
"""
