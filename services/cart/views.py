"""HTTP API of the cart. The cart is always the verified caller's own.

Every answer shows the cart at the catalog's current prices (`catalog.current_entries`,
exact at the moment of the read), each line `available` or not: what an order placed now
would charge, and what it would refuse. Writes answer with the cart they produced, after
the `carts` read model has caught up with them, so a GET right after sees the change
(read-your-writes). Refusals (a quantity out of range, an unknown product, a line not in
the cart) are the domain's errors, answered by the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from eventstore import Executed, Metadata
from microshop import context
from microshop.appkeys import POOL, STORE
from microshop.auth import authenticate
from microshop.http import json_response, read_json
from microshop.openapi import documented
from microshop.workers import read_your_writes

from . import domain
from .catalog import current_entries
from .domain import Cart
from .domain.pricing import CatalogEntry, price
from .handlers import Decision, add_to_cart, change_cart
from .openapi import CartSchema
from .products import CatalogProducts
from .projections import CARTS, line_json, read_cart, snapshot_of
from .schemas import AddItem, AddItemSchema, SetQuantity, SetQuantitySchema

__all__ = ["routes"]

routes = web.RouteTableDef()


async def render(
    app: web.Application, cart: Cart, known: Mapping[str, CatalogEntry] | None = None
) -> dict[str, Any]:
    """The API form of a cart at today's prices; an empty one has `currency: null` and
    total "0.00", and the total counts the available lines only. `known`: catalog
    entries this request has read already (not read again)."""
    known = known or {}
    missing = [line.product_id for line in cart.lines if line.product_id not in known]
    catalog = {**known, **await current_entries(app[STORE], missing)}
    priced = price(cart, catalog)
    return {
        "items": [{**line_json(line), "available": line.available} for line in priced.lines],
        "total": priced.total,
        "currency": priced.currency,
        "version": priced.version,
    }


def _metadata(user_id: str) -> Metadata:
    return context.event_metadata("cart", actor=user_id)


async def _settled(app: web.Application, done: Executed[Cart]) -> Cart:
    """The cart a write produced, once the read model has it (or has not, in time: the
    write is committed either way, so it is answered)."""
    await read_your_writes(app, CARTS.name, done.position)
    return done.state


async def _write(request: web.Request, decide: Decision) -> Cart:
    """Run `decide` on the caller's cart, wait until the read model has it, return the cart."""
    user_id = (await authenticate(request)).user_id
    app = request.app
    done = await change_cart(
        app[STORE],
        user_id,
        decide,
        metadata=_metadata(user_id),
        snapshot=snapshot_of(app[POOL], user_id),
    )
    return await _settled(app, done)


@routes.get("/api/cart")
@documented(response=CartSchema, errors=(401,))
async def get_cart(request: web.Request) -> web.Response:
    """The caller's cart."""
    user_id = (await authenticate(request)).user_id
    app = request.app
    return json_response(await render(app, await read_cart(app[POOL], user_id)))


@routes.post("/api/cart/items")
@documented(
    request=AddItemSchema,
    response=CartSchema,
    errors=(400, 401, 422),
    rules="unknown_product: the catalog does not sell it; currency_mismatch: it is priced in"
    " another currency than the cart; quantity_out_of_range: the line would hold over 99",
)
async def add_item(request: web.Request) -> web.Response:
    """Add to a cart line."""
    user_id = (await authenticate(request)).user_id
    body: AddItem = await read_json(request, AddItemSchema())
    app = request.app
    products = CatalogProducts(app[STORE])
    done = await add_to_cart(
        app[STORE],
        products,
        user_id,
        body.product_id,
        body.quantity,
        metadata=_metadata(user_id),
        snapshot=snapshot_of(app[POOL], user_id),
    )
    return json_response(await render(app, await _settled(app, done), products.entries))


@routes.put("/api/cart/items/{product_id}")
@documented(request=SetQuantitySchema, response=CartSchema, errors=(400, 401, 404, 422))
async def set_quantity(request: web.Request) -> web.Response:
    """Set a line's quantity (0 removes it)."""
    await authenticate(request)
    product_id = request.match_info["product_id"]
    body: SetQuantity = await read_json(request, SetQuantitySchema())
    cart = await _write(
        request, lambda cart: domain.change_quantity(cart, product_id, body.quantity)
    )
    return json_response(await render(request.app, cart))


@routes.delete("/api/cart/items/{product_id}")
@documented(response=CartSchema, errors=(401, 404))
async def remove_item(request: web.Request) -> web.Response:
    """Remove a line."""
    product_id = request.match_info["product_id"]
    cart = await _write(request, lambda cart: domain.remove_item(cart, product_id))
    return json_response(await render(request.app, cart))


@routes.delete("/api/cart")
@documented(status=204, errors=(401,))
async def clear_cart(request: web.Request) -> web.Response:
    """Empty the cart."""
    await _write(request, domain.clear)
    return web.Response(status=204)
