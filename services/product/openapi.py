"""product-service's answers as the API document describes them (the routes say which)."""

from __future__ import annotations

from marshmallow import Schema, fields

__all__ = ["ProductPageSchema", "ProductSchema"]


class ProductSchema(Schema):
    id = fields.UUID(required=True)
    sku = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String()
    price = fields.Decimal(as_string=True, required=True, metadata={"example": "19.99"})
    currency = fields.String(required=True, metadata={"example": "EUR"})
    image_url = fields.String()
    active = fields.Boolean(required=True)


class ProductPageSchema(Schema):
    items = fields.List(fields.Nested(ProductSchema), required=True)
    total = fields.Integer(required=True)
