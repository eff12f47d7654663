"""cart-service's answers as the API document describes them (the routes say which)."""

from __future__ import annotations

from marshmallow import Schema, fields

from microshop.openapi import CURRENCY_PATTERN, Money, PricedLineSchema

__all__ = ["CartLineSchema", "CartSchema"]


class CartLineSchema(PricedLineSchema):
    """A line at the catalog's current price (what an order placed now charges)."""

    sku = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "null for a product the catalog no longer knows"},
    )
    available = fields.Boolean(
        required=True,
        metadata={
            "description": "false: discontinued (or no longer sold in the cart's currency);"
            " left out of the total, and an order refuses it (409 product_unavailable)"
        },
    )


class CartSchema(Schema):
    items = fields.List(fields.Nested(CartLineSchema), required=True)
    total = Money(required=True, metadata={"description": "of the available lines"})
    currency = fields.String(
        required=True,
        allow_none=True,
        metadata={"pattern": CURRENCY_PATTERN, "description": "null while the cart is empty"},
    )
    version = fields.Integer(required=True, metadata={"minimum": 0})
