"""Forwarding a public request to the service behind it.

The gateway checks the token at the edge (the service checks again), forwards the
end-to-end headers plus request id, correlation id and `traceparent`, tells the service
the caller's address (vouched for with the internal key), and turns an upstream that is
down, failing or slow into a 502/503/504 JSON error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict, MultiMapping

from microshop.auth import authenticate, require_admin
from microshop.client import (
    ServiceClient,
    ServiceTimeout,
    ServiceUnreachable,
    UpstreamError,
    identity_headers,
)
from microshop.errors import BadGateway, GatewayTimeout

from .routing import Access, Route

__all__ = ["forward", "handler_for"]

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1 hop-by-hop headers, plus those the proxy sets itself.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Connection",
    )
)
_NOT_FORWARDED = _HOP_BY_HOP | {
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-internal-api-key",
    "x-request-id",
    "forwarded",
}
_NOT_RETURNED = _HOP_BY_HOP | {
    "content-length",
    "content-encoding",
    "date",
    "server",
    "x-request-id",
    "x-correlation-id",
}


def _connection_listed(headers: MultiMapping[str]) -> set[str]:
    """Header names a `Connection` header marks as hop-by-hop."""
    values = headers.getall("Connection", [])
    return {name.strip().lower() for value in values for name in value.split(",")}


async def _check_access(request: web.Request, access: Access) -> None:
    if access == "user":
        await authenticate(request)
    elif access == "admin":
        await require_admin(request)


async def forward(request: web.Request, service: str) -> web.Response:
    listed = _connection_listed(request.headers)
    headers = CIMultiDict(
        (k, v)
        for k, v in request.headers.items()
        if k.lower() not in _NOT_FORWARDED and k.lower() not in listed
    )
    headers.update(identity_headers(request))
    body = await request.read() if request.can_read_body else None
    client = ServiceClient.of(request.app, service)
    details = {"service": service}
    try:
        async with client.send(
            request.method, str(request.rel_url), headers=headers, data=body
        ) as upstream:
            payload = await upstream.read()
            returned = _connection_listed(upstream.headers)
            response_headers = CIMultiDict(
                (k, v)
                for k, v in upstream.headers.items()
                if k.lower() not in _NOT_RETURNED and k.lower() not in returned
            )
            return web.Response(status=upstream.status, body=payload, headers=response_headers)
    except ServiceTimeout:
        raise GatewayTimeout(f"{service} did not answer in time", details=details) from None
    except ServiceUnreachable:
        raise BadGateway(
            f"{service} is not reachable", code="upstream_unavailable", details=details
        ) from None
    except UpstreamError as exc:
        log.warning("%s %s via %s: %s", request.method, request.path, service, exc.message)
        raise BadGateway(f"{service} failed", details=details) from None


def handler_for(route: Route, method: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    access = route.methods[method]

    async def handle(request: web.Request) -> web.Response:
        await _check_access(request, access)
        return await forward(request, route.service)

    handle.__name__ = f"{method.lower()}_{route.service}"
    return handle
