"""cart-service's answers as the API document describes them (the routes say which)."""

from __future__ import annotations

from marshmallow import Schema, fields

from microshop.openapi import PricedLineSchema

__all__ = ["CartLineSchema", "CartSchema"]


class CartLineSchema(PricedLineSchema):
    sku = fields.String(
        allow_none=True, metadata={"description": "null for lines added before SKUs were kept"}
    )


class CartSchema(Schema):
    items = fields.List(fields.Nested(CartLineSchema), required=True)
    total = fields.Decimal(as_string=True, required=True)
    currency = fields.String(allow_none=True)
    version = fields.Integer(required=True)
