"""product-service's part of the public API document (the gateway joins every service's)."""

from __future__ import annotations

from marshmallow import Schema, fields

from microshop.openapi import Operation, Query

from .schemas import NewProductSchema, ProductChangesSchema

__all__ = ["OPERATIONS"]


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


OPERATIONS = (
    Operation(
        "GET",
        "/api/products",
        "Search the catalog",
        response=ProductPageSchema,
        errors=(422,),
        query=(
            Query("q", "string", "words in the name or description"),
            Query("limit", "integer", "1..100, default 20"),
            Query("offset", "integer", ">= 0"),
        ),
    ),
    Operation(
        "POST",
        "/api/products",
        "Add a product",
        request=NewProductSchema,
        status=201,
        response=ProductSchema,
        errors=(400, 401, 403, 409, 422),
    ),
    Operation("GET", "/api/products/{id}", "One product", response=ProductSchema, errors=(404,)),
    Operation(
        "PATCH",
        "/api/products/{id}",
        "Change a product",
        request=ProductChangesSchema,
        response=ProductSchema,
        errors=(400, 401, 403, 404, 409, 422),
    ),
    Operation(
        "DELETE", "/api/products/{id}", "Discontinue a product", status=204, errors=(401, 403, 404)
    ),
    Operation("GET", "/api/products/{id}/image.svg", "The product's picture (SVG)", errors=(404,)),
)
