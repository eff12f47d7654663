"""product-service: the catalog, as routes and the `products` projection on `make_app`."""

from __future__ import annotations

from aiohttp import web

from microshop.app import make_app
from microshop.auth import KeySource
from microshop.config import Config
from microshop.workers import projection_context

from .projections import PRODUCTS
from .views import routes

__all__ = ["create_app"]


def create_app(config: Config, *, token_keys: KeySource | None = None) -> web.Application:
    return make_app(
        config,
        "product",
        routes=routes,
        contexts=[projection_context(PRODUCTS)],
        token_keys=token_keys,
    )
