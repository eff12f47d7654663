"""Forwarding a public request to the service behind it.

The gateway checks the token at the edge (the service checks again), forwards the
end-to-end headers plus request id, correlation id and `traceparent`, tells the service
the caller's address (vouched for with the internal key), and turns an upstream that is
down, failing or slow into a 502/503/504 JSON error.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, MultiMapping

from microshop import context
from microshop.appkeys import CONFIG, HTTP
from microshop.auth import authenticate, require_admin
from microshop.errors import BadGateway, GatewayTimeout

from .routing import Access, Route

__all__ = ["forward", "handler_for"]

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


def traceparent(incoming: str | None) -> str:
    """The caller's W3C traceparent when well-formed, else the start of a new trace."""
    if incoming:
        parts = incoming.strip().split("-")
        if (
            len(parts) == 4
            and parts[0] == "00"
            and len(parts[1]) == 32
            and len(parts[2]) == 16
            and len(parts[3]) == 2
            and all(c in "0123456789abcdef" for c in "".join(parts))
            and parts[1] != "0" * 32
            and parts[2] != "0" * 16
        ):
            return incoming.strip()
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


async def _check_access(request: web.Request, access: Access) -> None:
    if access == "user":
        await authenticate(request)
    elif access == "admin":
        await require_admin(request)


async def forward(request: web.Request, service: str) -> web.Response:
    config = request.app[CONFIG]
    listed = _connection_listed(request.headers)
    headers = CIMultiDict(
        (k, v) for k, v in request.headers.items()
        if k.lower() not in _NOT_FORWARDED and k.lower() not in listed
    )  # fmt: skip
    headers["X-Request-ID"] = context.request_id.get() or context.new_id()
    headers["X-Correlation-ID"] = context.correlation_id.get() or headers["X-Request-ID"]
    headers["traceparent"] = traceparent(request.headers.get("traceparent"))
    headers["X-Forwarded-For"] = request.remote or "unknown"
    headers["X-Forwarded-Proto"] = request.scheme
    if config.internal_api_key:
        headers["X-Internal-Api-Key"] = config.internal_api_key  # vouches for X-Forwarded-For
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
