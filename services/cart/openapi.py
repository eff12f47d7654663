"""cart-service's part of the public API document (the gateway joins every service's)."""

from __future__ import annotations

from marshmallow import Schema, fields

from microshop.openapi import Operation

from .schemas import AddItemSchema, SetQuantitySchema

__all__ = ["OPERATIONS"]


class CartLineSchema(Schema):
    product_id = fields.String(required=True)
    name = fields.String(required=True)
    unit_price = fields.Decimal(as_string=True, required=True)
    quantity = fields.Integer(required=True)
    line_total = fields.Decimal(as_string=True, required=True)


class CartSchema(Schema):
    items = fields.List(fields.Nested(CartLineSchema), required=True)
    total = fields.Decimal(as_string=True, required=True)
    currency = fields.String(allow_none=True)
    version = fields.Integer(required=True)


OPERATIONS = (
    Operation("GET", "/api/cart", "The caller's cart", response=CartSchema, errors=(401,)),
    Operation("DELETE", "/api/cart", "Empty the cart", status=204, errors=(401,)),
    Operation(
        "POST",
        "/api/cart/items",
        "Add to a cart line",
        request=AddItemSchema,
        response=CartSchema,
        errors=(400, 401, 422),
    ),
    Operation(
        "PUT",
        "/api/cart/items/{product_id}",
        "Set a line's quantity (0 removes it)",
        request=SetQuantitySchema,
        response=CartSchema,
        errors=(400, 401, 404, 422),
    ),
    Operation(
        "DELETE",
        "/api/cart/items/{product_id}",
        "Remove a line",
        response=CartSchema,
        errors=(401, 404),
    ),
)
