"""order-consumer (port 8007, health and metrics): payments for placed orders and retries."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from eventstore import HandlerContext, RetryPolicy
from microshop.app import make_app
from microshop.appkeys import CONFIG
from microshop.auth import KeySource
from microshop.client import ServiceClient
from microshop.config import Config
from microshop.topology import CONSUMER_QUEUES
from microshop.workers import consumer_context

from .handlers import EXTRA_DELIVERIES, PaymentDriver

__all__ = ["create_app"]

DRIVER = web.AppKey("driver", PaymentDriver)


async def driver_context(app: web.Application) -> AsyncIterator[None]:
    app[DRIVER] = PaymentDriver(
        ServiceClient.of(app, "order", internal=True),
        ServiceClient.of(app, "payment", internal=True),
        app[CONFIG].order_consumer_retry_attempts,
    )
    yield


def create_app(config: Config, *, token_keys: KeySource | None = None) -> web.Application:
    app = make_app(config, "order-consumer", database=True, token_keys=token_keys)

    async def drive(ctx: HandlerContext) -> None:
        await app[DRIVER](ctx)

    retry = RetryPolicy(
        attempts=config.order_consumer_retry_attempts + EXTRA_DELIVERIES,
        initial=config.order_consumer_backoff_initial,
        multiplier=config.order_consumer_backoff_multiplier,
    )
    app.cleanup_ctx.append(driver_context)
    payments = CONSUMER_QUEUES["order-payments"]  # queue and bindings: the consumer registry
    app.cleanup_ctx.append(
        consumer_context(
            payments.name, payments.bindings, drive, retry=retry, accepts=payments.accepts
        )
    )
    return app
