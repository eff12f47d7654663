"""HTTP API of the cart (DESIGN §5). The cart is always the verified caller's own.

Writes answer with the cart they produced, after the `carts` read model has caught up with
them, so a GET right after sees the change (read-your-writes).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from eventstore import Position
from microshop import context
from microshop.app import CONFIG, HTTP, POOL, STORE
from microshop.auth import authenticate
from microshop.errors import (
    BadGateway,
    GatewayTimeout,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from microshop.http import json_response, read_json
from microshop.workers import RUNNERS

from . import domain
from .catalog import CatalogFailed, CatalogTimeout, CatalogUnavailable, fetch_product
from .domain import Cart, DomainError, ItemNotInCart
from .handlers import Decision, change_cart
from .projections import CARTS, items_of, read_cart
from .schemas import AddItem, AddItemSchema, Product, SetQuantity, SetQuantitySchema

__all__ = ["routes"]

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

READ_YOUR_WRITES_TIMEOUT = 5.0


def render(cart: Cart) -> dict[str, Any]:
    """The API form of a cart; an empty one has `currency: null` and total "0.00"."""
    return {
        "items": items_of(cart),
        "total": cart.total,
        "currency": cart.currency,
        "version": cart.version,
    }


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """The cart's refusals as HTTP errors: 404 for a missing line, 422 for broken rules."""
    try:
        yield
    except DomainError as exc:
        status = NotFound if isinstance(exc, ItemNotInCart) else ValidationFailed
        raise status(exc.message, code=exc.code, details=exc.details) from exc


async def _write(request: web.Request, decide: Decision) -> Cart:
    """Run `decide` on the caller's cart, wait until the read model has it, return the cart."""
    user_id = (await authenticate(request)).user_id
    metadata = context.event_metadata("cart", actor=user_id)
    with domain_errors():
        outcome = await change_cart(request.app[STORE], user_id, decide, metadata=metadata)
    if outcome.position is not None:
        await _read_your_writes(request.app, outcome.position)
    return outcome.cart


async def _read_your_writes(app: web.Application, position: Position) -> None:
    """The write is committed either way: a lagging read model only costs a warning."""
    try:
        await app[RUNNERS][CARTS.name].wait_for(position, timeout=READ_YOUR_WRITES_TIMEOUT)
    except TimeoutError:
        log.warning("carts read model is not at %s after %ss", position, READ_YOUR_WRITES_TIMEOUT)


@routes.get("/api/cart")
async def get_cart(request: web.Request) -> web.Response:
    user_id = (await authenticate(request)).user_id
    return json_response(render(await read_cart(request.app[POOL], user_id)))


@routes.post("/api/cart/items")
async def add_item(request: web.Request) -> web.Response:
    await authenticate(request)
    body: AddItem = await read_json(request, AddItemSchema())
    product = await _product(request.app, body.product_id)
    cart = await _write(
        request,
        lambda cart: domain.add_item(
            cart, product_id=product.id, name=product.name, unit_price=product.price,
            currency=product.currency, quantity=body.quantity,
        ),
    )  # fmt: skip
    return json_response(render(cart))


async def _product(app: web.Application, product_id: str) -> Product:
    """The active product from the catalog; upstream trouble is 503/504/502, never 500.

    Clients get a fixed message; the cause (addresses, upstream bodies) goes to the log.
    """
    try:
        product = await fetch_product(app[HTTP], app[CONFIG].url_of("product"), product_id)
    except CatalogUnavailable as exc:
        log.warning("%s", exc)
        raise ServiceUnavailable(
            "product-service is unavailable; try again shortly", code="product_service_unavailable"
        ) from exc
    except CatalogTimeout as exc:
        log.warning("%s", exc)
        raise GatewayTimeout(
            "product-service did not answer in time", code="product_service_timeout"
        ) from exc
    except CatalogFailed as exc:
        log.warning("%s", exc)
        raise BadGateway("product-service failed", code="product_service_error") from exc
    if product is None or not product.active:
        raise ValidationFailed(
            f"product {product_id} does not exist or is no longer sold",
            code="unknown_product",
            details={"product_id": [f"no active product {product_id}"]},
        )
    return product


@routes.put("/api/cart/items/{product_id}")
async def set_quantity(request: web.Request) -> web.Response:
    await authenticate(request)
    product_id = request.match_info["product_id"]
    body: SetQuantity = await read_json(request, SetQuantitySchema())
    cart = await _write(
        request, lambda cart: domain.change_quantity(cart, product_id, body.quantity)
    )
    return json_response(render(cart))


@routes.delete("/api/cart/items/{product_id}")
async def remove_item(request: web.Request) -> web.Response:
    product_id = request.match_info["product_id"]
    cart = await _write(request, lambda cart: domain.remove_item(cart, product_id))
    return json_response(render(cart))


@routes.delete("/api/cart")
async def clear_cart(request: web.Request) -> web.Response:
    await _write(request, domain.clear)
    return web.Response(status=204)
