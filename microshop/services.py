"""Which services exist, and how to build and serve one."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import Callable

from aiohttp import web

from .config import SERVICE_PORTS, Config

__all__ = ["SERVICES", "available", "load", "serve"]

# Service name -> module with `create_app(config) -> web.Application`.
SERVICES: dict[str, str] = {
    "auth": "services.auth.app",
    "product": "services.product.app",
    "cart": "services.cart.app",
    "order": "services.order.app",
    "payment": "services.payment.app",
    "order-consumer": "services.order_consumer.app",
    "log": "services.log.app",
    "relay": "services.relay.app",
    "gateway": "services.gateway.app",
}
assert set(SERVICES) == set(SERVICE_PORTS)


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def available() -> list[str]:
    """The services there are, in start-up order (the gateway last)."""
    return [name for name, module in SERVICES.items() if _exists(module)]


def load(name: str) -> Callable[[Config], web.Application]:
    if name not in SERVICES or not _exists(SERVICES[name]):
        raise LookupError(f"no service {name!r}; available: {', '.join(available())}")
    factory: Callable[[Config], web.Application] = importlib.import_module(
        SERVICES[name]
    ).create_app
    return factory


def serve(name: str, config: Config, *, port: int | None = None) -> None:
    """Run service `name` in the foreground until SIGINT/SIGTERM."""
    app = load(name)(config)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    loop = loop_factory() if loop_factory else asyncio.new_event_loop()
    web.run_app(
        app,
        host=config.host,
        port=config.listen_port(name) if port is None else port,
        print=None,
        access_log=None,
        shutdown_timeout=5,
        loop=loop,
    )
