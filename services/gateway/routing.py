"""The gateway's route table: which public path goes to which service, and who may call it.

The table is the single source of truth for routing, edge authorization and the OpenAPI
document. `/internal/*` is deliberately absent: internal endpoints are never reachable
through the gateway (`Route` refuses such a path).

The gateway forwards the path it matched, rebuilt from the route's pattern and the
matched parameters (never the raw URL), so what a service receives is what was
authorised here. It sends the internal API key only where a route says `client_address`:
the service reads the caller's address from `X-Forwarded-For`, which it trusts only when
the key vouches for it (login throttling). No other forwarded call carries the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

__all__ = ["ROUTES", "Access", "Route"]

Access = Literal["public", "user", "admin"]


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    path: str  # aiohttp path pattern; forwarded rebuilt from the matched parameters
    service: str
    methods: Mapping[str, Access]
    client_address: bool = False
    """The service needs the caller's address: send `X-Forwarded-For` with the internal
    key that vouches for it. False: the call carries no key at all."""

    def __post_init__(self) -> None:
        if self.path == "/internal" or self.path.startswith("/internal/"):
            raise ValueError(f"{self.path}: internal endpoints are never routed")


ROUTES: tuple[Route, ...] = (
    Route("/api/auth/register", "auth", {"POST": "public"}),
    Route("/api/auth/login", "auth", {"POST": "public"}, client_address=True),
    Route("/api/auth/refresh", "auth", {"POST": "public"}),
    Route("/api/auth/logout", "auth", {"POST": "public"}),
    Route("/api/auth/me", "auth", {"GET": "user"}),
    Route("/api/auth/me/export", "auth", {"GET": "user"}),
    Route("/api/admin/users/{id}", "auth", {"DELETE": "admin"}),
    Route("/.well-known/jwks.json", "auth", {"GET": "public"}),
    Route("/api/products", "product", {"GET": "public", "POST": "admin"}),
    Route("/api/products/{id}", "product", {"GET": "public", "PATCH": "admin", "DELETE": "admin"}),
    Route("/api/products/{id}/image.svg", "product", {"GET": "public"}),
    Route("/api/cart", "cart", {"GET": "user", "DELETE": "user"}),
    Route("/api/cart/items", "cart", {"POST": "user"}),
    Route("/api/cart/items/{product_id}", "cart", {"PUT": "user", "DELETE": "user"}),
    Route("/api/orders", "order", {"GET": "user", "POST": "user"}),
    Route("/api/orders/{id}", "order", {"GET": "user"}),
    Route("/api/orders/{id}/events", "order", {"GET": "user"}),
    Route("/api/orders/{id}/retry-payment", "order", {"POST": "user"}),
    Route("/api/orders/{id}/cancel", "order", {"POST": "user"}),
    Route("/api/logs", "log", {"GET": "admin"}),
)
