"""product-service's answers as the API document describes them (the routes say which)."""

from __future__ import annotations

from marshmallow import Schema, fields

from microshop.openapi import CURRENCY_PATTERN, Money

__all__ = ["ProductPageSchema", "ProductSchema"]


class ProductSchema(Schema):
    id = fields.UUID(required=True)
    sku = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    price = Money(required=True)
    currency = fields.String(required=True, metadata={"pattern": CURRENCY_PATTERN})
    image_url = fields.String(
        required=True, metadata={"description": "given, or the generated image's path"}
    )
    active = fields.Boolean(required=True, metadata={"description": "false: discontinued"})


class ProductPageSchema(Schema):
    items = fields.List(fields.Nested(ProductSchema), required=True)
    total = fields.Integer(required=True, metadata={"minimum": 0})
