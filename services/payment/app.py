"""payment-service: simulated payments on `make_app` (port 8005). Internal API only."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from microshop.app import make_app
from microshop.appkeys import CONFIG, METRICS, READY_CHECKS, STORE
from microshop.auth import KeySource
from microshop.client import ServiceClient
from microshop.config import Config

from . import events as _events  # noqa: F401  (registers the payment event types)
from .appkeys import ORDER_SERVICE, PAYMENT_METRICS, SIMULATOR, PaymentMetrics
from .orders import REPORT_TIMEOUT, OrderService
from .simulator import SETTINGS_CHANNEL, PaymentSimulator, shared_settings
from .views import routes

__all__ = ["create_app"]


async def payment_context(app: web.Application) -> AsyncIterator[None]:
    """The simulator (its settings shared by every replica from the first change on: see
    `shared_settings`), the order-service client on the shared HTTP session, and the
    payment counters."""
    config = app[CONFIG]
    simulator = app[SIMULATOR] = PaymentSimulator.from_config(config)
    timeout = min(REPORT_TIMEOUT, config.upstream_timeout_seconds)
    app[ORDER_SERVICE] = OrderService(
        ServiceClient.of(app, "order", internal=True, timeout=timeout)
    )
    app[PAYMENT_METRICS] = PaymentMetrics.on(app[METRICS])
    session = app[STORE].session
    if session is None:
        yield
        return
    heard = shared_settings(simulator)
    await session.listen(SETTINGS_CHANNEL, heard)

    async def settings_listener(_: web.Application) -> str | None:
        """Ready once it hears the other replicas' settings changes (none is missed then)."""
        return None if session.connected else "not yet listening for settings changes"

    app[READY_CHECKS].append(settings_listener)
    try:
        yield
    finally:
        session.unlisten(SETTINGS_CHANNEL, heard)


def create_app(config: Config, *, token_keys: KeySource | None = None) -> web.Application:
    return make_app(
        config, "payment", routes=routes, contexts=[payment_context], token_keys=token_keys
    )
