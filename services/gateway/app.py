"""gateway (port 8000): the public API in front of the services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from microshop.app import background, make_app
from microshop.appkeys import CONFIG, HTTP, READY_CHECKS
from microshop.auth import KeySource
from microshop.config import Config
from microshop.services import available
from web.pages import add_pages
from web.spa import spa_routes

from .edge import (
    RATE_LIMITER,
    RateLimiter,
    add_cors_headers,
    cors_preflight_middleware,
    rate_limit_middleware,
)
from .openapi import docs_routes, fragments_context
from .proxy import handler_for
from .revocations import poll_revocations
from .routing import ROUTES


def proxy_routes() -> list[web.RouteDef]:
    """One route per path and method of the table, each checking access, then forwarding."""
    return [
        web.route(method, route.path, handler_for(route, method))
        for route in ROUTES
        for method in route.methods
    ]


async def upstreams_ready(app: web.Application) -> str | None:
    """Ready when every built service behind the gateway has a replica answering /health."""
    config, session = app[CONFIG], app[HTTP]
    names = sorted({r.service for r in ROUTES} & set(available()))

    async def health(url: str) -> str | None:
        try:
            async with session.get(
                f"{url}/health", timeout=aiohttp.ClientTimeout(total=1.5)
            ) as resp:
                return None if resp.status == 200 else f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__

    async def down(name: str) -> str | None:
        problems = await asyncio.gather(*map(health, config.urls_of(name)))
        return None if None in problems else f"{name}: {', '.join(map(str, problems))}"

    problems = [p for p in await asyncio.gather(*map(down, names)) if p]
    return "; ".join(problems) or None


async def edge_context(app: web.Application) -> AsyncIterator[None]:
    app[RATE_LIMITER] = RateLimiter(app[CONFIG].rate_limit_per_minute)
    app[READY_CHECKS].append(upstreams_ready)
    yield


def create_app(config: Config, *, token_keys: KeySource | None = None) -> web.Application:
    app = make_app(
        config,
        "gateway",
        routes=[*proxy_routes(), *docs_routes(), *spa_routes()],
        contexts=[
            edge_context,
            fragments_context,
            background("token-revocations", poll_revocations),
        ],
        database=False,
        public=True,
        middlewares=[cors_preflight_middleware, rate_limit_middleware],
        token_keys=token_keys,
    )
    app.on_response_prepare.append(add_cors_headers)
    add_pages(app)
    return app
