"""Edge middlewares of the gateway: per-client rate limit and CORS for the Vite dev server."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from microshop.appkeys import CONFIG
from microshop.errors import TooManyRequests

__all__ = [
    "RATE_LIMITER",
    "RateLimiter",
    "add_cors_headers",
    "cors_preflight_middleware",
    "rate_limit_middleware",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UNLIMITED = frozenset({"/health", "/ready", "/metrics"})


class RateLimiter:
    """A token bucket per client: `per_minute` requests of burst, refilled evenly.

    Buckets are kept least recently used first. A bucket untouched for a whole refill
    period is full again, the same as no bucket, so it is forgotten; past `max_clients`
    the least recently used go too. Each request does O(1) bookkeeping, however many
    clients there are.
    """

    def __init__(self, per_minute: int, *, max_clients: int = 100_000) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.refill_seconds = self.capacity / self.rate
        self.max_clients = max_clients
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = (
            collections.OrderedDict()
        )  # client -> (tokens, at), least recently used first

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, now: float | None = None) -> float:
        """0 when the request may pass, else the seconds until it would."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        passes = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if passes else tokens, now)
        self._forget_idle(now)
        return 0.0 if passes else (1.0 - tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            _, (_, at) = next(iter(buckets.items()))
            if len(buckets) <= self.max_clients and now - at < self.refill_seconds:
                return
            buckets.popitem(last=False)


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in _UNLIMITED and request.method != "OPTIONS":
        wait = request.app[RATE_LIMITER].take(request.remote or "unknown")
        if wait > 0:
            raise TooManyRequests(headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return await handler(request)


_ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Correlation-ID, X-Request-ID"
_EXPOSE_HEADERS = "X-Request-ID, X-Correlation-ID, Retry-After, Location"


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    return origin if origin in request.app[CONFIG].cors_origin_list else None


@web.middleware
async def cors_preflight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer CORS preflights of allowed origins (before routing would say 405)."""
    if (
        request.method == "OPTIONS"
        and "Access-Control-Request-Method" in request.headers
        and _allowed_origin(request)
    ):
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
                "Access-Control-Allow-Headers": _ALLOW_HEADERS,
                "Access-Control-Max-Age": "600",
            },
        )
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: every response to an allowed origin, errors included."""
    origin = _allowed_origin(request)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = _EXPOSE_HEADERS
        response.headers.add("Vary", "Origin")
