"""HTTP routes of product-service: the public catalog and admin changes.

Every change waits until the `products` read model has applied it before answering, so a
GET right after a POST, PATCH or DELETE sees the change (read-your-writes).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from aiohttp import web

from eventstore import Metadata
from microshop import context
from microshop.appkeys import POOL, STORE
from microshop.auth import Principal, require_admin
from microshop.errors import NotFound
from microshop.http import json_response, read_json, read_query, uuid_in_path
from microshop.openapi import documented
from microshop.workers import read_your_writes

from . import handlers, queries
from .domain import Product
from .images import default_image_url, render_svg
from .openapi import ProductPageSchema, ProductSchema
from .projections import PRODUCTS
from .schemas import ListQuery, ListQuerySchema, NewProductSchema, ProductChangesSchema

__all__ = ["routes"]

log = logging.getLogger(__name__)

SERVICE = "product"

routes = web.RouteTableDef()


# -- helpers -----------------------------------------------------------------------------


def present(product: Product) -> dict[str, Any]:
    """The product as the API shows it; the price is a decimal string."""
    return {
        "id": str(product.product_id),
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "price": product.price,
        "currency": product.currency,
        "image_url": product.image_url or default_image_url(product.product_id),
        "active": product.active,
    }


def product_id_of(request: web.Request) -> uuid.UUID:
    """The `{id}` of the path; anything that is not a UUID names no product (404)."""
    return uuid_in_path(request, "id", "product")


def metadata_for(principal: Principal) -> Metadata:
    return context.event_metadata(SERVICE, actor=principal.user_id)


async def settle(request: web.Request, outcome: handlers.Outcome) -> None:
    """Wait until the read model has what was appended (read-your-writes); the change is
    committed either way, so a slow read model is logged, never reported as a failure."""
    await read_your_writes(request.app, PRODUCTS.name, outcome.position)


# -- the public catalog ------------------------------------------------------------------


@routes.get("/api/products")
@documented(response=ProductPageSchema, errors=(422,), query=ListQuerySchema)
async def list_products(request: web.Request) -> web.Response:
    """Search the catalog.

    `?q=&limit=&offset=`: active products by name, `q` matching name or description."""
    query = read_query(request, ListQuerySchema(), ListQuery)
    page = await queries.list_products(
        request.app[POOL], q=query.q, limit=query.limit, offset=query.offset
    )
    return json_response({"items": [present(p) for p in page.items], "total": page.total})


@routes.get("/api/products/{id}")
@documented(response=ProductSchema, errors=(404,))
async def get_product(request: web.Request) -> web.Response:
    """One product.

    One product, discontinued ones included (`active: false`)."""
    product_id = product_id_of(request)
    product = await queries.get_product(request.app[POOL], product_id)
    if product is None:
        raise NotFound(f"no product {product_id}")
    return json_response(present(product))


@routes.get("/api/products/{id}/image.svg")
@documented(errors=(304, 404), media="image/svg+xml")
async def product_image(request: web.Request) -> web.Response:
    """The product's picture (SVG).

    The generated image of a product: deterministic, so it is cached by its ETag."""
    product_id = product_id_of(request)
    product = await queries.get_product(request.app[POOL], product_id)
    if product is None:
        raise NotFound(f"no product {product_id}")
    svg = render_svg(product.name, product.sku).encode()
    etag = '"' + hashlib.sha256(svg).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=300",
        # an SVG is a document: never let one run script, even if text slipped through
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        "X-Content-Type-Options": "nosniff",
    }
    if etag in _etags(request.headers.get("If-None-Match", "")):
        return web.Response(status=304, headers=headers)
    return web.Response(body=svg, content_type="image/svg+xml", charset="utf-8", headers=headers)


# -- admin changes -----------------------------------------------------------------------


@routes.post("/api/products")
@documented(
    request=NewProductSchema, status=201, response=ProductSchema, errors=(400, 401, 403, 409, 422)
)
async def create_product(request: web.Request) -> web.Response:
    """Add a product.

    201 with the new product; 409 `sku_taken` when another product has the SKU."""
    principal = await require_admin(request)
    new = await read_json(request, NewProductSchema())
    outcome = await handlers.create_product(
        request.app[STORE], request.app[POOL], new, metadata=metadata_for(principal)
    )
    await settle(request, outcome)
    body = present(outcome.product)
    return json_response(body, status=201, headers={"Location": f"/api/products/{body['id']}"})


@routes.patch("/api/products/{id}")
@documented(
    request=ProductChangesSchema, response=ProductSchema, errors=(400, 401, 403, 404, 409, 422)
)
async def change_product(request: web.Request) -> web.Response:
    """Change a product.

    Any of name, description, price, image_url; 409 `product_discontinued`."""
    principal = await require_admin(request)
    product_id = product_id_of(request)
    changes = await read_json(request, ProductChangesSchema())
    outcome = await handlers.change_product(
        request.app[STORE], product_id, changes, metadata=metadata_for(principal)
    )
    await settle(request, outcome)
    return json_response(present(outcome.product))


@routes.delete("/api/products/{id}")
@documented(
    summary="Discontinue a product (it stays readable by id, with active: false)",
    status=204,
    errors=(401, 403, 404),
)
async def discontinue_product(request: web.Request) -> web.Response:
    """Discontinue a product.

    204; discontinuing a discontinued product again records nothing."""
    principal = await require_admin(request)
    product_id = product_id_of(request)
    outcome = await handlers.discontinue_product(
        request.app[STORE], product_id, metadata=metadata_for(principal)
    )
    await settle(request, outcome)
    return web.Response(status=204)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
