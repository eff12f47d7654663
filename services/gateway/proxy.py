"""Forwarding a public request to the service behind it.

The gateway checks the token at the edge (the service checks again), forwards the
end-to-end headers plus request id, correlation id and `traceparent`, tells the service
the caller's address (vouched for with the internal key), and turns an upstream that is
down, failing or slow into a 502/503/504 JSON error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, MultiMapping

from microshop import context
from microshop.appkeys import CONFIG, HTTP
from microshop.auth import authenticate, require_admin
from microshop.errors import BadGateway, GatewayTimeout

from .routing import Access, Route

__all__ = ["forward", "handler_for", "identity_headers"]

# RFC 9110 §7.6.1 hop-by-hop headers, plus those the proxy sets itself.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection",
    )
)  # fmt: skip
_NOT_FORWARDED = _HOP_BY_HOP | {
    "host", "content-length", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
    "x-internal-api-key", "x-request-id", "forwarded",
}  # fmt: skip
_NOT_RETURNED = _HOP_BY_HOP | {
    "content-length", "content-encoding", "date", "server", "x-request-id", "x-correlation-id",
}  # fmt: skip


def _connection_listed(headers: MultiMapping[str]) -> set[str]:
    """Header names a `Connection` header marks as hop-by-hop."""
    values = headers.getall("Connection", [])
    return {name.strip().lower() for value in values for name in value.split(",")}


async def _check_access(request: web.Request, access: Access) -> None:
    if access == "user":
        await authenticate(request)
    elif access == "admin":
        await require_admin(request)


def identity_headers(request: web.Request) -> dict[str, str]:
    """What the gateway adds to every call it makes for `request`: request and correlation
    ids, `traceparent`, and the caller's address (vouched for with the internal key)."""
    request_id = context.request_id.get() or context.new_id()
    headers = {
        "X-Request-ID": request_id,
        "X-Correlation-ID": context.correlation_id.get() or request_id,
        # the caller's trace when well-formed, else a new one (the context middleware's)
        "traceparent": context.traceparent.get() or context.new_traceparent(),
        "X-Forwarded-For": request.remote or "unknown",
        "X-Forwarded-Proto": request.scheme,
    }
    internal_key = request.app[CONFIG].internal_api_key
    if internal_key:
        headers["X-Internal-Api-Key"] = internal_key  # vouches for X-Forwarded-For
    return headers


async def forward(request: web.Request, service: str) -> web.Response:
    config = request.app[CONFIG]
    listed = _connection_listed(request.headers)
    headers = CIMultiDict(
        (k, v) for k, v in request.headers.items()
        if k.lower() not in _NOT_FORWARDED and k.lower() not in listed
    )  # fmt: skip
    headers.update(identity_headers(request))
    body = await request.read() if request.can_read_body else None
    url = config.url_of(service) + str(request.rel_url)
    try:
        async with request.app[HTTP].request(
            request.method, url, headers=headers, data=body, allow_redirects=False
        ) as upstream:
            payload = await upstream.read()
            returned = _connection_listed(upstream.headers)
            response_headers = CIMultiDict(
                (k, v) for k, v in upstream.headers.items()
                if k.lower() not in _NOT_RETURNED and k.lower() not in returned
            )  # fmt: skip
            return web.Response(status=upstream.status, body=payload, headers=response_headers)
    except TimeoutError:
        raise GatewayTimeout(
            f"{service} did not answer in time", details={"service": service}
        ) from None
    except aiohttp.ClientConnectorError:
        raise BadGateway(f"{service} is not reachable", code="upstream_unavailable",
                         details={"service": service}) from None  # fmt: skip
    except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        raise BadGateway(f"{service} failed: {type(exc).__name__}",
                         details={"service": service}) from None  # fmt: skip


def handler_for(route: Route, method: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    access = route.methods[method]

    async def handle(request: web.Request) -> web.Response:
        await _check_access(request, access)
        return await forward(request, route.service)

    handle.__name__ = f"{method.lower()}_{route.service}"
    return handle
