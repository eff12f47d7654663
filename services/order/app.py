"""order-service (port 8004): orders from carts, their status, payment outcomes."""

from __future__ import annotations

from aiohttp import web

from microshop.app import make_app
from microshop.auth import KeySource
from microshop.config import Config
from microshop.workers import projection_context

from . import events as _events  # noqa: F401  (registers the order events)
from .metrics import order_metrics_context
from .projections import ORDERS
from .views import routes

__all__ = ["create_app"]


def create_app(config: Config, *, token_keys: KeySource | None = None) -> web.Application:
    return make_app(
        config,
        "order",
        routes=routes,
        contexts=[projection_context(ORDERS), order_metrics_context],
        token_keys=token_keys,
    )
