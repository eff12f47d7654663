"""cart-service: event-sourced carts (`cart-{user_id}` streams, read model `carts`), priced
from its own copy of the catalog (read model `cart_catalog`, folded from product events)."""

from __future__ import annotations

from aiohttp import web

from microshop.app import make_app
from microshop.auth import KeySource
from microshop.config import Config
from microshop.topology import CONSUMER_QUEUES
from microshop.workers import consumer_context, projection_context

from . import events as _events  # noqa: F401  (registers the cart's event types)
from .catalog import CATALOG
from .handlers import on_order_placed
from .projections import CARTS
from .views import routes

__all__ = ["create_app"]

CHECKOUT = CONSUMER_QUEUES["cart-checkout"]  # queue and bindings: the system's consumer registry


def create_app(config: Config, *, token_keys: KeySource | None = None) -> web.Application:
    return make_app(
        config,
        "cart",
        routes=routes,
        contexts=[
            projection_context(CARTS),
            projection_context(CATALOG),
            consumer_context(
                CHECKOUT.name, CHECKOUT.bindings, on_order_placed, accepts=CHECKOUT.accepts
            ),
        ],
        token_keys=token_keys,
    )
